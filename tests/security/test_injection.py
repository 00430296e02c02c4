"""Hostile strings in every text field reach the database as data, never as SQL.

Two scenarios (a broken pipeline: data quality, drift and slices; a business metric drop)
are rewritten so that every name and text value carries SQL, shell, format-string,
backslash and right-to-left/emoji payloads: model ids, versions, event and request ids,
feature names, categorical values, tag (slice) names and values, metric names, and in the
configuration the model ids, feature names, slice keys, metric names and the paging
channel; with a few events that are rejected for them. Replayed into SQLite and
PostgreSQL, every table is still there with exactly the rows the plain scenarios give,
and the strings are stored verbatim where they belong. The API and the CLI then take
hostile alert ids, notes and names.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from sqlalchemy import create_engine, text

from alerts.store.schema import database_url
from alerts.store.sql import SqlStore
from sim.scenarios import ScenarioFiles, generate, write_scenario
from tests.integration.conftest import pg_db, postgres_url  # noqa: F401 - fixtures
from tests.security.conftest import ApiServer, Secrets, dump
from watchkeeper.cli import main, run_replay

HOSTILE = ("'; DROP TABLE alerts; --", '" OR 1=1 --', "$(rm -rf /)", "`id`",
           "\u202eevil\u202c 🚨👩\u200d💻", "%s %(x)s {0} %%", "\\'\\\\ \\n \\x00")
CHANNEL = "#ml-oncall'); DROP TABLE page_log; --"
NOTE = "".join(HOSTILE)
BY = "alice'; UPDATE alerts SET status='resolved'; --"
# scenario, predictions, its model id in the plain and the hostile replay
SCENARIOS = [("broken_pipeline", 3_000, "model_a", "car_loan'; DROP TABLE alerts; --"),
             ("business_metric_drop", 40_000, "model_b", 'car_loan" OR 1=1 -- `id`')]
REJECTED = [  # bytes as they arrive; each is rejected (and kept) as it is
    json.dumps({"type": "prediction", "ts": "2019-03-01T00:00:00Z",
                "model_id": "'; DROP TABLE alerts; --", "features": {}, "prediction": 1},
               ensure_ascii=False).encode(),
    "'; DROP TABLE pages; -- $(rm -rf /) `id` \u202e🚨".encode(),
]
ALERT_KEY = "SELECT model_id, kind, subject, statistic, slice FROM alerts"
SNAPSHOT_KEY = "SELECT model_id, kind, subject, statistic, slice FROM statistic_snapshots"


class Renaming:
    """One scenario's names and text values, each with a suffix from ``suffixes`` (the
    plain replay's is empty: only the model id changes)."""

    def __init__(self, model_id: str, suffixes: tuple[str, ...]) -> None:
        self.model_id = model_id
        self.suffixes = suffixes
        self.names: dict[str, str] = {}  # feature, tag and metric names
        self.values: dict[tuple[str, str], str] = {}  # (name, text value) -> renamed

    def _suffix(self, i: int) -> str:
        return self.suffixes[i % len(self.suffixes)]

    def name(self, name: str) -> str:
        return self.names.setdefault(name, name + self._suffix(len(self.names)))

    def value(self, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return self.values.setdefault((name, value), value + self._suffix(len(self.values) + 3))

    def event(self, e: dict[str, Any]) -> dict[str, Any]:
        out = dict(e, model_id=self.model_id)
        for i, key in enumerate(("model_version", "request_id", "event_id")):
            if isinstance(e.get(key), str):
                out[key] = e[key] + self._suffix(i + 2)
        for key in ("features", "tags"):
            if isinstance(e.get(key), dict):
                out[key] = {self.name(k): self.value(k, v) for k, v in e[key].items()}
        if e.get("type") == "metric":
            out["name"] = self.name(e["name"])
        return out

    def config(self, c: dict[str, Any], reference: str, channel: str) -> dict[str, Any]:
        (spec,) = c["models"].values()
        spec = {**spec, "reference": reference,
                "features": {self.name(k): v for k, v in (spec.get("features") or {}).items()},
                "slices": [self.name(s) for s in spec.get("slices") or []],
                "business_metrics": {self.name(k): v for k, v
                                     in (spec.get("business_metrics") or {}).items()}}
        return {**c, "models": {self.model_id: spec},
                "triage": {**(c.get("triage") or {}), "channel": channel}}

    def key(self, row: tuple[Any, ...], to: Renaming) -> tuple[Any, ...]:
        """An alert's (or snapshot's) key in this replay, as the other replay has it."""
        back = {v: k for k, v in self.names.items()}
        back_values = {(self.names[n], v): raw for (n, raw), v in self.values.items()}
        _, kind, subject, statistic, slice_ = row
        if slice_ is not None:  # name=value (a plain name has no "=")
            key, value = slice_.split("=", 1)
            raw = back_values.get((key, value), value)
            slice_ = f"{to.name(back[key])}={to.value(back[key], raw)}"
        subject = to.names.get(back.get(subject, subject), subject)
        return (to.model_id, kind, subject, statistic, slice_)


def rewrite(path: Path, to: Path, fn: Callable[[dict[str, Any]], dict[str, Any]],
            extra: list[bytes]) -> None:
    lines = [json.dumps(fn(json.loads(line)), ensure_ascii=False).encode()
             for line in path.read_bytes().splitlines() if line.strip()]
    to.write_bytes(b"\n".join([*lines, *extra]) + b"\n")


@dataclass(frozen=True)
class Run:
    events: Path
    config: Path
    renaming: Renaming


def renamed(plain: ScenarioFiles, r: Renaming, folder: Path, stem: str,
            channel: str) -> Run:
    """The scenario's events (with the rejected lines), reference and config, renamed."""
    folder.mkdir()
    reference = folder / f"{stem}.reference.jsonl"
    rewrite(plain.reference, reference, r.event, [])
    events = folder / f"{stem}.jsonl"
    rewrite(plain.events, events, r.event, REJECTED)
    config = r.config(yaml.safe_load(plain.config.read_text(encoding="utf-8")),
                      reference.name, channel)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return Run(events, path, r)


def replay_into(db: str, runs: list[Run]) -> None:
    for run in runs:
        run_replay(run.events, run.config, db=db, quiet=True, dry_run=False,
                   out=io.StringIO(), rejects_out=run.events.with_suffix(".rejects"))


def rows(db: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(database_url(db))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Expected:
    tables: dict[str, int]  # every table and view, its row count
    alerts: Counter[tuple[Any, ...]]
    snapshots: Counter[tuple[Any, ...]]
    hostile: list[Run]


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> Expected:
    """The plain scenarios replayed into SQLite: what the hostile replays must store."""
    # short folders: the store keys a replay's sequence base by its path, in 100 characters
    root = tmp_path_factory.mktemp("inj")
    plain_runs, hostile_runs = [], []
    for i, (name, n, plain_id, hostile_id) in enumerate(SCENARIOS):
        files = write_scenario(generate(name, predictions=n, seed=7), root / f"{name}.jsonl")
        plain_runs.append(renamed(files, Renaming(plain_id, ("",)), root / f"p{i}", name,
                                  "#ml-oncall"))
        hostile_runs.append(renamed(files, Renaming(hostile_id, HOSTILE), root / f"h{i}",
                                    f"{i}';DROP TABLE x;--`id`🚨", CHANNEL))
    db = f"sqlite:///{root / 'plain.db'}"
    replay_into(db, plain_runs)
    keys: dict[str, Counter[tuple[Any, ...]]] = {}
    for table, sql in (("alerts", ALERT_KEY), ("snapshots", SNAPSHOT_KEY)):
        keys[table] = Counter(
            plain.renaming.key(row, hostile.renaming)
            for plain, hostile in zip(plain_runs, hostile_runs, strict=True)
            for row in rows(db, sql) if row[0] == plain.renaming.model_id)
    assert keys["alerts"] and any(k[4] for k in keys["alerts"])  # slices among them
    return Expected({t: len(r) for t, r in dump(db).items()}, keys["alerts"],
                    keys["snapshots"], hostile_runs)


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_hostile_strings_are_stored_verbatim_and_run_no_sql(
    backend: str, expected: Expected, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    db = (f"sqlite:///{tmp_path / 'hostile.db'}" if backend == "sqlite"
          else str(request.getfixturevalue("pg_db")))
    replay_into(db, expected.hostile)
    # every table and view still there, with the plain scenarios' number of rows
    assert {t: len(r) for t, r in dump(db).items()} == expected.tables
    assert Counter(rows(db, ALERT_KEY)) == expected.alerts
    assert Counter(rows(db, SNAPSHOT_KEY)) == expected.snapshots
    models = {run.renaming.model_id for run in expected.hostile}
    assert {r[0] for r in rows(db, "SELECT model_id FROM incidents")} == models
    assert {r[0] for r in rows(db, "SELECT model_id FROM alert_history")} == models
    assert set(rows(db, "SELECT channel FROM pages")) == {(CHANNEL,)}
    assert sorted((bytes(raw), source) for raw, source in rows(
        db, "SELECT raw, source FROM rejected_events")) == sorted(
        (raw, str(run.events.resolve())) for run in expected.hostile for raw in REJECTED)
    http_and_cli_take_hostile_ids_and_notes(db, tmp_path, models)


def http_and_cli_take_hostile_ids_and_notes(db: str, tmp_path: Path,
                                            models: set[str]) -> None:
    made_up = Secrets()
    alert_id = str(rows(db, "SELECT alert_id FROM pages ORDER BY alert_id")[0][0])
    auth = {"Authorization": f"Bearer {made_up.api_token}", "Content-Type": "application/json"}
    body = json.dumps({"by": BY, "note": NOTE}).encode()
    with ApiServer(db, {"WATCHKEEPER_API_TOKEN": made_up.api_token},
                   tmp_path / "api.log") as api:
        before = dump(db)
        for bad in (*HOSTILE, NOTE, "%", "_", "*", f"{alert_id[:8]}%"):
            resp = api.request("POST", f"/api/alerts/{quote(bad, safe='')}/ack", body, auth)
            assert resp.status == 404, (bad, resp.status, resp.body)
        assert dump(db) == before
        for action in ("ack", "silence", "not-actionable"):
            resp = api.request("POST", f"/api/alerts/{alert_id}/{action}", body, auth)
            assert resp.status == 200, resp.body
    assert rows(db, "SELECT action, actor, note FROM acknowledgements ORDER BY id") == [
        ("acknowledge", BY, NOTE), ("silence", BY, NOTE), ("not_actionable", BY, NOTE)]
    assert rows(db, "SELECT created_by, comment FROM silences") == [(BY, NOTE)]
    assert rows(db, "SELECT actor, note FROM feedback") == [(BY, NOTE)]
    # the CLI: a LIKE wildcard is no prefix of any id; a model filter is a value
    for wildcard in ("%", "_"):
        assert main(["ack", wildcard, "--by", BY, "--db", db]) == 2
    store = SqlStore(db, migrate=False)
    try:
        for model in models:
            found = store.recent_alerts(model=model, limit=1000)
            assert len(found) == len(rows(db, "SELECT 1 FROM alerts WHERE model_id = :m",
                                          m=model))
            assert {a.model_id for a in found} == {model}
        assert store.recent_alerts(model="' OR '1'='1") == []
        assert store.find_alerts("%") == [] and store.find_alerts("_") == []
        assert store.act(HOSTILE[0], "ack", BY, datetime.now(tz=UTC)) is None
    finally:
        store.close()
    assert {r[0] for r in rows(db, "SELECT model_id FROM alerts")} == models


@pytest.mark.integration
def test_a_replay_from_a_deep_folder_works_on_postgresql(pg_db: str,  # noqa: F811
                                                        tmp_path: Path) -> None:
    folder = tmp_path / ("deep" * 20)
    files = write_scenario(generate("broken_pipeline", predictions=1_000, seed=7),
                           folder / "bp.jsonl")
    assert len(str(files.events.resolve())) > 100
    run_replay(files.events, files.config, db=pg_db, quiet=True, out=io.StringIO())
    assert rows(pg_db, "SELECT count(*) FROM pipeline_state WHERE key LIKE 'seq_base:%'") == [
        (1,)]
