"""The live worker on a real Kafka broker and a real PostgreSQL: a scenario produced to
Kafka becomes the expected alerts and page in PostgreSQL; bad messages land in the
dead-letter topic with their original bytes, reason and source coordinates."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import create_engine, text

from alerts.store.schema import database_url, upgrade
from config.settings import WorkerSettings
from services.worker.admin import ensure_topics
from sim.produce import produce
from sim.scenarios import generate, write_scenario
from stream.topics import Topics

BAD = [
    b"not json at all",
    b'{"type":"metric","ts":"2019-03-01T00:00:00Z","model_id":"nope","name":"x","value":1}',
    b'[{"type":"metric","ts":"2019-03-01T00:00:00Z","model_id":"car_loan","name":"x",'
    b'"value":1}, 7]',
]


def _poll(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(1.0)
    return False


@pytest.mark.parametrize("engine", ["faust", "direct"])
def test_worker_turns_a_kafka_stream_into_alerts_pages_and_dead_letters(
    pg_db: str, kafka_bootstrap: str, tmp_path: Path, engine: str,
) -> None:
    prefix = f"wktest-{uuid.uuid4().hex[:8]}"
    topics = Topics.for_prefix(prefix)
    scenario = generate("broken_pipeline", predictions=8_000, seed=7)
    files = write_scenario(scenario, tmp_path / "bp.jsonl")
    env = {**os.environ, "WATCHKEEPER_CONFIG": str(files.config),
           "WATCHKEEPER_KAFKA_BOOTSTRAP": kafka_bootstrap, "WATCHKEEPER_DATABASE_URL": pg_db,
           "WATCHKEEPER_APP_ID": prefix, "WATCHKEEPER_TOPIC_PREFIX": prefix,
           "WATCHKEEPER_PARTITIONS": "4", "WATCHKEEPER_WEB_PORT": "0",
           "WATCHKEEPER_ENGINE": engine}
    settings = WorkerSettings(config=files.config, kafka_bootstrap=kafka_bootstrap,
                              topic_prefix=prefix, partitions=4)
    ensure_topics(settings)
    upgrade(database_url(pg_db))  # as the one-shot migrate service does before workers
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "watchkeeper.cli", "worker"], env=env,
                              cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    db = create_engine(database_url(pg_db))
    try:
        kafka = KafkaProducer(bootstrap_servers=kafka_bootstrap.split(","), linger_ms=10)
        sent = produce(kafka, scenario.events, batch_size=50, topics=topics)
        assert sent == len(scenario.events)
        for raw in BAD:
            kafka.send(topics.predictions, key=b"car_loan", value=raw)
        kafka.flush()
        kafka.close()

        def done() -> bool:
            """The page is out and every bad message has been kept."""
            try:
                with db.connect() as conn:
                    pages = conn.execute(text("SELECT count(*) FROM pages")).scalar_one()
                    kept = conn.execute(text("SELECT count(*) FROM rejected_events")).scalar_one()
                return bool(pages) and kept >= len(BAD)
            except Exception:  # the worker has not created the schema yet
                return False

        assert _poll(done, 120), (tmp_path / "worker.log").read_text()[-3000:]
        with db.connect() as conn:
            pages = conn.execute(text(
                "SELECT model_id, kind, subject, escalation_level, delivered FROM pages")).all()
            kinds = {r[0] for r in conn.execute(text("SELECT DISTINCT kind FROM alert_history"))}
            rejected = conn.execute(text(
                "SELECT reason FROM rejected_events ORDER BY reason")).scalars().all()
        assert [tuple(r) for r in pages] == [("car_loan", "performance", "accuracy", 0, False)]
        assert {"performance", "data_quality", "drift"} <= kinds
        assert sorted(rejected) == ["invalid_json", "not_object", "unknown_model"]

        consumer = KafkaConsumer(topics.deadletter, bootstrap_servers=kafka_bootstrap.split(","),
                                 auto_offset_reset="earliest", consumer_timeout_ms=30_000,
                                 group_id=f"{prefix}-check")
        dead = []
        for msg in consumer:
            dead.append(msg)
            if len(dead) == len(BAD):
                break
        consumer.close()
        by_reason = {dict(m.headers)["reason"].decode(): m for m in dead}
        assert set(by_reason) == {"invalid_json", "unknown_model", "not_object"}
        assert by_reason["invalid_json"].value == BAD[0]
        assert by_reason["unknown_model"].value == BAD[1]
        assert by_reason["not_object"].value == b"7"
        for m in dead:
            headers = {k: v.decode() for k, v in m.headers}
            assert headers["source.topic"] == topics.predictions
            assert headers["source.partition"].isdigit()
            assert headers["source.offset"].isdigit()
            assert m.key == b"car_loan"
        assert dict(by_reason["not_object"].headers)["batch.index"] == b"1"

        signals = KafkaConsumer(topics.signals, bootstrap_servers=kafka_bootstrap.split(","),
                                auto_offset_reset="earliest", consumer_timeout_ms=10_000,
                                group_id=f"{prefix}-signals")
        first = next(iter(signals))
        signals.close()
        assert first.key == b"car_loan" and b'"kind"' in first.value
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        log.close()
        db.dispose()
