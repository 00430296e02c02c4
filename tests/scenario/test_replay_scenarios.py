"""Scenario tests: replay every seeded scenario and pin which signals fire, and where.

Each scenario (``sim.scenarios``) injects a known incident at a known event index. For
each one we pin the exact set of signal groups ``(kind, subject, statistic)`` that fire,
the index window in which each group fires *first*, and that nothing fires before the
onset. Groups listed as ``optional`` are real but weak side effects (e.g. a slight score
drift) that may or may not cross their threshold; nothing outside required ∪ optional may
fire. The streams are seeded, so the indices are reproducible.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sim.scenarios import SCENARIOS, generate
from stream.signals import Kind
from tests.scenario.conftest import Run, run_scenario

Group = tuple[str, str, str]  # kind, subject, statistic

# A feature window is 1,000 predictions (about 1,650 lines with outcomes and metrics); a
# window-based signal can only fire when the first mostly post-onset window closes.
WINDOW_BOUND = 3_500
CALIBRATION = ("monitoring_health", "calibration", "calibration_z")  # digest: estimates off


@dataclass(frozen=True)
class Pinned:
    required: dict[Group, int]  # group -> max lines after the onset for its first signal
    optional: frozenset[Group] = field(default_factory=frozenset)


PINNED: dict[str, Pinned] = {
    "stationary": Pinned({}),
    "benign_drift": Pinned({
        ("drift", "promo_score", "psi"): WINDOW_BOUND,
        ("drift", "app_latency_ms", "psi"): WINDOW_BOUND,
        ("drift", "session_pages", "psi"): WINDOW_BOUND,
        ("drift", "referral_source", "psi"): WINDOW_BOUND,
        ("data_quality", "promo_score", "out_of_range_rate"): WINDOW_BOUND,
    }),
    "harmful_drift": Pinned(
        {("drift", "car_value", "psi"): WINDOW_BOUND,
         ("performance", "accuracy", "accuracy"): WINDOW_BOUND},
        # the concept changed: the labels no longer follow the scores' calibration
        optional=frozenset({("prediction_drift", "score", "psi"), CALIBRATION}),
    ),
    "broken_pipeline": Pinned({
        ("data_quality", "driver_tenure", "null_rate"): WINDOW_BOUND,
        ("data_quality", "car_value", "out_of_range_rate"): WINDOW_BOUND,
        ("drift", "car_value", "psi"): WINDOW_BOUND,
        ("prediction_drift", "prediction", "psi"): WINDOW_BOUND,
        ("prediction_drift", "score", "psi"): WINDOW_BOUND,
        ("performance", "accuracy", "accuracy"): 1_500,
    }, optional=frozenset({CALIBRATION})),
    "schema_change": Pinned({
        ("schema", "region", "missing_rate"): WINDOW_BOUND,
        ("schema", "region_code", "new_feature_rate"): WINDOW_BOUND,
        ("schema", "driver_age", "type_mismatch_rate"): WINDOW_BOUND,
    }),
    "label_shift": Pinned(
        {("label_drift", "label", "psi"): 4_500,
         ("performance", "accuracy", "accuracy"): 4_000,
         ("prediction_drift", "score", "psi"): WINDOW_BOUND},
        optional=frozenset({("prediction_drift", "prediction", "psi"), CALIBRATION}),
    ),
    # 4.5 % of traffic, 80 % labelled: 200 slice labels take about 5,500 lines
    "failing_slice": Pinned({("performance", "accuracy", "accuracy"): 10_000}),
    # one metric event per 20 predictions; the rolling window holds 400 of them
    "business_metric_drop": Pinned({("business_metric", "subscribed", "mean"): 12_000}),
}


def test_every_scenario_is_pinned() -> None:
    assert set(PINNED) == set(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_exactly_the_pinned_groups_fire(runs: dict[str, Run], name: str) -> None:
    fired = set(runs[name].first())
    pinned = PINNED[name]
    assert set(pinned.required) <= fired, f"missing: {set(pinned.required) - fired}"
    assert fired <= set(pinned.required) | pinned.optional, (
        f"unexpected: {fired - set(pinned.required) - pinned.optional}")


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "stationary"])
def test_nothing_fires_before_the_onset_and_each_group_fires_in_its_window(
    runs: dict[str, Run], name: str
) -> None:
    run = runs[name]
    assert run.onset is not None
    assert all(s.seq >= run.onset for s in run.signals), "a signal before the incident"
    for group, bound in PINNED[name].required.items():
        first = run.first()[group]
        assert run.onset <= first <= run.onset + bound, (group, run.onset, first)


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_ground_truth_expectations_are_met(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    for kind, subject, slice_ in run.expected:
        assert any(str(s.kind) == kind and s.subject == subject and s.slice == slice_
                   for s in run.signals), (kind, subject, slice_)


def test_the_failing_slice_is_found_while_the_global_metric_stays_quiet(
    runs: dict[str, Run],
) -> None:
    perf = [s for s in runs["failing_slice"].signals if s.kind is Kind.PERFORMANCE]
    assert perf, "the failing slice was not found"
    assert {s.slice for s in perf} == {"salary_range=< 20K"}
    assert all(s.model_version is None for s in perf)
    first = perf[0]
    assert first.evidence["drop"] >= 0.2  # type: ignore[operator]
    assert first.evidence["labels"] == 200


def test_schema_signals_carry_their_evidence(runs: dict[str, Run]) -> None:
    by_stat = {s.statistic: s for s in runs["schema_change"].signals}
    assert by_stat["type_mismatch_rate"].evidence["expected_type"] == "numeric"
    assert str(by_stat["type_mismatch_rate"].evidence["example"]).startswith("'")
    assert by_stat["missing_rate"].value == 1.0
    assert by_stat["new_feature_rate"].value == 1.0


def test_broken_pipeline_shows_the_unit_change_and_the_null_spike(runs: dict[str, Run]) -> None:
    sigs = runs["broken_pipeline"].signals
    oor = next(s for s in sigs if s.statistic == "out_of_range_rate")
    assert oor.subject == "car_value" and oor.value > 0.9
    current_mean, reference_max = oor.evidence["current_mean"], oor.evidence["reference_max"]
    assert isinstance(current_mean, float) and isinstance(reference_max, float)
    assert current_mean > 100 * reference_max
    nulls = next(s for s in sigs if s.statistic == "null_rate")
    assert nulls.subject == "driver_tenure" and 0.4 < nulls.value < 0.6


def test_per_group_signals_repeat_at_each_window_while_the_condition_holds(
    runs: dict[str, Run],
) -> None:
    counts: dict[Group, int] = defaultdict(int)
    for s in runs["schema_change"].signals:
        counts[(str(s.kind), s.subject, s.statistic)] += 1
    # 40,000 predictions in windows of 1,000; the onset is in window 17 of 40
    assert set(counts.values()) == {24}


@pytest.mark.slow
def test_stationary_20_features_200k_events_raises_no_signal(tmp_path: Path) -> None:
    run = run_scenario(tmp_path, "stationary", 122_000)
    assert run.events >= 200_000
    features = generate("stationary", predictions=1_000).reference[0]["features"]
    assert isinstance(features, dict) and len(features) == 20
    assert run.signals == []
