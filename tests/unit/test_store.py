"""The SQL alert store (``alerts.store.sql.SqlStore``) on SQLite files in ``tmp_path``.

Pins the migrations, the CONTRACT §4 views read with plain ``sqlite3``, the outbox, the
idempotency of every write, how ``load_triage`` resumes, rejected events, and one
end-to-end replay of a seeded scenario through :class:`services.pipeline.Pipeline`.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from alerts.model import Route, Silence, Status
from alerts.store import schema
from alerts.store.sql import SqlStore
from alerts.store.tables import FeedbackRow, SilenceRow
from alerts.triage import Changes, Triage
from config.file import SilenceSpec, TriagePolicy, load_config
from services.pipeline import Pipeline
from services.replay import replay
from sim.scenarios import generate, write_scenario
from stream.events import Reason, Reject
from stream.signals import Evaluation, Kind, Scope, Signal, Window

T0 = 1_551_398_400.0  # 2019-03-01T00:00:00Z
HOUR = 3600.0
POLICY = TriagePolicy()
RESOLVE = POLICY.resolve_after_evaluations
EVERY_KIND = Scope(frozenset(Kind))


def resolve(t: Triage, model_id: str, seq: int) -> Changes:
    """Clear evaluations of every kind of ``model_id`` from event ``seq`` on: its alerts
    (without slice or version) resolve."""
    return t.process([], [Evaluation(model_id, EVERY_KIND, seq + k, T0 + seq + k)
                          for k in range(RESOLVE)])

ALERT_HISTORY = [
    "alert_id",
    "fingerprint",
    "model_id",
    "kind",
    "subject",
    "severity",
    "status",
    "first_seen",
    "last_seen",
    "occurrences",
    "paged",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "summary",
]
PAGES = [
    "page_id",
    "alert_id",
    "model_id",
    "kind",
    "subject",
    "paged_at",
    "channel",
    "escalation_level",
    "delivered",
]
TABLES = [
    "incidents",
    "alerts",
    "occurrences",
    "statistic_snapshots",
    "page_log",
    "outbox",
    "pipeline_state",
    "rejected_events",
]
STATUSES = {"open", "acknowledged", "resolved", "silenced"}


def sig(
    kind: str,
    subject: str,
    seq: int,
    *,
    model_id: str = "m",
    statistic: str = "psi",
    value: float = 0.4,
    evidence: dict[str, Any] | None = None,
    ts: float | None = None,
    model_version: str | None = None,
) -> Signal:
    when = T0 + seq if ts is None else ts
    return Signal(
        model_id,
        Kind(kind),
        subject,
        statistic,
        value,
        0.2,
        Window(max(seq - 99, 0), seq, when - 99, when, 100),
        dict(evidence or {}),
        when,
        seq,
        model_version,
    )


def perf(seq: int, **kw: Any) -> Signal:
    return sig(
        "performance",
        "accuracy",
        seq,
        statistic="accuracy",
        value=0.8,
        evidence={"drop": 0.04, "max_drop": 0.02},
        **kw,
    )


def utc_text(ts: float) -> str:
    """How SQLite keeps an aware UTC datetime (the UTC wall time)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def query(db: Path, sql: str, *args: Any) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args).fetchall()]


def columns(db: Path, name: str) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        cur = conn.execute(f"SELECT * FROM {name} LIMIT 0")
        return [d[0] for d in cur.description]


