"""The fuzzer's hostile messages against the live worker on the real broker: more than
10,000 of them, between the good events of a scenario, on the predictions topic of the
good events' partition. The worker never stops; every event is counted once; every reject
is dead-lettered with its original bytes and kept in the database; the good events are all
taken."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer

from config.file import load_config
from sim.scenarios import generate, write_scenario
from stream.core import Core
from stream.reference import load_profiles
from tests.figures import record
from tests.integration.test_kafka_recovery import Harness
from tests.unit.test_fuzz import hostile

BROKER_LIMIT = 900_000  # bytes: the broker's message.max.bytes (1 MB) refuses bigger ones


def hostile_messages(bases: list[dict[str, Any]]) -> list[bytes]:
    """The unit fuzzer's messages (derandomized: the same every run), collected."""
    found: list[bytes] = []

    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(messages=st.lists(hostile(bases), min_size=30, max_size=60))
    def collect(messages: list[bytes]) -> None:
        found.extend(messages)

    collect()
    return found


def test_hostile_messages_on_the_live_worker_are_counted_and_dead_lettered(
    pg_db: str, kafka_bootstrap: str, tmp_path: Path,
) -> None:
    scenario = generate("stationary", predictions=4_000, seed=3)
    files = write_scenario(scenario, tmp_path / "s.jsonl")
    good = scenario.events
    # the mutations start from real events under ids of their own, so that none of them
    # is taken for (or takes the place of) a good one
    bases = [{**e, "event_id": f"fz-{i}"} for i, e in enumerate(good[:500])]
    every = hostile_messages(bases)
    messages = [m for m in every if len(m) <= BROKER_LIMIT]
    assert len(messages) >= 10_000

    config = load_config(files.config)
    alone = Core(config, load_profiles(config))  # what the messages are, by themselves
    expected = alone.process(messages)
    total = expected.accepted + expected.duplicates + len(expected.rejects)
    assert expected.rejects and expected.accepted

    h = Harness(pg_db, kafka_bootstrap, tmp_path, files.config, "direct")
    try:
        worker = h.start("worker")
        half = len(good) // 2
        h.produce(good[:half])
        kafka = KafkaProducer(bootstrap_servers=kafka_bootstrap.split(","), linger_ms=20,
                              max_request_size=1 << 20)
        for raw in messages:  # the good events' partition (they are keyed by model)
            kafka.send(h.topics.predictions, key=b"car_loan", value=raw)
        kafka.flush()
        kafka.close()
        h.produce(good[half:])
        h.wait(lambda: h.processed() == len(good) + total, "every event, good and hostile",
               timeout=300)
        time.sleep(2)
        assert worker.poll() is None, "the worker stopped"
        assert h.processed() == len(good) + total
        (core,) = h.cores()
        # every good event taken, and the hostile ones as they are alone
        assert sum(core["accepted"].values()) == len(good) + expected.accepted
        assert core["rejected"] == dict(Counter(str(r.reason) for _, r in expected.rejects))
        assert h.scalar("SELECT count(*) FROM rejected_events") == len(expected.rejects)

        # every reject dead-lettered once, with its original bytes and its reason
        consumer = KafkaConsumer(h.topics.deadletter, bootstrap_servers=kafka_bootstrap,
                                 auto_offset_reset="earliest", consumer_timeout_ms=5_000,
                                 max_partition_fetch_bytes=8 << 20)
        letters: Counter[tuple[bytes, str]] = Counter()
        deadline = time.monotonic() + 120
        for letter in consumer:
            reason = dict(letter.headers)["reason"].decode()
            letters[(letter.value, reason)] += 1
            if sum(letters.values()) >= len(expected.rejects) or time.monotonic() > deadline:
                break
        consumer.close()
        assert letters == Counter((r.raw, str(r.reason)) for _, r in expected.rejects)
        record("hostile_live", hostile_messages=len(messages),
               over_broker_limit=len(every) - len(messages), good_events=len(good),
               events_counted=h.processed(), rejected=len(expected.rejects),
               dead_letters=sum(letters.values()),
               rejected_by_reason=core["rejected"])
    finally:
        h.close()

