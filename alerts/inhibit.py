"""inhibit: an upstream data problem mutes the drift it causes.

While a model has an active corruption alert (a schema break, or a data-quality alert that
scores as corruption), its drift alert on the same feature and its prediction-drift alerts
are inhibited: they are symptoms, and the corruption alert is the cause a person must fix.
Performance and business alerts are never inhibited: they are the impact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from alerts.model import Alert
from alerts.score import CORRUPTION, impact
from config.file import TriagePolicy
from stream.signals import Kind


def is_cause(alert: Alert, policy: TriagePolicy) -> bool:
    return (alert.active and alert.kind in (Kind.SCHEMA, Kind.DATA_QUALITY)
            and impact(alert, policy).value >= CORRUPTION)


def inhibit(alert: Alert, same_model: Iterable[Alert], policy: TriagePolicy) -> Alert:
    """Set or clear ``inhibited_by`` on ``alert`` given the model's other alerts."""
    cause: Alert | None = None
    if alert.kind in (Kind.DRIFT, Kind.PREDICTION_DRIFT):
        for other in same_model:
            if other.alert_id != alert.alert_id and is_cause(other, policy) and (
                alert.kind == Kind.PREDICTION_DRIFT or other.subject == alert.subject
            ):
                cause = other
                break
    cause_id = cause.alert_id if cause is not None else None
    return alert if cause_id == alert.inhibited_by else replace(alert, inhibited_by=cause_id)
