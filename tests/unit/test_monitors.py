"""The monitoring core driven with hand-built events: schema, data quality, delayed-label
performance, the join's bounds, duplicates, business metrics and batch-size independence.

The reference (built in code) has 1000 rows of a model ``m``: ``amount`` = i % 100 + 0.5,
``color`` cycling over four values, ``active`` = i % 3 == 0; the prediction is
``amount >= 50`` and the label equals it except for one row in ten (accuracy 0.9). A
stream that repeats those rows in order fills every 200-event window with exactly the
reference's distribution, so it stays quiet.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from config.file import load_config_text
from stream.core import Core
from stream.events import Prediction
from stream.monitors.inputs import INPUT_SCOPE
from stream.reference import build_profile
from stream.signals import Kind, Signal

COLORS = ("red", "green", "blue", "white")
T0 = 1_000_000.0

CONFIG = """\
models:
  m:
    task: binary_classification
    reference: unused.jsonl
    features:
      amount: {{type: numeric, min: 0}}
    performance: {{metric: accuracy, max_drop: 0.05}}
    business_metrics:
      conv: {{max_drop: 0.2}}
{model_extra}
monitoring:
  window_events: 200
  min_window_events: 50
  window_seconds: {window_seconds}
  performance:
    window_labels: 200
    min_labels: 100
    eval_every: 50
    join_ttl_seconds: {ttl}
    join_max_pending: {max_pending}
    join_wait_seconds: {wait}
  business: {{reference_observations: 100, window_observations: 100, eval_every: 50}}
"""


def features(i: int) -> dict[str, Any]:
    return {"amount": float(i % 100) + 0.5, "color": COLORS[i % 4], "active": i % 3 == 0}


def pred(i: int) -> float:
    return 1.0 if i % 100 >= 50 else 0.0


def label(i: int) -> float:
    return 1.0 - pred(i) if i % 10 == 0 else pred(i)


def make_core(
    *,
    ttl: float = 1e7,
    max_pending: int = 100_000,
    window_seconds: float = 1e6,
    model_extra: str = "",
    wait: float = 3600,
) -> Core:
    cfg = load_config_text(
        CONFIG.format(
            ttl=ttl, max_pending=max_pending, window_seconds=window_seconds,
            model_extra=model_extra, wait=wait,
        )
    )
    ref = [
        Prediction(
            ts=float(i), model_id="m", features=features(i), prediction=pred(i), label=label(i)
        )
        for i in range(1000)
    ]
    return Core(cfg, {"m": build_profile("m", cfg.models["m"], ref, bins=10)})


def pred_line(
    i: int,
    *,
    ts: float | None = None,
    feats: dict[str, Any] | None = None,
    prediction: float | None = None,
    **extra: Any,
) -> bytes:
    ev: dict[str, Any] = {
        "type": "prediction",
        "ts": T0 + i if ts is None else ts,
        "model_id": "m",
        "features": features(i) if feats is None else feats,
        "prediction": pred(i) if prediction is None else prediction,
        "request_id": f"q{i}",  # joinable (its outcome may never come): the labels are healthy
    }
    ev.update(extra)
    return json.dumps(ev).encode()


def outcome_line(request_id: str, ts: float, lab: float) -> bytes:
    return json.dumps(
        {"type": "outcome", "ts": ts, "model_id": "m", "request_id": request_id, "label": lab}
    ).encode()


def metric_line(ts: float, value: float, name: str = "conv") -> bytes:
    return json.dumps(
        {"type": "metric", "ts": ts, "model_id": "m", "name": name, "value": value}
    ).encode()


def run(core: Core, lines: Sequence[bytes], batch: int = 500) -> list[Signal]:
    out: list[Signal] = []
    for k in range(0, len(lines), batch):
        out.extend(core.process(lines[k : k + batch]).signals)
    return out


def keys(signals: Sequence[Signal]) -> list[tuple[str, str, str, int]]:
    return [(str(s.kind), s.subject, s.statistic, s.seq) for s in signals]


def prediction_stream(
    n: int, change: Callable[[int, dict[str, Any]], None], metric_every: int = 0
) -> tuple[list[bytes], list[int]]:
    """Predictions 0..n-1 with ``change`` applied to their features; optionally a metric event
    after every ``metric_every``-th prediction. Returns the lines and each prediction's seq."""
    lines: list[bytes] = []
    seqs: list[int] = []
    for i in range(n):
        feats = features(i)
        change(i, feats)
        seqs.append(len(lines))
        lines.append(pred_line(i, feats=feats))
        if metric_every and i % metric_every == metric_every - 1:
            lines.append(metric_line(T0 + i, float(i % 2)))
    return lines, seqs


