"""Faults on real servers: the database away for 30 s, the broker restarted, the worker
killed three times in a 100,000-event run. Each time: nothing lost, nothing counted twice,
the same alerts and pages as an uninterrupted run, none twice.

The servers that are stopped here are this module's own (a PostgreSQL or a Kafka broker
started on a free port in a private folder by the project's scripts); the suite's shared
servers are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alerts.store.sql import SqlStore
from config.file import load_config
from services.pipeline import Pipeline
from sim.scenarios import generate, write_scenario
from tests.figures import record
from tests.integration.test_kafka_recovery import Harness
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_SECONDS = 30.0


@dataclass
class Server:
    """A server of this module's own, run by one of the project's scripts."""

    script: str
    env: dict[str, str]
    folder: Path
    url: str = ""

    def run(self, action: str) -> str:
        done = subprocess.run(["bash", str(ROOT / "scripts" / self.script), action],
                              env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, f"{self.script} {action}: {done.stderr[-2000:]}"
        return done.stdout.strip()

    def start(self) -> None:
        self.url = self.run("start")

    def stop(self) -> None:
        self.run("stop")


def _server(script: str, variables: Callable[[Path], dict[str, str]]) -> Iterator[Server]:
    folder = Path(tempfile.mkdtemp(prefix=f"wk-faults-{script.split('.')[0]}-"))
    folder.chmod(0o755)  # the postgres user (when we are root) must reach its data
    server = Server(script, variables(folder), folder)
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[Server]:
    yield from _server("postgres.sh", lambda folder: {
        "WK_PG_PORT": str(free_port()), "WK_PG_DIR": str(folder / "data")})


@pytest.fixture
def own_kafka() -> Iterator[Server]:
    yield from _server("kafka.sh", lambda folder: {
        "WK_KAFKA_PORT": str(free_port(pair=True)), "WK_KAFKA_DIR": str(folder)})


def readiness(port: int) -> int:
    """The worker's ``/readyz`` status (0 while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def scrape(port: int) -> dict[str, float]:
    """The worker's ``/metrics``: each sample line's value by its name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


@dataclass(frozen=True)
class Expected:
    """What an uninterrupted run of the events gives (the replay: the same monitors and
    triage, no Kafka)."""

    fingerprints: set[str]
    pages: int


def uninterrupted(config: Path, events: list[dict[str, Any]], tmp: Path) -> Expected:
    store = SqlStore(str(tmp / "uninterrupted.db"))
    pipeline = Pipeline(load_config(config), store, source="replay")
    lines = [json.dumps(e).encode() for e in events]
    for start in range(0, len(lines), 2_000):
        pipeline.feed(lines[start:start + 2_000])
    with store.engine.connect() as conn:
        fingerprints = {str(f) for (f,) in conn.exec_driver_sql(
            "SELECT fingerprint FROM alerts")}
        pages = int(conn.exec_driver_sql("SELECT count(*) FROM pages").scalar_one())
    store.close()
    return Expected(fingerprints, pages)


def check_exact(h: Harness, events: list[dict[str, Any]], expected: Expected,
                name: str, **more: Any) -> None:
    """Every event counted once, and the uninterrupted run's alerts and pages, none twice;
    the figures recorded as ``name`` (tests/figures.py)."""
    time.sleep(3)  # anything counted twice would show now
    record(name, events_produced=len(events), events_counted=h.processed(),
           events_written=h.written(), alerts_expected=len(expected.fingerprints),
           alerts=h.scalar("SELECT count(*) FROM alerts"), pages_expected=expected.pages,
           pages_sent=h.scalar("SELECT count(*) FROM pages"), **more)
    assert h.processed() == h.written() == len(events)
    cores = h.cores()
    assert sum(sum(c["accepted"].values()) for c in cores) == len(events)
    assert sum(c["duplicates"] for c in cores) == 0
    with h.engine.connect() as conn:
        fingerprints = {str(f) for (f,) in conn.exec_driver_sql(
            "SELECT fingerprint FROM alerts")}
    assert fingerprints == expected.fingerprints
    assert h.scalar("SELECT count(*) FROM pages") == expected.pages
    assert h.scalar("SELECT count(*) FROM (SELECT incident_id FROM pages GROUP BY incident_id, "
                    "escalation_level HAVING count(*) > 1) AS twice") == 0
    # each alert's occurrences are its distinct (fingerprint, index) rows: none twice
    assert h.scalar("SELECT sum(occurrences) FROM alerts") == h.scalar(
        "SELECT count(*) FROM occurrences")


def _scenario(tmp: Path, predictions: int) -> tuple[Path, list[dict[str, Any]]]:
    scenario = generate("harmful_drift", predictions=predictions, seed=7)
    files = write_scenario(scenario, tmp / "hd.jsonl")
    return files.config, scenario.events


def test_the_database_away_for_30_seconds_pauses_the_worker_and_loses_nothing(
    own_postgres: Server, kafka_bootstrap: str, tmp_path: Path,
) -> None:
    config, events = _scenario(tmp_path, 8_000)
    expected = uninterrupted(config, events, tmp_path)
    assert expected.pages == 1
    h = Harness(own_postgres.url, kafka_bootstrap, tmp_path, config, "direct")
    try:
        port = free_port()
        worker = h.start("worker", WATCHKEEPER_WEB_PORT=str(port))
        # its partitions sought to their checkpoints: the outage hits its batches
        h.wait(lambda: h.log_count("worker", ": assigned (checkpoint offsets") == 4,
               "the worker's partitions")
        third = len(events) // 3
        h.produce(events[:third])
        h.wait(lambda: h.written() == third, "the first third")
        assert readiness(port) == 200
        own_postgres.stop()
        stopped = time.monotonic()
        h.produce(events[third:])
        h.wait(lambda: readiness(port) == 503, "the worker to report not ready", timeout=30)
        assert scrape(port)["watchkeeper_worker_ready"] == 0
        while time.monotonic() - stopped < OUTAGE_SECONDS:
            assert worker.poll() is None, "the worker stopped while the database was away"
            time.sleep(1)
        own_postgres.start()
        back = time.monotonic()
        h.wait(lambda: h.processed() == len(events), "every event after the outage")
        h.wait(lambda: readiness(port) == 200, "the worker to be ready again", timeout=60)
        caught_up = time.monotonic() - back
        after = scrape(port)
        assert after["watchkeeper_worker_ready"] == 1
        assert after["watchkeeper_worker_store_failures_total"] >= 1
        assert sum(v for k, v in after.items()
                   if k.startswith("watchkeeper_worker_events_total")) == len(events)
        check_exact(h, events, expected, "database_outage",
                    outage_seconds=round(back - stopped, 1),
                    caught_up_seconds_after=round(caught_up, 1))
        assert worker.poll() is None
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert "batch not stored, to be retried" in log
        assert "the database is back" in log
    finally:
        h.close()


def test_a_broker_restart_mid_stream_loses_and_doubles_nothing(
    own_kafka: Server, pg_db: str, tmp_path: Path,
) -> None:
    config, events = _scenario(tmp_path, 8_000)
    expected = uninterrupted(config, events, tmp_path)
    h = Harness(pg_db, own_kafka.url, tmp_path, config, "direct")
    try:
        worker = h.start("worker")
        half = len(events) // 2
        h.produce(events[:half])
        h.wait(lambda: h.written() == half, "the first half")
        own_kafka.stop()
        time.sleep(5)
        assert worker.poll() is None, "the worker stopped with the broker"
        own_kafka.start()
        h.produce(events[half:])
        h.wait(lambda: h.processed() == len(events), "every event after the restart",
               timeout=180)
        check_exact(h, events, expected, "broker_restart")
        assert worker.poll() is None
    finally:
        h.close()


def test_three_sigkills_in_a_100k_event_run_lose_and_double_nothing(
    pg_db: str, kafka_bootstrap: str, tmp_path: Path,
) -> None:
    config, events = _scenario(tmp_path, 61_000)
    events = events[:100_000]
    assert len(events) == 100_000
    expected = uninterrupted(config, events, tmp_path)
    h = Harness(pg_db, kafka_bootstrap, tmp_path, config, "direct")
    try:
        killed_at: list[int] = []
        produced = 0
        # the stream comes in parts, so that each kill finds events still to come
        for kill, share in enumerate((0.2, 0.45, 0.7)):
            upto = int((share + 0.2) * len(events))
            h.produce(events[produced:upto])
            produced = upto
            # small batches: the kill comes between a batch's write and the next checkpoint
            worker = h.start(f"worker{kill}", WATCHKEEPER_BATCH_MAX="50")
            if kill:  # running: it has taken the dead one's partition over
                h.wait(lambda k=kill: h.log_count(  # type: ignore[misc]
                    f"worker{k}", "resumed from its checkpoint") >= 1,
                    f"worker{kill} to resume", timeout=120)
            h.wait(lambda share=share: h.written() >= share * len(events),  # type: ignore[misc]
                   f"{share:.0%} of the events", timeout=240)
            os.kill(worker.pid, signal.SIGKILL)  # no shutdown: a batch may be half written
            worker.wait(timeout=30)
            killed_at.append(h.written())
        h.produce(events[produced:])
        h.start("last")
        h.wait(lambda: h.processed() == len(events), "every event after three kills",
               timeout=300)
        check_exact(h, events, expected, "worker_sigkill", kills=3,
                    killed_at_written=killed_at)
        assert all(h.log_count(name, "resumed from its checkpoint") >= 1
                   for name in ("worker1", "worker2", "last"))
        assert all(at < len(events) for at in killed_at)  # each kill was mid-run
    finally:
        h.close()