def objects(db: Path) -> set[tuple[str, str]]:
    rows = query(db, "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    return {(r["type"], r["name"]) for r in rows}


def counts(db: Path) -> dict[str, int]:
    return {t: int(query(db, f"SELECT count(*) AS n FROM {t}")[0]["n"]) for t in TABLES}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "alerts.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqlStore]:
    s = SqlStore(str(db))
    yield s
    s.close()


def mixed_changes() -> tuple[Triage, Changes]:
    """Model m: a paging performance alert and a silenced drift; model m2: two alerts that
    auto-resolve (their incident never paged)."""
    t = Triage(POLICY, silences=[Silence("s1", ends_at=T0 + 10 * HOUR, model_id="m",
                                         kind=Kind.DRIFT)])
    c = t.process(
        [
            perf(10),
            sig("drift", "car_value", 11),
            sig(
                "data_quality",
                "car_value",
                12,
                model_id="m2",
                statistic="out_of_range_rate",
                value=0.1,
            ),
            sig("drift", "car_value", 13, model_id="m2"),
            perf(14),
        ]
    )
    c.merge(resolve(t, "m2", 14))
    return t, c


# -- migrations and views ------------------------------------------------------------------


def test_migrations_upgrade_downgrade_upgrade(db: Path) -> None:
    url = schema.database_url(str(db))
    schema.upgrade(url)
    created = objects(db)
    assert {("view", "alert_history"), ("view", "pages")} <= created
    assert {
        ("table", t)
        for t in [*TABLES, "silences", "feedback", "acknowledgements", "alembic_version"]
    } <= created
    assert query(db, "SELECT version_num FROM alembic_version") == [{"version_num": "0011"}]
    assert {("table", "partition_state"), ("table", "partition_progress")} <= created
    schema.downgrade(url, "0001")  # down to 0001: the tables added since go
    assert objects(db) == created - {("table", "partition_state"),
                                     ("table", "partition_progress"),
                                     ("table", "seen_requests"),
                                     ("index", "ix_seen_requests_seen_at"),
                                     ("table", "delivery_attempts"),
                                     ("index", "ix_delivery_attempts_message_id"),
                                     *(("index", f"ix_{name}") for name in (
                                         "alerts_first_seen", "alerts_status_first_seen",
                                         "alerts_kind_first_seen", "alerts_model_first_seen_id",
                                         "feedback_alert_id",
                                         "incidents_status_opened_at",
                                         "incidents_opened_at", "incidents_model_opened_at",
                                         "alerts_model_last_seen",
                                         "occurrences_alert_seq"))}
    schema.downgrade(url)
    assert objects(db) <= {("table", "alembic_version")}
    assert query(db, "SELECT * FROM alembic_version") == []
    schema.upgrade(url)
    assert objects(db) == created
    assert query(db, "SELECT count(*) AS n FROM alert_history") == [{"n": 0}]


def test_sqlstore_migrates_and_is_reopenable(db: Path) -> None:
    SqlStore(str(db)).close()
    SqlStore(str(db)).close()  # already at head: nothing to do
    assert {("view", "alert_history"), ("view", "pages")} <= objects(db)


@pytest.mark.parametrize(("view", "expected"), [("alert_history", ALERT_HISTORY), ("pages", PAGES)])
def test_views_start_with_the_contract_columns(
    store: SqlStore, db: Path, view: str, expected: list[str]
) -> None:
    assert columns(db, view)[: len(expected)] == expected


# -- apply and the views -------------------------------------------------------------------


def test_apply_dry_run_rows_in_the_views(store: SqlStore, db: Path) -> None:
    t, c = mixed_changes()
    page = c.pages[0]
    store.apply(c, dry_run=True)
    history = {
        (r["model_id"], r["kind"], r["subject"]): r
        for r in query(db, "SELECT * FROM alert_history")
    }
    assert len(history) == 4
    assert {k: r["status"] for k, r in history.items()} == {
        ("m", "performance", "accuracy"): "open",
        ("m", "drift", "car_value"): "silenced",
        ("m2", "data_quality", "car_value"): "resolved",
        ("m2", "drift", "car_value"): "resolved",
    }
    assert {r["status"] for r in history.values()} <= STATUSES
    p = history[("m", "performance", "accuracy")]
    a = t.alerts[p["alert_id"]]
    assert {k: p[k] for k in ALERT_HISTORY} == {
        "alert_id": a.alert_id,
        "fingerprint": a.fingerprint,
        "model_id": "m",
        "kind": "performance",
        "subject": "accuracy",
        "severity": 0.8,
        "status": "open",
        "first_seen": utc_text(T0 + 10),
        "last_seen": utc_text(T0 + 14),
        "occurrences": 2,
        "paged": 1,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "summary": a.summary,
    }
    assert p["summary"] == "m: performance on accuracy: accuracy 0.8 (threshold 0.2)"
    assert p["first_seen"] == "2019-03-01 00:00:10.000000"
    gone = history[("m2", "drift", "car_value")]
    assert gone["resolved_at"] == utc_text(T0 + 13 + RESOLVE)
    assert gone["paged"] == 0
    assert history[("m", "drift", "car_value")]["paged"] == 0

    pages = query(db, "SELECT * FROM pages")
    assert [{k: r[k] for k in PAGES} for r in pages] == [
        {
            "page_id": page.page_id,
            "alert_id": a.alert_id,
            "model_id": "m",
            "kind": "performance",
            "subject": "accuracy",
            "paged_at": utc_text(T0 + 10),
            "channel": "#ml-oncall",
            "escalation_level": 0,
            "delivered": 0,
        }
    ]
    assert pages[0]["dry_run"] == 1
    assert query(db, "SELECT count(*) AS n FROM outbox") == [{"n": 0}]
    assert counts(db)["occurrences"] == counts(db)["statistic_snapshots"] == 5


def test_apply_queues_one_outbox_message_per_page_and_a_resolve(store: SqlStore, db: Path) -> None:
    t, c = mixed_changes()
    store.apply(c, dry_run=False)
    page = c.pages[0]
    # a repeat after the page goes to its thread (one reply per incident and hour)
    assert query(db, "SELECT kind, incident_id FROM outbox WHERE kind = 'thread'") == [
        {"kind": "thread", "incident_id": page.incident_id}]
    outbox = query(db, "SELECT * FROM outbox WHERE kind != 'thread'")
    assert [
        (r["message_id"], r["kind"], r["page_id"], r["incident_id"], r["sent_at"], r["attempts"])
        for r in outbox
    ] == [(page.page_id, "page", page.page_id, page.incident_id, None, 0)]
    payload = json.loads(outbox[0]["payload"])
    assert (payload["page_id"], payload["kind"], payload["subject"]) == (
        page.page_id,
        "performance",
        "accuracy",
    )
    assert query(db, "SELECT dry_run FROM page_log") == [{"dry_run": 0}]
    # the unpaged incident of m2 resolved in the same changes: no resolve message for it
    assert len(c.resolved_incidents) == 1
    assert c.resolved_incidents[0] != page.incident_id

    done = resolve(t, "m", 15)
    assert done.resolved_incidents == [page.incident_id]
    store.apply(done, dry_run=False)
    outbox = query(db, "SELECT kind, page_id, incident_id FROM outbox ORDER BY kind")
    assert outbox == [
        {"kind": "page", "page_id": page.page_id, "incident_id": page.incident_id},
        {"kind": "resolve", "page_id": None, "incident_id": page.incident_id},
        {"kind": "thread", "page_id": None, "incident_id": page.incident_id},
    ]
    statuses = {r["status"] for r in query(db, "SELECT status FROM alert_history")}
    assert statuses == {"resolved"}
    assert query(db, "SELECT status FROM incidents") == [{"status": "resolved"}] * 2


def test_dry_run_resolve_queues_nothing(store: SqlStore, db: Path) -> None:
    t, c = mixed_changes()
    store.apply(c, dry_run=True)
    store.apply(resolve(t, "m", 15), dry_run=True)
    assert counts(db)["outbox"] == 0
    assert counts(db)["page_log"] == 1


def test_applying_the_same_changes_twice_adds_nothing(store: SqlStore, db: Path) -> None:
    _, c = mixed_changes()
    store.apply(c, dry_run=False)
    once = counts(db)
    history = query(db, "SELECT * FROM alert_history ORDER BY alert_id")
    store.apply(c, dry_run=False)
    assert counts(db) == once
    assert query(db, "SELECT * FROM alert_history ORDER BY alert_id") == history
    assert once == {
        "incidents": 2,
        "alerts": 4,
        "occurrences": 5,
        "statistic_snapshots": 5,
        "page_log": 1,
        "outbox": 2,  # the page and one thread reply
        "pipeline_state": 2,  # a triage clock per model
        "rejected_events": 0,
    }


def test_empty_changes_write_nothing(store: SqlStore, db: Path) -> None:
    store.apply(Changes(), dry_run=False)
    assert set(counts(db).values()) == {0}


def test_replaying_through_a_loaded_triage_adds_nothing(store: SqlStore, db: Path) -> None:
    signals = [
        perf(10),
        sig("drift", "car_value", 11),
        perf(12),
        sig("data_quality", "driver_tenure", 13, statistic="null_rate", value=0.5),
    ]
    first = store.load_triage(POLICY)
    c = first.process(signals)
    c.merge(resolve(first, "m", 21))
    assert len(c.pages) == 1
    store.apply(c, dry_run=False)
    once = counts(db)
    history = query(db, "SELECT * FROM alert_history ORDER BY alert_id")

    again = store.load_triage(POLICY)
    c2 = again.process(signals)
    c2.merge(resolve(again, "m", 21))
    assert not c2 and c2.pages == [] and c2.occurrences == []
    store.apply(c2, dry_run=False)
    assert counts(db) == once
    assert query(db, "SELECT * FROM alert_history ORDER BY alert_id") == history


# -- load_triage ---------------------------------------------------------------------------


def test_clocks_are_a_row_per_model_and_the_old_shared_row_is_still_read(
    store: SqlStore, db: Path
) -> None:
    from alerts.store.tables import StateRow

    with store.engine.begin() as conn:  # as written before migration 0006
        conn.execute(insert(StateRow).values(key="triage_clocks",
                                             value={"a": T0 + 5, "b": T0 + 5}))
    # two workers, each with its own model: neither write can lose the other's clock
    other = SqlStore(f"sqlite:///{db}", migrate=False)
    store.apply(Changes(clocks={"a": T0 + 9}), dry_run=True)
    other.apply(Changes(clocks={"c": T0 + 1, "x" * 200: T0 + 2}), dry_run=True)  # long ids
    store.apply(Changes(clocks={"a": T0 + 7, "b": T0}), dry_run=True)  # never goes back
    assert store.load_triage(POLICY).clocks == {"a": T0 + 9, "b": T0 + 5, "c": T0 + 1,
                                                "x" * 200: T0 + 2}
    other.close()


def test_first_use_is_true_once_per_key_within_its_window(store: SqlStore, db: Path) -> None:
    other = SqlStore(f"sqlite:///{db}", migrate=False)  # another process on the database
    at = datetime.fromtimestamp(T0, tz=UTC)
    later = datetime.fromtimestamp(T0 + 599, tz=UTC)
    assert store.first_use("k1", at, 600) is True
    assert other.first_use("k1", later, 600) is False
    assert other.first_use("k2", later, 600) is True
    # once the window has passed, keys are forgotten (and the table does not grow)
    assert store.first_use("k1", datetime.fromtimestamp(T0 + 601, tz=UTC), 600) is True
    assert [r["key"] for r in query(db, "SELECT key FROM seen_requests ORDER BY key")] == [
        "k1", "k2"]
    other.close()


def test_load_triage_resumes_alerts_incidents_and_clocks(store: SqlStore, db: Path) -> None:
    t, c = mixed_changes()
    store.apply(c, dry_run=True)
    loaded = store.load_triage(POLICY)
    assert set(loaded.alerts) == set(t.alerts)
    for alert_id, a in t.alerts.items():
        b = loaded.alerts[alert_id]
        assert replace(b, factors=()) == replace(a, factors=())
        assert [(f.name, f.note) for f in b.factors] == [(f.name, f.note) for f in a.factors]
        assert [f.value for f in b.factors] == pytest.approx([f.value for f in a.factors])
    # incidents that are not resolved, and those of the latest alerts (a flap reopens them)
    open_incidents = {i for i, inc in t.incidents.items() if inc.status is not Status.RESOLVED}
    assert set(loaded.incidents) == set(t.incidents) and len(open_incidents) == 1
    for incident_id in t.incidents:
        assert replace(loaded.incidents[incident_id], factors=()) == replace(
            t.incidents[incident_id], factors=()
        )
    assert loaded.clocks == t.clocks == {"m": T0 + 14, "m2": T0 + 13}
    state = query(db, "SELECT key, value FROM pipeline_state")
    assert sorted(json.loads(r["value"])["model_id"] for r in state) == sorted(t.clocks)
    assert all(r["key"].startswith("triage_clock:") and len(r["key"]) <= 100 for r in state)
    store.apply(Changes(clocks={"m": T0, "m3": T0}), dry_run=True)  # a clock never goes back
    assert store.load_triage(POLICY).clocks == {**t.clocks, "m3": T0}

    # it carries on where the first one stopped: no second page for the paged incident
    more = loaded.process([perf(20)])
    a = next(a for a in loaded.alerts.values() if a.kind == "performance")
    assert (a.occurrences, a.last_seq, more.pages) == (3, 20, [])
    # the evaluations that resolved m2 were counted: processing them again does nothing
    assert not resolve(loaded, "m2", 14)
    done = resolve(loaded, "m", 21)
    assert done.resolved_incidents == list(open_incidents)


def test_load_triage_keeps_the_latest_alert_per_fingerprint(store: SqlStore) -> None:
    t = store.load_triage(POLICY)
    c = t.process([perf(10)])
    c.merge(resolve(t, "m", 11))
    c.merge(t.process([perf(50_000, ts=T0 + 5 * HOUR)]))
    store.apply(c, dry_run=True)
    loaded = store.load_triage(POLICY)
    latest = max(t.alerts.values(), key=lambda a: a.first_seq)
    assert latest.flaps == 1
    fp = latest.fingerprint
    assert loaded.latest[fp] == latest.alert_id
    assert loaded.alerts[latest.alert_id].status is Status.OPEN
    assert loaded.alerts[latest.alert_id].flaps == 1


def test_load_triage_counts_not_actionable_feedback(store: SqlStore, db: Path) -> None:
    t = store.load_triage(POLICY)
    c = t.process([perf(10)])
    c.merge(resolve(t, "m", 11))
    store.apply(c, dry_run=True)
    alert_id = only_id(c.alerts)
    at = datetime.fromtimestamp(T0 + 3 * HOUR, tz=UTC)
    with store.engine.begin() as conn:
        conn.execute(
            insert(FeedbackRow),
            [
                {
                    "alert_id": alert_id,
                    "model_id": "m",
                    "kind": "performance",
                    "subject": "accuracy",
                    "verdict": verdict,
                    "actor": "U1",
                    "at": at,
                    "note": "",
                }
                for verdict in ("not_actionable", "not_actionable", "actionable")
            ],
        )
    loaded = store.load_triage(POLICY)
    assert loaded.feedback == Counter({("m", "performance", "accuracy"): 2})
    later = loaded.process([perf(90_000, ts=T0 + 20 * HOUR)])
    a = only_value(later.alerts)
    assert (a.severity, a.route, later.pages) == (0.1875, Route.LOG, [])
    assert a.factors[-1].name == "feedback"
    assert a.factors[-1].note == "marked not actionable 2 time(s)"


def test_load_triage_takes_silences_from_the_table_and_the_config(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            insert(SilenceRow).values(
                silence_id="s-table",
                model_id="m",
                kind="drift",
                subject="car_*",
                starts_at=datetime.fromtimestamp(T0, tz=UTC),
                ends_at=datetime.fromtimestamp(T0 + HOUR, tz=UTC),
                created_by="alice",
                comment="known shift",
            )
        )
    ends = datetime(2019, 3, 2, tzinfo=UTC)
    policy = TriagePolicy(
        silences=[SilenceSpec(ends_at=ends, model_id="m", kind=Kind.PERFORMANCE, comment="deploy")]
    )
    loaded = store.load_triage(policy)
    by_creator = {s.created_by: s for s in loaded.silences}
    assert set(by_creator) == {"alice", "config"}
    assert by_creator["alice"] == Silence(
        silence_id="s-table",
        ends_at=T0 + HOUR,
        model_id="m",
        kind=Kind.DRIFT,
        subject="car_*",
        starts_at=T0,
        created_by="alice",
        comment="known shift",
    )
    config = by_creator["config"]
    assert (
        config.model_id,
        config.kind,
        config.subject,
        config.ends_at,
        config.starts_at,
        config.comment,
    ) == ("m", "performance", None, ends.timestamp(), 0.0, "deploy")
    assert store.load_triage(policy).silences == loaded.silences  # stable ids

    c = loaded.process([sig("drift", "car_value", 10), perf(11), sig("drift", "driver_age", 12)])
    by_kind = {(str(a.kind), a.subject): a for a in c.alerts.values()}
    assert by_kind[("drift", "car_value")].silenced_by == "s-table"
    assert by_kind[("performance", "accuracy")].silenced_by == config.silence_id
    assert by_kind[("drift", "driver_age")].silenced_by is None
    assert c.pages == []


def only_id(alerts: dict[str, Any]) -> str:
    assert len(alerts) == 1
    return next(iter(alerts))


def only_value(alerts: dict[str, Any]) -> Any:
    return alerts[only_id(alerts)]


# -- rejected events -----------------------------------------------------------------------


def test_record_rejects_is_idempotent_and_keeps_raw_bytes(store: SqlStore, db: Path) -> None:
    bad = Reject(Reason.INVALID_UTF8, "invalid UTF-8 at byte 0", b'\xff\xfe{"a": 1}\x00')
    big = Reject(Reason.OVERSIZE, "70000 bytes", b"x" * 70_000, index=2)
    store.record_rejects("events.jsonl", [(3, bad), (7, big)])
    store.record_rejects("events.jsonl", [(3, bad), (7, big)])
    store.record_rejects("events.jsonl", [])
    store.record_rejects("other.jsonl", [(3, bad)])
    rows = query(
        db, "SELECT source, seq, reason, detail, raw FROM rejected_events ORDER BY source, seq"
    )
    assert rows == [
        {
            "source": "events.jsonl",
            "seq": 3,
            "reason": "invalid_utf8",
            "detail": "invalid UTF-8 at byte 0",
            "raw": b'\xff\xfe{"a": 1}\x00',
        },
        {
            "source": "events.jsonl",
            "seq": 7,
            "reason": "oversize",
            "detail": "70000 bytes",
            "raw": b"x" * 70_000,
        },
        {
            "source": "other.jsonl",
            "seq": 3,
            "reason": "invalid_utf8",
            "detail": "invalid UTF-8 at byte 0",
            "raw": b'\xff\xfe{"a": 1}\x00',
        },
    ]


# -- end to end ----------------------------------------------------------------------------


def test_broken_pipeline_end_to_end_pages_once_and_replays_idempotently(
    tmp_path: Path, db: Path
) -> None:
    scenario = generate("broken_pipeline", predictions=5_000)
    files = write_scenario(scenario, tmp_path / "broken.jsonl")
    config = load_config(files.config)

    store = SqlStore(str(db))
    try:
        pipeline = Pipeline(config, store, source=str(files.events), dry_run=False)
        report = replay(files.events, pipeline.core, process=pipeline.feed)
    finally:
        store.close()
    assert report.rejected == Counter()
    page = pipeline.totals.pages[0]
    assert len(pipeline.totals.pages) == 1
    assert (page.model_id, page.kind, page.subject) == ("car_loan", "performance", "accuracy")
    assert page.seq >= scenario.incidents[0].onset_index
    assert len(pipeline.totals.incidents) == 1

    pages = query(db, "SELECT * FROM pages")
    assert [(r["page_id"], r["kind"], r["subject"], r["delivered"]) for r in pages] == [
        (page.page_id, "performance", "accuracy", 0)
    ]
    assert query(db, "SELECT kind, page_id FROM outbox WHERE kind = 'page'") == [
        {"kind": "page", "page_id": page.page_id}
    ]
    threads = query(db, "SELECT count(*) AS n FROM outbox WHERE kind = 'thread'")[0]["n"]
    assert threads >= 1  # repeats after the page go to its thread
    history = query(db, "SELECT * FROM alert_history")
    assert {(r["kind"], r["subject"]) for r in history} == {
        ("performance", "accuracy"),
        ("data_quality", "car_value"),
        ("data_quality", "driver_tenure"),
        ("drift", "car_value"),
        ("prediction_drift", "prediction"),
        ("prediction_drift", "score"),
        # the corrupted inputs broke what the scores mean: estimates from them are off
        ("monitoring_health", "calibration"),
    }
    assert {r["status"] for r in history} <= STATUSES
    assert len({r["incident_id"] for r in history}) == 1
    routes = {(r["kind"], r["subject"]): r["route"] for r in history}
    assert routes[("drift", "car_value")] == "log"  # inhibited by the corrupted car_value
    assert routes[("data_quality", "driver_tenure")] == "page"
    assert routes[("data_quality", "car_value")] == "page"
    once = counts(db)
    assert once["page_log"] == 1 and once["outbox"] == 1 + threads
    assert once["occurrences"] == sum(pipeline.totals.signals.values())

    again_store = SqlStore(str(db))
    try:
        again = Pipeline(config, again_store, source=str(files.events), dry_run=False)
        replay(files.events, again.core, process=again.feed)
    finally:
        again_store.close()
    assert again.totals.pages == [] and again.totals.alerts == set()
    assert again.totals.incidents == set()
    assert counts(db) == once
    assert query(db, "SELECT * FROM alert_history") == history


# -- one batch, one transaction ------------------------------------------------------------


def test_a_batchs_rejects_changes_and_state_are_written_together_or_not_at_all(
        store: SqlStore, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alerts.store import Checkpoint, Progress

    _, c = mixed_changes()
    bad = Reject(Reason.INVALID_JSON, "not JSON", b"{", index=0)
    state = Checkpoint("app", 0, b"state", {"t": 5}, 6)
    progress = Progress("app", 0, {"t": 5}, 6)

    def fail(*_: Any) -> None:
        raise RuntimeError("the database went away mid-batch")

    before = counts(db)
    with monkeypatch.context() as m:
        m.setattr(SqlStore, "_upsert_alerts", fail)  # after the rejects and the incidents
        with pytest.raises(RuntimeError):
            store.apply(c, dry_run=False, source="p0", rejects=[(3, bad)], checkpoint=state,
                        progress=progress)
    assert counts(db) == before  # nothing of the batch
    assert store.load_checkpoint("app", 0) is None and store.load_progress("app", 0) is None

    store.apply(c, dry_run=False, source="p0", rejects=[(3, bad)], checkpoint=state,
                progress=progress)
    assert query(db, "SELECT source, seq, reason FROM rejected_events") == [
        {"source": "p0", "seq": 3, "reason": "invalid_json"}]
    assert counts(db)["alerts"] == len(c.alerts)
    assert store.load_checkpoint("app", 0) == state
    assert store.load_progress("app", 0) == progress


# -- the history interface (the CLI) -------------------------------------------------------


def test_history_reads_the_views_finds_alerts_by_prefix_and_changes_nothing(
        store: SqlStore, db: Path) -> None:
    _, c = mixed_changes()
    store.apply(c, dry_run=True)
    recent = store.recent_alerts()
    assert len(recent) == len(c.alerts)
    assert [a.last_seen for a in recent] == sorted((a.last_seen for a in recent), reverse=True)
    assert {a.alert_id for a in store.recent_alerts(model="m2")} == {
        a.alert_id for a in c.alerts.values() if a.model_id == "m2"}
    assert [a.kind for a in store.recent_alerts(kind="performance")] == ["performance"]
    assert store.recent_alerts(status="acknowledged") == []
    assert len(store.recent_alerts(limit=2)) == 2

    perf_alert = next(a for a in c.alerts.values() if a.kind == Kind.PERFORMANCE)
    assert store.find_alerts(perf_alert.alert_id[:6]) == [perf_alert.alert_id]
    assert store.find_alerts("") == sorted(c.alerts)
    assert store.find_alerts("%") == []  # a pattern character is only a character
    detail = store.alert_detail(perf_alert.alert_id[:6])
    assert detail is not None and detail.alert["alert_id"] == perf_alert.alert_id
    assert [seq for seq, _, _ in detail.occurrences] == [10, 14]
    assert [(p["escalation_level"], bool(p["dry_run"])) for p in detail.pages] == [(0, True)]
    assert store.alert_detail("") is None  # several match

    before = counts(db)
    columns, rows = store.query("SELECT kind, count(*) AS n FROM alert_history "
                                "GROUP BY kind ORDER BY kind")
    assert columns == ["kind", "n"]
    assert rows == sorted(Counter(str(a.kind) for a in c.alerts.values()).items())
    from alerts.store.sql import QueryError

    with pytest.raises(QueryError, match="no such table"):
        store.query("SELECT * FROM nowhere")
    with pytest.raises(QueryError):
        store.query("DELETE FROM alerts")  # returns no rows: refused, and rolled back
    assert counts(db) == before
