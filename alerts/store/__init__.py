"""Where triage's results are kept, and what the services read and do with them: one
interface (:class:`Store`), made of what each client needs (:class:`PipelineStore` for the
pipeline and the worker, :class:`DeliveryStore` for the notifier, :class:`ActionStore` for
the API and the CLI's actions, :class:`HistoryStore` for the CLI's history). No SQL is
written outside this package; the SQLAlchemy implementation (PostgreSQL, SQLite) is
:class:`alerts.store.sql.SqlStore`. What to do (escalate whom, what an action does, when a
thread reply is due) is decided by pure stages (:mod:`alerts.escalate`,
:mod:`alerts.actions`, :mod:`alerts.triage`); the store supplies the facts and keeps the
results."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from alerts.actions import Action
from alerts.escalate import PageState
from alerts.model import Silence, Status
from alerts.triage import Changes, Triage
from config.file import TriagePolicy
from stream.events import Reject


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A live worker's state for one input partition, and the last offset per input topic
    that state includes (events up to there are in it; redelivered ones are skipped)."""

    app_id: str
    partition: int
    state: bytes
    offsets: dict[str, int]
    events: int


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a live worker's partition has been processed and written (its alerts and
    pages are in the store up to here), checkpointed or not: for operators and latency
    measurements. A restart resumes from the :class:`Checkpoint`, which may be older."""

    app_id: str
    partition: int
    offsets: dict[str, int]
    events: int


class MessageKind(StrEnum):
    """What an outbox message carries."""

    PAGE = "page"  # a page (or an escalation of one)
    THREAD = "thread"  # a reply in a page's thread: what still fires
    RESOLVE = "resolve"  # the incident resolved: update its pages in Slack


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message to deliver (written in the same transaction as what it tells)."""

    message_id: str
    kind: MessageKind
    page_id: str | None
    incident_id: str | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PostedPage:
    """A page Slack has: where it is, to reply in its thread or update it."""

    page_id: str
    level: int
    summary: str
    slack_channel: str
    slack_ts: str


@dataclass(frozen=True, slots=True)
class DigestItem:
    """An incident routed to the digest, not paged, not digested yet."""

    incident_id: str
    model_id: str
    summary: str
    severity: float


@dataclass(frozen=True, slots=True)
class Acted:
    """An alert after a person's action, and where its page is in Slack (if it is)."""

    alert_id: str
    status: Status
    acknowledged_by: str | None
    slack_channel: str | None
    slack_ts: str | None


@dataclass(frozen=True, slots=True)
class AlertSummary:
    """A line of ``watchkeeper alerts list`` (from the ``alert_history`` view)."""

    alert_id: str
    model_id: str
    kind: str
    subject: str
    slice: str | None
    severity: float
    route: str
    status: str
    first_seen: datetime | str  # the view's text on SQLite
    last_seen: datetime | str
    occurrences: int
    paged: bool
    acknowledged_by: str | None
    summary: str


@dataclass(frozen=True, slots=True)
class AlertDetail:
    """Everything ``watchkeeper alerts show`` prints: the alert's row, its occurrences
    (event index, time, value) and its incident's pages."""

    alert: dict[str, Any]
    occurrences: list[tuple[int, datetime, float]]  # event index, time, value
    pages: list[dict[str, Any]]


class Reachable(Protocol):
    """Every store raises :class:`config.errors.RetryableError` from any call while its
    database is away (refused, dropped, shut down, locked); callers wait it out."""

    def ping(self) -> None:
        """Reach the database; ``RetryableError`` when it is away (``/readyz``)."""
        ...


