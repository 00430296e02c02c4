"""The bottom layer: the configuration file, the process settings, the error hierarchy."""
