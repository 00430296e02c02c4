"""Tests for the seeded scenario generator (sim.scenarios)."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path

import msgspec
import pytest
import yaml

from sim.scenarios import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    SCENARIOS,
    Expectation,
    Scenario,
    generate,
    write_scenario,
)

SMALL = 5_000


@cache
def small(name: str, seed: int = 7) -> Scenario:
    """Cached small scenarios (tests must not mutate them)."""
    return generate(name, predictions=SMALL, seed=seed, reference_size=1_000)


def onset_prediction(n: int) -> int:
    """Index of the first prediction after 40 % of ``n`` predictions."""
    return -(-2 * n // 5)


def lines(scenario: Scenario) -> list[bytes]:
    encoder = msgspec.json.Encoder()
    return [encoder.encode(e) for e in scenario.events]


def predictions(scenario: Scenario) -> list[dict[str, object]]:
    return [e for e in scenario.events if e["type"] == "prediction"]


def request_index(event: dict[str, object]) -> int:
    return int(str(event["request_id"]).removeprefix("req-"))


def labels_by_request(scenario: Scenario) -> dict[str, int]:
    """Ground truth per request_id: inline labels and outcome events."""
    labels: dict[str, int] = {}
    for e in scenario.events:
        if (e["type"] == "prediction" and "label" in e) or e["type"] == "outcome":
            label = e["label"]
            assert isinstance(label, int)
            labels[str(e["request_id"])] = label
    return labels


def accuracy(
    scenario: Scenario, *, after_onset: bool, salary_range: str | None = None
) -> tuple[float, int]:
    """(accuracy, count) over labelled predictions before or after the onset."""
    labels = labels_by_request(scenario)
    k0 = onset_prediction(len(predictions(scenario)))
    hits = total = 0
    for e in predictions(scenario):
        if (request_index(e) >= k0) != after_onset:
            continue
        features = e["features"]
        assert isinstance(features, dict)
        if salary_range is not None and features.get("salary_range") != salary_range:
            continue
        label = labels.get(str(e["request_id"]))
        if label is None:
            continue
        total += 1
        hits += int(e["prediction"] == label)
    return hits / total, total


def positive_rate(scenario: Scenario, *, after_onset: bool) -> float:
    labels = labels_by_request(scenario)
    k0 = onset_prediction(len(predictions(scenario)))
    values = [
        label
        for rid, label in labels.items()
        if (int(rid.removeprefix("req-")) >= k0) == after_onset
    ]
    return sum(values) / len(values)


def feature_values(scenario: Scenario, name: str, *, after_onset: bool) -> list[object]:
    k0 = onset_prediction(len(predictions(scenario)))
    out: list[object] = []
    for e in predictions(scenario):
        if (request_index(e) >= k0) == after_onset:
            features = e["features"]
            assert isinstance(features, dict)
            out.append(features.get(name))
    return out


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def numbers(values: list[object]) -> list[float]:
    out: list[float] = []
    for v in values:
        assert isinstance(v, int | float)
        out.append(float(v))
    return out


# --- API and determinism -------------------------------------------------------------------


def test_scenario_names() -> None:
    assert SCENARIOS == (
        "stationary",
        "benign_drift",
        "harmful_drift",
        "broken_pipeline",
        "schema_change",
        "label_shift",
        "failing_slice",
        "business_metric_drop",
    )
    assert len(NUMERIC_FEATURES) == 14
    assert len(CATEGORICAL_FEATURES) == 6


def test_same_seed_gives_identical_lines() -> None:
    a = generate("harmful_drift", predictions=2_000, seed=11, reference_size=300)
    b = generate("harmful_drift", predictions=2_000, seed=11, reference_size=300)
    assert lines(a) == lines(b)
    assert a.reference == b.reference
    assert a.incidents == b.incidents


def test_different_seed_gives_different_lines() -> None:
    a = generate("stationary", predictions=2_000, seed=1, reference_size=300)
    b = generate("stationary", predictions=2_000, seed=2, reference_size=300)
    assert lines(a) != lines(b)
    assert a.reference != b.reference


def test_reference_uses_its_own_rng_stream() -> None:
    scenario = small("stationary")
    first_event = scenario.events[0]["features"]
    assert all(r["features"] != first_event for r in scenario.reference[:50])


def test_unknown_scenario_raises_with_known_names() -> None:
    with pytest.raises(ValueError, match="unknown scenario") as info:
        generate("nope")
    for name in SCENARIOS:
        assert name in str(info.value)


def test_too_few_predictions_raises() -> None:
    with pytest.raises(ValueError, match="1000"):
        generate("stationary", predictions=999)


# --- every scenario: stream structure ------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_stream_structure(name: str) -> None:
    scenario = small(name)
    assert scenario.name == name
    assert scenario.seed == 7
    preds = predictions(scenario)
    assert len(preds) == SMALL
    kinds = Counter(e["type"] for e in scenario.events)
    assert set(kinds) == {"prediction", "outcome", "metric"}

    # Unique ids, car_loan v7, non-decreasing ISO-8601 Z timestamps from 2019-03-01.
    assert len({e["event_id"] for e in preds}) == SMALL
    assert len({e["request_id"] for e in preds}) == SMALL
    assert all(e["model_id"] == "car_loan" for e in scenario.events)
    assert all(e["model_version"] == "v7" for e in preds)
    stamps = [str(e["ts"]) for e in scenario.events]
    assert stamps[0] == "2019-03-01T00:00:00Z"
    assert all(s.endswith("Z") and len(s) == 20 for s in stamps)
    assert stamps == sorted(stamps)
    last = str(preds[-1]["ts"])  # about one prediction per second of event time
    hours = int(last[11:13]) + 24 * (int(last[8:10]) - 1)
    assert abs(hours * 3600 + int(last[14:16]) * 60 - SMALL) < 0.1 * SMALL

    # Predictions: int 0/1 prediction, score in [0, 1], channel tag.
    for e in preds:
        assert e["prediction"] in (0, 1)
        score = e["score"]
        assert isinstance(score, float) and 0.0 <= score <= 1.0
        tags = e["tags"]
        assert isinstance(tags, dict) and tags["channel"] in ("web", "mobile", "branch")

    # Labels: ~20 % inline, ~60 % outcome events later in the file, ~20 % never.
    inline = {e["request_id"] for e in preds if "label" in e}
    line_of = {
        e["request_id"]: i for i, e in enumerate(scenario.events) if e["type"] == "prediction"
    }
    outcomes = [(i, e) for i, e in enumerate(scenario.events) if e["type"] == "outcome"]
    outcome_ids = {e["request_id"] for _, e in outcomes}
    assert len(outcome_ids) == len(outcomes)
    assert not inline & outcome_ids
    assert 0.17 < len(inline) / SMALL < 0.23
    assert 0.56 < len(outcomes) / SMALL < 0.64
    # Outcomes still pending when the predictions end are flushed in a block at the end.
    tail = max(i for i, e in enumerate(scenario.events) if e["type"] != "outcome") + 1
    for i, e in outcomes:
        assert e["label"] in (0, 1)
        assert set(e) == {"type", "ts", "model_id", "request_id", "label"}
        delay = i - line_of[e["request_id"]]
        assert delay > 0
        if i < tail:
            assert 200 <= delay <= 2_020
    assert sum(1 for i, _ in outcomes if i < tail) > 0.5 * len(outcomes)

    # Business metric after about one prediction in 20, values 0.0 / 1.0.
    metrics = [e for e in scenario.events if e["type"] == "metric"]
    assert 0.035 < len(metrics) / SMALL < 0.065
    assert all(m["name"] == "subscribed" and m["value"] in (0.0, 1.0) for m in metrics)


@pytest.mark.parametrize("name", SCENARIOS)
def test_incident_ground_truth(name: str) -> None:
    scenario = small(name)
    if name == "stationary":
        assert scenario.incidents == ()
        return
    (incident,) = scenario.incidents
    assert incident.name == name
    assert incident.expect and incident.description
    assert incident.actionable is (name != "benign_drift")
    first = scenario.events[incident.onset_index]
    k0 = onset_prediction(SMALL)
    if name == "business_metric_drop":
        # The first affected event is the first metric event after the onset prediction.
        assert first["type"] == "metric"
        onset_line = next(
            i
            for i, e in enumerate(scenario.events)
            if e["type"] == "prediction" and request_index(e) == k0
        )
        between = scenario.events[onset_line : incident.onset_index]
        assert between and not any(e["type"] == "metric" for e in between)
    else:
        assert first["type"] == "prediction"
        assert request_index(first) == k0


def test_expectations() -> None:
    def expect(name: str) -> set[tuple[str, str, str | None]]:
        (incident,) = small(name).incidents
        return {(e.kind, e.subject, e.slice) for e in incident.expect}

    assert expect("benign_drift") == {
        ("drift", f, None)
        for f in ("promo_score", "app_latency_ms", "session_pages", "referral_source")
    }
    assert expect("harmful_drift") == {
        ("performance", "accuracy", None),
        ("drift", "car_value", None),
    }
    assert expect("broken_pipeline") == {
        ("data_quality", "driver_tenure", None),
        ("data_quality", "car_value", None),
        ("drift", "car_value", None),
    }
    assert expect("schema_change") == {
        ("schema", "region", None),
        ("schema", "region_code", None),
        ("schema", "driver_age", None),
    }
    assert expect("label_shift") == {
        ("label_drift", "label", None),
        ("performance", "accuracy", None),
    }
    assert expect("failing_slice") == {("performance", "accuracy", "salary_range=< 20K")}
    assert expect("business_metric_drop") == {("business_metric", "subscribed", None)}
    assert Expectation("drift", "x").slice is None


def test_events_before_onset_are_the_same_in_every_scenario() -> None:
    base = lines(small("stationary"))
    for name in SCENARIOS[1:]:
        scenario = small(name)
        (incident,) = scenario.incidents
        assert lines(scenario)[: incident.onset_index] == base[: incident.onset_index], name


# --- the synthetic model -------------------------------------------------------------------


def test_features_and_reference() -> None:
    scenario = generate("stationary", predictions=1_000, reference_size=20_000)
    reference = scenario.reference
    assert len(reference) == 20_000
    assert all(r["type"] == "prediction" and r["label"] in (0, 1) for r in reference)
    assert str(reference[-1]["ts"]) < str(scenario.events[0]["ts"])
    assert (
        len({r["request_id"] for r in reference} & {e.get("request_id") for e in scenario.events})
        == 0
    )

    features = [r["features"] for r in reference]
    assert all(isinstance(f, dict) and len(f) == 20 for f in features)
    rows = [f for f in features if isinstance(f, dict)]
    assert all(
        isinstance(f[n], int | float)
        for f in rows
        for n in NUMERIC_FEATURES
        if n != "driver_tenure"
    )
    assert all(f[n] in values for f in rows for n, values in CATEGORICAL_FEATURES.items())
    assert all(isinstance(f["car_value"], float) and f["car_value"] > 0 for f in rows)
    assert all(isinstance(f["driver_age"], int) and 18 <= f["driver_age"] <= 90 for f in rows)
    tenure = [f["driver_tenure"] for f in rows]
    assert 0.015 < tenure.count(None) / len(rows) < 0.025
    assert all(t is None or (isinstance(t, float) and t >= 0) for t in tenure)
    salary = Counter(f["salary_range"] for f in rows)
    assert 0.035 < salary["< 20K"] / len(rows) < 0.065
    assert set(salary) == {"< 20K", "20K - 40K", "40K - 60K €", "60K - 100K", "> 100K"}
    assert len({f["region"] for f in rows}) == 6
    channels = Counter(r["tags"]["channel"] for r in reference if isinstance(r["tags"], dict))
    assert 0.57 < channels["web"] / len(rows) < 0.63

    labels = [r["label"] for r in reference]
    hits = sum(r["prediction"] == r["label"] for r in reference)
    assert 0.85 <= hits / len(reference) <= 0.90
    assert 0.27 < sum(1 for y in labels if y == 1) / len(labels) < 0.33
    # Conservative model: predicts the positive class less often than it occurs.
    assert sum(1 for r in reference if r["prediction"] == 1) < sum(1 for y in labels if y == 1)


def test_config() -> None:
    config = small("stationary").config
    models = config["models"]
    assert isinstance(models, dict)
    model = models["car_loan"]
    assert model["task"] == "binary_classification"
    assert model["features"]["car_value"] == {"type": "numeric", "min": 0}
    assert model["features"]["driver_age"] == {"type": "numeric", "min": 18, "max": 100}
    assert model["features"]["driver_tenure"] == {"type": "numeric", "min": 0}
    assert model["slices"] == ["salary_range", "channel"]
    assert model["performance"] == {"metric": "accuracy", "max_drop": 0.02}
    assert model["business_metrics"] == {"subscribed": {"max_drop": 0.1}}


# --- scenario effects ----------------------------------------------------------------------


def test_stationary_has_no_incident_and_stable_accuracy() -> None:
    scenario = small("stationary")
    assert scenario.incidents == ()
    before, _ = accuracy(scenario, after_onset=False)
    after, _ = accuracy(scenario, after_onset=True)
    assert 0.85 <= before <= 0.90
    assert abs(before - after) < 0.03


def test_benign_drift_shifts_irrelevant_features_only() -> None:
    scenario, base = small("benign_drift"), small("stationary")
    # Zero-weight features: predictions, scores and labels are exactly the stationary ones.
    assert [(e["prediction"], e["score"]) for e in predictions(scenario)] == [
        (e["prediction"], e["score"]) for e in predictions(base)
    ]
    assert labels_by_request(scenario) == labels_by_request(base)
    for name, sd in (("promo_score", 12.0), ("app_latency_ms", 69.0), ("session_pages", 2.45)):
        pre = numbers(feature_values(scenario, name, after_onset=False))
        post = numbers(feature_values(scenario, name, after_onset=True))
        assert 1.7 < (mean(post) - mean(pre)) / sd < 2.3, name
    pre_mix = Counter(feature_values(scenario, "referral_source", after_onset=False))
    post_mix = Counter(feature_values(scenario, "referral_source", after_onset=True))
    n_pre, n_post = sum(pre_mix.values()), sum(post_mix.values())
    assert post_mix["social"] / n_post - pre_mix["social"] / n_pre > 0.2
    assert pre_mix["search"] / n_pre - post_mix["search"] / n_post > 0.2


def test_harmful_drift_drops_accuracy() -> None:
    scenario = small("harmful_drift")
    before, _ = accuracy(scenario, after_onset=False)
    after, _ = accuracy(scenario, after_onset=True)
    assert before - after >= 0.10
    pre = feature_values(scenario, "car_value", after_onset=False)
    post = feature_values(scenario, "car_value", after_onset=True)
    assert mean(numbers(post)) / mean(numbers(pre)) > 1.7


def test_broken_pipeline_nulls_and_unit_change() -> None:
    scenario, base = small("broken_pipeline"), small("stationary")
    post_tenure = feature_values(scenario, "driver_tenure", after_onset=True)
    pre_tenure = feature_values(scenario, "driver_tenure", after_onset=False)
    assert 0.45 < post_tenure.count(None) / len(post_tenure) < 0.55
    assert pre_tenure.count(None) / len(pre_tenure) < 0.04
    post_car = numbers(feature_values(scenario, "car_value", after_onset=True))
    base_car = numbers(feature_values(base, "car_value", after_onset=True))
    assert all(abs(v - b * 1000) < 0.01 for v, b in zip(post_car, base_car, strict=True))
    assert (
        min(post_car)
        > 1000 * min(numbers(feature_values(scenario, "car_value", after_onset=False))) / 2
    )
    # Corrupted inputs reach the model: its predictions change.
    before, _ = accuracy(scenario, after_onset=False)
    after, _ = accuracy(scenario, after_onset=True)
    assert before - after > 0.2


def test_schema_change_renames_region_and_stringifies_age() -> None:
    scenario, base = small("schema_change"), small("stationary")
    k0 = onset_prediction(SMALL)
    for e, b in zip(predictions(scenario), predictions(base), strict=True):
        features, base_features = e["features"], b["features"]
        assert isinstance(features, dict) and isinstance(base_features, dict)
        if request_index(e) < k0:
            assert features == base_features
            continue
        assert "region" not in features
        assert features["region_code"] == base_features["region"]
        assert features["driver_age"] == str(base_features["driver_age"])
        assert e["prediction"] == b["prediction"]  # the model coerces numeric strings


def test_label_shift_changes_prior_and_accuracy() -> None:
    scenario = generate("label_shift", predictions=10_000, reference_size=100)
    assert 0.25 < positive_rate(scenario, after_onset=False) < 0.35
    assert 0.55 < positive_rate(scenario, after_onset=True) < 0.65
    before, _ = accuracy(scenario, after_onset=False)
    after, _ = accuracy(scenario, after_onset=True)
    assert before - after >= 0.05


def test_failing_slice_before_after() -> None:
    scenario = generate("failing_slice", predictions=40_000, reference_size=100)
    global_before, _ = accuracy(scenario, after_onset=False)
    global_after, _ = accuracy(scenario, after_onset=True)
    slice_before, n_before = accuracy(scenario, after_onset=False, salary_range="< 20K")
    slice_after, n_after = accuracy(scenario, after_onset=True, salary_range="< 20K")
    assert n_before > 300 and n_after > 500
    assert slice_before - slice_after >= 0.25
    assert global_before - global_after < 0.02


def test_failing_slice_only_touches_the_slice() -> None:
    scenario, base = small("failing_slice"), small("stationary")
    k0 = onset_prediction(SMALL)
    labels, base_labels = labels_by_request(scenario), labels_by_request(base)
    changed: Counter[str] = Counter()
    for e in predictions(scenario):
        features = e["features"]
        assert isinstance(features, dict)
        rid = str(e["request_id"])
        if rid in labels and labels[rid] != base_labels[rid]:
            assert request_index(e) >= k0 and features["salary_range"] == "< 20K"
            changed["flipped"] += 1
        elif rid in labels and request_index(e) >= k0 and features["salary_range"] == "< 20K":
            changed["kept"] += 1
    assert 0.3 < changed["flipped"] / (changed["flipped"] + changed["kept"]) < 0.56
    assert [e["prediction"] for e in predictions(scenario)] == [
        e["prediction"] for e in predictions(base)
    ]


def test_business_metric_drop() -> None:
    scenario, base = (
        generate("business_metric_drop", predictions=20_000),
        generate("stationary", predictions=20_000),
    )
    assert predictions(scenario) == predictions(base)
    (incident,) = scenario.incidents
    pre = numbers(
        [e["value"] for e in scenario.events[: incident.onset_index] if e["type"] == "metric"]
    )
    post = numbers(
        [e["value"] for e in scenario.events[incident.onset_index :] if e["type"] == "metric"]
    )
    assert abs(mean(pre) - 0.30) < 0.05
    assert abs(mean(post) - 0.18) < 0.04


# --- files ---------------------------------------------------------------------------------


def test_write_scenario(tmp_path: Path) -> None:
    scenario = small("failing_slice")
    config_before = json.dumps(scenario.config)
    files = write_scenario(scenario, tmp_path / "sub" / "fs.jsonl")
    assert files.events == tmp_path / "sub" / "fs.jsonl"
    for path in (files.events, files.reference, files.config, files.truth):
        assert path.is_file()
    assert files.reference.name == "fs.reference.jsonl"
    assert files.config.name == "fs.config.yaml"
    assert files.truth.name == "fs.truth.json"
    assert json.dumps(scenario.config) == config_before  # the scenario is not modified

    raw = files.events.read_bytes().splitlines()
    assert raw == lines(scenario)
    assert [json.loads(line) for line in raw[:50]] == scenario.events[:50]
    assert len(files.reference.read_bytes().splitlines()) == len(scenario.reference)

    config = yaml.safe_load(files.config.read_text(encoding="utf-8"))
    reference_name = config["models"]["car_loan"]["reference"]
    assert reference_name == files.reference.name
    assert (files.config.parent / reference_name).is_file()
    assert config["models"]["car_loan"]["slices"] == ["salary_range", "channel"]

    truth = json.loads(files.truth.read_text(encoding="utf-8"))
    assert truth["scenario"] == "failing_slice"
    assert truth["seed"] == 7
    assert truth["lines"] == len(raw)
    assert truth["predictions"] == SMALL
    (incident,) = scenario.incidents
    (written,) = truth["incidents"]
    assert written["onset_index"] == incident.onset_index < len(raw)
    assert (
        json.loads(raw[incident.onset_index])["request_id"] == f"req-{onset_prediction(SMALL):07d}"
    )
    assert written["actionable"] is True
    assert written["description"] == incident.description
    assert written["expect"] == [
        {"kind": "performance", "subject": "accuracy", "slice": "salary_range=< 20K"}
    ]


def test_write_stationary_truth_has_no_incidents(tmp_path: Path) -> None:
    files = write_scenario(small("stationary"), tmp_path / "stationary.jsonl")
    truth = json.loads(files.truth.read_text(encoding="utf-8"))
    assert truth["incidents"] == []
    assert truth["lines"] == len(small("stationary").events)