class PipelineStore(Reachable, Protocol):
    """What the pipeline and the worker read and write."""

    def load_triage(self, policy: TriagePolicy) -> Triage:
        """A triage pipeline resumed from the stored state."""
        ...

    def apply(self, changes: Changes, *, dry_run: bool, source: str = "",
              rejects: Sequence[tuple[int, Reject]] = (), checkpoint: Checkpoint | None = None,
              progress: Progress | None = None) -> None:
        """Persist one batch atomically and idempotently, in one transaction: its changes
        (the pages queued for delivery in the outbox unless ``dry_run``), its rejected
        events (from ``source``), and with ``checkpoint`` and ``progress``, those."""
        ...

    def load_mutes(self, policy: TriagePolicy) -> tuple[list[Silence],
                                                        Counter[tuple[str, str, str]]]:
        """Silences and "not actionable" counts, as people have set them so far."""
        ...

    def load_checkpoint(self, app_id: str, partition: int) -> Checkpoint | None:
        """The last checkpoint of a live worker's partition, if any."""
        ...

    def load_progress(self, app_id: str, partition: int) -> Progress | None:
        """How far a live worker's partition was processed and written, if at all."""
        ...

    def record_rejects(self, source: str, rejects: Sequence[tuple[int, Reject]]) -> None:
        """Keep rejected events (idempotent per source and index)."""
        ...

    def seq_base(self, source: str) -> int:
        """The first event index of a source: above all recorded, stable per source."""
        ...

    def close(self) -> None: ...


class DeliveryStore(Reachable, Protocol):
    """What the notifier reads and records: the outbox, the pages, the digest."""

    def pending_messages(self, max_attempts: int) -> list[str]:
        """Ids of the messages not sent yet and tried fewer than ``max_attempts`` times:
        pages first, then oldest first."""
        ...

    def message(self, message_id: str) -> OutboxMessage:
        """One outbox message."""
        ...

    def page_content(self, page_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A page's row and its lead alert's row, to render."""
        ...

    def posted_pages(self, incident_id: str) -> list[PostedPage]:
        """The incident's pages that Slack has, lowest escalation level first (the first
        one's thread is the incident's)."""
        ...

    def undelivered_pages(self, incident_id: str) -> int:
        """How many of the incident's pages (not dry runs) are still to go out."""
        ...

    def record_attempt(self, message_id: str, at: datetime, *, error: str | None,
                       posted: tuple[str, str] | None = None) -> None:
        """One delivery attempt: failed (``error``), or sent (the message marked sent, and
        for a page where Slack put it, ``posted``), in one transaction."""
        ...

    def delivery_attempts(self, message_id: str) -> list[tuple[datetime, str | None]]:
        """The message's recorded attempts, oldest first: when each was made and its error
        (None: it went out)."""
        ...

    def escalation_candidates(self) -> list[PageState]:
        """Every page (not a dry run) of an unresolved incident, with whether it is out and
        whether anyone answered it."""
        ...

    def queue_escalation(self, page: PageState, at: datetime) -> str:
        """Queue ``page`` again one level up (a page and its outbox message, once);
        returns the new page's id."""
        ...

    def digest_sent_at(self) -> datetime | None:
        """When the last digest went out."""
        ...

    def digest_items(self) -> list[DigestItem]:
        """What the next digest carries, by model and age."""
        ...

    def mark_digested(self, incident_ids: Sequence[str], at: datetime) -> None: ...

    def record_digest(self, at: datetime) -> None:
        """A digest went out at ``at``."""
        ...


class ActionStore(Reachable, Protocol):
    """What people do (Slack's buttons, the HTTP API, the CLI)."""

    def act(self, alert_id: str, action: Action | str, actor: str, at: datetime, *,
            note: str = "", silence_for: float = 24 * 3600) -> Acted | None:
        """A person's action on an alert (:func:`alerts.actions.effect`), recorded with
        who and when; None when there is no such alert."""
        ...

    def find_alerts(self, prefix: str) -> list[str]:
        """The ids of the alerts whose id starts with ``prefix``."""
        ...

    def first_use(self, key: str, at: datetime, keep_seconds: float) -> bool:
        """True the first time ``key`` is presented within ``keep_seconds``, across every
        process on this database (a replay guard)."""
        ...

    def add_silence(self, silence: SilenceRecord) -> None:
        """Keep a silence made by a person (once per ``silence_id``)."""
        ...

    def expire_silence(self, silence_id: str, at: datetime) -> bool:
        """End a silence at ``at`` (if it was still in force); False when there is none."""
        ...


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a list shows: equal to each given field, raised (``first_seen``)
    in ``[since, until)``."""

    model: str | None = None
    kind: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page of a list (newest first) starts: after this row."""

    at: datetime
    key: str


