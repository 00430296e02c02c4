"""The live adapter without Kafka: partitions, dead letters, checkpoints, redelivery and
revocation, on an SQLite store."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from alerts.store.sql import SqlStore
from stream.live import Incoming, LiveProcessor
from stream.scenarios import generate, write_scenario
from watchkeeper.config import load_config

TOPIC = "wk.predictions"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[LiveProcessor, SqlStore, list[bytes]]:
    scenario = generate("broken_pipeline", predictions=3_000, seed=7)
    files = write_scenario(scenario, tmp_path / "bp.jsonl")
    store = SqlStore(str(tmp_path / "wk.db"))
    processor = LiveProcessor(load_config(files.config), store, app_id="wk")
    return processor, store, [msgspec.json.encode(e) for e in scenario.events]


def incoming(values: list[bytes], start: int = 0, partition: int = 0) -> list[Incoming]:
    return [Incoming(TOPIC, partition, start + i, b"car_loan", v) for i, v in enumerate(values)]


def test_bad_messages_become_dead_letters_with_their_coordinates(
    setup: tuple[LiveProcessor, SqlStore, list[bytes]],
) -> None:
    processor, _, lines = setup
    batch = incoming([lines[0], b"{nope", lines[1], b"[7]"], start=40, partition=2)
    out = processor.process(batch)
    assert out.accepted == 2 and out.events == 4
    assert [(d.value, dict(d.headers)["reason"], dict(d.headers)["source.offset"])
            for d in out.deadletters] == [(b"{nope", b"invalid_json", b"41"),
                                          (b"7", b"not_object", b"43")]
    assert all(dict(d.headers)["source.topic"] == TOPIC.encode() for d in out.deadletters)
    assert all(dict(d.headers)["source.partition"] == b"2" for d in out.deadletters)
    assert dict(out.deadletters[1].headers)["batch.index"] == b"0"
    assert set(processor.pipelines) == {2}


def test_every_batch_is_checkpointed_with_its_offsets(
    setup: tuple[LiveProcessor, SqlStore, list[bytes]],
) -> None:
    processor, store, lines = setup
    processor.process(incoming(lines[:100]))
    processor.process(incoming(lines[100:250], start=100))
    saved = store.load_checkpoint("wk", 0)
    assert saved is not None
    assert saved.offsets == {TOPIC: 249} and saved.events == 250
    assert store.load_checkpoint("wk", 1) is None


def test_a_restarted_processor_resumes_and_skips_what_its_checkpoint_holds(
    setup: tuple[LiveProcessor, SqlStore, list[bytes]], tmp_path: Path,
) -> None:
    processor, store, lines = setup
    n = len(lines)
    for start in range(0, n // 2, 500):
        processor.process(incoming(lines[start:min(start + 500, n // 2)], start=start))
    reference = LiveProcessor(processor.config, SqlStore(str(tmp_path / "ref.db")), app_id="r")
    for start in range(0, n, 500):
        reference.process(incoming(lines[start:start + 500], start=start))

    restarted = LiveProcessor(processor.config, store, app_id="wk")
    # Kafka redelivers from an older committed offset: the overlap is skipped
    for start in range(n // 2 - 300, n, 500):
        restarted.process(incoming(lines[start:start + 500], start=start))
    assert restarted.skipped == 300
    core, ref = restarted.pipelines[0].core, reference.pipelines[0].core
    assert core.processed == ref.processed == n
    assert core.accepted == ref.accepted
    assert core.counters()["join"] == ref.counters()["join"]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM page_log").scalar() == 1


def test_revoked_partitions_are_forgotten_and_resume_from_their_checkpoint(
    setup: tuple[LiveProcessor, SqlStore, list[bytes]],
) -> None:
    processor, _, lines = setup
    processor.process(incoming(lines[:200]))
    processor.revoke({0})
    assert processor.pipelines == {}
    out = processor.process(incoming(lines[:300]))
    assert processor.skipped == 200 and out.events == 100
    assert processor.pipelines[0].core.processed == 300
