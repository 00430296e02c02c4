"""Recovery and scale on real Kafka and PostgreSQL: a worker killed with SIGKILL and
restarted resumes its statistics from the checkpoint (no event lost or counted twice, no
page twice); two workers split the partitions, and when one stops the other takes its
models over with their state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2
from sqlalchemy import create_engine, text

from alerts.store.schema import database_url, upgrade
from config.file import load_config
from config.settings import WorkerSettings
from services.pipeline import Pipeline, checkpoint_state
from services.worker.admin import ensure_topics
from sim.produce import produce
from sim.scenarios import generate, write_scenario
from stream.topics import Topics

ENGINES = ["faust", "direct"]


class Harness:
    def __init__(self, pg_db: str, bootstrap: str, tmp: Path, config: Path,
                 engine: str) -> None:
        self.prefix = f"wkrec-{uuid.uuid4().hex[:8]}"
        self.topics = Topics.for_prefix(self.prefix)
        self.tmp = tmp
        self.bootstrap = bootstrap
        upgrade(database_url(pg_db))  # as the one-shot migrate service does before workers
        self.engine = create_engine(database_url(pg_db))
        self.env = {**os.environ, "WATCHKEEPER_CONFIG": str(config),
                    "WATCHKEEPER_KAFKA_BOOTSTRAP": bootstrap,
                    "WATCHKEEPER_DATABASE_URL": pg_db, "WATCHKEEPER_APP_ID": self.prefix,
                    "WATCHKEEPER_TOPIC_PREFIX": self.prefix, "WATCHKEEPER_PARTITIONS": "4",
                    "WATCHKEEPER_WEB_PORT": "0", "WATCHKEEPER_LOG_LEVEL": "INFO",
                    "WATCHKEEPER_SESSION_TIMEOUT": "10", "WATCHKEEPER_ENGINE": engine,
                    "WATCHKEEPER_CHECKPOINT_INTERVAL": "1"}
        ensure_topics(WorkerSettings(config=config, kafka_bootstrap=bootstrap,
                                     topic_prefix=self.prefix, partitions=4))
        self.workers: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "watchkeeper.cli", "worker"],
                                env={**self.env, **env}, cwd=self.tmp, stdout=log,
                                stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def produce(self, events: list[dict[str, Any]]) -> None:
        kafka = KafkaProducer(bootstrap_servers=self.bootstrap.split(","), linger_ms=10)
        assert produce(kafka, events, batch_size=20, topics=self.topics) == len(events)
        kafka.close()

    def scalar(self, sql: str) -> int:
        try:
            with self.engine.connect() as conn:
                value = conn.execute(text(sql)).scalar_one()
                return int(value or 0)
        except Exception:  # schema not created yet
            return 0

    def processed(self) -> int:
        """Events in the checkpoints (each partition counts its own from 0)."""
        return self.scalar("SELECT sum(events) FROM partition_state")

    def written(self) -> int:
        """Events processed with their alerts written, checkpointed or not."""
        return self.scalar("SELECT sum(events) FROM partition_progress")

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in self.tmp.glob("*.log"))
        pytest.fail(f"timed out waiting for {what}\n{logs}")

    def log_count(self, name: str, needle: str) -> int:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace").count(needle) if path.exists() else 0

    def cores(self) -> list[dict[str, Any]]:
        """The monitors' state of every checkpointed partition (plain data)."""
        with self.engine.connect() as conn:
            blobs = conn.execute(text("SELECT state FROM partition_state")).scalars().all()
        return [checkpoint_state(bytes(b)) for b in blobs]

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.engine.dispose()


@pytest.fixture(params=ENGINES)
def make_harness(pg_db: str, kafka_bootstrap: str, tmp_path: Path,
                 request: pytest.FixtureRequest) -> Iterator[Callable[[Path], Harness]]:
    made: list[Harness] = []

    def make(config: Path) -> Harness:
        h = Harness(pg_db, kafka_bootstrap, tmp_path, config, request.param)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def _harmful_drift(make_harness: Callable[[Path], Harness],
                   tmp_path: Path) -> tuple[Harness, list[dict[str, Any]]]:
    """A harness for the harmful-drift scenario (one page), and its events."""
    scenario = generate("harmful_drift", predictions=8_000, seed=7)
    files = write_scenario(scenario, tmp_path / "hd.jsonl")
    return make_harness(files.config), scenario.events


def test_a_killed_worker_resumes_from_its_checkpoint(
    make_harness: Callable[[Path], Harness], tmp_path: Path,
) -> None:
    h, events = _harmful_drift(make_harness, tmp_path)
    half = len(events) // 2
    worker = h.start("first")
    h.produce(events[:half])
    h.wait(lambda: h.processed() == half, "the first half")
    os.kill(worker.pid, signal.SIGKILL)  # no shutdown: offsets may lag the checkpoint
    worker.wait(timeout=30)
    h.produce(events[half:])
    h.start("second")
    h.wait(lambda: h.processed() == len(events), "every event after the restart")
    time.sleep(3)  # anything counted twice would show now
    assert h.processed() == len(events)
    (core,) = h.cores()
    assert sum(core["accepted"].values()) == len(events) and core["duplicates"] == 0
    assert core["accepted"]["prediction"] == 8_000
    assert h.scalar("SELECT count(*) FROM pages") == 1
    log = (tmp_path / "second.log").read_text(errors="replace")
    assert "resumed from its checkpoint" in log


