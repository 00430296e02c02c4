"""The alert store on SQLAlchemy 2.0 (PostgreSQL in production, SQLite embedded).

Every write is idempotent: alerts and incidents are upserted by id, occurrences, pages,
outbox messages, snapshots and rejects are inserted once per natural key (unique
constraints + ON CONFLICT DO NOTHING), so re-processing the same signals adds nothing.
One call of :meth:`SqlStore.apply` is one transaction: a page and its outbox message are
committed together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Engine,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase

from alerts.actions import HUMAN_STATUSES, Action, effect
from alerts.escalate import PageState
from alerts.fingerprint import stable_id
from alerts.model import Alert, Factor, Incident, Route, Silence, Status
from alerts.store import (
    Acted,
    AlertDetail,
    AlertFilter,
    AlertRecord,
    AlertSummary,
    Checkpoint,
    Cursor,
    DigestItem,
    IncidentSummary,
    MessageKind,
    OutboxMessage,
    PostedPage,
    Progress,
    SilenceRecord,
    Snapshot,
    schema,
)
from alerts.store.tables import (
    AcknowledgementRow,
    AlertRow,
    DeliveryAttemptRow,
    FeedbackRow,
    IncidentRow,
    OccurrenceRow,
    OutboxRow,
    PageRow,
    PartitionProgressRow,
    PartitionStateRow,
    RejectedEventRow,
    SeenRequestRow,
    SilenceRow,
    SnapshotRow,
    StateRow,
)
from alerts.triage import Changes, Triage
from config.errors import ConfigError, RetryableError
from config.file import TriagePolicy
from stream.events import Reject
from stream.signals import Kind

CLOCKS_KEY = "triage_clocks"  # written before migration 0006: every clock in one row (read)
CLOCK_PREFIX = "triage_clock:"  # a row per model (keyed by a hash: ids can be long)
DIGEST_KEY = "digest"  # when the last digest went out


def _clock_key(model_id: str) -> str:
    """The key of a model's triage clock row.

    >>> _clock_key("m")
    'triage_clock:6f8f57715090da2632453988d9a1501b'
    """
    return CLOCK_PREFIX + hashlib.md5(model_id.encode(), usedforsecurity=False).hexdigest()
SEQ_BASE_STRIDE = 10**12  # events a replayed source may hold before the next one's base


def dialect_insert(conn: Connection) -> Any:
    """The INSERT with ON CONFLICT of the connection's database."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


NUL = "\x00"
NUL_WRITTEN = "\\x00"  # how a NUL character is stored: PostgreSQL's text cannot hold one


def _text(value: str) -> str:
    return value.replace(NUL, NUL_WRITTEN) if NUL in value else value


