"""Performance estimated from scores before the labels come
(``stream.monitors.estimated_performance``), driven through the core.

The model is calibrated by construction: a row's score ``s`` is drawn, its label is 1 with
probability ``s``, the model predicts 1 when ``s >= 0.5``. Its accuracy is the mean of
``max(s, 1 - s)``: about 0.90 for scores from Beta(0.25, 0.25) (the reference). A covariate
shift that draws scores from Beta(0.6, 0.6) instead (more uncertain rows) lowers it to
about 0.80, and the estimate sees that from the scores alone.
"""

from __future__ import annotations

import json

import numpy as np

from alerts.model import Alert
from alerts.triage import Triage
from config.file import TriagePolicy, load_config_text
from stream.core import Core
from stream.events import Prediction
from stream.reference import build_profile
from stream.signals import Kind, Signal

T0 = 1_700_000_000.0
CONFIG = """\
models:
  m:
    task: binary_classification
    reference: r.jsonl
    performance: {metric: accuracy, max_drop: 0.02}
monitoring:
  performance: {join_wait_seconds: 3600}
"""


def draw(rng: np.random.Generator, n: int, a: float) -> tuple[np.ndarray, np.ndarray]:
    s = rng.beta(a, a, n)
    return s, (rng.random(n) < s).astype(int)


def make_core(seed: int = 1) -> Core:
    cfg = load_config_text(CONFIG)
    rng = np.random.default_rng(seed)
    s, y = draw(rng, 5_000, 0.25)
    ref = [Prediction(ts=float(i), model_id="m", features={"x": float(v)},
                      prediction=int(v >= 0.5), score=float(v), label=int(lab))
           for i, (v, lab) in enumerate(zip(s, y, strict=True))]
    return Core(cfg, {"m": build_profile("m", cfg.models["m"], ref, bins=10)})


def stream(rng: np.random.Generator, n: int, a: float, start: int, *,
           labels_after: int | None = None, flip: float = 0.0) -> list[bytes]:
    """Predictions with request ids; with ``labels_after``, each one's outcome comes that
    many predictions later (else never); ``flip``: share of labels turned over (a concept
    shift)."""
    s, y = draw(rng, n, a)
    flips = rng.random(n) < flip
    y = np.where(flips, 1 - y, y)
    out: list[bytes] = []
    for i in range(n):
        k = start + i
        out.append(json.dumps({"type": "prediction", "ts": T0 + k, "model_id": "m",
                               "request_id": f"r{k}", "features": {"x": float(s[i])},
                               "prediction": int(s[i] >= 0.5),
                               "score": float(s[i])}).encode())
        if labels_after is not None and i >= labels_after:
            j = i - labels_after
            out.append(json.dumps({"type": "outcome", "ts": T0 + k, "model_id": "m",
                                   "request_id": f"r{start + j}", "label": int(y[j])}).encode())
    return out


def run(core: Core, lines: list[bytes], triage: Triage | None = None,
        history: dict[str, Alert] | None = None) -> list[Signal]:
    """Feed the core (and triage); ``history`` gets the last state of every alert."""
    signals: list[Signal] = []
    for k in range(0, len(lines), 700):
        result = core.process(lines[k:k + 700])
        signals.extend(result.signals)
        if triage is not None:
            changes = triage.process(result.signals, result.evaluations)
            if history is not None:
                history.update(changes.alerts)
    return signals


def estimated(signals: list[Signal]) -> list[Signal]:
    return [s for s in signals if s.statistic == "estimated_accuracy"]


def test_a_stationary_stream_raises_no_estimate() -> None:
    core = make_core()
    rng = np.random.default_rng(2)
    signals = run(core, stream(rng, 30_000, 0.25, 0))
    assert estimated(signals) == []
    assert core.models["m"].estimated is not None
    assert core.models["m"].estimated.counters() == {
        "blocks": 300, "confirmed": 0, "withdrawn": 0, "suspended": False}