# the faust engine checkpoints every batch (Faust commits offsets itself)
@pytest.mark.parametrize("make_harness", ["direct"], indirect=True)
def test_a_worker_killed_between_checkpoints_loses_and_doubles_nothing(
    make_harness: Callable[[Path], Harness], tmp_path: Path,
) -> None:
    h, events = _harmful_drift(make_harness, tmp_path)
    cut = 3 * len(events) // 4  # past the page
    # an hour between checkpoints: only the first batch's state is saved before the kill
    worker = h.start("first", WATCHKEEPER_CHECKPOINT_INTERVAL="3600")
    h.produce(events[:500])
    h.wait(lambda: h.processed() == 500, "the first batch's checkpoint")
    h.produce(events[500:cut])
    h.wait(lambda: h.written() == cut, "the first part to be processed and written")
    h.wait(lambda: h.scalar("SELECT count(*) FROM pages") == 1, "the page")
    assert h.processed() == 500
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    h.produce(events[cut:])
    h.start("second")
    h.wait(lambda: h.processed() == len(events), "every event after the restart")
    time.sleep(3)
    assert h.processed() == h.written() == len(events)
    (core,) = h.cores()
    assert sum(core["accepted"].values()) == len(events) and core["duplicates"] == 0
    assert h.scalar("SELECT count(*) FROM pages") == 1
    # what the second worker processed again counted once: each alert's occurrences are
    # its distinct (fingerprint, index) rows
    assert h.scalar("SELECT sum(occurrences) FROM alerts") == h.scalar(
        "SELECT count(*) FROM occurrences") > 0


def _partition(key: str, partitions: int = 4) -> int:
    """Where kafka-python's default partitioner puts a key (murmur2, as the Java client)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def _four_models(tmp: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Four models, one per partition, so that both workers have models to look after."""
    ids: dict[int, str] = {}
    for i in range(100):
        ids.setdefault(_partition(f"loan{i}"), f"loan{i}")
    assert sorted(ids) == [0, 1, 2, 3]
    models: dict[str, Any] = {}
    streams: list[list[dict[str, Any]]] = []
    for model_id in ids.values():
        scenario = generate("broken_pipeline", predictions=4_000, seed=7, model_id=model_id)
        files = write_scenario(scenario, tmp / f"{model_id}.jsonl")
        config = yaml.safe_load(files.config.read_text())
        models.update(config["models"])
        streams.append(scenario.events)
    # interleaved, as live traffic is: every half of the stream has every model in it
    events = [e for group in zip(*streams, strict=True) for e in group]
    config_path = tmp / "four.yaml"
    config_path.write_text(yaml.safe_dump({"models": models}))
    return config_path, events


def test_two_workers_split_the_partitions_and_one_takes_over(
    make_harness: Callable[[Path], Harness], tmp_path: Path,
) -> None:
    config, events = _four_models(tmp_path)
    h = make_harness(config)
    a = h.start("a")
    assigned = "Setting newly assigned partitions"  # aiokafka's, under either engine
    h.wait(lambda: h.log_count("a", assigned) >= 1, "worker a to join")
    h.start("b")
    # b joining makes the group rebalance: a gives partitions up, both get their share
    h.wait(lambda: h.log_count("b", assigned) >= 1 and h.log_count("a", assigned) >= 2,
           "the group to rebalance over both workers")
    half = len(events) // 2
    h.produce(events[:half])
    h.wait(lambda: h.processed() == half, "the first half")
    logs = {n: (tmp_path / f"{n}.log").read_text(errors="replace") for n in ("a", "b")}
    assert all("starting fresh" in text_ for text_ in logs.values()), "one worker got nothing"
    a.terminate()
    a.wait(timeout=60)
    h.produce(events[half:])
    h.wait(lambda: h.processed() == len(events), "every event after worker a stopped")
    time.sleep(3)
    assert h.processed() == len(events)
    accepted = sum(sum(core["accepted"].values()) for core in h.cores())
    assert accepted == len(events)
    assert h.scalar("SELECT count(*) FROM pages") == 4
    assert h.scalar("SELECT count(DISTINCT model_id) FROM pages") == 4
    assert "resumed from its checkpoint" in (tmp_path / "b.log").read_text(errors="replace")


def test_a_worker_started_on_a_backlog_pages_as_the_replay_does(
    make_harness: Callable[[Path], Harness], tmp_path: Path,
) -> None:
    """Every event is on the topics before the worker starts (a new deployment, a restart
    after a long stop): its fetches bring thousands of predictions before any outcome, and
    the pages must still be those of the replay (it paged 33 times where the replay paged
    once, before triage counted evaluations and the direct engine aligned the topics)."""
    scenario = generate("broken_pipeline", predictions=12_000, seed=7)
    files = write_scenario(scenario, tmp_path / "bp.jsonl")
    replayed = Pipeline(load_config(files.config), None, source="replay")
    for k in range(0, len(scenario.events), 4096):
        replayed.feed([json.dumps(e).encode() for e in scenario.events[k:k + 4096]])
    want = sorted((p.kind, p.subject) for p in replayed.totals.pages)
    assert len(want) == 1  # one incident, one page (its corrupted inputs lead it)
    h = make_harness(files.config)
    h.produce(scenario.events)
    h.start("backlog", WATCHKEEPER_BATCH_MAX="50000")
    h.wait(lambda: h.written() == len(scenario.events), "the whole backlog")
    with h.engine.connect() as conn:
        got = sorted(tuple(r) for r in conn.execute(text(
            "SELECT kind, subject FROM pages WHERE escalation_level = 0")).all())
    assert h.scalar("SELECT count(*) FROM incidents WHERE paged_at IS NOT NULL") == 1
    if h.env["WATCHKEEPER_ENGINE"] == "direct":
        # the topics aligned by record time: the events in the order they were produced,
        # so the same finding leads the page
        assert got == want
    else:  # Faust hands over messages as fetched: one page still, led by what came first
        assert len(got) == 1
