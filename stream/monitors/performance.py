"""Performance with delayed labels: overall, per slice and per version, tested sequentially.

Labelled predictions (inline labels, or outcomes joined by ``request_id``) feed one
*series* per scope: the whole model, each slice value, each model version. Each series runs
a CUSUM (:mod:`stream.monitors.cusum`) of its per-label losses against its *tolerance
line*, the reference value moved by ``max_drop``: evidence accumulates across labels, so a
sustained fall is found however small its margin over the line, and the false-alarm rate on
a model as good as its reference stays bounded (about one alarm per ``exp(cusum_h)``
labels per series at most). A slice's line moves a little further for a reference too small
to pin it down (:meth:`PerformanceMonitor.margin`). Every ``eval_every`` labels a series is
evaluated: it fires while its CUSUM is at its threshold, is clear once the CUSUM has fallen
below ``1 - hysteresis`` of it, and is held in between. A series keeps its last
``window_labels`` pairs in ring buffers (O(1) memory) for the evidence: the metric since the
CUSUM's run began ("since when"), at least ``min_labels`` of them.

Series are bounded: the first ``max_slice_values`` values of each slice dimension and the
first ``max_versions`` versions, in event order, get one; labels of the others are counted
(``slices_overflow``, ``versions_overflow``, and in a signal's evidence as
``untracked_slice_labels`` / ``untracked_version_labels`` where there are any).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray

from config.file import HIGHER_IS_BETTER, MonitoringSettings
from stream.metrics import Estimate, compute
from stream.monitors.cusum import Cusum
from stream.reference import ModelProfile
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
from stream.state import State, array, check, unarray

FloatArray = NDArray[np.float64]
BLOCK_METRICS = frozenset({"roc_auc", "f1"})
REFERENCE_Z = 3.09  # one in a thousand


def reference_margin(stderr: float, max_drop: float) -> float:
    """How far the tolerance line moves beyond ``max_drop`` for the reference's own
    sampling error: one standard error, or, for a reference too small to pin the value
    down, as far as its chance error could put a healthy series past the line (z = 3.09,
    one in a thousand): nearly nothing for a reference of many thousand labels, most of
    ``max_drop`` for a slice of a hundred. The CUSUM's healthy baseline moves by one
    standard error too.

    A reference sample is a sample: on river's SEA stream the accuracy of 5,000-row
    references of one model ranged 0.928 to 0.944, and a model measured against the luckiest
    of them sits 0.01 below it for ever. Moving the baseline and the line by one standard
    error keeps such a model from paging (none in 4 million labels, against 19 without) at
    the cost of more labels to find a fall just past the line (README).

    >>> round(reference_margin(0.0033, 0.02), 4), round(reference_margin(0.02, 0.02), 4)
    (0.0033, 0.0418)
    """
    return max(stderr, REFERENCE_Z * stderr - max_drop)


@dataclass(frozen=True, slots=True)
class Labelled:
    """A batch of labelled predictions, ordered by the index of the label's arrival;
    ``pred_seq``: the index of each one's prediction."""

    seq: NDArray[np.int64]
    ts: FloatArray
    y: FloatArray
    pred: FloatArray
    score: FloatArray
    version: Sequence[str | None]
    slices: Sequence[tuple[str | None, ...]]
    pred_seq: NDArray[np.int64] | None = None  # None: each at its label's index

    def __len__(self) -> int:
        return len(self.seq)


