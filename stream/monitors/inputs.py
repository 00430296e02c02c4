"""Input and output monitor: schema, data quality and drift of features, predictions, scores.

Per model, prediction events are cut into tumbling windows (:class:`WindowClock`); each
column accumulates a histogram and counters over the window, and when the window closes
every column is tested against its reference profile:

- *schema*: a feature missing, a new feature, a value of the wrong type;
- *data quality*: null rate, hard-bound violations (config), values outside the
  reference's observed range, unseen categories;
- *drift*: PSI of the window's histogram against the reference's, which must both exceed
  a practical threshold and be significant (chi-square test), at a level corrected for the
  number of tests in the window, so that a stationary stream stays quiet.

Memory per column is bounded: a window counts its first ``quality.max_unseen_values``
distinct unseen categories by value (a signal's examples) and its first
``quality.max_new_features`` new feature names; the others count in the rates all the same
and as untracked (``untracked_unseen_rows``, ``untracked_new_feature_rows`` in evidence and
:meth:`InputMonitor.counters`).

Every closed window is an :class:`stream.signals.Evaluation` of all these series: one that
fires raises a signal; one whose effect is inside the hysteresis band (at least
``1 - hysteresis`` of its threshold, or over it without significance) or that could not be
tested (too few values) is *held*; the others are clear, which is what lets triage resolve
an alert that no longer fires.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from config.file import MonitoringSettings
from stream.columns import categorical, extract_all, numeric
from stream.events import Prediction
from stream.monitors.window import WindowClock
from stream.reference import CategoricalProfile, ModelProfile, NumericProfile, Profile
from stream.signals import (
    Evaluation,
    EvidenceValue,
    Findings,
    Kind,
    Sample,
    Scope,
    SeriesKey,
    Signal,
    Window,
)
from stream.state import State, StateError, array, check, unarray
from stream.stats import chi2_homogeneity_p, psi, rate_increase_z, z_critical

MIN_DRIFT_VALUES = 100
TESTS_PER_COLUMN = 6
MAX_EXAMPLES = 5
INPUT_SCOPE = Scope(frozenset({Kind.SCHEMA, Kind.DATA_QUALITY, Kind.DRIFT,
                               Kind.PREDICTION_DRIFT}))
LABEL_SCOPE = Scope(frozenset({Kind.LABEL_DRIFT}))


@dataclass(slots=True)
class _Verdicts:
    """One window's outcome: the signals raised, the series held (neither fired nor
    clear) and the value of every series tested that had one."""

    signals: list[Signal] = field(default_factory=list)
    held: set[SeriesKey] = field(default_factory=set)
    samples: list[Sample] = field(default_factory=list)

    def sample(self, kind: Kind, subject: str, statistic: str, value: float,
               threshold: float) -> float:
        """Record a tested value (rounded as its signal's); returns the rounded value."""
        value = round(value, 6)
        self.samples.append(Sample(kind, subject, statistic, None, None, value, threshold))
        return value

    def evaluation(self, model_id: str, scope: Scope, window: Window) -> Evaluation:
        return Evaluation(model_id, scope, window.end_seq, window.end_ts, frozenset(self.held),
                          frozenset((s.kind, s.subject, s.statistic) for s in self.signals),
                          tuple(self.samples))


@dataclass(slots=True)
class _Acc:
    """One column's counters over the open window."""

    counts: NDArray[np.int64]
    rows: int = 0
    nulls: int = 0
    missing: int = 0
    mismatched: int = 0
    out_of_bounds: int = 0
    out_of_range: int = 0
    unseen: int = 0
    sum: float = 0.0
    sumsq: float = 0.0
    mismatch_example: str | None = None
    unseen_values: Counter[str] = field(default_factory=Counter)
    unseen_untracked: int = 0  # unseen values past the bound on distinct ones

    def state(self) -> State:
        return {"counts": array(self.counts), "rows": self.rows, "nulls": self.nulls,
                "missing": self.missing, "mismatched": self.mismatched,
                "out_of_bounds": self.out_of_bounds, "out_of_range": self.out_of_range,
                "unseen": self.unseen, "sum": self.sum, "sumsq": self.sumsq,
                "mismatch_example": self.mismatch_example,
                "unseen_values": dict(self.unseen_values),
                "unseen_untracked": self.unseen_untracked}

    def restore(self, state: State) -> None:
        self.counts = unarray(state["counts"], self.counts.shape)
        for name in ("rows", "nulls", "missing", "mismatched", "out_of_bounds",
                     "out_of_range", "unseen"):
            setattr(self, name, int(state[name]))
        self.sum, self.sumsq = float(state["sum"]), float(state["sumsq"])
        self.mismatch_example = state["mismatch_example"]
        self.unseen_values = Counter({str(k): int(v) for k, v in state["unseen_values"].items()})
        self.unseen_untracked = int(state.get("unseen_untracked", 0))

    def reset(self) -> None:
        self.counts[:] = 0
        self.rows = self.nulls = self.missing = self.mismatched = 0
        self.out_of_bounds = self.out_of_range = self.unseen = self.unseen_untracked = 0
        self.sum = self.sumsq = 0.0
        self.mismatch_example = None
        self.unseen_values.clear()


def _new_acc(profile: Profile) -> _Acc:
    if isinstance(profile, NumericProfile):
        return _Acc(np.zeros(len(profile.edges) + 1, dtype=np.int64))
    return _Acc(np.zeros(len(profile.categories) + 1, dtype=np.int64))  # last: unseen


def _add(acc: _Acc, profile: Profile, values: list[Any], max_unseen: int) -> None:
    acc.rows += len(values)
    if isinstance(profile, NumericProfile):
        col = numeric(values)
        finite = col.values[~np.isnan(col.values)] if col.nulls or col.missing or (
            col.mismatched) else col.values
        acc.counts += profile.histogram(finite)
        if len(finite):
            lo, hi = float(finite.min()), float(finite.max())
            if lo < profile.min or hi > profile.max:  # else nothing can be out of range
                acc.out_of_range += profile.out_of_range(finite)
            if ((profile.bound_min is not None and lo < profile.bound_min)
                    or (profile.bound_max is not None and hi > profile.bound_max)):
                acc.out_of_bounds += profile.out_of_bounds(finite)
        with np.errstate(over="ignore", invalid="ignore"):  # 1e308s: inf, not a warning
            acc.sum += float(finite.sum())
            acc.sumsq += float(np.dot(finite, finite))
        nulls, missing, mismatched, example = col.nulls, col.missing, col.mismatched, (
            col.mismatch_example
        )
    else:
        cat = categorical(values, profile.index, profile.value_types)
        acc.counts[:-1] += cat.counts
        acc.counts[-1] += cat.unseen
        acc.unseen += cat.unseen
        if cat.unseen_values:  # in order of first appearance: the first max_unseen stay
            kept = acc.unseen_values
            for value, count in cat.unseen_values.items():
                if value in kept or len(kept) < max_unseen:
                    kept[value] += count
                else:
                    acc.unseen_untracked += count
        nulls, missing, mismatched, example = cat.nulls, cat.missing, cat.mismatched, (
            cat.mismatch_example
        )
    acc.nulls += nulls
    acc.missing += missing
    acc.mismatched += mismatched
    if example is not None and acc.mismatch_example is None:
        acc.mismatch_example = example


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    profile: Profile
    kind: Kind  # the kind of a drift signal on it
    source: str  # "features" | "prediction" | "score"


class InputMonitor:
    """Windows over one model's prediction events; emits schema, quality and drift signals.

    Parameters
    ----------
    profile
        The model's reference profile.
    settings
        Statistical settings (window size, thresholds, level).
    """

    def __init__(self, profile: ModelProfile, settings: MonitoringSettings) -> None:
        self.profile = profile
        self.settings = settings
        cols = [_Column(n, p, Kind.DRIFT, "features") for n, p in profile.features.items()]
        cols.append(_Column("prediction", profile.prediction, Kind.PREDICTION_DRIFT, "prediction"))
        if profile.score is not None:
            cols.append(_Column("score", profile.score, Kind.PREDICTION_DRIFT, "score"))
        self._columns = tuple(cols)
        self._feature_columns = tuple(c for c in cols if c.source == "features")
        self._feature_names = tuple(c.name for c in self._feature_columns)
        self._names = frozenset(profile.features)
        self._n_features = len(profile.features)
        self._accs = {c.name: _new_acc(c.profile) for c in cols}
        self._new_features: Counter[str] = Counter()
        self._new_untracked = 0  # rows' new feature names past max_new_features, this window
        self.unseen_untracked = 0  # totals, all windows
        self.new_features_untracked = 0
        self._clock = WindowClock(settings.window_events, settings.window_seconds,
                                  settings.min_window_events)
        self._z = z_critical(settings.alpha, TESTS_PER_COLUMN * len(cols))
        self.windows_closed = 0

    def update(
        self, preds: Sequence[Prediction], seq: NDArray[np.int64], ts: NDArray[np.float64]
    ) -> Findings:
        """Add this model's predictions (in event order); every window they close is an
        evaluation (with the signals it raised)."""
        out = Findings()
        for a, b, window in self._clock.split(seq, ts):
            if b > a:
                self._add(preds[a:b])
            if window is not None:
                found = self._close(window)
                out.signals.extend(found.signals)
                out.evaluations.append(found.evaluation(self.profile.model_id, INPUT_SCOPE,
                                                        window))
        return out

    def state(self) -> State:
        """The open window, as plain data (the reference and settings are not in it)."""
        return {"kind": "inputs", "v": 1, "clock": self._clock.state(),
                "columns": {name: acc.state() for name, acc in self._accs.items()},
                "new_features": dict(self._new_features),
                "new_untracked": self._new_untracked,
                "untracked": [self.unseen_untracked, self.new_features_untracked],
                "windows_closed": self.windows_closed}

    def restore(self, state: State) -> None:
        """Resume the open window; StateError if it was kept for other columns or bins."""
        state = check(state, "inputs", 1)
        if set(state["columns"]) != set(self._accs):
            raise StateError("the model's columns changed")
        self._clock.restore(state["clock"])
        for name, acc in self._accs.items():
            acc.restore(state["columns"][name])
        self._new_features = Counter({str(k): int(v)
                                      for k, v in state["new_features"].items()})
        self._new_untracked = int(state.get("new_untracked", 0))
        self.unseen_untracked, self.new_features_untracked = (
            int(x) for x in state.get("untracked", (0, 0)))
        self.windows_closed = int(state["windows_closed"])

    def counters(self) -> dict[str, int]:
        """What the bounds left untracked, over all windows (counted in the rates all the
        same): unseen categories past ``max_unseen_values`` distinct ones per column and
        window, new feature names past ``max_new_features``."""
        return {"windows": self.windows_closed, "untracked_unseen_rows": self.unseen_untracked,
                "untracked_new_feature_rows": self.new_features_untracked}

    def _add(self, preds: Sequence[Prediction]) -> None:
        rows = [p.features for p in preds]
        columns = extract_all(rows, self._feature_names)
        cap = self.settings.quality.max_unseen_values
        for col, values in zip(self._feature_columns, columns, strict=True):
            _add(self._accs[col.name], col.profile, values, cap)
        nf = self._n_features
        lens = list(map(len, rows))
        if lens.count(nf) != len(lens) or self._accs_missing():
            names, new = self._names, self._new_features
            room = self.settings.quality.max_new_features
            for r in rows:
                if len(r) != nf or not names.issuperset(r):
                    for k in r:
                        if k in names:
                            continue
                        if k in new or len(new) < room:
                            new[k] += 1
                        else:
                            self._new_untracked += 1
        _add(self._accs["prediction"], self.profile.prediction, [p.prediction for p in preds],
             cap)
        if self.profile.score is not None:
            _add(self._accs["score"], self.profile.score, [p.score for p in preds], cap)

    def _accs_missing(self) -> bool:
        return any(self._accs[c.name].missing for c in self._feature_columns)

    def _close(self, window: Window) -> _Verdicts:
        self.windows_closed += 1
        out = _Verdicts()
        for col in self._columns:
            acc = self._accs[col.name]
            self._test(col, acc, window, out)
            self.unseen_untracked += acc.unseen_untracked
            acc.reset()
        untracked, self._new_untracked = self._new_untracked, 0
        self.new_features_untracked += untracked
        q = self.settings.quality
        keep = 1.0 - self.settings.hysteresis
        for name, count in sorted(self._new_features.items()):
            rate = count / window.count
            out.sample(Kind.SCHEMA, name, "new_feature_rate", rate, q.schema_rate)
            z = rate_increase_z(count, window.count, 0.0, self.profile.prediction.n)
            if rate >= q.schema_rate and z >= self._z:
                evidence: dict[str, EvidenceValue] = {
                    "rows": count, "window_rows": window.count, "in_reference": False}
                if untracked:  # names past max_new_features, in rows of this window
                    evidence["untracked_new_feature_rows"] = untracked
                out.signals.append(self._signal(Kind.SCHEMA, name, "new_feature_rate", rate,
                                                q.schema_rate, window, evidence))
            elif rate >= keep * q.schema_rate:
                out.held.add((Kind.SCHEMA, name, "new_feature_rate"))
        self._new_features.clear()
        return out

    def _signal(self, kind: Kind, subject: str, statistic: str, value: float, threshold: float,
                window: Window, evidence: dict[str, EvidenceValue]) -> Signal:
        return Signal(
            model_id=self.profile.model_id, kind=kind, subject=subject, statistic=statistic,
            value=round(value, 6), threshold=threshold, window=window, evidence=evidence,
            ts=window.end_ts, seq=window.end_seq,
        )

    def _rate_signal(self, out: _Verdicts, kind: Kind, col: _Column, statistic: str,
                     count: int, n: int, ref_rate: float, ref_n: int, min_increase: float,
                     window: Window, extra: dict[str, EvidenceValue] | None = None) -> None:
        """Test a rate's rise over its reference: a signal, held, or clear (nothing)."""
        if n <= 0:
            out.held.add((kind, col.name, statistic))  # nothing to test this window
            return
        rate = count / n
        threshold = round(ref_rate + min_increase, 6)
        out.sample(kind, col.name, statistic, rate, threshold)
        rise = rate - ref_rate
        if rise < min_increase:
            if rise >= (1.0 - self.settings.hysteresis) * min_increase:
                out.held.add((kind, col.name, statistic))
            return
        z = rate_increase_z(count, n, ref_rate, ref_n)
        if z < self._z:
            out.held.add((kind, col.name, statistic))
            return
        evidence: dict[str, EvidenceValue] = {
            "reference_rate": round(ref_rate, 6), "current_rate": round(rate, 6),
            "rows": count, "window_rows": n, "z": round(z, 2),
        }
        if extra:
            evidence.update(extra)
        out.signals.append(self._signal(kind, col.name, statistic, rate, threshold, window,
                                        evidence))

    def _test(self, col: _Column, acc: _Acc, window: Window, out: _Verdicts) -> None:
        prof = col.profile
        q = self.settings.quality
        n = acc.rows
        if col.source == "features":
            self._rate_signal(out, Kind.SCHEMA, col, "missing_rate", acc.missing, n, 0.0,
                              prof.n, q.schema_rate, window)
            self._rate_signal(
                out, Kind.SCHEMA, col, "type_mismatch_rate", acc.mismatched, n, 0.0, prof.n,
                q.schema_rate, window,
                {"expected_type": _type_name(prof), "example": acc.mismatch_example})
            present = n - acc.missing - acc.mismatched
            self._rate_signal(out, Kind.DATA_QUALITY, col, "null_rate", acc.nulls, present,
                              prof.null_rate, prof.n, q.null_rate_increase, window)
        valid = int(acc.counts.sum())
        if isinstance(prof, NumericProfile) and col.source == "features":
            if prof.bound_min is not None or prof.bound_max is not None:
                self._rate_signal(
                    out, Kind.DATA_QUALITY, col, "out_of_bounds_rate", acc.out_of_bounds,
                    valid, prof.out_of_bounds_rate, prof.n, q.out_of_bounds_rate, window,
                    {"min": prof.bound_min, "max": prof.bound_max})
            self._rate_signal(
                out, Kind.DATA_QUALITY, col, "out_of_range_rate", acc.out_of_range, valid,
                2.0 / (prof.n + 1), prof.n, q.out_of_range_rate, window,
                {"reference_min": prof.min, "reference_max": prof.max,
                 "current_mean": round(acc.sum / valid, 6) if valid else None})
        if isinstance(prof, CategoricalProfile) and col.source == "features":
            top = [v for v, _ in acc.unseen_values.most_common(MAX_EXAMPLES)]
            extra: dict[str, EvidenceValue] = {"examples": top}
            if acc.unseen_untracked:  # past max_unseen_values distinct: not in examples
                extra["untracked_unseen_rows"] = acc.unseen_untracked
            self._rate_signal(
                out, Kind.DATA_QUALITY, col, "unseen_category_rate", acc.unseen, valid, 0.0,
                prof.n, q.unseen_category_rate, window, extra)
        drift_signal(out, self.profile.model_id, col.kind, col.name, prof, acc, window,
                     self.settings, TESTS_PER_COLUMN * len(self._columns))

def _type_name(profile: Profile) -> str:
    if isinstance(profile, NumericProfile):
        return "numeric"
    return "boolean" if profile.boolean else "categorical"


def drift_signal(out: _Verdicts, model_id: str, kind: Kind, name: str, prof: Profile,
                 acc: _Acc, window: Window, settings: MonitoringSettings, tests: int) -> None:
    """A drift signal when the window's histogram moved from the reference's; held when too
    few values, inside the hysteresis band, or not significant; else clear."""
    valid = int(acc.counts.sum())
    key = (kind, name, "psi")
    if valid < MIN_DRIFT_VALUES:
        out.held.add(key)
        return
    ref = prof.counts if isinstance(prof, NumericProfile) else np.append(prof.counts, 0.0)
    value = psi(acc.counts, ref)
    threshold = settings.drift.psi_threshold
    out.sample(kind, name, "psi", value, threshold)
    if value < threshold:
        if value >= (1.0 - settings.hysteresis) * threshold:
            out.held.add(key)
        return
    p = chi2_homogeneity_p(acc.counts, ref)
    if p > settings.alpha / tests:
        out.held.add(key)
        return
    evidence: dict[str, EvidenceValue] = {"psi": round(value, 4), "p_value": p, "values": valid}
    cur_share = acc.counts / max(valid, 1)
    ref_share = ref / max(ref.sum(), 1.0)
    if isinstance(prof, NumericProfile):
        mean = acc.sum / valid
        evidence.update(
            reference_mean=round(prof.mean, 6), current_mean=round(mean, 6),
            reference_std=round(prof.std, 6),
            current_std=round(float(np.sqrt(max(acc.sumsq / valid - mean * mean, 0.0))), 6),
            bin_edges=[round(float(e), 6) for e in prof.edges],
            reference_shares=[round(float(x), 4) for x in ref_share],
            current_shares=[round(float(x), 4) for x in cur_share],
        )
    else:
        labels = [*map(str, prof.categories), "(unseen)"]
        order = np.argsort(-np.abs(cur_share - ref_share))[:MAX_EXAMPLES]
        evidence["largest_changes"] = [
            {"category": labels[i], "reference_share": round(float(ref_share[i]), 4),
             "current_share": round(float(cur_share[i]), 4)} for i in order.tolist()
        ]
    out.signals.append(Signal(model_id=model_id, kind=kind, subject=name, statistic="psi",
                              value=round(value, 6), threshold=threshold, window=window,
                              evidence=evidence, ts=window.end_ts, seq=window.end_seq))


class LabelMonitor:
    """Label shift: the distribution of arriving labels against the reference's labels."""

    def __init__(self, profile: ModelProfile, settings: MonitoringSettings) -> None:
        if profile.label is None:
            raise ValueError("the reference has no labels")
        self.profile = profile
        self.label_profile: Profile = profile.label
        self.settings = settings
        self._acc = _new_acc(profile.label)
        self._clock = WindowClock(settings.window_events, settings.window_seconds,
                                  settings.min_window_events)

    def state(self) -> State:
        return {"kind": "labels", "v": 1, "clock": self._clock.state(),
                "acc": self._acc.state()}

    def restore(self, state: State) -> None:
        state = check(state, "labels", 1)
        self._clock.restore(state["clock"])
        self._acc.restore(state["acc"])

    def update(self, labels: Sequence[Any], seq: NDArray[np.int64],
               ts: NDArray[np.float64]) -> Findings:
        out = Findings()
        for a, b, window in self._clock.split(seq, ts):
            if b > a:
                _add(self._acc, self.label_profile, list(labels[a:b]),
                     self.settings.quality.max_unseen_values)
            if window is not None:
                found = _Verdicts()
                drift_signal(found, self.profile.model_id, Kind.LABEL_DRIFT, "label",
                             self.label_profile, self._acc, window, self.settings,
                             TESTS_PER_COLUMN)
                self._acc.reset()
                out.signals.extend(found.signals)
                out.evaluations.append(found.evaluation(self.profile.model_id, LABEL_SCOPE,
                                                        window))
        return out