def _storable(obj: Any) -> Any:
    """``obj`` as the JSON columns keep it: NaN and infinities as null, NUL characters in
    strings (keys too) written out."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str):
        return _text(obj)
    if isinstance(obj, dict):
        return {_text(k) if isinstance(k, str) else k: _storable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_storable(v) for v in obj]
    return obj


def json_dumps(obj: Any) -> str:
    r"""JSON for the store's columns: NaN and infinities (a z of inf, say) become null,
    which PostgreSQL accepts and SQLite keeps the same; a NUL character is written out.

    >>> json_dumps({"z": float("inf"), "v": [1.5, float("nan")], "k\x00": "a\x00"})
    '{"z": null, "v": [1.5, null], "k\\\\x00": "a\\\\x00"}'
    """
    return json.dumps(_storable(obj))


def _no_nul(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
            executemany: bool) -> tuple[str, Any]:
    """The engine's ``before_cursor_execute`` hook on PostgreSQL: a NUL character in a text
    parameter is written out (PostgreSQL's text cannot hold one, and events may carry one
    in an id, a name or a category). Only strings that hold one are copied."""
    def clean(params: Any) -> Any:
        if isinstance(params, dict):
            if any(isinstance(v, str) and NUL in v for v in params.values()):
                return {k: _text(v) if isinstance(v, str) else v for k, v in params.items()}
            return params
        if isinstance(params, (list, tuple)) and any(
                isinstance(v, str) and NUL in v for v in params):
            return type(params)(_text(v) if isinstance(v, str) else v for v in params)
        return params

    if executemany and isinstance(parameters, (list, tuple)):
        return statement, [clean(p) for p in parameters]
    return statement, clean(parameters)


def to_dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def to_ts(dt: datetime | None) -> float | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _factors(factors: Iterable[Factor]) -> list[dict[str, Any]]:
    return [f.to_dict() for f in factors]


def _from_factors(rows: list[Any]) -> tuple[Factor, ...]:
    return tuple(Factor(r["name"], float(r["value"]), r["note"]) for r in rows)


class QueryError(ValueError):
    """A query the database refused (the message is its one-line reason)."""


def open_store(db: str, *, migrate: bool = True) -> SqlStore:
    """The store at ``db``; migrated to the latest schema unless ``migrate`` is False, when
    the schema must already be current (services that run as several processes)."""
    try:
        if not migrate:
            url = schema.database_url(db)
            found, wanted = schema.current(url), schema.head()
            if found != wanted:
                raise ConfigError(f"the database {schema.redact(url)} is at schema revision "
                                  f"{found or 'none'}, not {wanted}: run 'watchkeeper db "
                                  "upgrade' first")
        return SqlStore(db, migrate=migrate)
    except (SQLAlchemyError, OSError) as exc:
        raise RetryableError(f"cannot open the database {schema.redact(db)}: "
                             f"{str(exc).splitlines()[0]}") from None


def _connect_args(url: str) -> dict[str, Any]:
    """libpq's timeouts for PostgreSQL: a database host that drops packets (rather than
    refusing) is found away within seconds, not the system's minutes, so the worker's loop
    (its Kafka heartbeats) is not held up long (user settings in the URL win)."""
    if not url.startswith("postgresql"):
        return {}
    return {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10,
            "keepalives_interval": 5, "keepalives_count": 3, "tcp_user_timeout": 15_000}


# SQLite's transient failures (another process holds the file); its other operational
# errors ("no such table") are the schema's, and retrying cannot help
SQLITE_TRANSIENT = ("database is locked", "unable to open database", "disk i/o error")
# PostgreSQL's SQLSTATEs worth waiting out: connection exceptions (08), insufficient
# resources (53: too many connections, disk full) and shutdowns (57P01-57P03: not 57014, a
# statement timeout, which the same batch meets again); a serialization failure or a
# deadlock (40001, 40P01), a read-only transaction after a failover (25006), a lock not
# available (55P03). Anything else (a constraint, a program limit, a bad query) is a bug
# and stays the error it is, rather than be retried for ever.
PG_TRANSIENT_CLASSES = {"08", "53"}
PG_TRANSIENT_CODES = {"57P01", "57P02", "57P03", "40001", "40P01", "25006", "55P03"}


def _transient(context: ExceptionContext) -> None:
    """The engine's ``handle_error`` hook: a database away (refused, dropped, shut down,
    locked) becomes :class:`config.errors.RetryableError`, which the services wait out with
    backoff (they never import SQLAlchemy); anything else stays the error it is."""
    if context.is_pre_ping:  # SQLAlchemy reconnects a stale pooled connection itself
        return
    original = context.original_exception
    if context.is_disconnect:
        transient = True
    elif context.dialect is not None and context.dialect.name == "sqlite":
        transient = any(m in str(original).lower() for m in SQLITE_TRANSIENT)
    else:
        code = getattr(original, "pgcode", None)
        if code:  # the server answered: transient by its SQLSTATE only
            transient = code[:2] in PG_TRANSIENT_CLASSES or code in PG_TRANSIENT_CODES
        else:  # no answer (refused, reset, timed out): libpq's OperationalError
            transient = isinstance(context.sqlalchemy_exception, OperationalError)
    if transient:
        line = (str(original).strip().splitlines() or [type(original).__name__])[0]
        raise RetryableError(f"the database is unavailable: {line}") from original


class SqlStore:
    """:class:`alerts.store.Store` on a SQLAlchemy engine (the only SQL in the package).

    A database that is away raises :class:`config.errors.RetryableError` from any call
    (:func:`_transient`); pooled connections are checked before use, so the first call
    after the database is back succeeds."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = schema.database_url(url)
        if migrate:
            schema.upgrade(self.url)
        self.engine: Engine = create_engine(self.url, json_serializer=json_dumps,
                                            pool_pre_ping=True,
                                            connect_args=_connect_args(self.url))
        event.listen(self.engine, "handle_error", _transient)
        if self.url.startswith("postgresql"):
            event.listen(self.engine, "before_cursor_execute", _no_nul, retval=True)

    def ping(self) -> None:
        """Reach the database (``SELECT 1``); :class:`RetryableError` when it is away."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # -- writing ---------------------------------------------------------------------------
    @staticmethod
    def insert_rows(conn: Connection, model: type[DeclarativeBase], rows: list[dict[str, Any]],
                    keys: Sequence[str], update: bool) -> None:
        """Insert ``rows``; on a conflict on ``keys`` update the other columns (``update``)
        or leave the stored row be: the store's one idempotent write (PostgreSQL, SQLite)."""
        if not rows:
            return
        stmt = dialect_insert(conn)(model)
        if update:
            cols = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
            stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=cols)
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(stmt, rows)

    def _upsert_alerts(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Upsert alerts from triage without undoing what people did: an acknowledgement
        (or a manual resolve) stands while triage, which does not know of it, says open."""
        if not rows:
            return
        # The merge is in SQL because it must be atomic: a person may act (through another
        # process) between triage's read and this write.
        stmt = dialect_insert(conn)(AlertRow)
        table = AlertRow.__table__
        cols: dict[str, Any] = {c: stmt.excluded[c] for c in rows[0]
                                if c not in ("alert_id", "acknowledged_at", "acknowledged_by")}
        # (ORs, not IN: an expanding IN cannot be part of an executemany)
        held = or_(*(table.c.status == s.value for s in HUMAN_STATUSES))
        incoming = or_(stmt.excluded.status == Status.OPEN.value,
                       stmt.excluded.status == Status.SILENCED.value)
        cols["status"] = case((held & incoming, table.c.status), else_=stmt.excluded.status)
        cols["resolved_at"] = case(
            (table.c.status == Status.RESOLVED.value, table.c.resolved_at),
            else_=stmt.excluded.resolved_at)
        conn.execute(stmt.on_conflict_do_update(index_elements=["alert_id"], set_=cols), rows)

    def act(self, alert_id: str, action: Action | str, actor: str, at: datetime, *,
            note: str = "", silence_for: float = 24 * 3600) -> Acted | None:
        """A person's action on an alert (what it does: :func:`alerts.actions.effect`),
        recorded with who and when. Returns the alert as it is now and where its page is in
        Slack, or None when there is no such alert."""
        act = action if isinstance(action, Action) else Action.parse(action)
        with self.engine.begin() as conn:
            a = conn.execute(select(AlertRow).where(AlertRow.alert_id == alert_id)
                             ).mappings().first()
            if a is None:
                return None
            does = effect(Status(a["status"]), act)
            values: dict[str, Any] = {}
            if does.status is not None:
                values["status"] = does.status.value
            if does.acknowledge:
                values.update(acknowledged_at=at, acknowledged_by=actor)
            if does.resolve:
                values["resolved_at"] = at
            if does.silence:
                ends = datetime.fromtimestamp(at.timestamp() + silence_for, tz=UTC)
                self.insert_rows(conn, SilenceRow, [{
                    "silence_id": stable_id("silence", alert_id, at.isoformat()),
                    "model_id": a["model_id"], "kind": a["kind"], "subject": a["subject"],
                    "starts_at": at, "ends_at": ends, "created_by": actor,
                    "comment": note or f"from alert {alert_id}"}], ["silence_id"], False)
            if does.not_actionable:
                conn.execute(insert(FeedbackRow).values(
                    alert_id=alert_id, model_id=a["model_id"], kind=a["kind"],
                    subject=a["subject"], verdict=Action.NOT_ACTIONABLE.value, actor=actor,
                    at=at, note=note))
            if values:
                conn.execute(update(AlertRow).where(AlertRow.alert_id == alert_id)
                             .values(**values))
            conn.execute(insert(AcknowledgementRow).values(
                alert_id=alert_id, action=act.value, actor=actor, at=at, note=note))
            new = conn.execute(select(AlertRow.status, AlertRow.acknowledged_by,
                                      AlertRow.incident_id)
                               .where(AlertRow.alert_id == alert_id)).one()
            page = conn.execute(select(PageRow.slack_channel, PageRow.slack_ts).where(
                PageRow.incident_id == new.incident_id,
                PageRow.slack_ts.is_not(None)).order_by(PageRow.escalation_level)).first()
        return Acted(alert_id, Status(new.status), new.acknowledged_by,
                     page[0] if page else None, page[1] if page else None)

    def find_alerts(self, prefix: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(AlertRow.alert_id).where(
                AlertRow.alert_id.startswith(prefix, autoescape=True))
                .order_by(AlertRow.alert_id)).scalars())

    def apply(self, changes: Changes, *, dry_run: bool, source: str = "",
              rejects: Sequence[tuple[int, Reject]] = (), checkpoint: Checkpoint | None = None,
              progress: Progress | None = None) -> None:
        if (not changes and not changes.clocks and not changes.signals and not changes.samples
                and checkpoint is None and progress is None and not rejects):
            return
        now = datetime.now(tz=UTC)
        with self.engine.begin() as conn:
            self._insert_rejects(conn, source, rejects, now)
            if progress is not None:
                self.insert_rows(conn, PartitionProgressRow, [{
                    "app_id": progress.app_id, "partition": progress.partition,
                    "offsets": progress.offsets, "events": progress.events,
                    "updated_at": now}], ["app_id", "partition"], True)
            if checkpoint is not None:
                self.insert_rows(conn, PartitionStateRow, [{
                    "app_id": checkpoint.app_id, "partition": checkpoint.partition,
                    "state": checkpoint.state, "offsets": checkpoint.offsets,
                    "events": checkpoint.events, "updated_at": now}],
                    ["app_id", "partition"], True)
            self.insert_rows(conn, IncidentRow, [_incident_row(i) for i in
                                             changes.incidents.values()], ["incident_id"], True)
            self._upsert_alerts(conn, [_alert_row(a) for a in changes.alerts.values()])
            self.insert_rows(conn, OccurrenceRow, [
                {"alert_id": o.alert_id, "fingerprint": o.fingerprint, "seq": o.seq,
                 "ts": to_dt(o.ts), "value": o.value, "threshold": o.threshold,
                 "evidence": o.evidence} for o in changes.occurrences],
                ["fingerprint", "seq"], False)
            self.insert_rows(conn, SnapshotRow, [
                {"fingerprint": o.fingerprint, "model_id": s.model_id,
                 "model_version": s.model_version, "kind": str(s.kind), "subject": s.subject,
                 "statistic": s.statistic, "slice": s.slice, "seq": s.seq, "ts": to_dt(s.ts),
                 "value": s.value, "threshold": s.threshold}
                for o, s in zip(changes.occurrences, changes.signals, strict=True)],
                ["fingerprint", "seq"], False)
            self.insert_rows(conn, SnapshotRow, [  # at a signal's index, the signal's row stays
                {"fingerprint": m.fingerprint, "model_id": m.model_id,
                 "model_version": m.sample.model_version, "kind": str(m.sample.kind),
                 "subject": m.sample.subject, "statistic": m.sample.statistic,
                 "slice": m.sample.slice, "seq": m.seq, "ts": to_dt(m.ts),
                 "value": m.sample.value, "threshold": m.sample.threshold}
                for m in changes.samples], ["fingerprint", "seq"], False)
            pages = [{
                "page_id": p.page_id, "incident_id": p.incident_id, "alert_id": p.alert_id,
                "model_id": p.model_id, "kind": p.kind, "subject": p.subject,
                "paged_at": to_dt(p.paged_at), "seq": p.seq, "channel": p.channel,
                "escalation_level": p.escalation_level, "severity": p.severity,
                "summary": p.summary, "factors": _factors(p.factors),
                "alert_ids": list(p.alert_ids), "delivered": False, "dry_run": dry_run,
                "delivered_at": None} for p in changes.pages]
            self.insert_rows(conn, PageRow, pages, ["page_id"], False)
            if not dry_run:
                self.insert_rows(conn, OutboxRow, [{
                    "message_id": p["page_id"], "kind": MessageKind.PAGE.value,
                    "page_id": p["page_id"],
                    "incident_id": p["incident_id"], "payload": _jsonable(p), "created_at": now,
                    "sent_at": None, "attempts": 0, "last_error": None} for p in pages],
                    ["message_id"], False)
                self.insert_rows(conn, OutboxRow, [{
                    "message_id": stable_id("thread", r.incident_id, r.hour),
                    "kind": MessageKind.THREAD.value, "page_id": None,
                    "incident_id": r.incident_id,
                    "payload": {"summaries": list(r.summaries.values())[:r.SHOWN],
                                "alerts": len(r.summaries)},
                    "created_at": now, "sent_at": None, "attempts": 0, "last_error": None}
                    for _, r in sorted(changes.thread_replies.items())],
                    ["message_id"], False)  # one per incident and hour: the first one stays
                self.insert_rows(conn, OutboxRow, [{
                    "message_id": stable_id("resolve", i), "kind": MessageKind.RESOLVE.value,
                    "page_id": None,
                    "incident_id": i, "payload": {"incident_id": i}, "created_at": now,
                    "sent_at": None, "attempts": 0, "last_error": None}
                    for i in changes.resolved_incidents
                    if changes.incidents[i].paged_at is not None],
                    ["message_id"], False)
            if changes.clocks:
                # a row per model: a model lives in one partition, so each row has one
                # writer at a time (workers never overwrite each other's models)
                keys = {_clock_key(m): m for m in changes.clocks}
                found = conn.execute(select(StateRow.key, StateRow.value).where(
                    StateRow.key.in_(list(keys)))).all()
                stored: dict[str, dict[str, Any]] = {key: value for key, value in found}
                self.insert_rows(conn, StateRow, [
                    {"key": key, "value": {"model_id": m, "clock": max(
                        changes.clocks[m], float(stored.get(key, {}).get("clock", "-inf")))}}
                    for key, m in sorted(keys.items())], ["key"], True)

    def record_rejects(self, source: str, rejects: Sequence[tuple[int, Reject]]) -> None:
        if not rejects:
            return
        with self.engine.begin() as conn:
            self._insert_rejects(conn, source, rejects, datetime.now(tz=UTC))

    def _insert_rejects(self, conn: Connection, source: str,
                        rejects: Sequence[tuple[int, Reject]], now: datetime) -> None:
        self.insert_rows(conn, RejectedEventRow, [
            {"source": source, "seq": seq, "reason": str(r.reason), "detail": r.detail,
             "raw": r.raw, "recorded_at": now} for seq, r in rejects],
            ["source", "seq"], False)

    # -- reading ---------------------------------------------------------------------------
    def load_triage(self, policy: TriagePolicy) -> Triage:
        with self.engine.connect() as conn:
            latest = (select(AlertRow.fingerprint, func.max(AlertRow.first_seq).label("seq"))
                      .group_by(AlertRow.fingerprint).subquery())
            rows = conn.execute(select(AlertRow).join(
                latest, (AlertRow.fingerprint == latest.c.fingerprint)
                & (AlertRow.first_seq == latest.c.seq))).mappings().all()
            alerts = [_alert(r) for r in rows]
            # open incidents, and those a latest alert belongs to (a flap reopens it)
            wanted = {a.incident_id for a in alerts if a.incident_id is not None}
            incident_rows = [r for r in conn.execute(select(IncidentRow).where(
                (IncidentRow.status != Status.RESOLVED.value)
                | IncidentRow.incident_id.in_(sorted(wanted)))).mappings().all()]
            incidents = [_incident(r) for r in incident_rows]
            legacy = conn.execute(select(StateRow.value).where(StateRow.key == CLOCKS_KEY))
            clock_map: dict[str, float] = dict(legacy.scalar_one_or_none() or {})
            for value in conn.execute(select(StateRow.value).where(
                    StateRow.key.like(f"{CLOCK_PREFIX}%"))).scalars():
                model_id = value["model_id"]
                clock_map[model_id] = max(float(value["clock"]),
                                          clock_map.get(model_id, float("-inf")))
        silences, feedback = self.load_mutes(policy)
        return Triage(policy, alerts=alerts, incidents=incidents, feedback=feedback,
                      silences=silences, clocks=clock_map)

    def load_mutes(self, policy: TriagePolicy) -> tuple[list[Silence],
                                                        Counter[tuple[str, str, str]]]:
        """What people said: silences (stored and configured) and "not actionable" counts.
        Cheap; a running pipeline reloads it every little while."""
        with self.engine.connect() as conn:
            feedback: Counter[tuple[str, str, str]] = Counter()
            for model_id, kind, subject, n in conn.execute(
                    select(FeedbackRow.model_id, FeedbackRow.kind, FeedbackRow.subject,
                           func.count()).where(FeedbackRow.verdict == Action.NOT_ACTIONABLE.value)
                    .group_by(FeedbackRow.model_id, FeedbackRow.kind, FeedbackRow.subject)):
                feedback[(model_id, kind, subject)] = int(n)
            silences = [Silence(
                silence_id=r.silence_id, model_id=r.model_id,
                kind=Kind(r.kind) if r.kind else None, subject=r.subject,
                starts_at=to_ts(r.starts_at) or 0.0, ends_at=to_ts(r.ends_at) or 0.0,
                created_by=r.created_by, comment=r.comment)
                for r in conn.execute(select(SilenceRow)).all()]
        for spec in policy.silences:
            silences.append(Silence(
                silence_id=stable_id("config-silence", spec.model_id, spec.kind, spec.subject,
                                     spec.ends_at.isoformat()),
                ends_at=spec.ends_at.timestamp(), model_id=spec.model_id, kind=spec.kind,
                subject=spec.subject,
                starts_at=spec.starts_at.timestamp() if spec.starts_at else 0.0,
                created_by="config", comment=spec.comment))
        return silences, feedback

    def load_checkpoint(self, app_id: str, partition: int) -> Checkpoint | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(
                PartitionStateRow.state, PartitionStateRow.offsets, PartitionStateRow.events
            ).where(PartitionStateRow.app_id == app_id,
                    PartitionStateRow.partition == partition)).first()
        if row is None:
            return None
        state, offsets, events = row
        return Checkpoint(app_id, partition, bytes(state),
                          {k: int(v) for k, v in offsets.items()}, int(events))

    def load_progress(self, app_id: str, partition: int) -> Progress | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(
                PartitionProgressRow.offsets, PartitionProgressRow.events
            ).where(PartitionProgressRow.app_id == app_id,
                    PartitionProgressRow.partition == partition)).first()
        if row is None:
            return None
        offsets, events = row
        return Progress(app_id, partition, {k: int(v) for k, v in offsets.items()},
                        int(events))

    def first_use(self, key: str, at: datetime, keep_seconds: float) -> bool:
        """True the first time ``key`` is presented within ``keep_seconds``, across every
        process on this database (what a replay guard needs); keys older than that go."""
        cutoff = datetime.fromtimestamp(at.timestamp() - keep_seconds, tz=UTC)
        with self.engine.begin() as conn:
            conn.execute(delete(SeenRequestRow).where(SeenRequestRow.seen_at < cutoff))
            taken = conn.execute(dialect_insert(conn)(SeenRequestRow).values(
                key=key, seen_at=at).on_conflict_do_nothing(index_elements=["key"]))
            return taken.rowcount == 1

    def seq_base(self, source: str) -> int:
        """The first event index of a replayed source: allocated above everything recorded
        the first time the source is seen, the same on every later replay of it (so that
        replaying a file again is recognised as such, and a new file is not)."""
        key = f"seq_base:{source}"
        with self.engine.begin() as conn:
            found = conn.execute(select(StateRow.value).where(StateRow.key == key)
                                 ).scalar_one_or_none()
            if found is not None:
                return int(found["base"])
            top = conn.execute(select(func.max(OccurrenceRow.seq))).scalar_one_or_none()
            base = 0 if top is None else int(top) + 1
            bases = conn.execute(select(StateRow.value).where(StateRow.key.like("seq_base:%"))
                                 ).scalars().all()
            # past every base handed out before, with room for a long file
            base = max([base, *(int(b["base"]) + SEQ_BASE_STRIDE for b in bases)])
            self.insert_rows(conn, StateRow, [{"key": key, "value": {"base": base}}], ["key"],
                             False)
        return base

    # -- delivery (the notifier) -------------------------------------------------------------
    def pending_messages(self, max_attempts: int) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(OutboxRow.message_id).where(
                OutboxRow.sent_at.is_(None), OutboxRow.attempts < max_attempts)
                .order_by(case((OutboxRow.kind == MessageKind.PAGE.value, 0), else_=1),
                          OutboxRow.created_at, OutboxRow.message_id)).scalars())

    def message(self, message_id: str) -> OutboxMessage:
        with self.engine.connect() as conn:
            row = conn.execute(select(OutboxRow).where(OutboxRow.message_id == message_id)
                               ).one()
        return OutboxMessage(row.message_id, MessageKind(row.kind), row.page_id,
                             row.incident_id, dict(row.payload))

    def page_content(self, page_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        with self.engine.connect() as conn:
            page = conn.execute(select(PageRow).where(PageRow.page_id == page_id)
                                ).mappings().one()
            lead = conn.execute(select(AlertRow).where(AlertRow.alert_id == page["alert_id"])
                                ).mappings().one()
        return dict(page), dict(lead)

    def posted_pages(self, incident_id: str) -> list[PostedPage]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(
                PageRow.page_id, PageRow.escalation_level, PageRow.summary,
                PageRow.slack_channel, PageRow.slack_ts).where(
                PageRow.incident_id == incident_id, PageRow.slack_ts.is_not(None))
                .order_by(PageRow.escalation_level, PageRow.page_id)).all()
        return [PostedPage(r.page_id, r.escalation_level, r.summary, r.slack_channel or "",
                           r.slack_ts or "") for r in rows]

    def undelivered_pages(self, incident_id: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(PageRow).where(
                PageRow.incident_id == incident_id, PageRow.dry_run.is_(False),
                PageRow.delivered.is_(False))).scalar_one())

    def record_attempt(self, message_id: str, at: datetime, *, error: str | None,
                       posted: tuple[str, str] | None = None) -> None:
        with self.engine.begin() as conn:
            values: dict[str, Any] = {"attempts": OutboxRow.attempts + 1}
            if error is None:
                values.update(sent_at=at, last_error=None)
            else:
                values["last_error"] = error[:1000]
            conn.execute(update(OutboxRow).where(OutboxRow.message_id == message_id)
                         .values(**values))
            conn.execute(insert(DeliveryAttemptRow).values(
                message_id=message_id, ok=error is None,
                error=None if error is None else error[:1000], attempted_at=at))
            if error is None and posted is not None:
                page_id = conn.execute(select(OutboxRow.page_id).where(
                    OutboxRow.message_id == message_id)).scalar_one()
                conn.execute(update(PageRow).where(PageRow.page_id == page_id)
                             .values(delivered=True, delivered_at=at,
                                     slack_channel=posted[0], slack_ts=posted[1]))

    def delivery_attempts(self, message_id: str) -> list[tuple[datetime, str | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(DeliveryAttemptRow.attempted_at, DeliveryAttemptRow.error)
                                .where(DeliveryAttemptRow.message_id == message_id)
                                .order_by(DeliveryAttemptRow.id)).all()
        return [(at if at.tzinfo else at.replace(tzinfo=UTC), error) for at, error in rows]

    def escalation_candidates(self) -> list[PageState]:
        with self.engine.connect() as conn:
            pages = conn.execute(
                select(PageRow.page_id, PageRow.incident_id, PageRow.alert_id,
                       PageRow.alert_ids, PageRow.escalation_level, PageRow.delivered,
                       PageRow.delivered_at)
                .join(IncidentRow, IncidentRow.incident_id == PageRow.incident_id)
                .where(PageRow.dry_run.is_(False),
                       IncidentRow.status != Status.RESOLVED.value)).all()
            out = []
            for page in pages:
                alert_ids = list(page.alert_ids) or [page.alert_id]
                acted = conn.execute(select(func.count()).select_from(AcknowledgementRow)
                                     .where(AcknowledgementRow.alert_id.in_(alert_ids))
                                     ).scalar_one()
                held = conn.execute(select(func.count()).select_from(AlertRow).where(
                    AlertRow.alert_id.in_(alert_ids),
                    AlertRow.status.in_([s.value for s in HUMAN_STATUSES]))).scalar_one()
                out.append(PageState(
                    page.page_id, page.incident_id, page.escalation_level,
                    to_ts(page.delivered_at) if page.delivered else None,
                    answered=bool(acted or held)))
        return out

    def queue_escalation(self, page: PageState, at: datetime) -> str:
        level = page.level + 1
        new_id = stable_id("page", page.incident_id, level)
        with self.engine.begin() as conn:
            row = conn.execute(select(PageRow).where(PageRow.page_id == page.page_id)
                               ).mappings().one()
            new = {k: v for k, v in row.items()
                   if k not in ("delivered_at", "slack_channel", "slack_ts")}
            new.update(page_id=new_id, escalation_level=level, paged_at=at, delivered=False)
            self.insert_rows(conn, PageRow, [new], ["page_id"], False)
            self.insert_rows(conn, OutboxRow, [{
                "message_id": new_id, "kind": MessageKind.PAGE.value, "page_id": new_id,
                "incident_id": page.incident_id, "payload": {"escalation_level": level},
                "created_at": at, "sent_at": None, "attempts": 0, "last_error": None}],
                ["message_id"], False)
        return new_id

    def digest_sent_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            state = conn.execute(select(StateRow.value).where(StateRow.key == DIGEST_KEY)
                                 ).scalar_one_or_none()
        return datetime.fromisoformat(state["at"]) if state else None

    def digest_items(self) -> list[DigestItem]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(IncidentRow.incident_id, IncidentRow.model_id, IncidentRow.summary,
                       IncidentRow.severity)
                .where(IncidentRow.route == Route.DIGEST.value, IncidentRow.paged_at.is_(None),
                       IncidentRow.digested_at.is_(None))
                .order_by(IncidentRow.model_id, IncidentRow.opened_at)).all()
        return [DigestItem(r.incident_id, r.model_id, r.summary, r.severity) for r in rows]

    def mark_digested(self, incident_ids: Sequence[str], at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(IncidentRow).where(IncidentRow.incident_id.in_(
                list(incident_ids))).values(digested_at=at))

    def record_digest(self, at: datetime) -> None:
        with self.engine.begin() as conn:
            self.insert_rows(conn, StateRow, [{"key": DIGEST_KEY,
                                               "value": {"at": at.isoformat()}}],
                             ["key"], True)

    # -- history (the CLI) ------------------------------------------------------------------
    def recent_alerts(self, *, model: str | None = None, status: str | None = None,
                      kind: str | None = None, limit: int = 50) -> list[AlertSummary]:
        where: list[str] = []
        params: dict[str, object] = {"limit": limit}
        for name, value in (("model_id", model), ("status", status), ("kind", kind)):
            if value is not None:
                where.append(f"{name} = :{name}")  # names are ours; values are bound
                params[name] = value
        sql = ("SELECT alert_id, model_id, kind, subject, slice, severity, route, status, "
               "first_seen, last_seen, occurrences, paged, acknowledged_by, summary "
               "FROM alert_history" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY last_seen DESC, alert_id LIMIT :limit")
        with self.engine.connect() as conn:
            rows = conn.execute(text(sql), params).all()
        return [AlertSummary(*r) for r in rows]

    def alert_detail(self, prefix: str) -> AlertDetail | None:
        with self.engine.connect() as conn:
            rows = conn.execute(select(AlertRow).where(
                AlertRow.alert_id.startswith(prefix, autoescape=True))
                .order_by(AlertRow.alert_id).limit(2)).mappings().all()
            if len(rows) != 1:
                return None
            a = dict(rows[0])
            occurrences = [(int(seq), ts, float(value)) for seq, ts, value in conn.execute(
                select(OccurrenceRow.seq, OccurrenceRow.ts, OccurrenceRow.value)
                .where(OccurrenceRow.alert_id == a["alert_id"]).order_by(OccurrenceRow.seq))]
            pages = [dict(p) for p in conn.execute(
                select(PageRow.page_id, PageRow.paged_at, PageRow.channel,
                       PageRow.escalation_level, PageRow.delivered, PageRow.dry_run)
                .where(PageRow.incident_id == a["incident_id"])
                .order_by(PageRow.paged_at)).mappings()]
        return AlertDetail(a, occurrences, pages)

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The query runs in a transaction that is rolled back, so it changes nothing;
        :class:`QueryError` (the database's message) when it fails or returns no rows."""
        try:
            with self.engine.connect() as conn:
                result = conn.execute(text(sql))
                columns = list(result.keys())
                rows = [tuple(r) for r in result.all()]
                conn.rollback()
        except SQLAlchemyError as exc:
            raise QueryError(str(getattr(exc, "orig", None) or exc).splitlines()[0]) from None
        return columns, rows

    # -- the console (indexed reads, lists paginated newest first) ------------------------
    def alerts_page(self, where: AlertFilter, *, limit: int = 50,
                    after: Cursor | None = None) -> tuple[list[AlertSummary], Cursor | None]:
        a = AlertRow
        stmt = select(a.alert_id, a.model_id, a.kind, a.subject, a.slice, a.severity, a.route,
                      a.status, a.first_seen, a.last_seen, a.occurrences, a.paged,
                      a.acknowledged_by, a.summary)
        for column, value in ((a.model_id, where.model), (a.kind, where.kind),
                              (a.status, where.status)):
            if value is not None:
                stmt = stmt.where(column == value)
        if where.since is not None:
            stmt = stmt.where(a.first_seen >= where.since)
        if where.until is not None:
            stmt = stmt.where(a.first_seen < where.until)
        if after is not None:  # keyset pagination: no OFFSET to walk past
            # a row value: an index range on both databases (an OR of the two comparisons
            # is a filter PostgreSQL applies to every newer row, page after page)
            stmt = stmt.where(tuple_(a.first_seen, a.alert_id) < tuple_(after.at, after.key))
        stmt = stmt.order_by(a.first_seen.desc(), a.alert_id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        page = [AlertSummary(**r._mapping) for r in rows[:limit]]
        if len(rows) <= limit:
            return page, None
        return page, Cursor(_utc(rows[limit - 1].first_seen), page[-1].alert_id)

    def incidents_page(self, *, model: str | None = None, unresolved: bool = True,
                       limit: int = 50, after: Cursor | None = None,
                       ) -> tuple[list[IncidentSummary], Cursor | None]:
        i = IncidentRow
        stmt = select(i.incident_id, i.model_id, i.status, i.severity, i.route, i.opened_at,
                      i.updated_at, i.paged_at, i.summary, i.alert_ids)
        if unresolved:
            stmt = stmt.where(i.status.in_([s.value for s in Status
                                            if s is not Status.RESOLVED]))
        if model is not None:
            stmt = stmt.where(i.model_id == model)
        if after is not None:
            stmt = stmt.where(tuple_(i.opened_at, i.incident_id)
                              < tuple_(after.at, after.key))
        stmt = stmt.order_by(i.opened_at.desc(), i.incident_id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        page = [IncidentSummary(**{k: v for k, v in r._mapping.items() if k != "alert_ids"},
                                alerts=len(r.alert_ids or [])) for r in rows[:limit]]
        last = page[-1] if len(rows) > limit else None
        return page, (Cursor(_utc(last.opened_at), last.incident_id) if last else None)

    def alert_record(self, alert_id: str, *, occurrences: int = 500) -> AlertRecord | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(AlertRow).where(AlertRow.alert_id == alert_id)
                                 ).mappings().first()
            if found is None:
                return None
            alert = dict(found)
            incident = None
            if alert["incident_id"] is not None:
                row = conn.execute(select(IncidentRow).where(
                    IncidentRow.incident_id == alert["incident_id"])).mappings().first()
                incident = dict(row) if row is not None else None
            count = conn.execute(select(func.count()).select_from(OccurrenceRow).where(
                OccurrenceRow.alert_id == alert_id)).scalar_one()
            latest = [dict(r) for r in conn.execute(
                select(OccurrenceRow.seq, OccurrenceRow.ts, OccurrenceRow.value,
                       OccurrenceRow.threshold, OccurrenceRow.evidence)
                .where(OccurrenceRow.alert_id == alert_id)
                .order_by(OccurrenceRow.seq.desc()).limit(occurrences)).mappings()]
            attempts = (select(func.count()).select_from(DeliveryAttemptRow)
                        .where(DeliveryAttemptRow.message_id == PageRow.page_id)
                        .scalar_subquery())
            pages = [dict(r) for r in conn.execute(
                select(PageRow.page_id, PageRow.paged_at, PageRow.channel,
                       PageRow.escalation_level, PageRow.delivered, PageRow.dry_run,
                       PageRow.delivered_at, PageRow.summary, attempts.label("attempts"))
                .where(PageRow.incident_id == alert["incident_id"])
                .order_by(PageRow.escalation_level)).mappings()]  # one page per level
            acks = [dict(r) for r in conn.execute(
                select(AcknowledgementRow.action, AcknowledgementRow.actor,
                       AcknowledgementRow.at, AcknowledgementRow.note)
                .where(AcknowledgementRow.alert_id == alert_id)
                .order_by(AcknowledgementRow.id)).mappings()]  # as they came
            feedback = [dict(r) for r in conn.execute(
                select(FeedbackRow.verdict, FeedbackRow.actor, FeedbackRow.at,
                       FeedbackRow.note)
                .where(FeedbackRow.alert_id == alert_id)
                .order_by(FeedbackRow.id)).mappings()]
            siblings = [] if incident is None else [dict(r) for r in conn.execute(
                select(AlertRow.alert_id, AlertRow.kind, AlertRow.subject, AlertRow.slice,
                       AlertRow.status, AlertRow.severity)
                .where(AlertRow.incident_id == alert["incident_id"],
                       AlertRow.alert_id != alert_id)
                .order_by(AlertRow.severity.desc(), AlertRow.alert_id).limit(50)).mappings()]
        latest.reverse()
        return AlertRecord(alert, incident, latest, int(count), pages, acks, feedback,
                           siblings)

    def model_ids(self) -> list[str]:
        # from the triage clocks (a row per model): no scan of the alerts
        with self.engine.connect() as conn:
            legacy = conn.execute(select(StateRow.value).where(StateRow.key == CLOCKS_KEY)
                                  ).scalar_one_or_none() or {}
            models = set(legacy) | {v["model_id"] for v in conn.execute(
                select(StateRow.value).where(StateRow.key.startswith(
                    CLOCK_PREFIX, autoescape=True))).scalars()}  # "_" is a LIKE wildcard
        return sorted(models)

    def model_alerts(self, model_id: str, since: datetime, until: datetime, *,
                     limit: int = 200) -> list[dict[str, Any]]:
        a = AlertRow
        columns = (a.alert_id, a.fingerprint, a.kind, a.subject, a.slice, a.status,
                   a.severity, a.first_seen, a.last_seen)
        newest = (a.first_seen.desc(), a.alert_id.desc())
        # Two index ranges, not "first_seen <= until AND last_seen >= since" on one index,
        # which walks every older alert of the model when the range has fewer than a page:
        # those raised in the range (ix_alerts_model_first_seen_id, newest first), then
        # those raised before it and still seen in it (ix_alerts_model_last_seen)
        with self.engine.connect() as conn:
            rows = list(conn.execute(
                select(*columns).where(a.model_id == model_id, a.first_seen >= since,
                                       a.first_seen <= until)
                .order_by(*newest).limit(limit)).mappings())
            if len(rows) < limit:
                rows += conn.execute(
                    select(*columns).where(a.model_id == model_id, a.last_seen >= since,
                                           a.first_seen < since)
                    .order_by(*newest).limit(limit - len(rows))).mappings()
        return [{**r, "first_seen": _utc(r["first_seen"]), "last_seen": _utc(r["last_seen"])}
                for r in rows]

    def snapshot_span(self, model_id: str) -> tuple[datetime, datetime] | None:
        with self.engine.connect() as conn:
            first, last = conn.execute(select(func.min(SnapshotRow.ts), func.max(SnapshotRow.ts))
                                       .where(SnapshotRow.model_id == model_id)).one()
        return None if first is None else (_utc(first), _utc(last))

    def snapshots(self, model_id: str, since: datetime, until: datetime, *,
                  limit: int = 20_000) -> tuple[list[Snapshot], bool]:
        s = SnapshotRow
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.fingerprint, s.kind, s.subject, s.statistic, s.slice,
                       s.model_version, s.ts, s.value, s.threshold)
                .where(s.model_id == model_id, s.ts >= since, s.ts <= until)
                .order_by(s.ts.desc(), s.id.desc()).limit(limit + 1)).all()
        kept = [Snapshot(*r[:6], ts=_utc(r.ts), value=r.value, threshold=r.threshold)
                for r in rows[:limit]]
        kept.reverse()
        return kept, len(rows) > limit

    def silences(self, at: datetime, *, limit: int = 100) -> list[SilenceRecord]:
        s = SilenceRow
        columns = (s.silence_id, s.model_id, s.kind, s.subject, s.starts_at, s.ends_at,
                   s.created_by, s.comment)
        with self.engine.connect() as conn:
            active = conn.execute(select(*columns).where(s.ends_at > at)
                                  .order_by(s.ends_at, s.silence_id).limit(limit)).all()
            ended = conn.execute(select(*columns).where(s.ends_at <= at)
                                 .order_by(s.ends_at.desc(), s.silence_id)
                                 .limit(max(0, limit - len(active)))).all()
        return [SilenceRecord(*r[:4], starts_at=_utc(r.starts_at), ends_at=_utc(r.ends_at),
                              created_by=r.created_by, comment=r.comment)
                for r in [*active, *ended]]

    def add_silence(self, silence: SilenceRecord) -> None:
        with self.engine.begin() as conn:
            self.insert_rows(conn, SilenceRow, [{
                "silence_id": silence.silence_id, "model_id": silence.model_id,
                "kind": silence.kind, "subject": silence.subject,
                "starts_at": silence.starts_at, "ends_at": silence.ends_at,
                "created_by": silence.created_by, "comment": silence.comment}],
                ["silence_id"], False)

    def expire_silence(self, silence_id: str, at: datetime) -> bool:
        with self.engine.begin() as conn:
            found = conn.execute(select(SilenceRow.ends_at).where(
                SilenceRow.silence_id == silence_id)).first()
            if found is None:
                return False
            conn.execute(update(SilenceRow).where(SilenceRow.silence_id == silence_id,
                                                  SilenceRow.ends_at > at)
                         .values(ends_at=at))
        return True

    def close(self) -> None:
        self.engine.dispose()


