"""Live throughput and latency: the worker on a real Kafka broker.

Measured in one run, on the same topics, for single-event messages and for batch messages
(``--batch`` events each, a JSON array):

- ``raw_consume``: a bare aiokafka ``getmany`` loop reading the input topics, no work;
- ``raw_core``: the same loop running the monitoring core on every batch (the floor of
  any consumer doing this work, with no Faust);
- ``worker``: ``watchkeeper worker`` (``--engine``; the full pipeline: monitors, triage, store,
  checkpoints) as a subprocess, events/s from the start of its first batch to the end of
  its last (from its batch log lines);
- ``latency``: at a fixed offered load (``--rate`` events/s, single-event messages), the
  time from a message's send to the commit of the database transaction of the batch
  holding it (its alerts and pages are in it), p50/p99, from polling the worker's
  per-batch progress (``partition_progress``).

Needs a broker (``--bootstrap`` or KAFKA_BOOTSTRAP; ``scripts/kafka.sh start``) and a
database (``--db`` or DATABASE_URL; default a temporary SQLite file). Prints JSON.
Goals (issue 4): worker >= 50 % of raw_consume with batch messages, >= 25 % with single
ones; latency p99 <= 1 s at 5,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer
from sqlalchemy import create_engine, text

from alerts.store.schema import database_url, upgrade
from config.file import load_config
from config.settings import WorkerSettings
from services.worker.admin import ensure_topics
from sim.produce import produce
from sim.scenarios import generate, write_scenario
from stream.core import Core
from stream.reference import load_profiles
from stream.topics import Topics
from watchkeeper.runtime import tune_gc


async def _drain(bootstrap: str, topics: tuple[str, ...], expected: int,
                 core: Core | None) -> float:
    """Seconds a bare getmany loop takes to read ``expected`` events (and run ``core``)."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
    await consumer.start()
    events = 0
    start: float | None = None
    deadline = time.monotonic() + 300
    try:
        while events < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                if start is None and records:
                    start = time.perf_counter()
                values = [r.value for r in records]
                if core is not None:
                    result = core.process(values)
                    events += result.accepted + len(result.rejects) + result.duplicates
                else:
                    events += sum(v.count(b'"type"') for v in values)
    finally:
        await consumer.stop()
    return time.perf_counter() - (start or time.perf_counter())