# --- quiet when nothing changes ------------------------------------------------------------


def test_stationary_stream_raises_no_signal() -> None:
    core = make_core()
    lines, _ = prediction_stream(1000, lambda i, f: None)
    assert run(core, lines) == []
    assert core.models["m"].inputs.windows_closed == 5
    assert core.counters()["accepted"] == {"prediction": 1000, "outcome": 0, "metric": 0}


# --- data quality and schema ---------------------------------------------------------------


def test_null_spike_one_signal_per_closed_window() -> None:
    def nulls(i: int, f: dict[str, Any]) -> None:
        if i >= 200 and i % 2 == 0:
            f["amount"] = None

    lines, seqs = prediction_stream(600, nulls, metric_every=10)
    signals = run(make_core(), lines)
    # windows of predictions 0-199 (clean), 200-399 and 400-599 (half null)
    assert keys(signals) == [
        ("data_quality", "amount", "null_rate", seqs[399]),
        ("data_quality", "amount", "null_rate", seqs[599]),
    ]
    first = signals[0]
    assert (first.model_id, first.value, first.threshold) == ("m", 0.5, 0.05)
    assert first.window.start_seq == seqs[200]
    assert first.window.end_seq == seqs[399]
    assert first.window.count == 200
    assert first.ts == T0 + 399
    assert first.evidence["reference_rate"] == 0.0
    assert first.evidence["current_rate"] == 0.5
    assert (first.evidence["rows"], first.evidence["window_rows"]) == (100, 200)