def _utc(dt: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives them back naive)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _alert_row(a: Alert) -> dict[str, Any]:
    return {
        "alert_id": a.alert_id, "fingerprint": a.fingerprint, "incident_id": a.incident_id,
        "model_id": a.model_id, "model_version": a.model_version, "kind": a.kind,
        "subject": a.subject, "statistic": a.statistic, "slice": a.slice,
        "status": a.status.value, "severity": a.severity, "route": a.route.value,
        "first_seen": to_dt(a.first_seen), "last_seen": to_dt(a.last_seen),
        "first_seq": a.first_seq, "last_seq": a.last_seq, "occurrences": a.occurrences,
        "value": a.value, "threshold": a.threshold, "evidence": a.evidence,
        "factors": _factors(a.factors), "silenced_by": a.silenced_by,
        "inhibited_by": a.inhibited_by, "flaps": a.flaps, "flapping": a.flapping,
        "paged": a.paged, "acknowledged_at": to_dt(a.acknowledged_at),
        "acknowledged_by": a.acknowledged_by, "resolved_at": to_dt(a.resolved_at),
        "summary": a.summary, "clean_evaluations": a.clean_evaluations,
        "evaluations_since_resolved": a.evaluations_since_resolved,
        "evaluated_seq": a.evaluated_seq,
    }


