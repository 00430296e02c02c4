"""Monitoring health (``stream.monitors.health``): labels that fail are said, with why, and
page; healthy labels say nothing. Driven through the core with the hand-built model of
``test_monitors`` (windows of 200 predictions and 200 outcomes)."""

from __future__ import annotations

from typing import Any

from alerts.triage import Triage
from config.file import TriagePolicy, load_config_text
from stream.core import Core
from stream.events import Prediction
from stream.reference import build_profile
from stream.signals import Kind, Signal
from tests.unit.test_monitors import (
    T0,
    features,
    label,
    make_core,
    outcome_line,
    pred,
    pred_line,
)

DAY = 86_400.0


def health(signals: list[Signal]) -> list[tuple[str, str, int]]:
    return [(s.subject, s.statistic, s.seq) for s in signals
            if s.kind is Kind.MONITORING_HEALTH]


def delayed(n: int, delay: float, *, every: float = 600.0, id_prefix: str = "r",
            outcome_prefix: str = "r") -> list[bytes]:
    """A prediction every ``every`` seconds, each one's outcome ``delay`` seconds later
    (placed in time order)."""
    events: list[tuple[float, int, bytes]] = []
    for i in range(n):
        t = T0 + i * every
        events.append((t, 0, pred_line(i, ts=t, request_id=f"{id_prefix}{i}")))
        events.append((t + delay, 1, outcome_line(f"{outcome_prefix}{i}", t + delay,
                                                  label(i))))
    return [line for _, _, line in sorted(events, key=lambda e: (e[0], e[1]))]


def run_all(core: Core, lines: list[bytes], batch: int = 500) -> list[Signal]:
    out: list[Signal] = []
    for k in range(0, len(lines), batch):
        out.extend(core.process(lines[k:k + batch]).signals)
    return out


def test_labels_within_the_ttl_say_nothing_at_any_rate() -> None:
    for every in (0.005, 600.0):
        core = make_core(ttl=30 * DAY)
        assert health(run_all(core, delayed(2_000, 12 * DAY, every=every))) == [], every
        assert core.counters()["join"]["matched"] == 2_000


def test_labels_later_than_the_ttl_are_said_and_why() -> None:
    core = make_core(ttl=7 * DAY)
    signals = run_all(core, delayed(2_000, 12 * DAY))
    found = health(signals)
    # every outcome is late: the first window of 200 outcomes says so; the outcomes'
    # clock is 12 days behind the predictions', more than the 7-day TTL
    assert ("labels", "late_label_rate") in {(s, st) for s, st, _ in found}
    assert ("label_arrival", "outcome_lag_days") in {(s, st) for s, st, _ in found}
    late = next(s for s in signals if s.statistic == "late_label_rate")
    assert late.value == 1.0 and late.threshold == 0.25
    assert late.evidence["late"] == 200 and late.evidence["matched"] == 0
    assert late.evidence["median_lateness_days"] == 12.0
    assert "raise join_ttl_seconds" in str(late.evidence["reason"])
    assert late.evidence["performance_unmonitored"] is True
    assert core.counters()["join"]["matched"] == 0


def test_a_blind_monitor_pages_once() -> None:
    core = make_core(ttl=7 * DAY)
    triage = Triage(TriagePolicy())
    pages = []
    lines = delayed(3_000, 12 * DAY)
    for k in range(0, len(lines), 500):
        result = core.process(lines[k:k + 500])
        pages.extend(triage.process(result.signals, result.evaluations).pages)
    assert [(p.kind, p.subject) for p in pages] == [("monitoring_health", "label_arrival")]
    (incident,) = triage.incidents.values()
    assert {triage.alerts[a].statistic for a in incident.alert_ids} == {
        "outcome_lag_days", "late_label_rate"}


def test_request_ids_that_match_nothing_are_unknown() -> None:
    core = make_core(ttl=30 * DAY, wait=3600)
    signals = run_all(core, delayed(1_000, 60.0, outcome_prefix="other-"))
    unknown = [s for s in signals if s.statistic == "unknown_request_rate"]
    assert unknown and unknown[0].value == 1.0
    assert "match no prediction" in str(unknown[0].evidence["reason"])


def test_predictions_without_request_id_or_label_are_unlabellable() -> None:
    core = make_core()
    lines = [pred_line(i, request_id=None) for i in range(400)]
    found = health(run_all(core, lines))
    assert found == [("request_id", "unlabellable_rate", 199),
                     ("request_id", "unlabellable_rate", 399)]
    # inline labels are labels: nothing to say
    core = make_core()
    inline = [pred_line(i, request_id=None, label=label(i)) for i in range(400)]
    assert health(run_all(core, inline)) == []


def reference_core(extra: str = "", labels: bool = True) -> Core:
    cfg = load_config_text(
        "models:\n  m:\n    task: binary_classification\n    reference: r.jsonl\n" + extra)
    ref = [Prediction(ts=float(i), model_id="m", features=features(i), prediction=pred(i),
                      label=label(i) if labels else None) for i in range(1000)]
    return Core(cfg, {"m": build_profile("m", cfg.models["m"], ref, bins=10)})


def test_a_reference_without_labels_is_said_every_window() -> None:
    lines = [pred_line(i) for i in range(2_000)]
    found = health(run_all(reference_core(labels=False), lines))
    assert found == [("reference", "reference_labels", k * 1000 + 999) for k in range(2)]
    # a model that gets no labels, said so in its config, is not warned about
    quiet = reference_core("    performance: {expect_labels: false}\n", labels=False)
    assert health(run_all(quiet, lines)) == []
    assert health(run_all(reference_core(), lines)) == []


def test_a_health_alert_resolves_once_the_labels_are_joined_again() -> None:
    """Labels 12 days late with a 7-day TTL, then (a fixed producer) on time: the health
    alerts resolve after clear evaluations."""
    core = make_core(ttl=7 * DAY)
    triage = Triage(TriagePolicy())
    late = delayed(1_500, 12 * DAY)
    fixed: list[tuple[float, int, bytes]] = []
    t0 = T0 + 1_600 * 600.0 + 13 * DAY
    for i in range(3_000):
        t = t0 + i * 600.0
        fixed.append((t, 0, pred_line(i, ts=t, request_id=f"f{i}")))
        fixed.append((t + 60.0, 1, outcome_line(f"f{i}", t + 60.0, label(i))))
    lines = late + [line for _, _, line in sorted(fixed, key=lambda e: (e[0], e[1]))]
    for k in range(0, len(lines), 500):
        result = core.process(lines[k:k + 500])
        triage.process(result.signals, result.evaluations)
    status: dict[str, Any] = {a.statistic: a.status.value for a in triage.alerts.values()
                              if a.kind == "monitoring_health"}
    assert status == {"outcome_lag_days": "resolved", "late_label_rate": "resolved"}
    assert all(i.status.value == "resolved" for i in triage.incidents.values())
