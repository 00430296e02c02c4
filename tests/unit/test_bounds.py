"""Bounded memory: every structure of the core that grows with distinct input values stays
within its configured bound, at full scale, and what the bounds leave out is counted exactly.

The structures and their bounds: the dedupe memory of event ids (``limits.dedupe_capacity``);
the join's pending predictions and waiting outcomes (``join_max_pending``) and its memory
of dropped ids (``join_remember_dropped``); performance series per slice value
(``max_slice_values``, also the slice-label cache) and per version (``max_versions``);
unseen categories and new feature names per window (``quality.max_unseen_values``,
``quality.max_new_features``); business metric names (``business.max_metrics``); the join's
outcome fates of a model whose labels nobody watches (none kept). Unknown model ids get no
state at all (rejected).

Events are encoded JSON through :meth:`Core.process` in batches, as the worker feeds it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from config.file import Config, load_config_text
from stream.core import Core, ModelRuntime
from stream.events import Prediction
from stream.reference import build_profile
from stream.signals import Kind, Signal
from stream.state import decode, encode

T0 = 1_500_000_000
BATCH = 8192
COLORS = ("red", "green", "blue", "white")

CONFIG = """\
models:
  m:
    task: binary_classification
    reference: unused.jsonl
    slices: [channel]
    performance: {{metric: accuracy, max_drop: 0.05, expect_labels: {expect_labels}}}
monitoring:
  performance: {{{performance}}}
  quality: {{{quality}}}
  business: {{{business}}}