def _alert(r: Any) -> Alert:
    row = r.get("AlertRow", r)
    return Alert(
        alert_id=row.alert_id, fingerprint=row.fingerprint, model_id=row.model_id,
        kind=Kind(row.kind), subject=row.subject, statistic=row.statistic, slice=row.slice,
        model_version=row.model_version, first_seen=to_ts(row.first_seen) or 0.0,
        last_seen=to_ts(row.last_seen) or 0.0, first_seq=row.first_seq, last_seq=row.last_seq,
        occurrences=row.occurrences, value=row.value, threshold=row.threshold,
        evidence=dict(row.evidence), status=Status(row.status), severity=row.severity,
        route=Route(row.route), factors=_from_factors(row.factors),
        incident_id=row.incident_id, silenced_by=row.silenced_by,
        inhibited_by=row.inhibited_by, flaps=row.flaps, flapping=row.flapping,
        paged=row.paged, acknowledged_at=to_ts(row.acknowledged_at),
        acknowledged_by=row.acknowledged_by, resolved_at=to_ts(row.resolved_at),
        clean_evaluations=row.clean_evaluations,
        evaluations_since_resolved=row.evaluations_since_resolved,
        evaluated_seq=row.evaluated_seq,
    )


def _incident_row(i: Incident) -> dict[str, Any]:
    return {
        "incident_id": i.incident_id, "model_id": i.model_id, "status": i.status.value,
        "severity": i.severity, "route": i.route.value, "opened_at": to_dt(i.opened_at),
        "updated_at": to_dt(i.updated_at), "paged_at": to_dt(i.paged_at),
        "resolved_at": to_dt(i.resolved_at), "lead_alert_id": i.lead_alert_id,
        "summary": i.summary, "factors": _factors(i.factors), "alert_ids": list(i.alert_ids),
    }


def _incident(r: Any) -> Incident:
    row = r.get("IncidentRow", r)
    return Incident(
        incident_id=row.incident_id, model_id=row.model_id,
        opened_at=to_ts(row.opened_at) or 0.0, updated_at=to_ts(row.updated_at) or 0.0,
        alert_ids=tuple(row.alert_ids), status=Status(row.status), severity=row.severity,
        route=Route(row.route), factors=_from_factors(row.factors),
        lead_alert_id=row.lead_alert_id, paged_at=to_ts(row.paged_at),
        resolved_at=to_ts(row.resolved_at), summary=row.summary,
    )
