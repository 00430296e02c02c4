"""SQLAlchemy 2.0 models of the alert store (kept inside the store package).

The public, stable surface is the pair of SQL views of CONTRACT §4 (``alert_history`` and
``pages``), created by the migrations; these tables may evolve under them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Json = JSON().with_variant(JSONB(), "postgresql")
UtcDateTime = DateTime(timezone=True)
Id = String(36)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: Json, list[Any]: Json, datetime: UtcDateTime}


class IncidentRow(Base):
    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_status_opened_at", "status", "opened_at",
                            "incident_id"),
                      Index("ix_incidents_opened_at", "opened_at", "incident_id"),
                      Index("ix_incidents_model_opened_at", "model_id", "opened_at",
                            "incident_id"))

    incident_id: Mapped[str] = mapped_column(Id, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    severity: Mapped[float] = mapped_column(Float)
    route: Mapped[str] = mapped_column(String(10))
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    paged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    lead_alert_id: Mapped[str | None] = mapped_column(Id)
    summary: Mapped[str] = mapped_column(Text, default="")
    factors: Mapped[list[Any]]
    alert_ids: Mapped[list[Any]]
    digested_at: Mapped[datetime | None]  # set by the notifier once a digest carried it


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("fingerprint", "first_seq", name="uq_alerts_fingerprint_first_seq"),
        Index("ix_alerts_model_first_seen", "model_id", "first_seen"),
        Index("ix_alerts_first_seen", "first_seen", "alert_id"),  # the console's lists
        Index("ix_alerts_status_first_seen", "status", "first_seen", "alert_id"),
        Index("ix_alerts_kind_first_seen", "kind", "first_seen", "alert_id"),
        Index("ix_alerts_model_first_seen_id", "model_id", "first_seen", "alert_id"),
        Index("ix_alerts_model_last_seen", "model_id", "last_seen"),
    )

    alert_id: Mapped[str] = mapped_column(Id, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32), index=True)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.incident_id"),
                                                    index=True)
    model_id: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(500))
    statistic: Mapped[str] = mapped_column(String(100))
    slice: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), index=True)
    severity: Mapped[float] = mapped_column(Float)
    route: Mapped[str] = mapped_column(String(10))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    occurrences: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]]
    factors: Mapped[list[Any]]
    silenced_by: Mapped[str | None] = mapped_column(Id)
    inhibited_by: Mapped[str | None] = mapped_column(Id)
    flaps: Mapped[int] = mapped_column(Integer, default=0)
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    paged: Mapped[bool] = mapped_column(Boolean, default=False)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None]
    summary: Mapped[str] = mapped_column(Text, default="")
    clean_evaluations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    evaluations_since_resolved: Mapped[int] = mapped_column(Integer, default=0,
                                                            server_default="0")
    evaluated_seq: Mapped[int] = mapped_column(BigInteger, default=-1, server_default="-1")


class OccurrenceRow(Base):
    __tablename__ = "occurrences"
    __table_args__ = (UniqueConstraint("fingerprint", "seq", name="uq_occurrences_fp_seq"),
                      Index("ix_occurrences_alert_seq", "alert_id", "seq"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[datetime]
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]]


class PageRow(Base):
    __tablename__ = "page_log"
    __table_args__ = (
        UniqueConstraint("incident_id", "escalation_level", name="uq_page_incident_level"),
        Index("ix_page_log_model_paged_at", "model_id", "paged_at"),
    )

    page_id: Mapped[str] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.incident_id"))
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"))
    model_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(500))
    paged_at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(200))
    escalation_level: Mapped[int] = mapped_column(Integer)
    severity: Mapped[float] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    factors: Mapped[list[Any]]
    alert_ids: Mapped[list[Any]]
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    delivered_at: Mapped[datetime | None]
    slack_channel: Mapped[str | None] = mapped_column(String(200))
    slack_ts: Mapped[str | None] = mapped_column(String(40))


class OutboxRow(Base):
    """The transactional outbox: written with the page, delivered by the notifier."""

    __tablename__ = "outbox"

    message_id: Mapped[str] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # page | resolve | digest
    page_id: Mapped[str | None] = mapped_column(ForeignKey("page_log.page_id"))
    incident_id: Mapped[str | None] = mapped_column(Id)
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class DeliveryAttemptRow(Base):
    """Every call the notifier made to Slack for an outbox message, and how it went."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("outbox.message_id"), index=True)
    attempted_at: Mapped[datetime]
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)


class AcknowledgementRow(Base):
    __tablename__ = "acknowledgements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")


class SilenceRow(Base):
    __tablename__ = "silences"

    silence_id: Mapped[str] = mapped_column(Id, primary_key=True)
    model_id: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str | None] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(500))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    comment: Mapped[str] = mapped_column(Text, default="")


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_key", "model_id", "kind", "subject"),
                      Index("ix_feedback_alert_id", "alert_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"))
    model_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(500))
    verdict: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")


class SnapshotRow(Base):
    """Statistic values over time, for charts: one per evaluation's sample and per signal
    (one per series and index)."""

    __tablename__ = "statistic_snapshots"
    __table_args__ = (
        UniqueConstraint("fingerprint", "seq", name="uq_snapshots_fp_seq"),
        Index("ix_snapshots_model_ts", "model_id", "ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(500))
    statistic: Mapped[str] = mapped_column(String(100))
    slice: Mapped[str | None] = mapped_column(String(500))
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[datetime]
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)


class RejectedEventRow(Base):
    __tablename__ = "rejected_events"
    __table_args__ = (UniqueConstraint("source", "seq", name="uq_rejected_source_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(500))
    seq: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(40), index=True)
    detail: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    recorded_at: Mapped[datetime]


class StateRow(Base):
    """Small pieces of pipeline state (the triage clock)."""

    __tablename__ = "pipeline_state"

    key: Mapped[str] = mapped_column(Text, primary_key=True)  # 0010: a path is in some
    value: Mapped[dict[str, Any]]


class PartitionStateRow(Base):
    """A live worker's checkpoint of one input partition: the pipeline's monitor state and
    the last input offset per topic it includes (written with that batch's alerts)."""

    __tablename__ = "partition_state"

    app_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    offsets: Mapped[dict[str, Any]]
    events: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class PartitionProgressRow(Base):
    """How far a live worker's partition is processed and written, updated with every
    batch (its checkpoint, in ``partition_state``, is written less often)."""

    __tablename__ = "partition_progress"

    app_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offsets: Mapped[dict[str, Any]]
    events: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class SeenRequestRow(Base):
    """Signed requests already taken (the SHA-256 of their signature), for a few minutes:
    a second delivery of one, to any API process, is a replay."""

    __tablename__ = "seen_requests"
    __table_args__ = (Index("ix_seen_requests_seen_at", "seen_at"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime]
