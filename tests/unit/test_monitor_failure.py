"""A monitor that fails on a message (a bug its values reach) costs that message, not the
batch, the partition or the worker: the message is rejected with ``monitor_error`` and its
bytes, and everything else comes out exactly as if it had been any other reject."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest

from alerts.store.sql import SqlStore
from config.file import Config, load_config
from services.pipeline import Pipeline
from sim.scenarios import generate, write_scenario
from stream.core import MAX_FAILING, Core
from stream.events import Prediction, Reason
from stream.monitors.inputs import InputMonitor
from stream.reference import load_profiles

POISON = 31337.0  # a car_value the broken monitor cannot take
AT = (900, 1_800, 5_001, 5_002, 9_000)  # where the poisoned predictions are


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, list[bytes], list[int]]:
    scenario = generate("harmful_drift", predictions=6_000, seed=7)
    files = write_scenario(scenario, tmp_path_factory.mktemp("poison") / "hd.jsonl")
    events = [dict(e) for e in scenario.events]
    poisoned = []
    for i in AT:
        while events[i]["type"] != "prediction":
            i += 1
        features = cast(dict[str, Any], events[i]["features"])
        events[i] = {**events[i], "features": {**features, "car_value": POISON}}
        poisoned.append(i)
    return load_config(files.config), [json.dumps(e).encode() for e in events], poisoned


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The input monitor fails on the poison, after it has changed its state with the
    batch (so that going on from there would count the batch twice)."""
    update = InputMonitor.update

    def failing(self: InputMonitor, rows: list[Prediction], *args: Any) -> Any:
        found = update(self, rows, *args)
        if any(p.features.get("car_value") == POISON for p in rows):
            raise FloatingPointError("a monitor bug")
        return found

    monkeypatch.setattr(InputMonitor, "update", failing)
    yield


def run(config: Config, messages: list[bytes], size: int) -> tuple[list[Any], list[Any],
                                                                    list[Any], Core]:
    core = Core(config, load_profiles(config))
    signals: list[Any] = []
    evaluations: list[Any] = []
    rejects: list[Any] = []
    for k in range(0, len(messages), size):
        result = core.process(messages[k:k + size])
        signals += [s.to_dict() for s in result.signals]
        evaluations += result.evaluations
        rejects += [(seq, r.reason, r.raw, k + (r.message or 0)) for seq, r in result.rejects]
    return signals, evaluations, rejects, core


def expected(config: Config, messages: list[bytes], poisoned: list[int],
             ) -> tuple[list[Any], list[Any], list[Any], Core]:
    """The run where the poisoned messages were rejects of another kind (one index each)."""
    clean = list(messages)
    for i in poisoned:
        clean[i] = b"{"
    return run(config, clean, 4_096)


@pytest.mark.parametrize("size", [333, 2_500, 4_096, 20_000])
def test_the_failing_message_is_rejected_and_the_rest_is_as_without_it(
    stream: tuple[Config, list[bytes], list[int]], broken: None, size: int,
) -> None:
    config, messages, poisoned = stream
    signals, evaluations, rejects, core = run(config, messages, size)
    want_signals, want_evaluations, want_rejects, clean = expected(config, messages, poisoned)
    assert signals == want_signals and signals  # the drift still pages
    assert evaluations == want_evaluations
    # the same places, as monitor errors with their own bytes
    assert [(seq, at) for seq, _, _, at in rejects] == [
        (seq, at) for seq, _, _, at in want_rejects]
    assert {reason for _, reason, _, _ in rejects} == {Reason.MONITOR_ERROR}
    assert [raw for *_, raw, _ in rejects] == [messages[i] for i in poisoned]
    assert core.rejected == {"monitor_error": len(poisoned)}
    assert core.accepted == clean.accepted and core.processed == len(messages)


@pytest.mark.parametrize("keep", [1 << 20, 64 << 20])
def test_recovery_goes_back_past_its_copies_of_the_state(
    stream: tuple[Config, list[bytes], list[int]], broken: None, keep: int,
) -> None:
    """Small batches: a failure comes many batches after the core's last copy of its
    state (it copies it every MiB of messages, or only once here), and those batches are
    taken again, once."""
    config, messages, poisoned = stream
    config = config.model_copy(update={"limits": config.limits.model_copy(
        update={"recovery_bytes": keep})})
    signals, _, rejects, core = run(config, messages, 97)
    want_signals, _, want_rejects, clean = expected(config, messages, poisoned)
    assert signals == want_signals
    assert len(rejects) == len(want_rejects)
    assert core.rejected == {"monitor_error": len(poisoned)}
    # every count of every monitor, as if the poison had been any other reject
    assert ({k: v for k, v in core.counters().items() if k != "rejected"}
            == {k: v for k, v in clean.counters().items() if k != "rejected"})


def test_the_pipeline_keeps_the_failed_message_with_the_rejects(
    stream: tuple[Config, list[bytes], list[int]], broken: None, tmp_path: Any,
) -> None:
    config, messages, poisoned = stream
    store = SqlStore(str(tmp_path / "wk.db"))
    pipeline = Pipeline(config, store, source="replay")
    for k in range(0, len(messages), 2_000):
        pipeline.feed(messages[k:k + 2_000])
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT reason, raw FROM rejected_events ORDER BY seq").all()
    assert [(r, bytes(raw)) for r, raw in rows] == [
        ("monitor_error", messages[i]) for i in poisoned]
    assert pipeline.totals.pages and len(pipeline.totals.pages) == 1


def test_a_batch_where_every_message_fails_is_searched_only_so_far(
    stream: tuple[Config, list[bytes], list[int]], broken: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug every message reaches: past MAX_FAILING failing messages the search stops
    splitting and rejects the failing parts whole, so one batch costs a bounded number of
    passes (each a copy of the state), and the next batch is processed as usual."""
    config, messages, _ = stream
    poison = [json.dumps({**json.loads(m), "features": {
        **json.loads(m)["features"], "car_value": POISON}}).encode()
        for m in messages[3_000:6_000] if json.loads(m)["type"] == "prediction"][:1_000]
    core = Core(config, load_profiles(config))
    core.process(messages[:500])
    passes = [0]
    process = Core._process

    def counted(self: Core, batch: Any) -> Any:
        passes[0] += 1
        return process(self, batch)

    monkeypatch.setattr(Core, "_process", counted)
    result = core.process(poison)
    assert len(result.rejects) == len(poison) and result.accepted == 0
    assert {r.reason for _, r in result.rejects} == {Reason.MONITOR_ERROR}
    assert sorted(r.message or 0 for _, r in result.rejects) == list(range(len(poison)))
    # one try, the copy taken again, then the halving: at most 2 * MAX_FAILING parts a level
    assert passes[0] <= 2 + 2 * MAX_FAILING * 10
    after = core.process(messages[1_000:1_500])  # no poison among them
    assert not after.rejects and after.accepted == 500