def test_a_covariate_shift_pages_before_its_labels() -> None:
    core = make_core()
    rng = np.random.default_rng(3)
    lines = stream(rng, 5_000, 0.25, 0) + stream(rng, 5_000, 0.6, 5_000)  # no labels
    triage = Triage(TriagePolicy())
    signals = run(core, lines, triage)
    first = estimated(signals)[0]
    onset_seq = 5_000
    assert 0 < first.seq - onset_seq <= 2_000
    ev = first.evidence
    assert ev["estimated"] is True and ev["realized_labels"] == 0 and ev["realized"] is None
    assert float(ev["reference"]) > 0.88 and float(ev["drop"]) > 0.05  # type: ignore[arg-type]
    (incident,) = triage.incidents.values()
    assert incident.paged_at is not None
    lead = triage.alerts[incident.lead_alert_id or ""]
    assert (lead.kind, lead.statistic) == ("performance", "estimated_accuracy")
    assert "estimated from scores" in " ".join(f.note for f in lead.factors)


def test_labels_that_show_no_fall_withdraw_the_estimate() -> None:
    """The scores move to the middle but the labels stay right (the model is surer than
    its scores say): the realized accuracy is that of the reference, the estimate is
    withdrawn and its alert resolves."""
    core = make_core()
    rng = np.random.default_rng(4)
    lines = stream(rng, 4_000, 0.25, 0, labels_after=50)
    s, _ = draw(rng, 8_000, 0.6)
    for i in range(8_000):
        k = 4_000 + i
        lines.append(json.dumps({"type": "prediction", "ts": T0 + k, "model_id": "m",
                                 "request_id": f"r{k}", "features": {"x": float(s[i])},
                                 "prediction": int(s[i] >= 0.5),
                                 "score": float(s[i])}).encode())
        if i >= 50:  # a right label, always
            j = 4_000 + i - 50
            lines.append(json.dumps({"type": "outcome", "ts": T0 + k, "model_id": "m",
                                     "request_id": f"r{j}",
                                     "label": int(s[i - 50] >= 0.5)}).encode())
    triage = Triage(TriagePolicy())
    history: dict[str, Alert] = {}
    signals = run(core, lines, triage, history)
    assert estimated(signals), "the scores alone say accuracy fell"
    alerts = [a for a in history.values() if a.statistic == "estimated_accuracy"]
    assert len(alerts) == 1 and alerts[0].status.value == "resolved"
    est = core.models["m"].estimated
    assert est is not None and est.counters()["withdrawn"] == 1 and est.suspended
    # and the labels say why: they do not follow the scores' calibration any more
    assert any(a.statistic == "calibration_z" for a in history.values())
    assert [s for s in signals if s.statistic == "accuracy"] == []  # realized: no fall


def test_a_concept_shift_breaks_the_calibration_and_says_so() -> None:
    core = make_core()
    rng = np.random.default_rng(5)
    lines = stream(rng, 3_000, 0.25, 0, labels_after=20)
    lines += stream(rng, 6_000, 0.25, 3_000, labels_after=20, flip=0.3)
    signals = run(core, lines)
    calibration = [s for s in signals if s.kind is Kind.MONITORING_HEALTH
                   and s.subject == "calibration"]
    assert calibration and calibration[0].seq > 3_000 * 2
    assert float(calibration[0].value) > 4  # z
    assert "cannot be trusted" in str(calibration[0].evidence["reason"])
    assert core.models["m"].estimated is not None and core.models["m"].estimated.suspended


def test_labels_that_show_the_fall_confirm_the_estimate() -> None:
    """A calibrated model under the covariate shift, its labels 500 predictions late: the
    estimate pages first; the labels confirm it, and stand beside it in the evidence."""
    core = make_core()
    rng = np.random.default_rng(6)
    lines = (stream(rng, 5_000, 0.25, 0, labels_after=500)
             + stream(rng, 5_000, 0.6, 5_000, labels_after=500))
    triage = Triage(TriagePolicy())
    signals = run(core, lines, triage)
    est = core.models["m"].estimated
    assert est is not None and est.counters()["confirmed"] >= 1
    assert est.counters()["withdrawn"] == 0 and not est.suspended
    first = estimated(signals)[0]
    realized_first = next(s for s in signals if s.statistic == "accuracy")
    assert first.seq < realized_first.seq  # before the labels could show it
    later = [s for s in estimated(signals) if int(s.evidence["realized_labels"]) >= 200]  # type: ignore[arg-type]
    assert later, "the realized value comes to stand beside the estimate"
    last = later[-1]
    assert abs(float(last.evidence["realized"]) - float(last.value)) < 0.04  # type: ignore[arg-type]
    (incident,) = triage.incidents.values()  # the estimate and the labels: one incident
    assert {triage.alerts[a].statistic for a in incident.alert_ids} >= {
        "estimated_accuracy", "accuracy"}
