"""The worker's processor without Kafka: partitions, dead letters, checkpoints, redelivery and
revocation, on an SQLite store."""

from __future__ import annotations

import logging
import pickle
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
import yaml

from alerts.store import PipelineStore
from alerts.store.sql import SqlStore
from alerts.triage import Changes
from config.errors import RetryableError
from config.file import load_config
from services.pipeline import StaleCheckpoint
from services.worker.processor import Incoming, MessageProcessor
from sim.scenarios import generate, write_scenario

TOPIC = "wk.predictions"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[MessageProcessor, SqlStore, list[bytes]]:
    scenario = generate("broken_pipeline", predictions=3_000, seed=7)
    files = write_scenario(scenario, tmp_path / "bp.jsonl")
    store = SqlStore(str(tmp_path / "wk.db"))
    processor = MessageProcessor(load_config(files.config), store, app_id="wk")
    return processor, store, [msgspec.json.encode(e) for e in scenario.events]


def incoming(values: list[bytes], start: int = 0, partition: int = 0) -> list[Incoming]:
    return [Incoming(TOPIC, partition, start + i, b"car_loan", v) for i, v in enumerate(values)]


def test_bad_messages_become_dead_letters_with_their_coordinates(
    setup: tuple[MessageProcessor, SqlStore, list[bytes]],
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
    setup: tuple[MessageProcessor, SqlStore, list[bytes]],
) -> None:
    processor, store, lines = setup
    processor.process(incoming(lines[:100]))
    processor.process(incoming(lines[100:250], start=100))
    saved = store.load_checkpoint("wk", 0)
    assert saved is not None
    assert saved.offsets == {TOPIC: 249} and saved.events == 250
    assert store.load_checkpoint("wk", 1) is None


