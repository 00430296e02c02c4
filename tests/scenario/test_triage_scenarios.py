"""Scenario tests of triage: which pages happen, when, and what goes to the digest.

The streams are seeded, so the event index of every page is exact. An actionable
incident pages once; a healthy or benign stream never pages.
"""

from __future__ import annotations

import pytest

from alerts.model import Route, Status
from sim.scenarios import SCENARIOS
from tests.scenario.conftest import Run

# scenario -> [(event index of the page, kind, subject, slice) of its lead alert]
PAGES: dict[str, list[tuple[int, str, str, str | None]]] = {
    "stationary": [],
    "benign_drift": [],
    "harmful_drift": [(27797, "performance", "accuracy", None)],
    "broken_pipeline": [(26600, "performance", "accuracy", None)],
    "schema_change": [(27639, "schema", "driver_age", None)],
    "label_shift": [(28843, "performance", "accuracy", None)],
    "failing_slice": [(32803, "performance", "accuracy", "salary_range=< 20K")],
    "business_metric_drop": [(35250, "business_metric", "subscribed", None)],
}


def test_every_scenario_has_pinned_pages() -> None:
    assert set(PAGES) == set(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_pages_and_when(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    got = []
    for page in run.totals.pages:
        lead = run.triage.alerts[page.alert_id]
        got.append((page.seq, page.kind, page.subject, lead.slice))
        assert page.escalation_level == 0 and page.channel == "#ml-oncall"
        assert page.alert_id in page.alert_ids
    assert got == PAGES[name]


@pytest.mark.parametrize("name", [n for n, p in PAGES.items() if p])
def test_an_actionable_incident_is_one_incident_and_one_page(runs: dict[str, Run],
                                                             name: str) -> None:
    run = runs[name]
    assert len(run.triage.incidents) == 1
    (incident,) = run.triage.incidents.values()
    assert incident.paged_at is not None and incident.route is Route.PAGE
    assert set(incident.alert_ids) == set(run.triage.alerts)
    assert incident.factors[0].name == "lead"


def test_benign_drift_goes_to_the_digest_with_its_reasons(runs: dict[str, Run]) -> None:
    run = runs["benign_drift"]
    (incident,) = run.triage.incidents.values()
    assert incident.route is Route.DIGEST and incident.paged_at is None
    alerts = sorted((a.kind, a.subject, a.statistic, a.route) for a in run.triage.alerts.values())
    assert alerts == [
        ("data_quality", "promo_score", "out_of_range_rate", Route.DIGEST),
        ("drift", "app_latency_ms", "psi", Route.DIGEST),
        ("drift", "promo_score", "psi", Route.DIGEST),
        ("drift", "referral_source", "psi", Route.DIGEST),
        ("drift", "session_pages", "psi", Route.DIGEST),
    ]
    notes = " ".join(f.note for a in run.triage.alerts.values() for f in a.factors)
    assert "not a page on its own" in notes and "not corruption" in notes


def test_corrupted_inputs_inhibit_the_drift_they_cause(runs: dict[str, Run]) -> None:
    alerts = runs["broken_pipeline"].triage.alerts
    by_key = {(str(a.kind), a.subject, a.statistic): a for a in alerts.values() if a.slice is None
              and a.model_version is None}
    causes = {by_key[("data_quality", "car_value", "out_of_range_rate")].alert_id,
              by_key[("data_quality", "driver_tenure", "null_rate")].alert_id}
    assert by_key[("drift", "car_value", "psi")].inhibited_by in causes
    assert by_key[("prediction_drift", "score", "psi")].inhibited_by in causes
    assert by_key[("prediction_drift", "prediction", "psi")].inhibited_by in causes
    for key in (("drift", "car_value", "psi"), ("prediction_drift", "score", "psi")):
        assert by_key[key].route is Route.LOG
    assert by_key[("performance", "accuracy", "accuracy")].inhibited_by is None


def test_quiet_streams_raise_nothing(runs: dict[str, Run]) -> None:
    run = runs["stationary"]
    assert run.triage.alerts == {} and run.triage.incidents == {}


def test_alerts_stay_open_while_their_condition_holds(runs: dict[str, Run]) -> None:
    alerts = runs["schema_change"].triage.alerts.values()
    assert {(a.subject, a.statistic, a.status, a.occurrences) for a in alerts} == {
        ("driver_age", "type_mismatch_rate", Status.OPEN, 24),
        ("region", "missing_rate", Status.OPEN, 24),
        ("region_code", "new_feature_rate", Status.OPEN, 24),
    }