limits: {{{limits}}}
"""


def make_core(*, performance: str = "", quality: str = "", business: str = "",
              limits: str = "", expect_labels: bool = True) -> Core:
    """A binary model ``m``: ``x`` numeric, ``color`` of four categories, sliced by the tag
    ``channel``; a reference of 1,000 labelled rows (accuracy 0.9)."""
    cfg = load_config_text(CONFIG.format(performance=performance, quality=quality,
                                         business=business, limits=limits,
                                         expect_labels=str(expect_labels).lower()))
    ref = [Prediction(ts=float(i), model_id="m",
                      features={"x": float(i % 100), "color": COLORS[i % 4]},
                      prediction=float(i % 2), label=float(i % 2 if i % 10 else 1 - i % 2))
           for i in range(1000)]
    return Core(cfg, {"m": build_profile("m", cfg.models["m"], ref, bins=10)})


def prediction(i: int, *, event_id: str | None = None, request_id: str | None = None,
               label: int | None = None, channel: str = "web", color: str | None = None,
               version: str = "v1", extra: str = "") -> bytes:
    """One encoded prediction (formatted, not json.dumps'd: a million of them are cheap)."""
    fields = [f'"type":"prediction","ts":{T0 + i},"model_id":"m","model_version":"{version}"',
              f'"features":{{"x":{float(i % 100)},"color":"{color or COLORS[i % 4]}"{extra}}}',
              f'"prediction":{i % 2}', f'"tags":{{"channel":"{channel}"}}']
    if event_id is not None:
        fields.append(f'"event_id":"{event_id}"')
    if request_id is not None:
        fields.append(f'"request_id":"{request_id}"')
    if label is not None:
        fields.append(f'"label":{label}')
    return ("{" + ",".join(fields) + "}").encode()


def outcome(request_id: str, ts: int, label: int = 1) -> bytes:
    return (f'{{"type":"outcome","ts":{ts},"model_id":"m","request_id":"{request_id}",'
            f'"label":{label}}}').encode()


def metric(name: str, ts: int, value: float = 1.0) -> bytes:
    return (f'{{"type":"metric","ts":{ts},"model_id":"m","name":"{name}",'
            f'"value":{value}}}').encode()


def batches(lines: Sequence[bytes], size: int = BATCH) -> Iterator[Sequence[bytes]]:
    for k in range(0, len(lines), size):
        yield lines[k:k + size]


def sizes(core: Core) -> dict[str, int]:
    """The size of every structure that grows with distinct input values."""
    rt: ModelRuntime = core.models["m"]
    join, perf, inputs = rt.join, rt.performance, rt.inputs
    assert perf is not None
    return {
        "dedupe": len(core.dedupe),
        "pending": len(join), "waiting": join.waiting, "dropped": len(join._dropped),
        "fates": len(join.fates),
        "slice_values": len(perf._codes.get(0, {None: -1})) - 1,
        "versions": len(perf._codes.get(-1, {None: -1})) - 1,
        "series": len(perf._series),
        "slice_cache": max(map(len, rt._slice_cache)),
        "unseen_values": max(len(acc.unseen_values) for acc in inputs._accs.values()),
        "new_features": len(inputs._new_features),
        "business_metrics": len(rt.business._metrics),
    }


def feed(core: Core, lines: Sequence[bytes], bounds: dict[str, int],
         size: int = BATCH) -> list[Signal]:
    """Process ``lines``; after every batch no structure is over its bound."""
    out: list[Signal] = []
    for batch in batches(lines, size):
        out.extend(core.process(batch).signals)
        now = sizes(core)
        over = {k: (now[k], v) for k, v in bounds.items() if now[k] > v}
        assert not over, over
    return out


def roundtrip(core: Core, fresh: Core) -> Core:
    """``fresh`` resumed from ``core``'s checkpoint (encoded and decoded, as stored)."""
    assert fresh.restore(decode(encode(core.state()))) == []
    return fresh


# -- the dedupe memory: a million distinct event ids ------------------------------------------

def test_a_million_distinct_event_ids_stay_within_dedupe_capacity() -> None:
    core = make_core(performance="join_max_pending: 10")
    n, more = 1_000_000, 1_000
    lines = [prediction(i, event_id=f"e{i}") for i in range(n + more)]
    feed(core, lines, {"dedupe": 1_000_000})
    assert core.counters()["dedupe"] == {"remembered": 1_000_000, "capacity": 1_000_000,
                                         "forgotten": more}
    assert core.duplicates == 0
    # the next ``more`` ids are still known; the first ``more`` were forgotten: taken again
    # (each pushing out the oldest known one)
    again = core.process([prediction(i, event_id=f"e{i}")
                          for i in [*range(more, 2 * more), *range(more)]])
    assert (again.accepted, again.duplicates) == (more, more)
    assert core.counters()["dedupe"] == {"remembered": 1_000_000, "capacity": 1_000_000,
                                         "forgotten": 2 * more}


def test_the_dedupe_memory_and_what_it_forgot_survive_a_checkpoint() -> None:
    core = make_core(limits="dedupe_capacity: 1000")
    feed(core, [prediction(i, event_id=f"e{i}") for i in range(2_500)], {"dedupe": 1000})
    back = roundtrip(core, make_core(limits="dedupe_capacity: 1000"))
    assert back.counters()["dedupe"] == {"remembered": 1000, "capacity": 1000,
                                         "forgotten": 1_500}
    smaller = roundtrip(core, make_core(limits="dedupe_capacity: 400"))
    assert smaller.counters()["dedupe"] == {"remembered": 400, "capacity": 400,
                                            "forgotten": 2_100}
    result = smaller.process([prediction(i, event_id=f"e{i}") for i in (2_100, 2_499, 2_099)])
    assert (result.accepted, result.duplicates) == (1, 2)


# -- the join: a million pending predictions --------------------------------------------------

def test_a_million_pending_predictions_stay_within_join_max_pending() -> None:
    core = make_core()  # join_max_pending 500,000 and join_remember_dropped 50,000: defaults
    n = 1_000_000
    feed(core, [prediction(i, request_id=f"r{i}") for i in range(n)],
         {"pending": 500_000, "dropped": 50_000, "waiting": 500_000})
    join = core.counters()["join"]
    assert (join["pending"], join["evicted_overflow"], join["dropped_ids_forgotten"]) == (
        500_000, 500_000, 450_000)
    # labels for: the last 1,000 evicted (remembered: "evicted"), 10 evicted long ago
    # (forgotten: "unknown"), 10 still pending (matched)
    ts = T0 + n
    lines = ([outcome(f"r{i}", ts) for i in range(499_000, 500_000)]
             + [outcome(f"r{i}", ts) for i in range(10)]
             + [outcome(f"r{i}", ts) for i in range(n - 10, n)])
    signals = feed(core, lines, {"pending": 500_000, "dropped": 50_000, "waiting": 500_000})
    join = core.counters()["join"]
    assert (join["outcomes_after_eviction"], join["unmatched_outcomes"], join["matched"],
            join["waiting_outcomes"], join["pending"]) == (1_000, 1_000, 10, 10, 499_990)
    health = [s for s in signals if s.kind == Kind.MONITORING_HEALTH]
    assert [(s.subject, s.statistic, s.value) for s in health] == [
        ("labels", "evicted_label_rate", 1.0)]
    assert (health[0].evidence["evicted"], health[0].evidence["outcomes"]) == (1_000, 1_000)


def test_outcomes_waiting_for_their_prediction_stay_within_the_bound_and_are_counted() -> None:
    core = make_core(performance="join_max_pending: 100, join_remember_dropped: 30")
    bounds = {"pending": 100, "waiting": 100, "dropped": 30}
    feed(core, [outcome(f"early{i}", T0 + i) for i in range(250)], bounds, size=64)
    join = core.counters()["join"]
    assert (join["waiting_outcomes"], join["waiting_evicted"], join["unmatched_outcomes"]) == (
        100, 150, 150)
    feed(core, [prediction(i, request_id=f"r{i}") for i in range(400)], bounds, size=64)
    join = core.counters()["join"]
    assert (join["pending"], join["evicted_overflow"], join["dropped_ids_forgotten"]) == (
        100, 300, 270)
    back = roundtrip(core, make_core(performance="join_max_pending: 100, "
                                                 "join_remember_dropped: 30"))
    assert back.counters()["join"] == core.counters()["join"]


def test_a_model_whose_labels_nobody_watches_keeps_no_fates() -> None:
    core = make_core(expect_labels=False, performance="join_max_pending: 100")
    lines = [prediction(i, request_id=f"r{i}") for i in range(1000)]
    lines += [outcome(f"r{i}", T0 + 1000) for i in range(1000)]
    feed(core, lines, {"fates": 0, "pending": 100}, size=100)
    join = core.counters()["join"]
    assert (join["matched"], join["outcomes_after_eviction"], join["unmatched_outcomes"]) == (
        100, 900, 900)


# -- slices and versions: 10,000 distinct slice values, 1,000 versions -------------------------

SLICES = 10_000


def sliced(n: int, wrong: bool = False) -> list[bytes]:
    """Labelled predictions whose channel cycles over 10,000 values (``c0``...)."""
    return [prediction(i, label=(1 - i % 2) if wrong else i % 2, channel=f"c{i % SLICES}")
            for i in range(n)]


def tracked_labels(upto: int) -> int:
    """Labels among the first ``upto`` of :func:`sliced` whose channel is one of the first
    50 (``max_slice_values``): c0..c49, once every 10,000."""
    full, rest = divmod(upto, SLICES)
    return 50 * full + min(rest, 50)


@pytest.mark.parametrize("size", [4096, 997])
def test_ten_thousand_slice_values_keep_fifty_series_and_count_the_rest(size: int) -> None:
    core = make_core()  # max_slice_values 50: the default
    n = 2 * SLICES
    feed(core, sliced(n), {"slice_values": 50, "slice_cache": 52, "series": 51}, size=size)
    perf = core.models["m"].performance
    assert perf is not None
    # the first 50 values in event order, whatever the batches
    assert sorted(k for k, _ in perf._series if k is not None) == sorted(
        f"channel=c{i}" for i in range(50))
    assert perf.counters() == {"labels": n, "series": 51, "slices_overflow": n - 100,
                               "versions_overflow": 0}
    back = roundtrip(core, make_core())
    assert back.counters() == core.counters()


def test_a_signal_counts_the_labels_its_slices_leave_untracked_at_its_own_label() -> None:
    signals: dict[int, list[Signal]] = {}
    for size in (4096, 333):
        core = make_core()
        found = feed(core, sliced(2 * SLICES, wrong=True), {"slice_values": 50}, size=size)
        signals[size] = [s for s in found if s.kind == Kind.PERFORMANCE]
    assert [s.to_dict() for s in signals[4096]] == [s.to_dict() for s in signals[333]]
    overall = signals[4096]
    assert overall and all(s.slice is None for s in overall)
    # every event is a labelled prediction: a signal at seq s has seen s + 1 labels
    assert [s.evidence["untracked_slice_labels"] for s in overall] == [
        s.seq + 1 - tracked_labels(s.seq + 1) for s in overall]
    assert overall[0].evidence["untracked_slice_labels"] == 50  # at label 100: c50..c99


def test_a_thousand_versions_keep_twenty_series() -> None:
    core = make_core()  # max_versions 20: the default
    lines = [prediction(i, label=i % 2, version=f"v{i % 1000}") for i in range(3000)]
    feed(core, lines, {"versions": 20, "series": 1 + 1 + 20}, size=512)
    perf = core.models["m"].performance
    assert perf is not None
    assert sorted(v for _, v in perf._series if v is not None) == sorted(
        f"v{i}" for i in range(20))
    assert perf.counters()["versions_overflow"] == 3000 - 3 * 20
    assert len(perf._versions) == 2
    back = roundtrip(core, make_core())
    assert back.counters() == core.counters()


# -- categories: 1,000 distinct unseen values, 1,000 new feature names ------------------------

def test_a_thousand_unseen_categories_keep_a_hundred_and_count_the_rest() -> None:
    core = make_core(performance="join_max_pending: 10")  # max_unseen_values 100: default
    n = 2_000  # two windows of 1,000, each with 1,000 distinct unseen colours
    lines = [prediction(i, request_id=f"r{i}", color=f"new{i % 1000}") for i in range(n)]
    signals = feed(core, lines, {"unseen_values": 100}, size=128)
    unseen = [s for s in signals if s.statistic == "unseen_category_rate"]
    assert [(s.subject, s.value, s.evidence["rows"]) for s in unseen] == [
        ("color", 1.0, 1000), ("color", 1.0, 1000)]
    assert [s.evidence["examples"] for s in unseen] == [[f"new{i}" for i in range(5)]] * 2
    assert [s.evidence["untracked_unseen_rows"] for s in unseen] == [900, 900]
    assert core.counters()["inputs"]["m"]["untracked_unseen_rows"] == 1_800


def test_a_thousand_new_feature_names_keep_a_hundred_and_count_the_rest() -> None:
    core = make_core(performance="join_max_pending: 10", quality="max_new_features: 100")
    lines = [prediction(i, request_id=f"r{i}", extra=f',"extra{i % 1000}":1.0')
             for i in range(2_500)]
    feed(core, lines, {"new_features": 100}, size=300)
    # two windows closed (900 untracked each), the open one has 500 rows: 400 untracked
    assert core.counters()["inputs"]["m"]["untracked_new_feature_rows"] == 1_800
    assert core.models["m"].inputs._new_untracked == 400
    back = roundtrip(core, make_core(performance="join_max_pending: 10"))
    assert back.counters() == core.counters()
    assert back.models["m"].inputs._new_untracked == 400


def test_a_thousand_business_metric_names_keep_max_metrics() -> None:
    core = make_core(business="max_metrics: 100")
    lines = [metric(f"metric{i % 1000}", T0 + i) for i in range(5_000)]
    feed(core, lines, {"business_metrics": 100}, size=700)
    assert core.counters()["business"]["m"] == {"metrics": 100,
                                                "untracked_observations": 4_500}
    back = roundtrip(core, make_core(business="max_metrics: 100"))
    assert back.counters() == core.counters()
    assert sorted(back.models["m"].business._metrics) == sorted(
        f"metric{i}" for i in range(100))


def test_unknown_model_ids_are_rejected_and_get_no_state() -> None:
    core = make_core()
    lines = [prediction(i).replace(b'"model_id":"m"', f'"model_id":"u{i}"'.encode())
             for i in range(1_000)]
    result = core.process(lines)
    assert (result.accepted, len(result.rejects)) == (0, 1_000)
    assert list(core.models) == ["m"] and core.rejected == {"unknown_model": 1_000}


def test_the_bounds_are_configured_with_defaults() -> None:
    cfg: Config = load_config_text("models: {m: {task: regression, reference: r.jsonl}}")
    perf, quality = cfg.monitoring.performance, cfg.monitoring.quality
    assert (cfg.limits.dedupe_capacity, perf.join_max_pending, perf.join_remember_dropped,
            perf.max_slice_values, perf.max_versions, quality.max_unseen_values,
            quality.max_new_features, cfg.monitoring.business.max_metrics) == (
        1_000_000, 500_000, 50_000, 50, 20, 100, 100, 100)