def test_a_restarted_processor_resumes_and_skips_what_its_checkpoint_holds(
    setup: tuple[MessageProcessor, SqlStore, list[bytes]], tmp_path: Path,
) -> None:
    processor, store, lines = setup
    n = len(lines)
    for start in range(0, n // 2, 500):
        processor.process(incoming(lines[start:min(start + 500, n // 2)], start=start))
    reference = MessageProcessor(processor.config, SqlStore(str(tmp_path / "ref.db")), app_id="r")
    for start in range(0, n, 500):
        reference.process(incoming(lines[start:start + 500], start=start))

    restarted = MessageProcessor(processor.config, store, app_id="wk")
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
    # a long-running worker keeps counts, not every page and id it ever made
    totals = restarted.pipelines[0].totals
    assert sum(totals.signals.values()) > 0
    assert (totals.pages, totals.alerts, totals.incidents) == ([], set(), set())


def test_revoked_partitions_are_forgotten_and_resume_from_their_checkpoint(
    setup: tuple[MessageProcessor, SqlStore, list[bytes]],
) -> None:
    processor, _, lines = setup
    processor.process(incoming(lines[:200]))
    processor.revoke({0})
    assert processor.pipelines == {}
    out = processor.process(incoming(lines[:300]))
    assert processor.skipped == 200 and out.events == 100
    assert processor.pipelines[0].core.processed == 300


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def progress(store: SqlStore) -> list[tuple[int, str, int]]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT partition, offsets, events FROM partition_progress").all()
    return [(p, o, e) for p, o, e in rows]


def test_checkpoints_follow_their_interval_and_only_they_may_be_committed(
    setup: tuple[MessageProcessor, SqlStore, list[bytes]],
) -> None:
    processor, store, lines = setup
    clock = FakeClock()
    processor = MessageProcessor(processor.config, store, app_id="wk", checkpoint_interval=10,
                              clock=clock)
    processor.process(incoming(lines[:100]))  # a partition's first batch: checkpointed
    clock.now = 4
    processor.process(incoming(lines[100:250], start=100))
    saved = store.load_checkpoint("wk", 0)
    assert saved is not None and (saved.offsets, saved.events) == ({TOPIC: 99}, 100)
    assert processor.committable() == {(TOPIC, 0): 100}
    # the batch's alerts are written, and how far it got
    assert progress(store) == [(0, f'{{"{TOPIC}": 249}}', 250)]
    clock.now = 9.9
    processor.flush()  # not due yet
    assert store.load_checkpoint("wk", 0) == saved
    clock.now = 10
    processor.flush()
    saved = store.load_checkpoint("wk", 0)
    assert saved is not None and (saved.offsets, saved.events) == ({TOPIC: 249}, 250)
    assert processor.committable() == {(TOPIC, 0): 250}
    clock.now = 11
    processor.process(incoming(lines[250:300], start=250))
    processor.flush(force=True)  # a hand-over does not wait
    assert processor.committable() == {(TOPIC, 0): 300}


def alert_rows(store: SqlStore) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            "SELECT alert_id, status, occurrences, paged FROM alert_history ORDER BY alert_id")]


def test_a_worker_killed_between_checkpoints_is_resumed_exactly(
    setup: tuple[MessageProcessor, SqlStore, list[bytes]], tmp_path: Path,
) -> None:
    processor, store, lines = setup
    n = len(lines)
    ref_store = SqlStore(str(tmp_path / "ref.db"))
    reference = MessageProcessor(processor.config, ref_store, app_id="r")
    for start in range(0, n, 250):
        reference.process(incoming(lines[start:start + 250], start=start))

    clock = FakeClock()
    first = MessageProcessor(processor.config, store, app_id="wk", checkpoint_interval=60,
                          clock=clock)
    for start in range(0, 2 * n // 3, 250):  # past the page: alerts and the page are written
        clock.now += 1
        first.process(incoming(lines[start:start + 250], start=start))
    committed = first.committable()
    assert committed == {(TOPIC, 0): 250}  # one checkpoint: the first batch
    assert alert_rows(store) and any(paged for *_, paged in alert_rows(store))
    del first  # killed: what followed its checkpoint is processed again

    second = MessageProcessor(processor.config, store, app_id="wk", checkpoint_interval=60)
    for start in range(committed[(TOPIC, 0)], n, 250):
        second.process(incoming(lines[start:start + 250], start=start))
    second.flush(force=True)
    core, ref = second.pipelines[0].core, reference.pipelines[0].core
    assert core.processed == ref.processed == n
    assert core.accepted == ref.accepted and core.counters()["join"] == ref.counters()["join"]
    # triage skipped the signals it had taken: no alert counted twice, one page
    assert alert_rows(store) == alert_rows(ref_store)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM page_log").scalar() == 1


def by_topic(lines: list[bytes]) -> dict[str, list[bytes]]:
    """The stream split as the producer does: a topic per event type, each in order."""
    topics: dict[str, list[bytes]] = {}
    for line in lines:
        kind = msgspec.json.decode(line)["type"]
        topics.setdefault(f"wk.{kind}s", []).append(line)
    return topics


def fetches(topics: dict[str, list[bytes]], start: dict[str, int], size: int,
            order: list[str]) -> list[list[Incoming]]:
    """Batches as a consumer's fetches make them: up to ``size`` of each topic in turn."""
    pos = {t: start.get(t, 0) for t in topics}
    out: list[list[Incoming]] = []
    while any(pos[t] < len(topics[t]) for t in topics):
        batch: list[Incoming] = []
        for t in order:
            batch += [Incoming(t, 0, o, b"car_loan", topics[t][o])
                      for o in range(pos[t], min(pos[t] + size, len(topics[t])))]
            pos[t] = min(pos[t] + size, len(topics[t]))
        out.append(batch)
    return out


def occurrences(store: SqlStore) -> set[tuple[str, int, float]]:
    with store.engine.connect() as conn:
        return {(str(f), int(s), float(v)) for f, s, v in conn.exec_driver_sql(
            "SELECT fingerprint, seq, value FROM occurrences")}


def test_a_successor_fetching_differently_rebuilds_quietly_and_takes_nothing_twice(
    setup: tuple[MessageProcessor, SqlStore, list[bytes]],
) -> None:
    processor, store, lines = setup
    topics = by_topic(lines)
    bad = len(topics["wk.predictions"]) // 250
    for k in range(bad):  # a bad message now and then, as dead letters to be
        topics["wk.predictions"].insert(250 * k + 7, b'{"type": "prediction"')
    order = ["wk.predictions", "wk.outcomes", "wk.metrics"]
    first = MessageProcessor(processor.config, store, app_id="wk", checkpoint_interval=1e9)
    batches = fetches(topics, {}, 300, order)
    for batch in batches[:len(batches) * 4 // 5]:
        first.process(batch)
    written = occurrences(store)
    last_seq = first.pipelines[0].core.seq  # every index the first worker gave out is below
    assert written and store.load_progress("wk", 0) is not None
    committed = {topic: offset for (topic, _), offset in first.committable().items()}
    del first  # killed

    second = MessageProcessor(processor.config, store, app_id="wk")
    # Kafka redelivers from the committed offsets; the fetches cut and interleave otherwise
    for batch in fetches(topics, committed, 1000, order[::-1]):
        second.process(batch)
    assert second.quiet == {}  # rebuilt
    core = second.pipelines[0].core
    assert core.processed == len(lines) + bad and sum(core.accepted.values()) == len(lines)
    with store.engine.connect() as conn:  # each bad message kept once
        assert conn.exec_driver_sql("SELECT count(*) FROM rejected_events").scalar() == bad
    after = occurrences(store)
    assert {o for o in after if o[1] < last_seq} == written  # nothing taken twice
    assert all(o[1] >= last_seq for o in after - written)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM page_log").scalar() == 1


class _Planted:
    """What a hostile row could hold: a pickle that, if loaded, runs code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.path),))


@pytest.mark.parametrize("kind", ["earlier pickle", "planted code", "garbage"])
def test_a_checkpoint_it_cannot_read_starts_the_monitors_afresh_and_runs_nothing(
    setup: tuple[MessageProcessor, SqlStore, list[bytes]], caplog: pytest.LogCaptureFixture,
    tmp_path: Path, kind: str,
) -> None:
    processor, store, lines = setup
    processor.process(incoming(lines[:100]))
    saved = store.load_checkpoint("wk", 0)
    assert saved is not None
    planted = tmp_path / "planted"
    blob = {"earlier pickle": zlib.compress(pickle.dumps({"seq": 100, "models": {}}), 1),
            "planted code": zlib.compress(pickle.dumps(_Planted(planted)), 1),
            "garbage": b"\x00" * 64}[kind]
    store.apply(Changes(), dry_run=True, checkpoint=replace(saved, state=blob))
    again = MessageProcessor(processor.config, store, app_id="wk")
    with caplog.at_level(logging.WARNING, logger="watchkeeper.worker"):
        out = again.process(incoming(lines[:150]))
    assert "a checkpoint this version cannot read" in caplog.text
    assert not planted.exists()  # the row was only ever decoded as data
    assert out.events == 50  # what the checkpoint held is skipped, the rest processed
    core = again.pipelines[0].core
    assert core.processed == 50 and core.seq >= 100
    with pytest.raises(StaleCheckpoint):
        again.pipelines[0].restore(blob)


class Outage:
    """A store whose database is away for the batches of the partitions in ``down``: its
    writes raise :class:`RetryableError` as :class:`SqlStore` does when the server is
    refused, and take nothing."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.down: set[int] = set()
        self.refused = 0

    def apply(self, changes: Changes, **kwargs: Any) -> None:
        source = str(kwargs.get("source", ""))
        if source and int(source.rsplit(":", 1)[1]) in self.down:
            self.refused += 1
            raise RetryableError("the database is unavailable: connection refused")
        self.store.apply(changes, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_database_outage_fails_only_the_partitions_it_hits_and_the_retry_counts_once(
    tmp_path: Path,
) -> None:
    # two models, one a partition (a model lives in one partition)
    models: dict[str, Any] = {}
    streams: list[list[bytes]] = []
    for model_id in ("loan0", "loan1"):
        scenario = generate("broken_pipeline", predictions=3_000, seed=7, model_id=model_id)
        files = write_scenario(scenario, tmp_path / f"{model_id}.jsonl")
        models.update(yaml.safe_load(files.config.read_text())["models"])
        streams.append([msgspec.json.encode(e) for e in scenario.events])
    (tmp_path / "two.yaml").write_text(yaml.safe_dump({"models": models}))
    config = load_config(tmp_path / "two.yaml")
    n = len(streams[0])

    def fetch(seek: dict[int, int]) -> list[Incoming]:
        return [m for p in (0, 1) if seek[p] < n
                for m in incoming(streams[p][seek[p]:seek[p] + 250], seek[p], partition=p)]

    ref_store = SqlStore(str(tmp_path / "ref.db"))
    reference = MessageProcessor(config, ref_store, app_id="wk")
    for start in range(0, n, 250):
        reference.process(fetch({0: start, 1: start}))

    store = SqlStore(str(tmp_path / "wk.db"))
    flaky = Outage(store)
    clock = FakeClock()
    worker = MessageProcessor(config, cast(PipelineStore, flaky), app_id="wk",
                              checkpoint_interval=5, clock=clock)
    failures = 0
    seek: dict[int, int] = {0: 0, 1: 0}  # where the engine reads each partition next
    while min(seek.values()) < n:
        clock.now += 1
        # the database is away for partition 0's batches from a third of the way to half
        flaky.down = {0} if n // 3 <= seek[0] < n // 2 and failures < 4 else set()
        batch = fetch(seek)
        out = worker.process(batch)
        for p in (0, 1):
            seek[p] = min(seek[p] + 250, n)
        if out.failed:
            failures += 1
            assert set(out.failed) == {0} and 0 not in worker.pipelines
            assert "unavailable" in out.failed[0]
            # the engine seeks the partition back to its checkpoint (paused until then)
            saved = store.load_checkpoint("wk", 0)
            seek[0] = saved.offsets[TOPIC] + 1 if saved is not None else 0
    assert failures == 4 and flaky.refused == 4
    worker.flush(force=True)
    for p in (0, 1):
        core, ref = worker.pipelines[p].core, reference.pipelines[p].core
        assert core.processed == ref.processed == n
        assert core.accepted == ref.accepted
        assert core.counters()["join"] == ref.counters()["join"]
    # alerts, occurrences and pages as if the database had never been away
    assert alert_rows(store) == alert_rows(ref_store)
    assert occurrences(store) == occurrences(ref_store)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM page_log").scalar() == 2


def test_a_failure_that_is_not_the_database_stops_the_worker_and_forgets_the_partition(
    setup: tuple[MessageProcessor, SqlStore, list[bytes]],
) -> None:
    processor, store, lines = setup

    class Broken(Outage):
        def apply(self, changes: Changes, **kwargs: Any) -> None:
            raise RuntimeError("a bug")

    worker = MessageProcessor(processor.config, cast(PipelineStore, Broken(store)),
                              app_id="wk")
    with pytest.raises(RuntimeError, match="a bug"):
        worker.process(incoming(lines[:10]))
    assert worker.pipelines == {} and worker.offsets == {}


def metric(processor: MessageProcessor, name: str, **labels: str) -> float:
    value = processor.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_the_processor_counts_what_it_consumed_rejected_raised_and_checkpointed(
    setup: tuple[MessageProcessor, SqlStore, list[bytes]],
) -> None:
    processor, _, lines = setup
    clock = FakeClock()
    processor = MessageProcessor(processor.config, processor.store, app_id="m",
                                 checkpoint_interval=10, clock=clock)
    n = len(lines)
    for start in range(0, n, 500):
        processor.process([*incoming(lines[start:start + 500], start=start),
                           Incoming("wk.outcomes", 0, start, None, b"{nope")])
    clock.now = 7.5
    assert metric(processor, "watchkeeper_worker_messages_total", topic=TOPIC) == n
    assert metric(processor, "watchkeeper_worker_messages_total", topic="wk.outcomes") == len(
        range(0, n, 500))
    core = processor.pipelines[0].core
    assert metric(processor, "watchkeeper_worker_events_total", outcome="accepted") == sum(
        core.accepted.values())
    assert metric(processor, "watchkeeper_worker_rejected_total",
                  reason="invalid_json") == core.rejected["invalid_json"] == len(
        range(0, n, 500))
    signals = processor.pipelines[0].totals.signals
    assert signals and all(metric(processor, "watchkeeper_worker_signals_total", kind=kind)
                           == count for kind, count in signals.items())
    assert metric(processor, "watchkeeper_worker_pages_total") == 1
    with processor.store.engine.connect() as conn:  # type: ignore[attr-defined]
        opened = conn.exec_driver_sql("SELECT count(*) FROM alerts").scalar()
    assert opened and metric(processor, "watchkeeper_worker_alerts_total") == opened
    assert metric(processor, "watchkeeper_worker_batch_seconds_count") == len(range(0, n, 500))
    # checkpointed with the first batch (clock 0), not since (the interval is 10 s)
    assert metric(processor, "watchkeeper_worker_checkpoint_age_seconds", partition="0") == 7.5
    processor.flush(force=True)  # nothing unsaved: an idle partition is not stale
    clock.now = 100
    assert metric(processor, "watchkeeper_worker_checkpoint_age_seconds", partition="0") == 0
