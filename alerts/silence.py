"""silence: mute alerts that a person has said to leave alone, until the silence expires."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from alerts.model import Alert, Silence, Status


def silence(alert: Alert, silences: Sequence[Silence], now: float) -> Alert:
    """Mark the alert silenced by the first matching live silence, or lift an expired one."""
    for s in silences:
        if s.matches(alert, now):
            if alert.status is Status.OPEN:
                return replace(alert, status=Status.SILENCED, silenced_by=s.silence_id)
            return replace(alert, silenced_by=s.silence_id)
    if alert.silenced_by is not None:
        status = Status.OPEN if alert.status is Status.SILENCED else alert.status
        return replace(alert, status=status, silenced_by=None)
    return alert
