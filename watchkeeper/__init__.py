"""Watchkeeper: command line, configuration and process settings."""
