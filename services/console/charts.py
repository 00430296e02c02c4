"""The model-health page's charts, from the stored statistic snapshots: pure data for the
page's script (``static/charts.js`` draws them with uPlot).

A chart is one statistic of one scope: its values over time, its threshold (for
performance, the tolerance line), and the spans during which an alert on it was firing.
Performance puts the realized metric and its estimate (``estimated_<metric>``) of the same
slice and version on one chart.

>>> from datetime import UTC, datetime
>>> t = lambda m: datetime(2019, 3, 1, 2, m, tzinfo=UTC)
>>> snaps = [Snapshot("f1", "performance", "accuracy", "accuracy", None, None, t(0), 0.7, 0.85),
...          Snapshot("f2", "performance", "accuracy", "estimated_accuracy", None, None, t(1),
...                   0.72, 0.85),
...          Snapshot("f3", "drift", "car_value", "psi", None, None, t(1), 2.0, 0.2)]
>>> sections = health_sections(snaps, [("f1", t(0), t(5))])
>>> for section in sections:
...     print(section.title, [c.title for c in section.charts])
Performance ['accuracy: overall']
Features: drift and data quality ['car_value: psi (drift)']
Predictions and labels []
Business metrics []
Traffic and label arrival []
>>> perf = sections[0].charts[0]
>>> perf.x
[1551405600.0, 1551405660.0]
>>> for s in perf.series:
...     print(s.label, s.role, s.values)
realized value [0.7, None]
estimated estimate [None, 0.72]
tolerance line threshold [0.85, 0.85]
>>> perf.bands
[(1551405600.0, 1551405900.0)]
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.store import Snapshot

ESTIMATED = "estimated_"
FEATURE_KINDS = ("drift", "data_quality", "schema")
OUTPUT_KINDS = ("prediction_drift", "label_drift")


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: list[float | None]
    role: str  # value | estimate | threshold: how the script draws it


@dataclass(slots=True)
class Chart:
    chart_id: str
    title: str
    x: list[float]
    series: list[Series]
    bands: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.chart_id, "title": self.title, "x": self.x,
                "series": [{"label": s.label, "values": s.values, "role": s.role}
                           for s in self.series],
                "bands": [list(b) for b in self.bands]}


@dataclass(slots=True)
class Section:
    title: str
    note: str
    charts: list[Chart] = field(default_factory=list)


def _scope(s: Snapshot) -> str:
    parts = [p for p in (s.slice, f"version {s.model_version}" if s.model_version else None)
             if p]
    return ", ".join(parts) or "overall"


def _finite(value: float) -> float | None:
    """A value JSON can carry (no NaN or infinity: a gap instead)."""
    return value if math.isfinite(value) else None


def _aligned(x_by_series: Sequence[dict[float, float | None]]) -> tuple[list[float],
                                                                  list[list[float | None]]]:
    """Series on one time axis (uPlot draws aligned columns): None where one has no
    value."""
    xs = sorted({x for series in x_by_series for x in series})
    return xs, [[series.get(x) for x in xs] for series in x_by_series]


def _chart(chart_id: str, title: str, members: list[tuple[str, str, list[Snapshot]]],
           spans: dict[str, list[tuple[float, float]]]) -> Chart:
    """One chart: ``members`` are (label, role, snapshots); the threshold line is the
    first member's."""
    columns = [{s.ts.timestamp(): _finite(s.value) for s in snaps} for _, _, snaps in members]
    threshold = {s.ts.timestamp(): _finite(s.threshold) for _, _, snaps in members
                 for s in snaps}
    xs, values = _aligned([*columns, threshold])
    line_label = "tolerance line" if members[0][2][0].kind == "performance" else "threshold"
    series = [Series(label, vals, role) for (label, role, _), vals
              in zip(members, values, strict=False)]
    # the threshold is a level: carried across the gaps of its own samples
    level: list[float | None] = []
    last: float | None = None
    for v in values[-1]:
        last = v if v is not None else last
        level.append(last)
    series.append(Series(line_label, level, "threshold"))
    bands = sorted({b for _, _, snaps in members for b in spans.get(snaps[0].fingerprint, [])})
    return Chart(chart_id, title, xs, series, bands)


def health_sections(snapshots: Iterable[Snapshot],
                    alert_spans: Iterable[tuple[str, datetime, datetime]]) -> list[Section]:
    """The page's sections and their charts. ``alert_spans`` are (fingerprint, first seen,
    last seen) of the alerts in the range: shaded on their statistic's chart."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for fingerprint, raised, last in alert_spans:
        spans[fingerprint].append((raised.timestamp(), last.timestamp()))
    by_key: dict[tuple[str, ...], list[Snapshot]] = defaultdict(list)
    for s in snapshots:
        by_key[(s.kind, s.subject, s.statistic, s.slice or "", s.model_version or "",
                s.fingerprint)].append(s)
    sections = {
        "performance": Section("Performance", "realized (from labels) and estimated (from "
                               "scores, before the labels come), against the tolerance line: "
                               "overall, per slice and per version"),
        "feature": Section("Features: drift and data quality",
                           "per feature: drift (PSI, Jensen-Shannon), nulls, out-of-range "
                           "values, schema"),
        "output": Section("Predictions and labels", "the prediction's and the label's "
                          "distributions against the reference"),
        "business": Section("Business metrics", "product metrics against their reference"),
        "health": Section("Traffic and label arrival", "label join and arrival, calibration, "
                          "traffic: the monitoring's own health"),
    }
    performance: dict[tuple[str, str, str], list[tuple[str, str, list[Snapshot]]]] = (
        defaultdict(list))
    for n, (key, snaps) in enumerate(sorted(by_key.items())):
        kind, subject, statistic, _, _, _ = key
        first = snaps[0]
        if kind in ("performance", "canary", "fallback"):
            base = statistic.removeprefix(ESTIMATED)
            estimated = statistic.startswith(ESTIMATED)
            performance[(base, first.slice or "", first.model_version or "")].append(
                ("estimated" if estimated else "realized",
                 "estimate" if estimated else "value", snaps))
            continue
        group = ("feature" if kind in FEATURE_KINDS else "output" if kind in OUTPUT_KINDS
                 else "business" if kind == "business_metric" else "health")
        title = f"{subject}: {statistic}" + (f" ({kind})" if group == "feature" else "")
        if first.slice or first.model_version:
            title += f" [{_scope(first)}]"
        sections[group].charts.append(_chart(f"c{n}", title, [(statistic, "value", snaps)],
                                             spans))
    # overall first, then slices, then versions; realized before estimated
    order = sorted(performance.items(), key=lambda kv: (bool(kv[0][2]), bool(kv[0][1]), kv[0]))
    for n, ((base, _, _), members) in enumerate(order):
        members.sort(key=lambda m: m[1] != "value")
        sections["performance"].charts.append(_chart(
            f"p{n}", f"{base}: {_scope(members[0][2][0])}", members, spans))
    return list(sections.values())
