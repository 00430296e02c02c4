"""Severity on impact: a score in [0, 1] with the factors that explain it.

Page on impact, not on change (DESIGN.md). What a person must act on scores high: a
measured performance fall beyond tolerance (weighted by the share of traffic it touches),
corrupted data (schema breaks, hard-bound violations, null spikes, unit changes), a falling
business metric. Drift scores low: it is context for those, and goes to the digest.
Persistence raises a score a little; "not actionable" feedback on the same model, kind and
subject lowers it geometrically, until it stops paging.

>>> from alerts.model import Alert
>>> from config.file import TriagePolicy
>>> a = Alert("a1", "fp", "m", Kind.DRIFT, "x", "psi", None, None, 0.0, 0.0, 0, 0, 1, 0.4, 0.2, {})
>>> severity, factors = score(a, TriagePolicy(), not_actionable=0)
>>> severity, [f.name for f in factors]
(0.2, ['impact'])
"""

from __future__ import annotations

from typing import Any

from alerts.model import Alert, Factor, Incident, Route
from config.file import TriagePolicy
from stream.signals import Kind

CORRUPTION = 0.85
PERFORMANCE = 0.7
BUSINESS = 0.75
HEALTH = 0.8  # a blind monitor is actionable: performance is not watched at all
CONTEXT = {Kind.DRIFT: 0.2, Kind.PREDICTION_DRIFT: 0.3, Kind.LABEL_DRIFT: 0.3}
PERSISTENCE_STEP = 0.05
PERSISTENCE_MAX = 0.15
BREADTH_STEP = 0.03
BREADTH_MAX = 0.12


def _num(evidence: dict[str, Any], key: str, default: float = 0.0) -> float:
    value = evidence.get(key)
    return float(value) if isinstance(value, (int, float)) else default


def impact(alert: Alert, policy: TriagePolicy) -> Factor:
    """The base score: how much a person must care about this kind of finding."""
    kind, stat, ev = alert.kind, alert.statistic, alert.evidence
    if kind == Kind.SCHEMA:
        return Factor("impact", CORRUPTION, f"schema break: {stat} {alert.value:.2%}")
    if kind == Kind.DATA_QUALITY:
        if stat in ("null_rate", "out_of_bounds_rate"):
            return Factor("impact", CORRUPTION, f"data corruption: {stat} {alert.value:.2%}")
        if stat == "out_of_range_rate" and alert.value >= policy.out_of_range_corruption_rate:
            return Factor("impact", CORRUPTION,
                          f"{alert.value:.0%} of values outside the reference range "
                          "(a unit change or a broken transform)")
        if (stat == "unseen_category_rate"
                and alert.value >= policy.unseen_category_corruption_rate):
            return Factor("impact", CORRUPTION,
                          f"{alert.value:.0%} of values are categories never seen")
        return Factor("impact", 0.3, f"{stat} {alert.value:.2%}: unusual values, not corruption")
    if kind == Kind.PERFORMANCE:
        drop = _num(ev, "drop")
        max_drop = _num(ev, "max_drop", 0.0) or 1e-9
        excess = min(max(drop / max_drop - 1.0, 0.0), 3.0)
        base = PERFORMANCE + 0.05 * excess
        note = f"{alert.statistic} fell {drop:.3f} (tolerance {max_drop:.3f})"
        if ev.get("estimated") is True:
            realized = ev.get("realized")
            note += (" (estimated from scores before the labels came"
                     + (f"; realized so far {float(realized):.3f}"
                        if isinstance(realized, (int, float)) else "") + ")")
        if alert.slice is not None:
            share = _num(ev, "traffic_share", 1.0)
            if share < policy.min_slice_share:
                return Factor("impact", 0.3, f"{note} on a slice of {share:.1%} of traffic "
                                             f"(below {policy.min_slice_share:.0%})")
            note += f" on a slice of {share:.1%} of traffic"
        return Factor("impact", min(base, 0.95), note)
    if kind == Kind.BUSINESS_METRIC:
        rel = _num(ev, "relative_drop")
        return Factor("impact", BUSINESS, f"{alert.subject} fell {rel:.1%} from its reference")
    if kind == Kind.MONITORING_HEALTH:
        reason = ev.get("reason") or f"{stat} {alert.value:.4g}"
        if stat == "calibration_z":  # estimates off; the labels still measure performance
            return Factor("impact", 0.4, f"calibration drift: {reason}")
        return Factor("impact", HEALTH, f"performance unmonitored: {reason}")
    if kind in (Kind.CANARY, Kind.FALLBACK):
        return Factor("impact", PERFORMANCE, f"{kind}: {stat} {alert.value:.4g}")
    base = CONTEXT.get(kind, 0.2)
    return Factor("impact", base, f"{kind}: context for other alerts, not a page on its own")


def score(alert: Alert, policy: TriagePolicy, not_actionable: int) -> tuple[float,
                                                                            tuple[Factor, ...]]:
    """An alert's severity and its factors."""
    factors = [impact(alert, policy)]
    if alert.occurrences > 1:
        bonus = min(PERSISTENCE_STEP * (alert.occurrences - 1), PERSISTENCE_MAX)
        factors.append(Factor("persistence", bonus, f"seen {alert.occurrences} times"))
    value = sum(f.value for f in factors)
    if not_actionable:
        mult = policy.not_actionable_factor ** not_actionable
        factors.append(Factor("feedback", value * mult - value,
                              f"marked not actionable {not_actionable} time(s)"))
        value *= mult
    return round(min(max(value, 0.0), 1.0), 4), tuple(factors)


def route_for(severity: float, policy: TriagePolicy) -> Route:
    if severity >= policy.page_threshold:
        return Route.PAGE
    if severity >= policy.digest_threshold:
        return Route.DIGEST
    return Route.LOG


def is_muted(alert: Alert) -> bool:
    """Silenced, inhibited or flapping: kept in history, never paged."""
    return alert.silenced_by is not None or alert.inhibited_by is not None or alert.flapping


def score_incident(incident: Incident, alerts: list[Alert],
                   policy: TriagePolicy) -> tuple[float, tuple[Factor, ...], Alert | None]:
    """An incident scores as its worst live (active, not muted) alert, plus a little for
    breadth."""
    live = [a for a in alerts if a.active and not is_muted(a)]
    if not live:
        return 0.0, (Factor("muted", 0.0, "no active alert that is not silenced, inhibited "
                                          "or flapping"),), None
    lead = max(live, key=lambda a: (a.severity, -a.first_seq))
    reasons = "; ".join(f.note for f in lead.factors)
    factors = [Factor("lead", lead.severity, f"worst alert ({lead.kind} on {lead.scope}): "
                                             f"{reasons}")]
    subjects = {(a.kind, a.subject) for a in live}
    if len(subjects) > 1:
        bonus = min(BREADTH_STEP * (len(subjects) - 1), BREADTH_MAX)
        factors.append(Factor("breadth", bonus, f"{len(subjects)} related findings"))
    value = sum(f.value for f in factors)
    if lead.route is not Route.PAGE:
        # breadth orders incidents; it never turns context into a page
        value = min(value, policy.page_threshold - 1e-6)
    return round(min(value, 1.0), 4), tuple(factors), lead
