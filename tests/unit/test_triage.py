"""Alert triage (``alerts.triage.Triage``) driven with hand-built signals.

Pins, for the default :class:`TriagePolicy`: fingerprints, dedupe and idempotent
re-processing, severity and route on impact ("page on impact, not on change"), grouping
into incidents, inhibition, silences, resolution after clear evaluations (never on event
time), flapping, feedback, and per-model clocks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from alerts.fingerprint import fingerprint
from alerts.model import Alert, Incident, Route, Silence, Status
from alerts.triage import Changes, Triage
from config.file import TriagePolicy
from stream.monitors.inputs import INPUT_SCOPE
from stream.signals import Evaluation, Kind, Scope, Signal, Window

T0 = 1_551_398_400.0  # 2019-03-01T00:00:00Z
MODEL = "car_loan"
HOUR = 3600.0
RESOLVE = TriagePolicy().resolve_after_evaluations  # 3 clear evaluations in a row
FLAP_WINDOW = TriagePolicy().flap_window_evaluations  # 20
PERF = Scope(frozenset({Kind.PERFORMANCE}), "accuracy")

DEFAULT_STATISTIC = {
    "schema": "missing_rate",
    "data_quality": "null_rate",
    "drift": "psi",
    "prediction_drift": "psi",
    "label_drift": "psi",
    "performance": "accuracy",
    "business_metric": "mean",
    "canary": "accuracy",
    "fallback": "fallback_rate",
}
PERF_EVIDENCE: dict[str, Any] = {"drop": 0.04, "max_drop": 0.02}  # impact 0.75


def sig(
    kind: str,
    subject: str,
    *,
    seq: int,
    ts: float | None = None,
    statistic: str | None = None,
    value: float = 0.4,
    threshold: float = 0.2,
    evidence: dict[str, Any] | None = None,
    model_id: str = MODEL,
    model_version: str | None = None,
    slice: str | None = None,
) -> Signal:
    """A signal raised at event ``seq`` (event time ``T0 + seq`` unless ``ts`` is given)."""
    when = T0 + seq if ts is None else ts
    return Signal(
        model_id=model_id,
        kind=Kind(kind),
        subject=subject,
        statistic=statistic or DEFAULT_STATISTIC[kind],
        value=value,
        threshold=threshold,
        window=Window(
            start_seq=max(seq - 999, 0), end_seq=seq, start_ts=when - 999.0, end_ts=when, count=1000
        ),
        evidence=dict(evidence or {}),
        ts=when,
        seq=seq,
        model_version=model_version,
        slice=slice,
    )


def perf(seq: int, *, ts: float | None = None, **kw: Any) -> Signal:
    kw.setdefault("evidence", PERF_EVIDENCE)
    kw.setdefault("value", 0.8)
    kw.setdefault("threshold", 0.85)
    return sig("performance", "accuracy", seq=seq, ts=ts, **kw)


def evaluation(seq: int, scope: Scope = PERF, *, ts: float | None = None,
               held: tuple[tuple[str, str, str], ...] = (), model_id: str = MODEL) -> Evaluation:
    """An evaluation of ``scope`` at event ``seq`` (time ``T0 + seq`` unless ``ts``)."""
    return Evaluation(model_id, scope, seq, T0 + seq if ts is None else ts,
                      frozenset((Kind(k), subj, stat) for k, subj, stat in held))


def clear(t: Triage, start: int, n: int = RESOLVE, scope: Scope = PERF, step: int = 100,
          model_id: str = MODEL) -> Changes:
    """``n`` evaluations of ``scope`` in which nothing fired, ``step`` events apart."""
    return t.process([], [evaluation(start + k * step, scope, model_id=model_id)
                          for k in range(n)])


def only(items: Any) -> Any:
    values = list(items)
    assert len(values) == 1, values
    return values[0]


def alert_of(triage: Triage, kind: str, subject: str, model_id: str = MODEL) -> Alert:
    """The latest alert of (model, kind, subject)."""
    found = [
        a
        for a in triage.alerts.values()
        if (a.model_id, a.kind, a.subject) == (model_id, kind, subject)
    ]
    assert found, (kind, subject)
    return max(found, key=lambda a: a.first_seq)


def incident_of(triage: Triage, alert: Alert) -> Incident:
    assert alert.incident_id is not None
    return triage.incidents[alert.incident_id]


def fresh() -> Triage:
    return Triage(TriagePolicy())


# -- fingerprint ---------------------------------------------------------------------------


def test_fingerprint_is_stable_across_value_evidence_time_and_index() -> None:
    a = sig("drift", "car_value", seq=10, value=0.3, evidence={"reference_mean": 1.0})
    b = sig(
        "drift",
        "car_value",
        seq=99_999,
        ts=T0 + 86_400,
        value=0.9,
        threshold=0.5,
        evidence={"x": [1, 2]},
    )
    assert fingerprint(a) == fingerprint(b)
    assert len(fingerprint(a)) == 16
    assert int(fingerprint(a), 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"model_id": "other_model"},
        {"kind": "prediction_drift"},
        {"subject": "driver_age"},
        {"statistic": "ks"},
        {"slice": "channel=web"},
        {"model_version": "v8"},
    ],
)
def test_fingerprint_differs_by_identity(change: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "kind": "drift",
        "subject": "car_value",
        "statistic": "psi",
        "model_id": MODEL,
        "model_version": "v7",
        "slice": None,
    }
    changed = {**base, **change}
    a = sig(base.pop("kind"), base.pop("subject"), seq=1, **base)
    b = sig(changed.pop("kind"), changed.pop("subject"), seq=1, **changed)
    assert fingerprint(a) != fingerprint(b)


def test_fingerprint_slice_and_version_are_not_interchangeable() -> None:
    a = sig("performance", "accuracy", seq=1, slice="v8")
    b = sig("performance", "accuracy", seq=1, model_version="v8")
    assert fingerprint(a) != fingerprint(b)


# -- dedupe --------------------------------------------------------------------------------


def test_repeats_update_one_alert() -> None:
    t = fresh()
    first = t.process([sig("drift", "car_value", seq=100, value=0.3, evidence={"n": 1})])
    alert_id = only(first.alerts)
    t.process([sig("drift", "car_value", seq=200, value=0.5, evidence={"n": 2})])
    t.process([sig("drift", "car_value", seq=300, value=0.7, threshold=0.25, evidence={"n": 3})])
    a = only(t.alerts.values())
    assert a.alert_id == alert_id
    assert (a.occurrences, a.first_seq, a.last_seq) == (3, 100, 300)
    assert (a.first_seen, a.last_seen) == (T0 + 100, T0 + 300)
    assert (a.value, a.threshold, a.evidence) == (0.7, 0.25, {"n": 3})
    assert a.status is Status.OPEN


def test_occurrences_are_reported_once_per_signal() -> None:
    t = fresh()
    c = t.process([sig("drift", "x", seq=1), sig("drift", "x", seq=2)])
    assert [(o.seq, o.ts) for o in c.occurrences] == [(1, T0 + 1), (2, T0 + 2)]
    assert {o.alert_id for o in c.occurrences} == set(c.alerts)
    assert c.signals == sorted(c.signals, key=lambda s: s.seq)


def test_reprocessing_the_same_signals_changes_nothing() -> None:
    t = fresh()
    batch = [sig("drift", "car_value", seq=5), perf(7), sig("data_quality", "x", seq=6)]
    first = t.process(batch)
    assert len(first.pages) == 1
    before = (dict(t.alerts), dict(t.incidents), dict(t.clocks))
    again = t.process(batch)
    assert not again
    assert again == Changes()
    assert (dict(t.alerts), dict(t.incidents), dict(t.clocks)) == before


def test_signal_at_or_before_last_seq_is_ignored() -> None:
    t = fresh()
    t.process([perf(10), perf(20)])
    a = alert_of(t, "performance", "accuracy")
    late = t.process([perf(15, value=0.1), perf(20, value=0.2)])
    assert not late and late.pages == []
    assert t.alerts[a.alert_id] == a
    assert a.occurrences == 2 and a.value == 0.8


def test_duplicates_in_one_batch_count_once() -> None:
    t = fresh()
    s = sig("drift", "x", seq=3)
    c = t.process([s, s, s])
    assert len(c.occurrences) == 1
    assert only(t.alerts.values()).occurrences == 1


def test_ids_are_deterministic() -> None:
    batch = [sig("drift", "car_value", seq=5), perf(9), sig("drift", "x", seq=2)]
    a, b = fresh(), fresh()
    ca, cb = a.process(batch), b.process(list(reversed(batch)))
    assert sorted(ca.alerts) == sorted(cb.alerts)
    assert sorted(ca.incidents) == sorted(cb.incidents)
    assert [p.page_id for p in ca.pages] == [p.page_id for p in cb.pages]
    assert len(set(ca.alerts)) == 3


# -- severity and route on impact ------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    kind: str
    subject: str
    statistic: str
    value: float
    severity: float
    route: Route
    evidence: tuple[tuple[str, float], ...] = ()
    slice: str | None = None


CASES = [
    Case("drift", "car_value", "psi", 0.9, 0.2, Route.LOG),
    Case("prediction_drift", "score", "psi", 0.9, 0.3, Route.DIGEST),
    Case("label_drift", "label", "psi", 0.9, 0.3, Route.DIGEST),
    Case("schema", "region", "missing_rate", 0.02, 0.85, Route.PAGE),
    Case("schema", "region_code", "new_feature_rate", 1.0, 0.85, Route.PAGE),
    Case("schema", "driver_age", "type_mismatch_rate", 0.5, 0.85, Route.PAGE),
    Case("data_quality", "driver_tenure", "null_rate", 0.1, 0.85, Route.PAGE),
    Case("data_quality", "driver_age", "out_of_bounds_rate", 0.02, 0.85, Route.PAGE),
    Case("data_quality", "car_value", "out_of_range_rate", 0.1, 0.3, Route.DIGEST),
    Case("data_quality", "car_value", "out_of_range_rate", 0.5, 0.85, Route.PAGE),
    Case("data_quality", "car_value", "out_of_range_rate", 0.9, 0.85, Route.PAGE),
    Case("data_quality", "region", "unseen_category_rate", 0.1, 0.3, Route.DIGEST),
    Case("data_quality", "region", "unseen_category_rate", 0.25, 0.85, Route.PAGE),
    Case("data_quality", "region", "unseen_category_rate", 0.5, 0.85, Route.PAGE),
    Case(
        "performance",
        "accuracy",
        "accuracy",
        0.8,
        0.7,
        Route.PAGE,
        (("drop", 0.02), ("max_drop", 0.02)),
    ),
    Case(
        "performance",
        "accuracy",
        "accuracy",
        0.8,
        0.75,
        Route.PAGE,
        (("drop", 0.04), ("max_drop", 0.02)),
    ),
    Case(
        "performance",
        "accuracy",
        "accuracy",
        0.5,
        0.85,
        Route.PAGE,
        (("drop", 0.4), ("max_drop", 0.02)),
    ),
    Case("performance", "mae", "mae", 9.0, 0.85, Route.PAGE, (("drop", 3.0),)),
    Case(
        "performance",
        "accuracy",
        "accuracy",
        0.5,
        0.3,
        Route.DIGEST,
        (("drop", 0.3), ("max_drop", 0.02), ("traffic_share", 0.005)),
        "salary_range=< 20K",
    ),
    Case(
        "performance",
        "accuracy",
        "accuracy",
        0.5,
        0.85,
        Route.PAGE,
        (("drop", 0.3), ("max_drop", 0.02), ("traffic_share", 0.05)),
        "salary_range=< 20K",
    ),
    Case(
        "performance",
        "accuracy",
        "accuracy",
        0.8,
        0.75,
        Route.PAGE,
        (("drop", 0.04), ("max_drop", 0.02), ("traffic_share", 0.01)),
        "channel=web",
    ),
    Case(
        "business_metric", "subscribed", "mean", 0.18, 0.75, Route.PAGE, (("relative_drop", 0.4),)
    ),
    Case("canary", "accuracy", "accuracy", 0.7, 0.7, Route.PAGE),
    Case("fallback", "fallback_rate", "fallback_rate", 0.3, 0.7, Route.PAGE),
]


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=[f"{c.kind}-{c.statistic}-{c.value}-{c.slice or ''}-{dict(c.evidence)}" for c in CASES],
)
def test_severity_and_route_on_impact(case: Case) -> None:
    t = fresh()
    c = t.process(
        [
            sig(
                case.kind,
                case.subject,
                statistic=case.statistic,
                value=case.value,
                evidence=dict(case.evidence),
                slice=case.slice,
                seq=50,
            )
        ]
    )
    a = only(c.alerts.values())
    assert (a.severity, a.route) == (case.severity, case.route)
    assert a.factors[0].name == "impact" and a.factors[0].note
    incident = only(c.incidents.values())
    assert incident.route is case.route
    assert incident.severity == case.severity
    assert incident.lead_alert_id == a.alert_id
    if case.route is Route.PAGE:
        page = only(c.pages)
        assert (page.alert_id, page.kind, page.subject, page.seq) == (
            a.alert_id,
            case.kind,
            case.subject,
            50,
        )
        assert (page.channel, page.escalation_level, page.paged_at) == ("#ml-oncall", 0, T0 + 50)
        assert a.paged and incident.paged_at == T0 + 50
    else:
        assert c.pages == []
        assert not a.paged and incident.paged_at is None


def test_persistence_raises_a_score_a_little() -> None:
    t = fresh()
    severities = []
    for i in range(1, 7):
        t.process([sig("drift", "car_value", seq=i * 10)])
        a = alert_of(t, "drift", "car_value")
        severities.append((a.severity, a.route))
    assert severities == [
        (0.2, Route.LOG),
        (0.25, Route.DIGEST),
        (0.3, Route.DIGEST),
        (0.35, Route.DIGEST),
        (0.35, Route.DIGEST),
        (0.35, Route.DIGEST),
    ]
    a = alert_of(t, "drift", "car_value")
    assert [(f.name, f.value, f.note) for f in a.factors] == [
        ("impact", 0.2, "drift: context for other alerts, not a page on its own"),
        ("persistence", 0.15, "seen 6 times"),
    ]


def test_eight_drifting_features_are_one_digest_incident_and_never_page() -> None:
    t = fresh()
    pages = []
    features = [f"feature_{i}" for i in range(8)]
    for rnd in range(5):
        c = t.process([sig("drift", f, seq=rnd * 100 + i) for i, f in enumerate(features)])
        pages.extend(c.pages)
    assert pages == []
    assert len(t.alerts) == 8
    incident = only(t.incidents.values())
    assert sorted(incident.alert_ids) == sorted(t.alerts)
    assert all((a.severity, a.route) == (0.35, Route.DIGEST) for a in t.alerts.values())
    # breadth (+0.03 per extra finding, at most 0.12) orders incidents but never pages
    assert (incident.severity, incident.route) == (0.47, Route.DIGEST)
    assert [f.name for f in incident.factors] == ["lead", "breadth"]
    assert incident.factors[1].note == "8 related findings"
    assert incident.paged_at is None


def test_first_drift_of_eight_features_goes_to_history_only() -> None:
    t = fresh()
    c = t.process([sig("drift", f"feature_{i}", seq=i) for i in range(8)])
    assert c.pages == []
    assert {a.route for a in c.alerts.values()} == {Route.LOG}
    incident = only(c.incidents.values())
    assert (incident.severity, incident.route) == (0.32, Route.DIGEST)


def test_prediction_drift_never_pages() -> None:
    t = fresh()
    pages = []
    for i in range(10):
        c = t.process(
            [
                sig("prediction_drift", "score", seq=i),
                sig("prediction_drift", "prediction", seq=i + 100),
            ]
        )
        pages.extend(c.pages)
    assert pages == []
    assert {(a.severity, a.route) for a in t.alerts.values()} == {(0.45, Route.DIGEST)}
    assert only(t.incidents.values()).route is Route.DIGEST


def test_factors_explain_the_score() -> None:
    t = fresh()
    t.process([perf(1, evidence={"drop": 0.04, "max_drop": 0.02}), perf(2)])
    a = alert_of(t, "performance", "accuracy")
    assert [(f.name, f.value, f.note) for f in a.factors] == [
        ("impact", 0.75, "accuracy fell 0.040 (tolerance 0.020)"),
        ("persistence", 0.05, "seen 2 times"),
    ]
    assert a.severity == 0.8

    s = fresh()
    s.process(
        [
            sig(
                "performance",
                "accuracy",
                seq=1,
                slice="salary_range=< 20K",
                evidence={"drop": 0.3, "max_drop": 0.02, "traffic_share": 0.005},
            )
        ]
    )
    small = alert_of(s, "performance", "accuracy")
    assert small.factors[0].note == (
        "accuracy fell 0.300 (tolerance 0.020) on a slice of 0.5% of traffic (below 1%)"
    )

    q = fresh()
    q.process([sig("data_quality", "car_value", statistic="out_of_range_rate", value=0.9, seq=1)])
    assert alert_of(q, "data_quality", "car_value").factors[0].note == (
        "90% of values outside the reference range (a unit change or a broken transform)"
    )
    incident = only(q.incidents.values())
    assert incident.factors[0].name == "lead"
    assert "data_quality on car_value" in incident.factors[0].note
    assert "outside the reference range" in incident.factors[0].note


# -- grouping ------------------------------------------------------------------------------


def drift_and_performance(model_id: str = MODEL, times: int = 1) -> list[Signal]:
    signals = [
        sig("drift", f"feature_{i}", seq=r * 10 + i, model_id=model_id)
        for r in range(times)
        for i in range(8)
    ]
    return [*signals, perf(500, model_id=model_id)]


def test_drift_plus_performance_is_one_incident_with_one_page() -> None:
    t = fresh()
    pages = []
    for s in drift_and_performance(times=2):
        pages.extend(t.process([s]).pages)
    for extra in (perf(600), sig("drift", "feature_0", seq=700), perf(800)):
        pages.extend(t.process([extra]).pages)
    incident = only(t.incidents.values())
    assert len(incident.alert_ids) == 9 and set(incident.alert_ids) == set(t.alerts)
    page = only(pages)
    lead = alert_of(t, "performance", "accuracy")
    assert (page.seq, page.paged_at, page.alert_id, page.kind, page.subject) == (
        500,
        T0 + 500,
        lead.alert_id,
        "performance",
        "accuracy",
    )
    assert page.incident_id == incident.incident_id
    # every live alert of the incident is listed (drift seen twice goes to the digest)
    assert sorted(page.alert_ids) == sorted(incident.alert_ids)
    assert page.severity == 0.87  # lead 0.75 + breadth 0.12 (capped)
    assert [f.name for f in page.factors] == ["lead", "breadth"]
    assert page.summary.endswith("(+8 related)")
    assert (incident.paged_at, incident.route, incident.lead_alert_id) == (
        T0 + 500,
        Route.PAGE,
        lead.alert_id,
    )
    assert all(a.paged for a in t.alerts.values())


def test_one_batch_gives_the_same_incident_and_page() -> None:
    t = fresh()
    c = t.process(drift_and_performance())
    incident = only(c.incidents.values())
    assert len(incident.alert_ids) == 9
    page = only(c.pages)
    assert (page.seq, page.kind, page.subject) == (500, "performance", "accuracy")


def test_page_lists_every_live_alert_of_the_incident() -> None:
    t = fresh()
    c = t.process(drift_and_performance(times=1))
    page = only(c.pages)
    assert sorted(page.alert_ids) == sorted(only(t.incidents.values()).alert_ids)


def test_repeats_after_a_page_become_one_thread_reply_per_incident_and_hour() -> None:
    t = fresh()
    first = t.process([perf(500)])
    page = only(first.pages)
    assert first.thread_replies == {}  # the page itself is no repeat
    hour = int((T0 + 600) // HOUR)
    same_hour = t.process([perf(600), sig("drift", "feature_0", seq=700)])
    lead, drift = alert_of(t, "performance", "accuracy"), alert_of(t, "drift", "feature_0")
    reply = only(same_hour.thread_replies.values())
    assert (reply.incident_id, reply.hour) == (page.incident_id, hour)
    assert reply.summaries == {lead.alert_id: lead.summary, drift.alert_id: drift.summary}
    later = t.process([perf(800, ts=T0 + 800 + HOUR)])
    assert [(r.incident_id, r.hour, list(r.summaries)) for r in later.thread_replies.values()] \
        == [(page.incident_id, hour + 1, [lead.alert_id])]
    assert t.process([perf(800, ts=T0 + 800 + HOUR)]).thread_replies == {}  # seen: no-op


def test_a_different_model_gets_its_own_incident() -> None:
    t = fresh()
    c = t.process([*drift_and_performance(), *drift_and_performance("other_model")])
    assert len(c.incidents) == 2
    by_model = {i.model_id: i for i in c.incidents.values()}
    assert set(by_model) == {MODEL, "other_model"}
    for model_id, incident in by_model.items():
        assert {t.alerts[a].model_id for a in incident.alert_ids} == {model_id}
        assert len(incident.alert_ids) == 9
    assert sorted(p.model_id for p in c.pages) == [MODEL, "other_model"]


# -- inhibition ----------------------------------------------------------------------------


def null_rate(subject: str, seq: int, **kw: Any) -> Signal:
    return sig("data_quality", subject, statistic="null_rate", value=0.5, seq=seq, **kw)


def test_cause_first_inhibits_drift_on_the_same_feature_and_prediction_drift() -> None:
    t = fresh()
    c = t.process(
        [
            null_rate("car_value", 1),
            sig("drift", "car_value", seq=2),
            sig("prediction_drift", "score", seq=3),
            sig("drift", "driver_age", seq=4),
            perf(5),
        ]
    )
    cause = alert_of(t, "data_quality", "car_value")
    drift = alert_of(t, "drift", "car_value")
    pdrift = alert_of(t, "prediction_drift", "score")
    other = alert_of(t, "drift", "driver_age")
    performance = alert_of(t, "performance", "accuracy")
    assert (drift.inhibited_by, drift.route) == (cause.alert_id, Route.LOG)
    assert (pdrift.inhibited_by, pdrift.route) == (cause.alert_id, Route.LOG)
    assert (other.inhibited_by, other.route) == (None, Route.LOG)  # not inhibited; 0.2 = log
    assert (performance.inhibited_by, performance.route) == (None, Route.PAGE)
    assert cause.inhibited_by is None
    page = only(c.pages)
    assert (page.seq, page.kind, page.subject) == (1, "data_quality", "car_value")


def test_symptom_first_is_inhibited_when_the_cause_arrives() -> None:
    t = fresh()
    t.process(
        [
            sig("drift", "car_value", seq=1),
            sig("drift", "car_value", seq=2),
            sig("prediction_drift", "prediction", seq=3),
        ]
    )
    assert alert_of(t, "drift", "car_value").route is Route.DIGEST
    c = t.process([null_rate("car_value", 10)])
    cause = alert_of(t, "data_quality", "car_value")
    drift = alert_of(t, "drift", "car_value")
    pdrift = alert_of(t, "prediction_drift", "prediction")
    assert (drift.inhibited_by, drift.route) == (cause.alert_id, Route.LOG)
    assert (pdrift.inhibited_by, pdrift.route) == (cause.alert_id, Route.LOG)
    assert {drift.alert_id, pdrift.alert_id, cause.alert_id} <= set(c.alerts)
    page = only(c.pages)
    assert (page.kind, page.subject, page.alert_id) == ("data_quality", "car_value", cause.alert_id)
    assert cause.alert_id in page.alert_ids


def test_page_made_when_cause_follows_symptoms_is_consistent() -> None:
    t = fresh()
    t.process(
        [
            sig("drift", "car_value", seq=1),
            sig("drift", "car_value", seq=2),
            sig("prediction_drift", "prediction", seq=3),
        ]
    )
    c = t.process([null_rate("car_value", 10)])
    page = only(c.pages)
    assert page.seq == 10
    assert page.alert_ids == (alert_of(t, "data_quality", "car_value").alert_id,)


def test_low_out_of_range_rate_is_not_a_cause() -> None:
    t = fresh()
    t.process(
        [
            sig("data_quality", "car_value", statistic="out_of_range_rate", value=0.1, seq=1),
            sig("drift", "car_value", seq=2),
        ]
    )
    assert alert_of(t, "drift", "car_value").inhibited_by is None


def test_schema_break_inhibits_drift_on_its_feature() -> None:
    t = fresh()
    t.process(
        [
            sig("schema", "driver_age", statistic="type_mismatch_rate", seq=1),
            sig("drift", "driver_age", seq=2),
        ]
    )
    assert (
        alert_of(t, "drift", "driver_age").inhibited_by
        == alert_of(t, "schema", "driver_age").alert_id
    )


def test_performance_and_business_are_never_inhibited() -> None:
    t = fresh()
    t.process(
        [
            null_rate("accuracy", 1),
            null_rate("subscribed", 2),
            perf(3),
            sig("business_metric", "subscribed", evidence={"relative_drop": 0.3}, seq=4),
        ]
    )
    assert alert_of(t, "performance", "accuracy").inhibited_by is None
    assert alert_of(t, "business_metric", "subscribed").inhibited_by is None


def test_another_models_cause_does_not_inhibit() -> None:
    t = fresh()
    t.process(
        [
            null_rate("car_value", 1, model_id="other"),
            sig("drift", "car_value", seq=2),
            sig("prediction_drift", "score", seq=3),
        ]
    )
    assert alert_of(t, "drift", "car_value").inhibited_by is None
    assert alert_of(t, "prediction_drift", "score").inhibited_by is None


def test_inhibition_is_lifted_when_the_cause_resolves() -> None:
    t = fresh()
    t.process([null_rate("car_value", 0), sig("drift", "car_value", seq=1)])
    cause = alert_of(t, "data_quality", "car_value")
    assert alert_of(t, "drift", "car_value").inhibited_by == cause.alert_id
    # three windows in which only the drift fires: the null rate is clear in each
    c = Changes()
    for k in range(1, RESOLVE + 1):
        c.merge(t.process([sig("drift", "car_value", seq=1000 * k)],
                          [evaluation(1000 * k, INPUT_SCOPE)]))
        if k < RESOLVE:
            assert t.alerts[cause.alert_id].status is Status.OPEN
            assert alert_of(t, "drift", "car_value").inhibited_by == cause.alert_id
    cause = t.alerts[cause.alert_id]
    drift = alert_of(t, "drift", "car_value")
    assert (cause.status, cause.resolved_at, cause.clean_evaluations) == (
        Status.RESOLVED, T0 + 3000, 3)
    assert (drift.status, drift.inhibited_by, drift.route) == (Status.OPEN, None, Route.DIGEST)
    assert (drift.severity, drift.occurrences) == (0.35, 4)  # 0.2 + persistence 0.15
    assert {cause.alert_id, drift.alert_id} <= set(c.alerts)
    assert c.pages == [] and c.resolved_incidents == []
    assert incident_of(t, drift).status is Status.OPEN


def test_incident_scores_on_its_active_alerts_after_one_resolves() -> None:
    t = fresh()
    t.process([null_rate("car_value", 0), sig("drift", "car_value", seq=1)])
    for k in range(1, RESOLVE + 1):
        t.process([sig("drift", "car_value", seq=1000 * k)], [evaluation(1000 * k, INPUT_SCOPE)])
    drift = alert_of(t, "drift", "car_value")
    incident = incident_of(t, drift)
    assert (incident.lead_alert_id, incident.route, incident.severity) == (
        drift.alert_id,
        Route.DIGEST,
        0.35,
    )


# -- silences ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "silence",
    [
        Silence(
            "s-exact", ends_at=T0 + HOUR, model_id=MODEL, kind=Kind.PERFORMANCE, subject="accuracy"
        ),
        Silence("s-prefix", ends_at=T0 + HOUR, model_id=MODEL, subject="acc*"),
        Silence("s-kind", ends_at=T0 + HOUR, kind=Kind.PERFORMANCE),
        Silence("s-any", ends_at=T0 + HOUR),
    ],
    ids=["exact", "prefix", "kind", "any"],
)
def test_matching_silence_mutes_the_alert(silence: Silence) -> None:
    t = Triage(TriagePolicy(), silences=[silence])
    c = t.process([perf(10)])
    a = only(c.alerts.values())
    assert (a.status, a.silenced_by, a.route) == (Status.SILENCED, silence.silence_id, Route.LOG)
    assert a.severity == 0.75  # still scored, for history
    assert c.pages == []
    incident = only(c.incidents.values())
    assert (incident.route, incident.severity) == (Route.LOG, 0.0)
    assert incident.factors[0].name == "muted"


@pytest.mark.parametrize(
    "silence",
    [
        Silence("s-model", ends_at=T0 + HOUR, model_id="other"),
        Silence("s-kind", ends_at=T0 + HOUR, kind=Kind.DRIFT),
        Silence("s-subject", ends_at=T0 + HOUR, subject="accuracy_top"),
        Silence("s-prefix", ends_at=T0 + HOUR, subject="roc*"),
        Silence("s-expired", ends_at=T0 + 10),
        Silence("s-future", starts_at=T0 + 100, ends_at=T0 + HOUR),
    ],
    ids=["model", "kind", "subject", "prefix", "expired", "not-started"],
)
def test_non_matching_silence_does_not_mute(silence: Silence) -> None:
    t = Triage(TriagePolicy(), silences=[silence])
    c = t.process([perf(10)])
    a = only(c.alerts.values())
    assert (a.status, a.silenced_by, a.route) == (Status.OPEN, None, Route.PAGE)
    assert len(c.pages) == 1


def test_after_expiry_a_new_occurrence_is_not_silenced_and_pages() -> None:
    silence = Silence("s1", ends_at=T0 + 100, model_id=MODEL, subject="acc*")
    t = Triage(TriagePolicy(), silences=[silence])
    first = t.process([perf(10), perf(99)])
    assert first.pages == []
    assert alert_of(t, "performance", "accuracy").status is Status.SILENCED
    later = t.process([perf(100)])
    a = alert_of(t, "performance", "accuracy")
    assert (a.status, a.silenced_by, a.route, a.occurrences) == (Status.OPEN, None, Route.PAGE, 3)
    page = only(later.pages)
    assert (page.seq, page.alert_id) == (100, a.alert_id)


def test_silence_prefix_leaves_other_subjects_alone() -> None:
    t = Triage(TriagePolicy(), silences=[Silence("s1", ends_at=T0 + HOUR, subject="car_*")])
    t.process([null_rate("car_value", 1), null_rate("driver_tenure", 2)])
    assert alert_of(t, "data_quality", "car_value").status is Status.SILENCED
    assert alert_of(t, "data_quality", "driver_tenure").status is Status.OPEN


# -- resolution: clear evaluations in a row, never event time ------------------------------


def test_an_alert_resolves_after_enough_clear_evaluations_in_a_row() -> None:
    t = fresh()
    t.process([perf(0, ts=T0)])
    a = alert_of(t, "performance", "accuracy")
    incident_id = a.incident_id
    first = clear(t, 100, n=RESOLVE - 1)
    assert t.alerts[a.alert_id].status is Status.OPEN
    assert t.alerts[a.alert_id].clean_evaluations == RESOLVE - 1
    assert first.resolved_incidents == []
    c = clear(t, 100 + (RESOLVE - 1) * 100, n=1)
    done = t.alerts[a.alert_id]
    assert (done.status, done.resolved_at) == (Status.RESOLVED, T0 + 300)
    assert c.resolved_incidents == [incident_id]
    assert incident_id is not None
    incident = t.incidents[incident_id]
    assert (incident.status, incident.resolved_at) == (Status.RESOLVED, T0 + 300)
    assert c.pages == []


def test_no_amount_of_event_time_resolves_an_alert() -> None:
    """At one event a minute or one a month: only evaluations count."""
    t = fresh()
    t.process([perf(0, ts=T0)])
    t.process([sig("drift", "car_value", seq=5, ts=T0 + 365 * 86_400)])  # a year later
    assert alert_of(t, "performance", "accuracy").status is Status.OPEN
    clear(t, 10, n=RESOLVE, scope=INPUT_SCOPE)  # another monitor's evaluations
    assert alert_of(t, "performance", "accuracy").status is Status.OPEN


def test_a_held_or_firing_evaluation_breaks_the_run_of_clear_ones() -> None:
    t = fresh()
    t.process([perf(0)])
    clear(t, 100, n=RESOLVE - 1)
    t.process([], [evaluation(300, held=(("performance", "accuracy", "accuracy"),))])
    assert alert_of(t, "performance", "accuracy").clean_evaluations == 0
    clear(t, 400, n=RESOLVE - 1)
    t.process([perf(600)], [evaluation(600)])  # it fired in this evaluation
    a = alert_of(t, "performance", "accuracy")
    assert (a.status, a.clean_evaluations, a.occurrences) == (Status.OPEN, 0, 2)
    clear(t, 700, n=RESOLVE)
    assert alert_of(t, "performance", "accuracy").status is Status.RESOLVED


def test_only_evaluations_of_the_alerts_own_scope_count() -> None:
    t = fresh()
    t.process([perf(0), perf(1, slice="channel=web"), perf(2, model_version="v8")])
    clear(t, 100, n=RESOLVE, scope=Scope(frozenset({Kind.PERFORMANCE}), "accuracy",
                                         slice="channel=web"))
    status = {(a.slice, a.model_version): a.status for a in t.alerts.values()}
    assert status == {(None, None): Status.OPEN, ("channel=web", None): Status.RESOLVED,
                      (None, "v8"): Status.OPEN}
    clear(t, 1000, n=RESOLVE, model_id="other")  # another model's evaluations
    assert alert_of(t, "performance", "accuracy").status is Status.OPEN


def test_incident_resolves_when_all_its_alerts_have() -> None:
    t = fresh()
    t.process([perf(0, ts=T0), sig("drift", "car_value", seq=1, ts=T0 + HOUR)])
    p = alert_of(t, "performance", "accuracy")
    d = alert_of(t, "drift", "car_value")
    assert p.incident_id == d.incident_id and p.incident_id is not None
    c1 = clear(t, 100)
    assert set(c1.alerts) == {p.alert_id}
    assert t.alerts[p.alert_id].status is Status.RESOLVED
    assert t.alerts[d.alert_id].status is Status.OPEN
    assert c1.resolved_incidents == []
    assert t.incidents[p.incident_id].status is Status.OPEN
    c2 = clear(t, 1000, scope=INPUT_SCOPE, step=1000)
    assert c2.resolved_incidents == [p.incident_id]
    assert t.alerts[d.alert_id].resolved_at == T0 + 3000


def test_a_later_signal_opens_a_new_alert_in_a_new_incident() -> None:
    t = fresh()
    first = t.process([perf(0, ts=T0)])
    old = only(first.alerts.values())
    clear(t, 100, n=RESOLVE + FLAP_WINDOW + 1)  # resolved, and past the flap window
    assert old.alert_id not in t.alerts  # forgotten: the store keeps it
    later = t.process([perf(50_000, ts=T0 + 10 * HOUR)])
    new = alert_of(t, "performance", "accuracy")
    assert new.alert_id != old.alert_id
    assert new.incident_id != old.incident_id
    assert (new.occurrences, new.first_seq, new.flaps, new.flapping) == (1, 50_000, 0, False)
    page = only(later.pages)
    assert (page.alert_id, page.incident_id) == (new.alert_id, new.incident_id)


def test_silenced_alerts_resolve_too() -> None:
    t = Triage(TriagePolicy(), silences=[Silence("s", ends_at=T0 + 10 * HOUR)])
    t.process([perf(0, ts=T0)])
    c = clear(t, 100)
    assert only(c.alerts.values()).status is Status.RESOLVED
    assert len(c.resolved_incidents) == 1


# -- flapping ------------------------------------------------------------------------------


def test_flapping_alert_stops_paging() -> None:
    t = fresh()
    pages: list[int] = []
    alerts: list[Alert] = []
    seq = 0
    for _ in range(6):
        c = t.process([perf(seq)])
        pages.append(len(c.pages))
        alerts.append(alert_of(t, "performance", "accuracy"))
        resolved = clear(t, seq + 100)
        assert len(resolved.resolved_incidents) == 1
        seq += 100 * (RESOLVE + 5)  # fires again 5 evaluations after resolving (< 20)
    assert [(a.flaps, a.flapping) for a in alerts] == [
        (0, False),
        (1, False),
        (2, False),
        (3, True),
        (4, True),
        (5, True),
    ]
    assert pages == [1, 0, 0, 0, 0, 0]  # each flap reopens the paged incident
    assert len({a.alert_id for a in alerts}) == 6
    assert len({a.incident_id for a in alerts}) == 1
    flapping = alerts[3]
    assert (flapping.route, flapping.severity) == (Route.LOG, 0.75)


def test_a_refire_after_the_flap_window_is_not_a_flap() -> None:
    t = fresh()
    t.process([perf(0)])
    clear(t, 100, n=RESOLVE + FLAP_WINDOW)  # the last one: exactly the window
    t.process([perf(10_000)])
    assert alert_of(t, "performance", "accuracy").flaps == 1  # on the edge: a flap
    clear(t, 10_100, n=RESOLVE + FLAP_WINDOW + 1)
    c = t.process([perf(20_000)])
    a = alert_of(t, "performance", "accuracy")
    assert (a.flaps, a.flapping) == (0, False)
    assert len(c.pages) == 1


# -- feedback ------------------------------------------------------------------------------


def paged_with_feedback(n: int, policy: TriagePolicy | None = None) -> tuple[Alert, bool]:
    key = (MODEL, "performance", "accuracy")
    t = Triage(policy or TriagePolicy(), feedback=Counter({key: n}))
    c = t.process([perf(1, evidence={"drop": 0.06, "max_drop": 0.02})])  # impact 0.8
    return only(c.alerts.values()), bool(c.pages)


def test_not_actionable_feedback_stops_paging_at_one_with_defaults() -> None:
    a0, paged0 = paged_with_feedback(0)
    assert (a0.severity, a0.route, paged0) == (0.8, Route.PAGE, True)
    assert "feedback" not in [f.name for f in a0.factors]
    a1, paged1 = paged_with_feedback(1)
    assert (a1.severity, a1.route, paged1) == (0.4, Route.DIGEST, False)
    assert [(f.name, f.note) for f in a1.factors] == [
        ("impact", "accuracy fell 0.060 (tolerance 0.020)"),
        ("feedback", "marked not actionable 1 time(s)"),
    ]
    assert [f.value for f in a1.factors] == pytest.approx([0.8, -0.4])
    a2, _ = paged_with_feedback(2)
    a3, _ = paged_with_feedback(3)
    assert (a2.severity, a2.route) == (0.2, Route.LOG)
    assert a3.severity == 0.1


def test_feedback_lowers_the_score_geometrically() -> None:
    policy = TriagePolicy(not_actionable_factor=0.9)
    results = [paged_with_feedback(n, policy) for n in range(6)]
    assert [a.severity for a, _ in results] == [0.8, 0.72, 0.648, 0.5832, 0.5249, 0.4724]
    assert [paged for _, paged in results] == [True, True, True, False, False, False]


def test_feedback_is_per_model_kind_and_subject() -> None:
    t = Triage(
        TriagePolicy(),
        feedback=Counter(
            {(MODEL, "performance", "roc_auc"): 5, ("other", "performance", "accuracy"): 5}
        ),
    )
    c = t.process([perf(1)])
    assert only(c.alerts.values()).severity == 0.75
    assert len(c.pages) == 1


# -- per-model clocks (history only) --------------------------------------------------------


def test_per_model_clocks_follow_their_own_signals() -> None:
    t = fresh()
    t.process([perf(0, ts=T0, model_id="a"), perf(1, ts=T0, model_id="b")])
    assert t.clocks == {"a": T0, "b": T0}
    c = t.process([perf(2, ts=T0 + 10 * HOUR, model_id="b")])
    assert c.clocks == {"b": T0 + 10 * HOUR}
    assert t.clock("a") == T0
    assert t.clock("never_seen") == float("-inf")
    t.process([perf(3, ts=T0 - 5, model_id="b")])  # late data: the clock never goes back
    assert t.clocks == {"a": T0, "b": T0 + 10 * HOUR}


# -- hysteresis: the same condition soon after its incident resolved ---------------------


def test_the_same_condition_firing_again_soon_reopens_its_incident_without_a_new_page() -> None:
    t = fresh()
    first = t.process([perf(0, ts=T0)])
    assert len(first.pages) == 1
    clear(t, 100)
    old = alert_of(t, "performance", "accuracy")
    assert old.status is Status.RESOLVED
    (incident,) = t.incidents.values()
    assert incident.status is Status.RESOLVED and incident.resolved_at == T0 + 300
    clear(t, 400, n=FLAP_WINDOW - 1)
    # fires again within the flap window (20 evaluations), however much time passed
    again = t.process([perf(10_000, ts=T0 + 30 * 86_400)])
    new = alert_of(t, "performance", "accuracy")
    assert new.alert_id != old.alert_id and new.incident_id == old.incident_id
    assert again.pages == []
    reopened = t.incidents[incident.incident_id]
    assert reopened.status is Status.OPEN and reopened.resolved_at is None
    assert reopened.alert_ids == (old.alert_id, new.alert_id)


def test_the_same_condition_firing_again_later_is_a_new_incident_and_pages() -> None:
    t = fresh()
    t.process([perf(0, ts=T0)])
    clear(t, 100, n=RESOLVE + FLAP_WINDOW + 1)
    again = t.process([perf(10_000, ts=T0 + 60)])  # a minute later, but many evaluations
    new = alert_of(t, "performance", "accuracy")
    assert len(t.incidents) == 1 and new.incident_id in t.incidents
    assert [p.alert_id for p in again.pages] == [new.alert_id]
