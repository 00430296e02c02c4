"""The stream layer: event decoding and validation, monitors, signals, runners."""
