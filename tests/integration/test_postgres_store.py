"""The alert store on a real PostgreSQL server: migrations, CONTRACT views via psql,
idempotent re-processing, state shared by several processes."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from alerts.store.schema import database_url, downgrade, upgrade
from alerts.store.sql import SqlStore
from alerts.triage import Changes
from config.file import TriagePolicy
from sim.scenarios import generate, write_scenario
from watchkeeper.cli import main

ALERT_HISTORY = ["alert_id", "fingerprint", "model_id", "kind", "subject", "severity", "status",
                 "first_seen", "last_seen", "occurrences", "paged", "acknowledged_at",
                 "acknowledged_by", "resolved_at", "summary"]
PAGES = ["page_id", "alert_id", "model_id", "kind", "subject", "paged_at", "channel",
         "escalation_level", "delivered"]
TABLES = {"acknowledgements", "alerts", "delivery_attempts", "feedback", "incidents",
          "occurrences", "outbox", "page_log", "partition_progress", "partition_state",
          "pipeline_state", "rejected_events", "seen_requests", "silences",
          "statistic_snapshots"}


def psql(url: str, sql: str) -> list[list[str]]:
    """Rows from plain psql (unaligned, tuples only)."""
    done = subprocess.run(["psql", url, "-X", "-v", "ON_ERROR_STOP=1", "-tA", "-F", "\t",
                           "-c", sql], capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def relations(url: str) -> tuple[set[str], set[str]]:
    tables = {r[0] for r in psql(url, "SELECT table_name FROM information_schema.tables "
                                      "WHERE table_schema = 'public' "
                                      "AND table_type = 'BASE TABLE'")}
    views = {r[0] for r in psql(url, "SELECT table_name FROM information_schema.views "
                                     "WHERE table_schema = 'public'")}
    return tables, views


def columns(url: str, view: str) -> list[str]:
    return [r[0] for r in psql(url, "SELECT column_name FROM information_schema.columns "
                                    f"WHERE table_name = '{view}' ORDER BY ordinal_position")]


def test_migrations_go_up_and_down_and_up_again(pg_db: str) -> None:
    url = database_url(pg_db)
    upgrade(url)
    tables, views = relations(pg_db)
    assert tables == TABLES | {"alembic_version"}
    assert views == {"alert_history", "pages"}
    assert columns(pg_db, "alert_history")[:len(ALERT_HISTORY)] == ALERT_HISTORY
    assert columns(pg_db, "pages")[:len(PAGES)] == PAGES
    downgrade(url)
    tables, views = relations(pg_db)
    assert tables == {"alembic_version"} and views == set()
    upgrade(url)
    assert relations(pg_db)[1] == {"alert_history", "pages"}


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    files = write_scenario(generate("broken_pipeline", predictions=8_000, seed=7),
                           tmp_path_factory.mktemp("pg") / "broken.jsonl")
    return files.events, files.config


def counts(url: str) -> dict[str, int]:
    engine = create_engine(database_url(url))
    with engine.connect() as conn:
        out = {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
               for t in ("alerts", "occurrences", "incidents", "page_log", "outbox",
                         "statistic_snapshots")}
    engine.dispose()
    return out


def test_replay_into_postgres_then_psql_reads_the_views(
    pg_db: str, broken: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    events, config = broken
    assert main(["replay", str(events), "--config", str(config), "--db", pg_db, "-q"]) == 0
    out = capsys.readouterr().out
    assert "1 pages" in out
    pages = psql(pg_db, "SELECT model_id, kind, subject, channel, escalation_level, delivered "
                        "FROM pages")
    assert pages == [["car_loan", "performance", "accuracy", "#ml-oncall", "0", "f"]]
    history = psql(pg_db, "SELECT kind, subject, status FROM alert_history ORDER BY first_seen")
    assert len(history) == counts(pg_db)["alerts"] >= 5
    assert {row[2] for row in history} <= {"open", "acknowledged", "resolved", "silenced"}
    kinds = {row[0] for row in history}
    assert {"performance", "data_quality", "drift", "prediction_drift"} <= kinds
    paged = psql(pg_db, "SELECT count(*) FROM alert_history WHERE paged")
    assert int(paged[0][0]) >= 1


def test_reprocessing_the_same_events_adds_nothing(
    pg_db: str, broken: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    events, config = broken
    assert main(["replay", str(events), "--config", str(config), "--db", pg_db, "-q"]) == 0
    first = counts(pg_db)
    assert first["page_log"] == 1 and first["alerts"] > 0
    assert main(["replay", str(events), "--config", str(config), "--db", pg_db, "-q"]) == 0
    assert counts(pg_db) == first


def test_db_command_migrates_postgres(pg_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--db", pg_db]) == 0
    assert relations(pg_db)[1] == {"alert_history", "pages"}
    assert main(["db", "downgrade", "--db", pg_db]) == 0
    assert relations(pg_db) == ({"alembic_version"}, set())
    out = capsys.readouterr().out
    assert "upgrade to head done" in out and "downgrade to base done" in out


def test_the_replay_guard_and_triage_clocks_hold_across_processes(pg_db: str) -> None:
    one, two = SqlStore(pg_db), SqlStore(pg_db, migrate=False)  # two processes' stores
    at = datetime(2026, 11, 26, tzinfo=UTC)
    assert one.first_use("sig", at, 600) is True
    assert two.first_use("sig", at, 600) is False
    one.apply(Changes(clocks={"a": 5.0}), dry_run=True)
    two.apply(Changes(clocks={"b": 7.0, "x" * 200: 1.0}), dry_run=True)  # ids of any length
    one.apply(Changes(clocks={"a": 4.0}), dry_run=True)
    assert two.load_triage(TriagePolicy()).clocks == {"a": 5.0, "b": 7.0, "x" * 200: 1.0}
    one.close()
    two.close()


def test_a_reject_whose_detail_quotes_a_nul_is_kept(pg_db: str) -> None:
    """PostgreSQL's text holds no NUL: a reject's detail that quotes one (the bad input)
    is kept with the NUL written out, its raw bytes as they were."""
    from alerts.store.sql import SqlStore
    from stream.events import Reason, Reject

    store = SqlStore(pg_db)
    raw = b'{"model_id": "\\u0000"}'
    store.record_rejects("live:0", [(7, Reject(Reason.UNKNOWN_MODEL, "unknown model '\x00'",
                                               raw))])
    with store.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT seq, detail, raw FROM rejected_events").one()
    assert (row[0], row[1], bytes(row[2])) == (7, "unknown model '\\x00'", raw)
    store.close()


def test_only_a_database_away_is_retryable(pg_db: str) -> None:
    """A refused or dropped connection is RetryableError (the services wait it out);
    a statement timeout, a bad query or a constraint is the error it is (retrying it
    for ever would stall a worker)."""
    import sqlalchemy.exc
    from sqlalchemy import text as sql

    from alerts.store.sql import SqlStore
    from config.errors import RetryableError

    store = SqlStore(pg_db)
    with store.engine.connect() as conn:
        with pytest.raises(sqlalchemy.exc.OperationalError) as timeout:
            conn.execute(sql("SET statement_timeout = 1; SELECT pg_sleep(1)"))
        assert not isinstance(timeout.value, RetryableError)
        conn.rollback()
        with pytest.raises(sqlalchemy.exc.DataError):
            conn.execute(sql("SELECT 1 / 0"))
        conn.rollback()
        # the server drops the connection: away, for this call
        with pytest.raises(RetryableError, match="unavailable"):
            conn.execute(sql("SELECT pg_terminate_backend(pg_backend_pid())"))
    store.ping()  # a new connection from the pool: nothing to wait out
    store.close()


def test_nul_characters_in_events_are_stored_written_out(
    pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """JSON may carry a NUL in an id, a category or a version (the decoder takes it);
    PostgreSQL's text cannot hold one: the store writes it out (``\\x00``), in text columns
    and in JSON, and the replay goes through."""
    import json

    scenario = generate("broken_pipeline", predictions=4_000, seed=7)
    files = write_scenario(scenario, tmp_path / "bp.jsonl")
    lines = []
    for k, original in enumerate(scenario.events):
        event: dict[str, Any] = dict(original)
        if event["type"] == "prediction" and k > len(scenario.events) // 3:
            event["model_version"] = "v7\x00b"
            event["features"] = {**event["features"], "region": "west\x00"}
            event["tags"] = {**(event.get("tags") or {}), "channel": "web\x00"}
        lines.append(json.dumps(event))
    files.events.write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    assert main(["replay", str(files.events), "--config", str(files.config), "--db", pg_db,
                 "-q"]) == 0
    written = psql(pg_db, "SELECT count(*) FROM statistic_snapshots WHERE "
                          "strpos(model_version, '\\x00') > 0 OR strpos(slice, '\\x00') > 0")
    assert int(written[0][0]) > 0
    assert counts(pg_db)["alerts"] > 0