def test_every_window_is_an_evaluation_clear_held_or_fired() -> None:
    """Null rates per 200-prediction window: 0, 50 %, 4.5 % (inside the hysteresis band:
    at least 0.8 of the 0.05 rise), 2 % (clear); reference 0."""
    share = {1: 2, 2: 22, 3: 50}  # window -> one null in every n predictions

    def nulls(i: int, f: dict[str, Any]) -> None:
        n = share.get(i // 200)
        if n is not None and i % n == 0:
            f["amount"] = None

    lines, seqs = prediction_stream(1000, nulls)
    core = make_core()
    evaluations = []
    signals = []
    for k in range(0, len(lines), 300):
        result = core.process(lines[k:k + 300])
        evaluations.extend(result.evaluations)
        signals.extend(result.signals)
    null_rate = (Kind.DATA_QUALITY, "amount", "null_rate")
    evaluations = [e for e in evaluations if e.scope == INPUT_SCOPE]
    assert [(e.seq, null_rate in e.held, e.is_clear(*null_rate)) for e in evaluations] == [
        (seqs[199], False, True), (seqs[399], False, False), (seqs[599], True, False),
        (seqs[799], False, True), (seqs[999], False, True)]
    assert [s.seq for s in signals if s.statistic == "null_rate"] == [seqs[399]]
    assert {e.scope for e in evaluations} == {INPUT_SCOPE}
    assert all(e.model_id == "m" for e in evaluations)


def test_a_window_is_tested_only_when_it_closes() -> None:
    def nulls(i: int, f: dict[str, Any]) -> None:
        f["amount"] = None

    lines, _ = prediction_stream(199, nulls)
    core = make_core()
    assert run(core, lines) == []
    assert keys(
        core.process([pred_line(199, feats={**features(199), "amount": None})]).signals
    ) == [("data_quality", "amount", "null_rate", 199)]


def test_type_change_is_a_schema_signal() -> None:
    def stringify(i: int, f: dict[str, Any]) -> None:
        if i >= 200 and i % 5 == 0:
            f["amount"] = str(f["amount"])

    lines, _ = prediction_stream(400, stringify)
    signals = run(make_core(), lines)
    assert keys(signals) == [("schema", "amount", "type_mismatch_rate", 399)]
    sig = signals[0]
    assert (sig.value, sig.threshold) == (0.2, 0.01)
    assert sig.evidence["expected_type"] == "numeric"
    assert sig.evidence["example"] == "'0.5'"
    assert (sig.evidence["rows"], sig.evidence["window_rows"]) == (40, 200)


def test_categorical_type_change() -> None:
    def numeric_color(i: int, f: dict[str, Any]) -> None:
        if i >= 200 and i % 20 == 1:
            f["color"] = 7

    lines, _ = prediction_stream(400, numeric_color)
    signals = run(make_core(), lines)
    assert keys(signals) == [("schema", "color", "type_mismatch_rate", 399)]
    assert signals[0].value == 0.05
    assert signals[0].evidence["expected_type"] == "categorical"
    assert signals[0].evidence["example"] == "7.0"


def test_numbers_sent_to_a_boolean_feature_are_type_mismatches() -> None:
    def numeric_flag(i: int, f: dict[str, Any]) -> None:
        if i >= 200 and i % 5 == 0:
            f["active"] = float(f["active"])  # 40 rows of 1.0 / 0.0
        if i == 201:
            f["active"] = "yes"  # and one string

    lines, _ = prediction_stream(400, numeric_flag)
    signals = [s for s in run(make_core(), lines) if s.statistic == "type_mismatch_rate"]
    assert keys(signals) == [("schema", "active", "type_mismatch_rate", 399)]
    assert signals[0].evidence["rows"] == 41


def test_missing_and_new_feature() -> None:
    def rename(i: int, f: dict[str, Any]) -> None:
        if i >= 200:
            f["colour"] = f.pop("color")

    lines, _ = prediction_stream(600, rename)
    signals = run(make_core(), lines)
    assert keys(signals) == [
        ("schema", "color", "missing_rate", 399),
        ("schema", "colour", "new_feature_rate", 399),
        ("schema", "color", "missing_rate", 599),
        ("schema", "colour", "new_feature_rate", 599),
    ]
    missing, new = signals[0], signals[1]
    assert (missing.value, missing.threshold) == (1.0, 0.01)
    assert (new.value, new.threshold) == (1.0, 0.01)
    assert new.evidence == {"rows": 200, "window_rows": 200, "in_reference": False}


def test_a_new_feature_alone() -> None:
    def add(i: int, f: dict[str, Any]) -> None:
        if i >= 200 and i % 2:
            f["extra"] = 1.0

    lines, _ = prediction_stream(400, add)
    signals = run(make_core(), lines)
    assert keys(signals) == [("schema", "extra", "new_feature_rate", 399)]
    assert signals[0].value == 0.5


def test_hard_bound_violations() -> None:
    def negative(i: int, f: dict[str, Any]) -> None:
        if i >= 200 and i % 10 == 1:
            f["amount"] = -1.0

    lines, _ = prediction_stream(400, negative)
    signals = run(make_core(), lines)
    # -1 is below the configured min 0 and below the reference's smallest value 0.5
    assert keys(signals) == [
        ("data_quality", "amount", "out_of_bounds_rate", 399),
        ("data_quality", "amount", "out_of_range_rate", 399),
    ]
    oob = signals[0]
    assert (oob.value, oob.threshold) == (0.1, 0.01)
    assert oob.evidence["min"] == 0.0 and oob.evidence["max"] is None
    assert (oob.evidence["rows"], oob.evidence["window_rows"]) == (20, 200)


def test_unseen_categories() -> None:
    def purple(i: int, f: dict[str, Any]) -> None:
        if i >= 200 and i % 10 == 2:
            f["color"] = "purple"

    lines, _ = prediction_stream(400, purple)
    signals = run(make_core(), lines)
    assert keys(signals) == [
        ("data_quality", "color", "unseen_category_rate", 399),
        ("drift", "color", "psi", 399),  # the new category also moves the histogram
    ]
    unseen = signals[0]
    assert (unseen.value, unseen.threshold) == (0.1, 0.05)
    assert unseen.evidence["examples"] == ["purple"]


# --- delayed labels and performance --------------------------------------------------------


def labelled_stream(n: int, wrong_from: int, delay: int = 5) -> list[bytes]:
    """Predictions with request ids; each one's outcome arrives ``delay`` predictions later.
    From prediction ``wrong_from`` on, the model predicts the opposite class."""
    lines: list[bytes] = []
    pending: list[tuple[str, float]] = []
    for i in range(n):
        p = pred(i) if i < wrong_from else 1.0 - pred(i)
        lines.append(pred_line(i, prediction=p, request_id=f"r{i}"))
        pending.append((f"r{i}", label(i)))
        if len(pending) > delay:
            rid, lab = pending.pop(0)
            lines.append(outcome_line(rid, T0 + i, lab))
    return lines


def test_outcomes_joined_by_request_id_drive_performance() -> None:
    core = make_core()
    signals = run(core, labelled_stream(600, wrong_from=300))
    # seq of the outcome of r{k} is 2k + 6; evaluations every 50 labels; r300.. are wrong
    # except one in ten (r300 itself is right: its label is flipped too); the CUSUM alarms
    # within r301..r349, so the first evaluation after it fires, and every one after
    assert keys(signals) == [
        ("performance", "accuracy", "accuracy", 704),
        ("performance", "accuracy", "accuracy", 804),
        ("performance", "accuracy", "accuracy", 904),
        ("performance", "accuracy", "accuracy", 1004),
        ("performance", "accuracy", "accuracy", 1104),
    ]
    first = signals[0]
    # r250..r349: 45 + 5 right of 100; the line: 0.9 - 0.05, less one reference stderr
    assert (first.value, first.threshold) == (0.5, 0.840513)
    assert first.evidence["reference_margin"] == 0.009487  # sqrt(0.9 * 0.1 / 1000)
    assert (first.window.start_seq, first.window.end_seq, first.window.count) == (506, 704, 100)
    assert first.evidence["reference"] == 0.9
    assert first.evidence["labels"] == 100
    assert (first.slice, first.model_version) == (None, None)
    # the CUSUM's run began at r301's outcome: the value is over the labels since then (at
    # least min_labels, at most window_labels)
    assert [(s.evidence["change_detected_at_seq"], s.evidence["labels_since_change"], s.value,
             s.window.count) for s in signals] == [
        (608, 49, 0.5, 100), (608, 99, 0.1, 100), (608, 149, 0.09396, 149),
        (608, 199, 0.095477, 199), (608, 249, 0.1, 200)]
    assert [s.evidence["cusum"] for s in signals] == [21.0] * 5  # capped at 1.5 h
    counters = core.counters()
    assert counters["join"] == {
        "pending": 5,
        "waiting_outcomes": 0,
        "added": 600,
        "matched": 595,
        "unmatched_outcomes": 0,
        "late_outcomes": 0,
        "outcomes_after_eviction": 0,
        "expired": 0,
        "evicted_overflow": 0,
        "replaced": 0,
        "waiting_evicted": 0,
        "dropped_ids_forgotten": 0,
    }
    assert counters["performance"] == {"m": {"labels": 595, "series": 1, "slices_overflow": 0,
                                             "versions_overflow": 0}}


def test_a_model_that_stays_right_raises_nothing() -> None:
    core = make_core()
    assert run(core, labelled_stream(600, wrong_from=10**9)) == []
    assert core.counters()["join"]["matched"] == 595


def test_inline_labels_count_without_a_join() -> None:
    lines = [
        pred_line(i, prediction=pred(i) if i < 300 else 1.0 - pred(i), label=label(i))
        for i in range(600)
    ]
    core = make_core()
    signals = run(core, lines)
    assert [s.seq for s in signals] == [349, 399, 449, 499, 549, 599]
    assert {str(s.kind) for s in signals} == {"performance"}
    assert core.counters()["join"]["added"] == 0
    assert core.counters()["performance"]["m"]["labels"] == 600


def test_an_outcome_waits_for_its_prediction_until_the_predictions_pass_it() -> None:
    core = make_core(ttl=100, wait=60)
    result = core.process([outcome_line("never-seen", T0, 1.0), outcome_line("r0", T0, 0.0)])
    assert result.accepted == 2 and result.signals == []
    join = core.counters()["join"]
    assert (join["waiting_outcomes"], join["unmatched_outcomes"], join["matched"]) == (2, 0, 0)
    core.process([pred_line(0, request_id="r0")])  # r0's outcome was waiting: matched
    join = core.counters()["join"]
    assert (join["waiting_outcomes"], join["matched"], join["pending"]) == (1, 1, 0)
    assert core.counters()["performance"]["m"]["labels"] == 1
    core.process([outcome_line("r0", T0 + 1, 0.0)])  # a second outcome for r0 waits too
    core.process([pred_line(1, ts=T0 + 59, request_id="r1")])  # within the wait: they stay
    assert core.counters()["join"]["waiting_outcomes"] == 2
    core.process([pred_line(2, ts=T0 + 62, request_id="r2")])  # 62 s past them: both go
    join = core.counters()["join"]
    assert (join["waiting_outcomes"], join["unmatched_outcomes"], join["matched"]) == (0, 2, 1)


def test_predictions_expire_when_the_outcomes_pass_them_by_the_ttl() -> None:
    core = make_core(ttl=100)
    core.process([pred_line(i, ts=float(i), request_id=f"r{i}") for i in range(10)])
    # predictions far ahead (a worker reading that topic ahead) do not expire them
    core.process([pred_line(10, ts=150.0, request_id="r10")])
    assert core.counters()["join"]["expired"] == 0
    core.process([outcome_line("r10", 151.0, 1.0)])  # the outcomes' time: r0..r9 expire
    join = core.counters()["join"]
    assert (join["expired"], join["pending"], join["added"], join["matched"]) == (10, 0, 11, 1)
    # r3's label comes after its prediction expired: too late, and said so
    core.process([outcome_line("r3", 152.0, 1.0)])
    join = core.counters()["join"]
    assert (join["late_outcomes"], join["unmatched_outcomes"], join["waiting_outcomes"]) == (
        1, 1, 0)
    assert list(core.models["m"].join.lateness) == [149.0]


def test_an_outcome_more_than_the_ttl_after_its_prediction_is_late() -> None:
    core = make_core(ttl=100)
    core.process([pred_line(0, ts=0.0, request_id="r0"), pred_line(1, ts=0.0, request_id="r1")])
    core.process([outcome_line("r0", 100.0, 1.0), outcome_line("r1", 100.5, 1.0)])
    join = core.counters()["join"]
    assert (join["matched"], join["late_outcomes"]) == (1, 1)


def test_join_size_overflow_is_counted() -> None:
    core = make_core(max_pending=5)
    core.process([pred_line(i, ts=float(i), request_id=f"r{i}") for i in range(8)])
    join = core.counters()["join"]
    assert (join["evicted_overflow"], join["pending"], join["added"]) == (3, 5, 8)
    core.process([outcome_line("r0", 9.0, 1.0), outcome_line("r7", 9.0, 1.0)])
    join = core.counters()["join"]
    # r0 was pushed out by the size bound: its outcome says so, and does not wait
    assert (join["waiting_outcomes"], join["matched"], join["outcomes_after_eviction"]) == (
        0, 1, 1)


def test_resent_prediction_replaces_the_pending_one() -> None:
    core = make_core()
    core.process([pred_line(0, request_id="r"), pred_line(1, request_id="r")])
    join = core.counters()["join"]
    assert (join["replaced"], join["pending"], join["added"]) == (1, 1, 2)


def test_join_expiry_does_not_depend_on_batch_size() -> None:
    lines = [
        pred_line(0, ts=0.0, request_id="r1"),
        pred_line(1, ts=500.0, request_id="r2"),
        outcome_line("r2", 501.0, 1.0),  # the outcomes pass r1 by its 100 s TTL here
        outcome_line("r1", 501.0, 1.0),
    ]
    states = []
    for batch in (1, 2, 4):
        core = make_core(ttl=100)
        run(core, lines, batch)
        join = core.counters()["join"]
        assert (join["expired"], join["matched"], join["late_outcomes"],
                join["waiting_outcomes"]) == (1, 1, 1, 0), batch
        states.append(core.models["m"].join.state())
    assert states[0] == states[1] == states[2]


def test_outcome_before_its_prediction_does_not_depend_on_batch_size() -> None:
    # r1's outcome comes first; r2's prediction and outcome are in order, after it
    lines = [outcome_line("r1", 0.0, 1.0), pred_line(0, ts=1.0, request_id="r2"),
             pred_line(1, ts=2.0, request_id="r1"), outcome_line("r2", 3.0, 0.0)]
    results = []
    for batch in (1, 2, 4):
        core = make_core()
        run(core, lines, batch)
        join = core.counters()["join"]
        assert (join["matched"], join["unmatched_outcomes"], join["pending"],
                join["waiting_outcomes"]) == (2, 0, 0, 0), batch
        perf = core.models["m"].performance
        assert perf is not None
        results.append(perf.state())
    assert results[0] == results[1] == results[2]  # the same labels, in the same order


def test_per_model_join_ttl_is_honoured() -> None:
    extra = (
        "    monitoring:\n"
        "      window_events: 200\n"
        "      min_window_events: 50\n"
        "      performance: {join_ttl_seconds: 100}\n"
    )
    core = make_core(model_extra=extra)
    core.process([pred_line(0, ts=0.0, request_id="r0"), outcome_line("x", 500.0, 1.0)])
    assert core.counters()["join"]["expired"] == 1


# --- duplicates and rejects ----------------------------------------------------------------


def test_duplicate_event_ids_are_ignored_and_counted() -> None:
    core = make_core()
    first = core.process(
        [
            pred_line(0, event_id="a", request_id="r0"),
            pred_line(1, event_id="a", request_id="r1"),  # duplicate id: dropped whole
            pred_line(2, event_id="b"),
            pred_line(3),  # no id: never a duplicate
            pred_line(3),
        ]
    )
    assert (first.accepted, first.duplicates) == (4, 1)
    second = core.process([pred_line(4, event_id="b"), metric_line(T0, 1.0), pred_line(5)])
    assert (second.accepted, second.duplicates) == (2, 1)
    counters = core.counters()
    assert counters["events"] == 8
    assert counters["duplicates"] == 2
    assert counters["accepted"] == {"prediction": 5, "outcome": 0, "metric": 1}
    # r1 came with a duplicate id; the others wait with their default request ids
    assert counters["join"]["added"] == 5 and counters["join"]["replaced"] == 1


def test_rejects_are_numbered_and_counted() -> None:
    core = make_core()
    result = core.process(
        [pred_line(0), b"not json", pred_line(1, model_id="zz"), b"[1, " + pred_line(2) + b"]"]
    )
    assert result.accepted == 2
    assert [(s, str(r.reason)) for s, r in result.rejects] == [
        (1, "invalid_json"),
        (2, "unknown_model"),
        (3, "not_object"),
    ]
    assert core.seq == 5
    assert core.counters()["rejected"] == {"invalid_json": 1, "unknown_model": 1, "not_object": 1}


# --- business metrics ----------------------------------------------------------------------


def test_business_metric_fall() -> None:
    # 100 reference observations (mean 0.5), then 200 more at 0.5, then 300 at 0.1
    lines = [metric_line(T0 + i, float(i % 2)) for i in range(300)]
    lines += [metric_line(T0 + 300 + i, 1.0 if i % 10 == 0 else 0.0) for i in range(300)]
    signals = run(make_core(), lines)
    assert keys(signals) == [
        ("business_metric", "conv", "mean", seq) for seq in (399, 449, 499, 549, 599)
    ]
    sig = signals[0]
    assert (sig.value, sig.threshold) == (0.1, 0.4)
    assert (sig.window.start_seq, sig.window.end_seq, sig.window.count) == (300, 399, 100)
    assert sig.evidence["reference_mean"] == 0.5
    assert sig.evidence["relative_drop"] == 0.8


def test_business_metric_steady_or_rising_is_quiet() -> None:
    lines = [metric_line(T0 + i, float(i % 2)) for i in range(300)]
    lines += [metric_line(T0 + 300 + i, 1.0 if i % 10 else 0.0) for i in range(300)]
    lines += [metric_line(T0 + i, 0.0, name="unconfigured") for i in range(50)]
    assert run(make_core(), lines) == []


# --- results do not depend on how the stream is cut into batches ---------------------------


def mixed_stream() -> list[bytes]:
    lines: list[bytes] = []
    pending: list[tuple[str, float]] = []
    ts = T0
    for i in range(2000):
        ts += (0.5, 1.0, 2.0, 0.0)[i % 4] + (400.0 if i % 450 == 449 else 0.0)
        f = features(i)
        if 600 <= i < 1000 and i % 2 == 0:
            f["amount"] = None
        if i >= 1200 and i % 5 == 0:
            f["color"] = 7
        p = pred(i) if i < 1400 or f["color"] != "red" else 1.0 - pred(i)
        lines.append(
            pred_line(
                i,
                ts=ts,
                feats=f,
                prediction=p,
                request_id=f"r{i}",
                event_id=f"e{i}",
                tags={"channel": "web" if i % 3 else "app"},
                label=label(i) if i % 4 == 0 else None,
            )
        )
        if i % 97 == 0:
            lines.append(lines[-1])  # a redelivered duplicate
        if i % 101 == 0:
            lines.append(b"{bad")
        if i % 4:
            pending.append((f"r{i}", label(i)))
        if len(pending) > 9:
            rid, lab = pending.pop(0)
            lines.append(outcome_line(rid, ts, lab))
        if i % 3 == 0:
            good = i % 2 if i < 1000 else i % 7 == 0
            lines.append(metric_line(ts, 1.0 if good else 0.0))
    return lines


def test_signals_do_not_depend_on_batch_size() -> None:
    lines = mixed_stream()
    extra = "    slices: [color, channel, amount]\n"
    results = {}
    counters = {}
    for batch in (1, 7, 500):
        core = make_core(window_seconds=150, model_extra=extra)
        signals = run(core, lines, batch)
        results[batch] = [
            (str(s.kind), s.subject, s.statistic, s.seq, s.slice, s.window.start_seq, s.value)
            for s in signals
        ]
        counters[batch] = core.counters()
    assert results[1] == results[7] == results[500]
    assert counters[1] == counters[7] == counters[500]
    kinds = {k[0] for k in results[500]}
    assert kinds == {"data_quality", "schema", "performance", "business_metric"}
    assert {k[4] for k in results[500] if k[0] == "performance"} >= {None, "color=red"}
    assert counters[500]["duplicates"] == 21
    assert counters[500]["rejected"] == {"invalid_json": 20}