class _Series:
    """One scope's ring buffers (the last ``size`` labelled pairs, for the evidence) and its
    CUSUM against the tolerance line."""

    def __init__(self, size: int, reference: Estimate | None, cusum: Cusum | None) -> None:
        self.size = size
        self.reference = reference
        self.cusum = cusum
        self.y = np.zeros(size)
        self.p = np.zeros(size)
        self.s = np.full(size, np.nan)
        self.seq = np.zeros(size, dtype=np.int64)
        self.ts = np.zeros(size)
        self.pos = 0
        self.count = 0
        self.evaluations = 0
        self.peak = 0.0  # the CUSUM's highest value since the last evaluation
        self.run_start: int | None = None  # seq where the CUSUM last left zero
        self.run_labels = 0  # labels since then
        self.newest = -1  # the newest prediction labelled since the last evaluation
        self.alarmed = -1  # the newest prediction labelled when it last fired

    def detect(self, loss: FloatArray, seq: NDArray[np.int64]) -> None:
        """Feed the CUSUM per-label losses; remember where its current run began."""
        cusum = self.cusum
        if cusum is None or not len(loss):
            return
        was_zero = cusum.value == 0.0
        path = cusum.path(loss)
        self.peak = max(self.peak, max(path))
        if path[-1] == 0.0:
            self.run_start, self.run_labels = None, 0
            return
        last_zero = next((i for i in range(len(path) - 1, -1, -1) if path[i] == 0.0), None)
        if last_zero is None:  # the run went on through the whole batch
            if was_zero or self.run_start is None:
                self.run_start = int(seq[0])
            self.run_labels += len(loss)
        else:
            self.run_start, self.run_labels = int(seq[last_zero + 1]), len(loss) - last_zero - 1

    def write(self, y: FloatArray, p: FloatArray, s: FloatArray,
              seq: NDArray[np.int64], ts: FloatArray) -> None:
        size = self.size
        if len(y) >= size:
            y, p, s, seq, ts = y[-size:], p[-size:], s[-size:], seq[-size:], ts[-size:]
        n = len(y)
        head = min(n, size - self.pos)  # up to the end of the ring, then from its start
        for ring, values in ((self.y, y), (self.p, p), (self.s, s), (self.seq, seq),
                             (self.ts, ts)):
            ring[self.pos:self.pos + head] = values[:head]
            ring[:n - head] = values[head:]
        self.pos = (self.pos + n) % size

    def last(self, w: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Labels, predictions and scores of the last ``w`` pairs (views where contiguous)."""
        start = self.pos - w
        if start >= 0:
            return self.y[start:self.pos], self.p[start:self.pos], self.s[start:self.pos]
        return (np.concatenate((self.y[start:], self.y[:self.pos])),
                np.concatenate((self.p[start:], self.p[:self.pos])),
                np.concatenate((self.s[start:], self.s[:self.pos])))

    def state(self) -> State:
        return {"y": array(self.y), "p": array(self.p), "s": array(self.s),
                "seq": array(self.seq), "ts": array(self.ts), "pos": self.pos,
                "count": self.count, "evaluations": self.evaluations, "peak": self.peak,
                "run_start": self.run_start, "run_labels": self.run_labels,
                "newest": self.newest, "alarmed": self.alarmed,
                "cusum": self.cusum.value if self.cusum is not None else None}

    def restore(self, state: State) -> None:
        shape = (self.size,)
        self.y, self.p, self.s = (unarray(state[k], shape) for k in ("y", "p", "s"))
        self.seq, self.ts = unarray(state["seq"], shape), unarray(state["ts"], shape)
        self.pos, self.count = int(state["pos"]), int(state["count"])
        self.evaluations, self.peak = int(state["evaluations"]), float(state["peak"])
        self.run_start = None if state["run_start"] is None else int(state["run_start"])
        self.run_labels = int(state["run_labels"])
        self.newest, self.alarmed = int(state["newest"]), int(state["alarmed"])
        if self.cusum is not None and state["cusum"] is not None:
            # the sum carries over; its threshold and line are the current configuration's
            self.cusum.value = min(float(state["cusum"]), self.cusum.cap * self.cusum.h)

    def bounds(self, w: int) -> tuple[int, int, float, float]:
        """First and last seq and ts of the last ``w`` pairs."""
        first, last = (self.pos - w) % self.size, (self.pos - 1) % self.size
        return (int(self.seq[first]), int(self.seq[last]), float(self.ts[first]),
                float(self.ts[last]))


class PerformanceMonitor:
    """A CUSUM per scope against its tolerance line; emits performance signals and, every
    ``eval_every`` labels of a scope, an evaluation of it.

    Parameters
    ----------
    profile
        The model's reference profile (metric, reference values overall and per slice).
    settings
        Window, evaluation cadence, the CUSUM's threshold ``cusum_h``, the hysteresis band.
    """

    def __init__(self, profile: ModelProfile, settings: MonitoringSettings) -> None:
        self.profile = profile
        self.settings = settings
        perf = profile.config.performance
        self.metric = perf.metric
        self.max_drop = perf.max_drop
        self.higher_is_better = HIGHER_IS_BETTER[self.metric]
        self.blocks = self.metric in BLOCK_METRICS  # not a mean of per-label losses
        self._series: dict[tuple[str | None, str | None], _Series] = {}
        self._codes: dict[int, dict[str | None, int]] = {}
        self._versions: list[str] = []  # the first two seen: is there more than one?
        self.slices_overflow = 0  # labels (one per slice dimension) of untracked values
        self.versions_overflow = 0  # labels of untracked versions
        self.labels = 0

    def state(self) -> State:
        """Every series' labels and CUSUM, as plain data (references and thresholds are
        the configuration's: they are applied again on restore)."""
        return {"kind": "performance", "v": 1,
                "series": [[k[0], k[1], s.state()] for k, s in self._series.items()],
                "codes": [[dim, [[key, code] for key, code in codes.items()]]
                          for dim, codes in self._codes.items()],
                "versions": list(self._versions), "slices_overflow": self.slices_overflow,
                "versions_overflow": self.versions_overflow, "labels": self.labels}

    def restore(self, state: State) -> None:
        state = check(state, "performance", 1)
        for slice_key, version, series_state in state["series"]:
            self._get((slice_key, version)).restore(series_state)
        self._codes = {int(dim): {key: int(code) for key, code in codes}
                       for dim, codes in state["codes"]}
        self._versions = [str(v) for v in state["versions"]][:2]
        self.slices_overflow, self.labels = int(state["slices_overflow"]), int(state["labels"])
        self.versions_overflow = int(state.get("versions_overflow", 0))

    def _get(self, key: tuple[str | None, str | None]) -> _Series:
        s = self._series.get(key)
        if s is None:
            ref = self.profile.metric
            if key[0] is not None:
                ref = self.profile.slice_metrics.get(key[0], ref)
            s = self._series[key] = _Series(self.settings.performance.window_labels, ref,
                                            self._cusum(ref))
        return s

    def margin(self, ref: Estimate) -> float:
        """How far the reference value is moved, against the model, for its own
        uncertainty: see :func:`reference_margin`."""
        return reference_margin(ref.stderr, self.max_drop)

    def line(self, ref: Estimate) -> float:
        """The tolerance line in the metric's units: the value the CUSUM tests against."""
        beyond = self.max_drop + self.margin(ref)
        return ref.value - beyond if self.higher_is_better else ref.value + beyond

    def _cusum(self, ref: Estimate | None) -> Cusum | None:
        if ref is None:
            return None
        perf = self.settings.performance
        # healthy: the reference one standard error worse; the line: max_drop and the
        # margin beyond the reference (as a loss, higher is worse)
        h, se, beyond = perf.cusum_h, ref.stderr, self.max_drop + self.margin(ref)
        if self.metric == "accuracy":  # error rates
            err = 1.0 - ref.value
            if err + beyond >= 1.0:
                return None
            return Cusum.bernoulli(err + se, err + beyond, h)
        spread = ref.stderr * math.sqrt(max(ref.n, 1))
        if self.metric == "mae":
            return Cusum.gaussian(ref.value + se, spread, ref.value + beyond, h)
        if self.metric == "rmse":  # squared errors; the stderr of an RMSE is of the MSE/2RMSE
            return Cusum.gaussian((ref.value + se) ** 2, 2 * ref.value * spread,
                                  (ref.value + beyond) ** 2, h)
        # roc_auc, f1: one increment per block of eval_every labels, on the loss -metric
        block = ref.stderr * math.sqrt(max(ref.n, 1) / perf.eval_every)
        return Cusum.gaussian(-ref.value + se, block, -ref.value + beyond, h)

    def update(self, batch: Labelled) -> Findings:
        """Add labelled predictions; return the signals and evaluations that fell due."""
        out = Findings()
        if len(batch) == 0:
            return out
        self.labels += len(batch)
        perf = self.settings.performance
        groups: dict[tuple[str | None, str | None], NDArray[np.int64]] = {
            (None, None): np.arange(len(batch), dtype=np.int64)}
        # untracked labels up to and including each row (the evidence at any label is the
        # same whatever the batches)
        untracked = np.zeros((len(batch), 2), dtype=np.int64)
        for d, column in enumerate(zip(*batch.slices, strict=True)):
            found, lost = self._group(d, column, perf.max_slice_values)
            untracked[:, 0] += lost
            for slice_key, rows in found.items():
                groups[(slice_key, None)] = rows
        if len(self._versions) < 2:
            for v in batch.version:
                if v is not None and v not in self._versions:
                    self._versions.append(v)
                    if len(self._versions) == 2:
                        break
        if len(self._versions) > 1:  # one version alone is the overall series again
            found, lost = self._group(-1, batch.version, perf.max_versions)
            untracked[:, 1] += lost
            for version, rows in found.items():
                groups[(None, version)] = rows
        totals = np.cumsum(untracked, axis=0)
        totals[:, 0] += self.slices_overflow
        totals[:, 1] += self.versions_overflow
        if len(totals):
            self.slices_overflow, self.versions_overflow = map(int, totals[-1])
        loss = self._loss(batch.y, batch.pred)
        overall = self._series.get((None, None))
        before = overall.count if overall is not None else 0  # overall labels before these
        for key, idx in groups.items():
            self._feed(key, batch, idx, loss[idx], out, before, totals)
        out.signals.sort(key=lambda s: s.seq)
        out.evaluations.sort(key=lambda e: e.seq)
        return out

    def _group(self, dim: int, keys: Sequence[str | None], cap: int) -> tuple[
            dict[str, NDArray[np.int64]], NDArray[np.bool_]]:
        """Row indices per key of one slice dimension (-1: versions), and the rows left out
        as untracked: those of a new key once ``cap`` keys are known (keys are taken in
        event order, so which are known does not depend on the batches). None keys are
        left out, not counted."""
        codes = self._codes.setdefault(dim, {None: -1})
        if len(codes) <= cap:
            for key in dict.fromkeys(keys):
                if key not in codes and len(codes) <= cap:
                    codes[key] = len(codes) - 1
        arr = np.fromiter(map(codes.get, keys, repeat(-2)), dtype=np.int64, count=len(keys))
        names = {c: k for k, c in codes.items()}
        return ({str(names[c]): np.flatnonzero(arr == c) for c in np.unique(arr).tolist()
                 if c >= 0}, arr == -2)

    def _loss(self, y: FloatArray, p: FloatArray) -> FloatArray:
        """Per-label loss: 1 for a wrong class, the absolute or squared error."""
        if self.profile.is_classification:
            wrong: FloatArray = (y != p).astype(np.float64)
            return wrong
        err: FloatArray = np.abs(y - p)
        return err**2 if self.metric == "rmse" else err

    def _feed(self, key: tuple[str | None, str | None], b: Labelled, idx: NDArray[np.int64],
              loss: FloatArray, out: Findings, before: int,
              untracked: NDArray[np.int64]) -> None:
        """Feed one series its rows of the batch; evaluate it every ``eval_every`` labels.
        ``before``: the overall series' labels before the batch (a slice's share of traffic
        is its count over the overall count *at the same label*, whatever the batch)."""
        series = self._get(key)
        every = self.settings.performance.eval_every
        n = len(idx)
        first = every - series.count % every  # labels until the next evaluation
        cuts = list(range(first, n + 1, every))
        if not cuts or cuts[-1] != n:
            cuts.append(n)
        y, pred, score, seq, ts = b.y[idx], b.pred[idx], b.score[idx], b.seq[idx], b.ts[idx]
        made = (b.pred_seq if b.pred_seq is not None else b.seq)[idx]
        start = 0
        for cut in cuts:
            part = slice(start, cut)
            series.write(y[part], pred[part], score[part], seq[part], ts[part])
            if not self.blocks:
                series.detect(loss[part], seq[part])
            series.count += cut - start
            if cut > start:
                series.newest = max(series.newest, int(made[start:cut].max()))
            start = cut
            if series.count % every == 0:
                if self.blocks:
                    self._block(series, seq[part])
                row = int(idx[cut - 1])
                self._evaluate(key, series, out, before + row + 1,
                               (int(untracked[row, 0]), int(untracked[row, 1])))

    def _block(self, series: _Series, seq: NDArray[np.int64]) -> None:
        """roc_auc, f1: the last ``eval_every`` labels are one increment of the CUSUM."""
        y, p, s = series.last(self.settings.performance.eval_every)
        est = compute(self.metric, y, p, s, positive=self.profile.positive)
        if est is not None and len(seq):
            series.detect(np.array([-est.value]), seq[-1:])

    def _evaluate(self, key: tuple[str | None, str | None], series: _Series,
                  out: Findings, overall_count: int, untracked: tuple[int, int]) -> None:
        ref, cusum = series.reference, series.cusum
        if ref is None or cusum is None:
            return
        series.evaluations += 1
        peak, series.peak = series.peak, cusum.value
        newest, series.newest = series.newest, -1
        last_seq, last_ts = series.bounds(1)[1], series.bounds(1)[3]
        scope = Scope(frozenset({Kind.PERFORMANCE}), self.metric, key[0], key[1],
                      frozenset({self.metric}))
        this: frozenset[SeriesKey] = frozenset({(Kind.PERFORMANCE, self.metric, self.metric)})
        held: frozenset[SeriesKey] = frozenset()
        fired: frozenset[SeriesKey] = frozenset()
        # the level the tolerance line is about, over the labels a signal would report
        # (the CUSUM decides; this is what a chart and a signal show)
        w, est = self._current(series)
        samples: tuple[Sample, ...] = () if est is None else (Sample(
            Kind.PERFORMANCE, self.metric, self.metric, key[0], key[1], round(est.value, 6),
            round(self.line(ref), 6)),)
        if peak >= cusum.h:
            sig = None if est is None else self._signal(key, series, peak, overall_count,
                                                        untracked, w, est)
            if sig is not None:
                out.signals.append(sig)
                fired = this
                series.alarmed = max(series.alarmed, newest)
            else:
                held = this
        elif peak >= (1.0 - self.settings.hysteresis) * cusum.h or newest < series.alarmed:
            # in the band; or labels of predictions older than what last fired (labels
            # that come late, behind others): they say nothing of whether it is over
            held = this
        out.evaluations.append(Evaluation(self.profile.model_id, scope, last_seq, last_ts,
                                          held, fired, samples))

    def _current(self, series: _Series) -> tuple[int, Estimate | None]:
        """The metric over the series' last labels: those since the change detected (at
        least ``min_labels``, at most ``window_labels``)."""
        perf = self.settings.performance
        w = min(series.count, perf.window_labels,
                max(series.run_labels, perf.min_labels))
        y, p, s = series.last(w)
        return w, compute(self.metric, y, p, s, positive=self.profile.positive)

    def _signal(self, key: tuple[str | None, str | None], series: _Series,
                peak: float, overall_count: int, untracked: tuple[int, int], w: int,
                est: Estimate) -> Signal:
        ref, cusum = series.reference, series.cusum
        assert ref is not None and cusum is not None
        drop = ref.value - est.value if self.higher_is_better else est.value - ref.value
        first_seq, last_seq, first_ts, last_ts = series.bounds(w)
        evidence: dict[str, EvidenceValue] = {
            "reference": round(ref.value, 6),
            "current": round(est.value, 6),
            "drop": round(drop, 6),
            "max_drop": self.max_drop,
            "tolerance_line": round(self.line(ref), 6),
            "reference_margin": round(self.margin(ref), 6),
            "stderr": round(est.stderr, 6),
            "reference_stderr": round(ref.stderr, 6),
            "labels": est.n,
            "reference_labels": ref.n,
            "cusum": round(peak, 3),
            "cusum_h": cusum.h,
            "change_detected_at_seq": series.run_start,
            "labels_since_change": series.run_labels,
            "estimated": False,
        }
        if key != (None, None) and overall_count:
            evidence["traffic_share"] = round(series.count / overall_count, 4)
        for name, count in zip(("untracked_slice_labels", "untracked_version_labels"),
                               untracked, strict=True):
            if count:  # past max_slice_values / max_versions: watched overall only
                evidence[name] = count
        window = Window(first_seq, last_seq, first_ts, last_ts, w)
        return Signal(
            model_id=self.profile.model_id, kind=Kind.PERFORMANCE, subject=self.metric,
            statistic=self.metric, value=round(est.value, 6),
            threshold=round(self.line(ref), 6), window=window, evidence=evidence,
            ts=last_ts, seq=last_seq, model_version=key[1], slice=key[0],
        )

    def counters(self) -> dict[str, Any]:
        return {"labels": self.labels, "series": len(self._series),
                "slices_overflow": self.slices_overflow,
                "versions_overflow": self.versions_overflow}