@dataclass(frozen=True, slots=True)
class IncidentSummary:
    """A line of the console's incident list."""

    incident_id: str
    model_id: str
    status: str
    severity: float
    route: str
    opened_at: datetime
    updated_at: datetime
    paged_at: datetime | None
    summary: str
    alerts: int


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """Everything the console shows about one alert: its row, its incident, the latest
    occurrences (newest ``shown``, out of ``occurrence_count``), the incident's pages (with
    their delivery attempts), the acknowledgement log, the feedback and the incident's
    other alerts."""

    alert: dict[str, Any]
    incident: dict[str, Any] | None
    occurrences: list[dict[str, Any]]
    occurrence_count: int
    pages: list[dict[str, Any]]
    acknowledgements: list[dict[str, Any]]
    feedback: list[dict[str, Any]]
    siblings: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One stored value of a statistic (``statistic_snapshots``), for a chart."""

    fingerprint: str
    kind: str
    subject: str
    statistic: str
    slice: str | None
    model_version: str | None
    ts: datetime
    value: float
    threshold: float


@dataclass(frozen=True, slots=True)
class SilenceRecord:
    """A silence as stored (made from an alert, or on the console)."""

    silence_id: str
    model_id: str | None
    kind: str | None
    subject: str | None
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str


class HistoryStore(Protocol):
    """What the CLI reads: the CONTRACT views and what one alert went through."""

    def recent_alerts(self, *, model: str | None = None, status: str | None = None,
                      kind: str | None = None, limit: int = 50) -> list[AlertSummary]:
        """Alerts from ``alert_history``, newest first."""
        ...

    def alert_detail(self, prefix: str) -> AlertDetail | None:
        """One alert by id or unique id prefix; None when none or several match."""
        ...

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """One read-only query (over the CONTRACT views, say): columns and rows."""
        ...

    # the console's reads: each an indexed query, lists paginated (newest first)
    def alerts_page(self, where: AlertFilter, *, limit: int = 50,
                    after: Cursor | None = None) -> tuple[list[AlertSummary], Cursor | None]:
        """Alerts newest raised first, ``limit`` of them after ``after``, and where the
        next page starts (None: this is the last)."""
        ...

    def incidents_page(self, *, model: str | None = None, unresolved: bool = True,
                       limit: int = 50, after: Cursor | None = None,
                       ) -> tuple[list[IncidentSummary], Cursor | None]:
        """Incidents newest opened first (only those not resolved, by default)."""
        ...

    def alert_record(self, alert_id: str, *, occurrences: int = 500) -> AlertRecord | None:
        """One alert by its exact id, with what the console shows of it."""
        ...

    def model_ids(self) -> list[str]:
        """The models triage has seen, by name."""
        ...

    def model_alerts(self, model_id: str, since: datetime, until: datetime, *,
                     limit: int = 200) -> list[dict[str, Any]]:
        """A model's alerts that were firing at some time in ``[since, until]``, the latest
        raised first: id, fingerprint, kind, subject, slice, status, severity, first and
        last seen (aware UTC)."""
        ...

    def snapshot_span(self, model_id: str) -> tuple[datetime, datetime] | None:
        """The first and last stored statistic time of a model, if any."""
        ...

    def snapshots(self, model_id: str, since: datetime, until: datetime, *,
                  limit: int = 20_000) -> tuple[list[Snapshot], bool]:
        """A model's stored statistics in ``[since, until]``, in time order: the latest
        ``limit`` of them, and whether older ones were left out."""
        ...

    def silences(self, at: datetime, *, limit: int = 100) -> list[SilenceRecord]:
        """Silences in force at ``at`` (ending soonest first), then the latest ended."""
        ...


class Store(PipelineStore, DeliveryStore, ActionStore, HistoryStore, Protocol):
    """The whole store: what :class:`alerts.store.sql.SqlStore` implements."""
