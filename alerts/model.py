"""Triage domain objects: frozen dataclasses; stages return changed copies."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stream.signals import Kind


class Status(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    SILENCED = "silenced"


class Route(StrEnum):
    """Where an alert or incident goes: wake a person, the daily digest, or history only."""

    PAGE = "page"
    DIGEST = "digest"
    LOG = "log"

    @property
    def rank(self) -> int:
        return {"log": 0, "digest": 1, "page": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Factor:
    """One explainable part of a severity score."""

    name: str
    value: float
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": round(self.value, 4), "note": self.note}


@dataclass(frozen=True, slots=True)
class Alert:
    """One condition on one model, from its first signal until it resolves."""

    alert_id: str
    fingerprint: str
    model_id: str
    kind: Kind
    subject: str
    statistic: str
    slice: str | None
    model_version: str | None
    first_seen: float
    last_seen: float
    first_seq: int
    last_seq: int
    occurrences: int
    value: float
    threshold: float
    evidence: dict[str, Any] = field(hash=False)
    status: Status = Status.OPEN
    severity: float = 0.0
    route: Route = Route.LOG
    factors: tuple[Factor, ...] = ()
    incident_id: str | None = None
    silenced_by: str | None = None
    inhibited_by: str | None = None
    flaps: int = 0
    flapping: bool = False
    paged: bool = False
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    clean_evaluations: int = 0  # clear evaluations in a row since it last fired
    evaluations_since_resolved: int = 0  # evaluations of its scope since it resolved
    evaluated_seq: int = -1  # index of the last evaluation counted (re-processing is a no-op)

    @property
    def active(self) -> bool:
        return self.status in (Status.OPEN, Status.ACKNOWLEDGED, Status.SILENCED)

    @property
    def scope(self) -> str:
        parts = [self.subject]
        if self.slice:
            parts.append(self.slice)
        if self.model_version:
            parts.append(f"version {self.model_version}")
        return " / ".join(parts)

    @property
    def summary(self) -> str:
        return (f"{self.model_id}: {self.kind} on {self.scope}: {self.statistic} "
                f"{self.value:.4g} (threshold {self.threshold:.4g})")


@dataclass(frozen=True, slots=True)
class Incident:
    """Related alerts of one model, paged (or digested) once as a whole."""

    incident_id: str
    model_id: str
    opened_at: float
    updated_at: float
    alert_ids: tuple[str, ...]
    status: Status = Status.OPEN
    severity: float = 0.0
    route: Route = Route.LOG
    factors: tuple[Factor, ...] = ()
    lead_alert_id: str | None = None
    paged_at: float | None = None
    resolved_at: float | None = None
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Page:
    """A page to on-call (or its dry-run record): one per incident and escalation level."""

    page_id: str
    incident_id: str
    alert_id: str
    model_id: str
    kind: Kind
    subject: str
    paged_at: float
    channel: str
    escalation_level: int
    summary: str
    alert_ids: tuple[str, ...]
    severity: float
    factors: tuple[Factor, ...]
    seq: int  # index of the event at which the page was decided


@dataclass(frozen=True, slots=True)
class Silence:
    """Mute matching alerts until ``ends_at`` (event time). ``None`` matches anything;
    ``subject`` may end in ``*`` to match a prefix."""

    silence_id: str
    ends_at: float
    model_id: str | None = None
    kind: Kind | None = None
    subject: str | None = None
    starts_at: float = 0.0
    created_by: str = ""
    comment: str = ""

    def matches(self, alert: Alert, now: float) -> bool:
        if not self.starts_at <= now < self.ends_at:
            return False
        if self.model_id is not None and self.model_id != alert.model_id:
            return False
        if self.kind is not None and self.kind != alert.kind:
            return False
        if self.subject is not None:
            if self.subject.endswith("*"):
                return alert.subject.startswith(self.subject[:-1])
            return self.subject == alert.subject
        return True
