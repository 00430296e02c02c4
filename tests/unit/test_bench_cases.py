"""Benchmark cases (bench/cases.py), quick sizes: determinism, well-formed rows, incidents in
range, and that each incident does to accuracy what its truth says."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    # bench/ has no __init__.py: mypy, given bench/cases.py (or bench/), names it "cases"
    from cases import (
        Case,
        Row,
        accuracy,
        build_case,
        build_cases,
        case_names,
        incident_accuracy,
    )
else:
    from bench.cases import (
        Case,
        Row,
        accuracy,
        build_case,
        build_cases,
        case_names,
        incident_accuracy,
    )

KINDS = {"performance", "data_quality", "schema", "none"}
MODES = {"outcome", "inline", "none"}


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    return {c.name: c for c in build_cases(quick=True)}


def test_names(cases: dict[str, Case]) -> None:
    assert list(cases) == case_names()
    assert set(cases) >= {"sea_abrupt", "sea_covariate", "agrawal_multi", "canary_version",
                          "sea_stationary", "bananas_stationary", "shuttle_units"}
    assert len(cases) == 13


@pytest.mark.parametrize(
    "name",
    ["sea_abrupt", "agrawal_gradual", "hyperplane", "agrawal_nulls", "canary_version",
     "bananas_stationary", "shuttle_units"],
)
def test_same_seed_same_rows(cases: dict[str, Case], name: str) -> None:
    assert build_case(name, quick=True, seed=7) == cases[name]


def test_other_seed_other_rows(cases: dict[str, Case]) -> None:
    other = build_case("sea_abrupt", quick=True, seed=8)
    assert other.rows[:100] != cases["sea_abrupt"].rows[:100]


def _well_formed(row: Row) -> None:
    assert row.prediction in (0, 1) and row.label in (0, 1)
    assert 0.0 <= row.score <= 1.0 and row.prediction == int(row.score >= 0.5)
    assert row.label_mode in MODES and row.version in ("v1", "v2")
    for k, v in row.features.items():
        assert isinstance(k, str)
        assert v is None or type(v) in (float, str, bool)


def test_rows_well_formed(cases: dict[str, Case]) -> None:
    for case in cases.values():
        assert case.model["task"] == "binary_classification"
        assert case.model["performance"] == {"metric": "accuracy", "max_drop": 0.02}
        assert "reference" not in case.model
        assert len(case.reference) >= 1000 and len(case.rows) >= 5000
        for row in case.reference:
            _well_formed(row)
            assert row.label_mode == "inline" and row.version == "v1"
            assert None not in row.features.values()
        names = set(case.reference[0].features)
        for row in case.rows:
            _well_formed(row)
            assert set(row.features) == names


def test_incidents_in_range(cases: dict[str, Case]) -> None:
    for case in cases.values():
        last_end = 0
        for t in case.incidents:
            assert last_end <= t.onset < len(case.rows), case.name
            assert t.end is None or t.onset < t.end <= len(case.rows), case.name
            assert t.kind in KINDS and t.note and "\n" not in t.note
            assert t.actionable == (t.kind != "none"), case.name
            last_end = len(case.rows) if t.end is None else t.end
    multi = cases["agrawal_multi"].incidents
    assert len(multi) == 2 and multi[0].end is not None and multi[1].end is None


def test_label_modes(cases: dict[str, Case]) -> None:
    for case in cases.values():
        n = len(case.rows)
        share = {m: sum(r.label_mode == m for r in case.rows) / n for m in MODES}
        want = (
            {"inline": 0.2, "outcome": 0.6, "none": 0.2}
            if case.name == "sea_abrupt"
            else {"inline": 0.0, "outcome": 0.8, "none": 0.2}
        )
        for m in MODES:
            assert share[m] == pytest.approx(want[m], abs=0.02), (case.name, m)


def test_reference_matches_the_pre_incident_rows(cases: dict[str, Case]) -> None:
    for case in cases.values():
        onset = case.incidents[0].onset if case.incidents else len(case.rows)
        before = accuracy(case.rows[:onset])
        assert accuracy(case.reference) == pytest.approx(before, abs=0.03), case.name


def test_actionable_performance_drops(cases: dict[str, Case]) -> None:
    checked = 0
    for case in cases.values():
        if len({r.version for r in case.rows}) > 1:
            continue  # the canary: per version, below
        for t in case.incidents:
            if t.actionable and t.kind == "performance":
                before, after = incident_accuracy(case, t)
                assert before - after > 0.02, (case.name, t.onset, before, after)
                checked += 1
    assert checked >= 5


def test_data_quality_incidents(cases: dict[str, Case]) -> None:
    nulls = cases["agrawal_nulls"]
    onset = nulls.incidents[0].onset
    assert all(None not in r.features.values() for r in nulls.rows[:onset])
    tail = nulls.rows[onset:]
    nulled = [r for r in tail if r.features["salary"] is None]
    assert len(nulled) / len(tail) == pytest.approx(0.4, abs=0.04)
    assert all(r.features["loan"] is None for r in nulled)
    assert sum(None in r.features.values() for r in tail) == len(nulled)
    units = cases["shuttle_units"]
    t = units.incidents[0]
    before, after = incident_accuracy(units, t)
    assert before - after > 0.02


def test_benign_shift_leaves_accuracy(cases: dict[str, Case]) -> None:
    case = cases["agrawal_benign"]
    (t,) = case.incidents
    assert not t.actionable and t.kind == "none"
    before, after = incident_accuracy(case, t)
    assert abs(after - before) < 0.01
    # ... while the shifted inputs really moved
    mean = {
        part: sum(float(r.features["hvalue"] or 0.0) for r in rows) / len(rows)
        for part, rows in (("before", case.rows[: t.onset]), ("after", case.rows[t.onset :]))
    }
    assert mean["after"] > 1.2 * mean["before"]


def test_canary_versions(cases: dict[str, Case]) -> None:
    case = cases["canary_version"]
    (t,) = case.incidents
    assert t.actionable and t.kind == "performance"
    assert all(r.version == "v1" for r in case.rows[: t.onset])
    tail = case.rows[t.onset :]
    v2 = [r for r in tail if r.version == "v2"]
    v1 = [r for r in tail if r.version == "v1"]
    assert len(v2) / len(tail) == pytest.approx(0.1, abs=0.02)
    drop = accuracy(v1) - accuracy(v2)
    assert 0.05 < drop < 0.2
    assert accuracy(case.rows[: t.onset]) - accuracy(v2) > 0.02


def test_stationary_cases_stay_put(cases: dict[str, Case]) -> None:
    for case in cases.values():
        if case.incidents:
            continue
        half = len(case.rows) // 2
        first, second = accuracy(case.rows[:half]), accuracy(case.rows[half:])
        assert not math.isnan(first) and abs(first - second) < 0.03, case.name
