"""Error hierarchy: retryable (try again later) versus permanent (fix the input)."""

from __future__ import annotations


class WatchkeeperError(Exception):
    """Base of every error Watchkeeper raises on purpose."""


class PermanentError(WatchkeeperError):
    """Retrying cannot help: the input or the configuration is wrong."""


class RetryableError(WatchkeeperError):
    """A transient failure (a broker or a database away): the same call may succeed later."""


class ConfigError(PermanentError):
    """An invalid configuration; the message is one line and names the offending key."""


class InputError(PermanentError):
    """An unreadable input file or stream."""
