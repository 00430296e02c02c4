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

from sqlalchemy import Engine, case, create_engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase

from alerts.fingerprint import stable_id
from alerts.model import Alert, Factor, Incident, Route, Silence, Status
from alerts.store import Checkpoint, Progress, schema
from alerts.store.tables import (
    AcknowledgementRow,
    AlertRow,
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
from config.file import TriagePolicy
from stream.events import Reject

CLOCKS_KEY = "triage_clocks"  # written before migration 0006: every clock in one row (read)
CLOCK_PREFIX = "triage_clock:"  # a row per model (keyed by a hash: ids can be long)


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


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_dumps(obj: Any) -> str:
    """JSON for the store's columns: NaN and infinities (a z of inf, say) become null,
    which PostgreSQL accepts and SQLite keeps the same.

    >>> json_dumps({"z": float("inf"), "v": [1.5, float("nan")]})
    '{"z": null, "v": [1.5, null]}'
    """
    return json.dumps(_finite(obj))


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


class SqlStore:
    """:class:`alerts.store.Store` on a SQLAlchemy engine."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = schema.database_url(url)
        if migrate:
            schema.upgrade(self.url)
        self.engine: Engine = create_engine(self.url, json_serializer=json_dumps)

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
        stmt = dialect_insert(conn)(AlertRow)
        table = AlertRow.__table__
        kept = ("acknowledged", "resolved")
        cols: dict[str, Any] = {c: stmt.excluded[c] for c in rows[0]
                                if c not in ("alert_id", "acknowledged_at", "acknowledged_by")}
        held = (table.c.status == kept[0]) | (table.c.status == kept[1])
        incoming = (stmt.excluded.status == "open") | (stmt.excluded.status == "silenced")
        cols["status"] = case((held & incoming, table.c.status), else_=stmt.excluded.status)
        cols["resolved_at"] = case(
            (table.c.status == "resolved", table.c.resolved_at),
            else_=stmt.excluded.resolved_at)
        conn.execute(stmt.on_conflict_do_update(index_elements=["alert_id"], set_=cols), rows)

    def act(self, alert_id: str, action: str, actor: str, at: datetime, *,
            note: str = "", silence_for: float = 24 * 3600) -> dict[str, Any] | None:
        """A person's action on an alert (acknowledge, resolve, silence, not_actionable),
        recorded with who and when. Returns the alert's new row and its page's Slack
        coordinates, or None when there is no such alert."""
        with self.engine.begin() as conn:
            row = conn.execute(select(AlertRow).where(AlertRow.alert_id == alert_id)
                               ).mappings().first()
            if row is None:
                return None
            a = row
            values: dict[str, Any] = {}
            if action == "acknowledge" and a["status"] in ("open", "silenced"):
                values = {"status": "acknowledged", "acknowledged_at": at,
                          "acknowledged_by": actor}
            elif action == "resolve" and a["status"] != "resolved":
                values = {"status": "resolved", "resolved_at": at}
            elif action == "silence":
                ends = datetime.fromtimestamp(at.timestamp() + silence_for, tz=UTC)
                self.insert_rows(conn, SilenceRow, [{
                    "silence_id": stable_id("silence", alert_id, at.isoformat()),
                    "model_id": a["model_id"], "kind": a["kind"], "subject": a["subject"],
                    "starts_at": at, "ends_at": ends, "created_by": actor,
                    "comment": note or f"from alert {alert_id}"}], ["silence_id"], False)
                if a["status"] == "open":
                    values = {"status": "silenced"}
            elif action == "not_actionable":
                conn.execute(insert(FeedbackRow).values(
                    alert_id=alert_id, model_id=a["model_id"], kind=a["kind"],
                    subject=a["subject"], verdict="not_actionable", actor=actor, at=at,
                    note=note))
            elif action not in ("acknowledge", "resolve", "silence", "not_actionable"):
                raise ValueError(f"unknown action {action!r}")
            if values:
                conn.execute(update(AlertRow).where(AlertRow.alert_id == alert_id)
                             .values(**values))
            conn.execute(insert(AcknowledgementRow).values(
                alert_id=alert_id, action=action, actor=actor, at=at, note=note))
            new = dict(conn.execute(select(AlertRow).where(AlertRow.alert_id == alert_id)
                                    ).mappings().one())
            page = conn.execute(select(PageRow.slack_channel, PageRow.slack_ts).where(
                PageRow.incident_id == new["incident_id"],
                PageRow.slack_ts.is_not(None)).order_by(PageRow.escalation_level)).first()
        new["slack_channel"], new["slack_ts"] = (page[0], page[1]) if page else (None, None)
        return new

    def apply(self, changes: Changes, *, dry_run: bool, checkpoint: Checkpoint | None = None,
              progress: Progress | None = None) -> None:
        if (not changes and not changes.clocks and not changes.signals and checkpoint is None
                and progress is None):
            return
        now = datetime.now(tz=UTC)
        with self.engine.begin() as conn:
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
                    "message_id": p["page_id"], "kind": "page", "page_id": p["page_id"],
                    "incident_id": p["incident_id"], "payload": _jsonable(p), "created_at": now,
                    "sent_at": None, "attempts": 0, "last_error": None} for p in pages],
                    ["message_id"], False)
                self.insert_rows(conn, OutboxRow, self._thread_messages(conn, changes, now),
                             ["message_id"], False)
                self.insert_rows(conn, OutboxRow, [{
                    "message_id": stable_id("resolve", i), "kind": "resolve", "page_id": None,
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

    @staticmethod
    def _thread_messages(conn: Connection, changes: Changes,
                         now: datetime) -> list[dict[str, Any]]:
        """Repeats after a page go to its thread, not to new pages: one reply per incident
        per hour of event time, listing what still fires (a stable id dedupes the rest)."""
        paged: dict[str, float | None] = {}
        replies: dict[tuple[str, int], dict[str, str]] = {}
        for o in changes.occurrences:
            alert = changes.alerts.get(o.alert_id)
            if alert is None or alert.incident_id is None:
                continue
            if alert.incident_id not in paged:
                at = conn.execute(select(IncidentRow.paged_at).where(
                    IncidentRow.incident_id == alert.incident_id)).scalar_one_or_none()
                paged[alert.incident_id] = to_ts(at)
            paged_at = paged[alert.incident_id]
            if paged_at is not None and o.ts > paged_at:
                key = (alert.incident_id, int(o.ts // 3600))
                replies.setdefault(key, {})[alert.alert_id] = alert.summary
        return [{
            "message_id": stable_id("thread", incident_id, hour), "kind": "thread",
            "page_id": None, "incident_id": incident_id,
            "payload": {"summaries": list(summaries.values())[:10],
                        "alerts": len(summaries)},
            "created_at": now, "sent_at": None, "attempts": 0, "last_error": None}
            for (incident_id, hour), summaries in sorted(replies.items())]

    def record_rejects(self, source: str, rejects: Sequence[tuple[int, Reject]]) -> None:
        if not rejects:
            return
        now = datetime.now(tz=UTC)
        with self.engine.begin() as conn:
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
                           func.count()).where(FeedbackRow.verdict == "not_actionable")
                    .group_by(FeedbackRow.model_id, FeedbackRow.kind, FeedbackRow.subject)):
                feedback[(model_id, kind, subject)] = int(n)
            silences = [Silence(
                silence_id=r.silence_id, model_id=r.model_id, kind=r.kind, subject=r.subject,
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

    def close(self) -> None:
        self.engine.dispose()


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
        kind=row.kind, subject=row.subject, statistic=row.statistic, slice=row.slice,
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