def _processed(engine: Any, app_id: str) -> tuple[int, int]:
    """(events the worker has processed and written, highest predictions offset among
    them): its per-batch progress, written in each batch's transaction with its alerts."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT events, offsets FROM partition_progress "
                                     "WHERE app_id = :a"), {"a": app_id}).all()
    except Exception:
        return 0, -1
    total = sum(int(r[0]) for r in rows)
    top = -1
    for _, offsets in rows:
        data = offsets if isinstance(offsets, dict) else json.loads(offsets)
        for topic, off in data.items():
            if topic.endswith(".predictions"):
                top = max(top, int(off))
    return total, top


def _worker_rate(log: Path) -> tuple[float | None, int]:
    """Events/s from the worker's batch log lines: from the start of its first batch (its
    end less its duration) to the end of its last; and how many events they hold."""
    pattern = re.compile(r"^\[(\S+ \S+)\].*batch: \d+ messages, (\d+) events in ([0-9.]+) ms")
    stamps: list[tuple[float, int, float]] = []
    for line in log.read_text(errors="replace").splitlines():
        m = pattern.match(line)
        if m:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            stamps.append((at, int(m.group(2)), float(m.group(3)) / 1e3))
    events = sum(e for _, e, _ in stamps)
    if len(stamps) < 2:
        return None, events
    span = stamps[-1][0] - (stamps[0][0] - stamps[0][2])
    return (events / span if span > 0 else None), events


ENGINE = "faust"


def _start_worker(config: Path, bootstrap: str, db: str, app_id: str, log: Path) -> Any:
    env = {**os.environ, "WATCHKEEPER_CONFIG": str(config),
           "WATCHKEEPER_KAFKA_BOOTSTRAP": bootstrap, "WATCHKEEPER_DATABASE_URL": db,
           "WATCHKEEPER_APP_ID": app_id, "WATCHKEEPER_TOPIC_PREFIX": app_id,
           "WATCHKEEPER_PARTITIONS": "1", "WATCHKEEPER_WEB_PORT": "0",
           "WATCHKEEPER_LOG_LEVEL": "INFO", "WATCHKEEPER_ENGINE": ENGINE}
    return subprocess.Popen([sys.executable, "-m", "watchkeeper.cli", "worker"], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _stop(proc: Any) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def throughput(args: argparse.Namespace, files: Any, events: list[dict[str, Any]],
               batch: int, tmp: Path) -> dict[str, Any]:
    app_id = f"wkbench-{uuid.uuid4().hex[:8]}"
    topics = Topics.for_prefix(app_id)
    settings = WorkerSettings(config=files.config, kafka_bootstrap=args.bootstrap,
                              topic_prefix=app_id, partitions=1)
    ensure_topics(settings)
    kafka = KafkaProducer(bootstrap_servers=args.bootstrap.split(","), linger_ms=20,
                          batch_size=1 << 20)
    produce(kafka, events, batch_size=batch, topics=topics)
    kafka.close()
    n = len(events)
    config = load_config(files.config)
    raw = asyncio.run(_drain(args.bootstrap, topics.inputs, n, None))
    core = Core(config, load_profiles(config))
    raw_core = asyncio.run(_drain(args.bootstrap, topics.inputs, n, core))

    engine = create_engine(database_url(args.db))
    log = tmp / f"{app_id}.log"
    proc = _start_worker(files.config, args.bootstrap, args.db, app_id, log)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and _processed(engine, app_id)[0] < n:
            time.sleep(0.1)
    finally:
        _stop(proc)
        engine.dispose()
    rate, logged = _worker_rate(log)
    worker = round(rate) if rate and logged >= n else None
    return {
        "events": n,
        "events_per_message": batch,
        "raw_consume_events_per_s": round(n / raw) if raw > 0 else None,
        "raw_core_events_per_s": round(n / raw_core) if raw_core > 0 else None,
        "worker_events_per_s": worker,
        "worker_to_raw_consume": round(worker * raw / n, 4) if worker and raw else None,
        "worker_to_raw_core": round(worker * raw_core / n, 4) if worker and raw_core else None,
    }


def latency(args: argparse.Namespace, files: Any, events: list[dict[str, Any]],
            tmp: Path) -> dict[str, Any]:
    app_id = f"wkbench-{uuid.uuid4().hex[:8]}"
    topics = Topics.for_prefix(app_id)
    ensure_topics(WorkerSettings(config=files.config, kafka_bootstrap=args.bootstrap,
                                 topic_prefix=app_id, partitions=1))
    engine = create_engine(database_url(args.db))
    proc = _start_worker(files.config, args.bootstrap, args.db, app_id, tmp / f"{app_id}.log")
    preds = [e for e in events if e["type"] == "prediction"]
    sent_at: list[float] = []
    seen_at: dict[int, float] = {}
    stop = threading.Event()

    def watch() -> None:
        last = -1
        while not stop.is_set():
            _, top = _processed(engine, app_id)
            now = time.perf_counter()
            for off in range(last + 1, top + 1):
                seen_at[off] = now
            last = max(last, top)
            time.sleep(0.01)

    try:
        # warm up: the worker joins the group and handles a first message
        kafka = KafkaProducer(bootstrap_servers=args.bootstrap.split(","), linger_ms=0)
        kafka.send(topics.predictions, key=b"car_loan", value=json.dumps(preds[0]).encode())
        kafka.flush()
        deadline = time.monotonic() + 120
        while _processed(engine, app_id)[1] < 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        total = min(len(preds) - 1, int(args.rate * args.seconds))
        start = time.perf_counter()
        for i, event in enumerate(preds[1:total + 1]):
            target = start + i / args.rate
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            kafka.send(topics.predictions, key=b"car_loan", value=json.dumps(event).encode())
            sent_at.append(time.perf_counter())
        kafka.flush()
        deadline = time.monotonic() + 60
        while len(seen_at) < total + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        watcher.join(timeout=5)
        kafka.close()
    finally:
        stop.set()
        _stop(proc)
        engine.dispose()
    lat = sorted(seen_at[i + 1] - sent_at[i] for i in range(len(sent_at)) if i + 1 in seen_at)
    achieved = len(sent_at) / (sent_at[-1] - sent_at[0]) if len(sent_at) > 1 else None

    def pct(q: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 4) if lat else None

    return {
        "offered_events_per_s": args.rate,
        "achieved_send_rate": round(achieved) if achieved else None,
        "events": len(sent_at),
        "measured": len(lat),
        "p50_seconds": pct(0.5),
        "p99_seconds": pct(0.99),
        "max_seconds": round(lat[-1], 4) if lat else None,
        "mean_seconds": round(statistics.fmean(lat), 4) if lat else None,
        "note": "send -> commit of the transaction holding the batch's alerts, "
                "polled every 10 ms",
    }


def main() -> None:
    tune_gc()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:59092"))
    ap.add_argument("--db", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--predictions", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rate", type=float, default=5_000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--engine", choices=["faust", "direct"], default="direct",
                    help="the worker's engine (WATCHKEEPER_ENGINE)")
    args = ap.parse_args()
    global ENGINE
    ENGINE = args.engine
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if not args.db:
            args.db = f"sqlite:///{tmp / 'bench.db'}"
        upgrade(database_url(args.db))
        scenario = generate("stationary", predictions=args.predictions, seed=11)
        files = write_scenario(scenario, tmp / "bench.jsonl")
        result = {
            "benchmark": "live",
            "engine": args.engine,
            "features": 20,
            "database": args.db.split("@")[-1],
            # six copies (repeats count as duplicates: decoded, checked, counted), so that
            # the worker's run spans many polls of its progress
            "batched": throughput(args, files, scenario.events * 6, args.batch, tmp),
            "single": throughput(args, files, scenario.events, 1, tmp),
            "latency": latency(args, files, scenario.events, tmp),
            "goals": {"batched_worker_to_raw_consume": 0.5, "single_worker_to_raw_consume": 0.25,
                      "p99_seconds_at_5000_per_s": 1.0},
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
