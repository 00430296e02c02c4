"""Performance with delayed labels: rolling metrics overall, per slice and per version.

Labelled predictions (inline labels, or outcomes joined by ``request_id``) feed one
*series* per scope: the whole model, each slice value, each model version. A series keeps
its last ``window_labels`` pairs in ring buffers (O(1) memory) and river's ADWIN on the
per-prediction loss (fed as means of blocks of ``ADWIN_BLOCK`` labels, which keeps its cost
off the hot path); ADWIN's adaptive width tells how much of the window belongs to the
current regime and where it changed ("since when"). Every ``eval_every`` labels the metric
is computed over a few window lengths (the shortest allowed, ADWIN's, the longest) and
compared with the series' reference: a signal needs the fall to exceed ``max_drop`` *and*
to be significant given both the window's and the reference's standard errors, at a level
corrected for the number of series and windows tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import drift

from stream.metrics import Estimate, compute
from stream.reference import ModelProfile
from stream.signals import EvidenceValue, Kind, Signal, Window
from stream.stats import z_critical
from watchkeeper.config import HIGHER_IS_BETTER, MonitoringSettings

FloatArray = NDArray[np.float64]
ADWIN_BLOCK = 10
WINDOWS_PER_EVALUATION = 3


@dataclass(frozen=True, slots=True)
class Labelled:
    """A batch of labelled predictions, ordered by the index of the label's arrival."""

    seq: NDArray[np.int64]
    ts: FloatArray
    y: FloatArray
    pred: FloatArray
    score: FloatArray
    version: Sequence[str | None]
    slices: Sequence[tuple[str | None, ...]]

    def __len__(self) -> int:
        return len(self.seq)


class _Series:
    """One scope's ring buffers, ADWIN and evaluation counter."""

    def __init__(self, size: int, reference: Estimate | None) -> None:
        self.size = size
        self.reference = reference
        self.y = np.zeros(size)
        self.p = np.zeros(size)
        self.s = np.full(size, np.nan)
        self.seq = np.zeros(size, dtype=np.int64)
        self.ts = np.zeros(size)
        self.pos = 0
        self.count = 0
        self.adwin = drift.ADWIN(delta=0.002, clock=1, grace_period=5, min_window_length=3)
        self.change_seq: int | None = None
        self._carry_sum = 0.0
        self._carry_n = 0

    @property
    def adwin_labels(self) -> int:
        """ADWIN's current window, in labels."""
        return int(self.adwin.width) * ADWIN_BLOCK

    def detect(self, loss: FloatArray, seq: NDArray[np.int64]) -> None:
        """Feed ADWIN the means of complete blocks of losses; remember where it cut."""
        n = len(loss)
        need = ADWIN_BLOCK - self._carry_n
        if n < need:
            self._carry_sum += float(loss.sum())
            self._carry_n += n
            return
        adwin = self.adwin
        adwin.update((self._carry_sum + float(loss[:need].sum())) / ADWIN_BLOCK)
        if adwin.drift_detected:
            self.change_seq = int(seq[need - 1])
        full = (n - need) // ADWIN_BLOCK
        if full:
            blocks = loss[need:need + full * ADWIN_BLOCK].reshape(full, ADWIN_BLOCK).sum(axis=1)
            blocks /= ADWIN_BLOCK  # the blocks' means (as .mean(axis=1), without its overhead)
            for k, value in enumerate(blocks.tolist()):
                adwin.update(value)
                if adwin.drift_detected:
                    self.change_seq = int(seq[need + (k + 1) * ADWIN_BLOCK - 1])
        rest = loss[need + full * ADWIN_BLOCK:]
        self._carry_sum = float(rest.sum())
        self._carry_n = len(rest)

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

    def bounds(self, w: int) -> tuple[int, int, float, float]:
        """First and last seq and ts of the last ``w`` pairs."""
        first, last = (self.pos - w) % self.size, (self.pos - 1) % self.size
        return (int(self.seq[first]), int(self.seq[last]), float(self.ts[first]),
                float(self.ts[last]))


class PerformanceMonitor:
    """Rolling metric per scope for one model; emits performance signals.

    Parameters
    ----------
    profile
        The model's reference profile (metric, reference values overall and per slice).
    settings
        Window, minimum labels, evaluation cadence, level.
    """

    def __init__(self, profile: ModelProfile, settings: MonitoringSettings) -> None:
        self.profile = profile
        self.settings = settings
        perf = profile.config.performance
        self.metric = perf.metric
        self.max_drop = perf.max_drop
        self.higher_is_better = HIGHER_IS_BETTER[self.metric]
        self._series: dict[tuple[str | None, str | None], _Series] = {}
        self._codes: dict[int, dict[str | None, int]] = {}
        self._versions: set[str] = set()
        self.slices_overflow = 0
        self.labels = 0

    def _get(self, key: tuple[str | None, str | None]) -> _Series:
        s = self._series.get(key)
        if s is None:
            ref = self.profile.metric
            if key[0] is not None:
                ref = self.profile.slice_metrics.get(key[0], ref)
            s = self._series[key] = _Series(self.settings.performance.window_labels, ref)
        return s

    def update(self, batch: Labelled) -> list[Signal]:
        """Add labelled predictions; return the signals of evaluations that fell due."""
        if len(batch) == 0:
            return []
        self.labels += len(batch)
        groups: dict[tuple[str | None, str | None], NDArray[np.int64]] = {
            (None, None): np.arange(len(batch), dtype=np.int64)}
        for d, column in enumerate(zip(*batch.slices, strict=True)):
            for slice_key, rows in self._group(d, column).items():
                groups[(slice_key, None)] = rows
        self._versions.update(v for v in batch.version if v is not None)
        if len(self._versions) > 1:  # one version alone is the overall series again
            for version, rows in self._group(-1, batch.version).items():
                groups[(None, version)] = rows
        loss = self._loss(batch.y, batch.pred)
        signals: list[Signal] = []
        for key, idx in groups.items():
            signals.extend(self._feed(key, batch, idx, loss[idx]))
        signals.sort(key=lambda s: s.seq)
        return signals

    def _group(self, dim: int, keys: Sequence[str | None]) -> dict[str, NDArray[np.int64]]:
        """Row indices per key of one slice dimension (-1: versions); None keys are left out,
        and so are new keys once ``max_slice_values`` are known (counted as overflow)."""
        codes = self._codes.setdefault(dim, {None: -1})
        cap = self.settings.performance.max_slice_values
        for key in set(keys) - codes.keys():
            if len(codes) - 1 < cap:
                codes[key] = len(codes) - 1
        arr = np.fromiter(map(codes.get, keys, repeat(-2)), dtype=np.int64, count=len(keys))
        self.slices_overflow += int(np.count_nonzero(arr == -2))
        names = {c: k for k, c in codes.items()}
        return {str(names[c]): np.flatnonzero(arr == c) for c in np.unique(arr).tolist()
                if c >= 0}

    def _loss(self, y: FloatArray, p: FloatArray) -> FloatArray:
        if self.profile.is_classification:
            wrong: FloatArray = (y != p).astype(np.float64)
            return wrong
        err = np.abs(y - p)
        scale = self.profile.metric.value if self.profile.metric else float(err.mean() or 1.0)
        loss: FloatArray = err / (err + max(scale, 1e-12))
        return loss

    def _feed(self, key: tuple[str | None, str | None], b: Labelled, idx: NDArray[np.int64],
              loss: FloatArray) -> list[Signal]:
        series = self._get(key)
        every = self.settings.performance.eval_every
        n = len(idx)
        first = every - series.count % every  # labels until the next evaluation
        cuts = list(range(first, n + 1, every))
        if not cuts or cuts[-1] != n:
            cuts.append(n)
        out: list[Signal] = []
        y, pred, score, seq, ts = b.y[idx], b.pred[idx], b.score[idx], b.seq[idx], b.ts[idx]
        start = 0
        for cut in cuts:
            part = slice(start, cut)
            series.detect(loss[part], seq[part])
            series.write(y[part], pred[part], score[part], seq[part], ts[part])
            series.count += cut - start
            start = cut
            if series.count % every == 0:
                sig = self._evaluate(key, series)
                if sig is not None:
                    out.append(sig)
        return out

    def _windows(self, series: _Series) -> list[int]:
        """Window lengths to evaluate: the shortest allowed (large falls show fast), ADWIN's
        current window (the labels since its last detected change) and the longest (small
        falls need many labels)."""
        perf = self.settings.performance
        longest = min(series.count, perf.window_labels)
        candidates = {perf.min_labels, max(perf.min_labels, series.adwin_labels), longest}
        return sorted(w for w in candidates if perf.min_labels <= w <= longest)

    def _evaluate(self, key: tuple[str | None, str | None], series: _Series) -> Signal | None:
        ref = series.reference
        if ref is None or series.count < self.settings.performance.min_labels:
            return None
        z_crit = z_critical(self.settings.alpha, WINDOWS_PER_EVALUATION * len(self._series))
        best: tuple[float, float, Estimate, int] | None = None
        for w in self._windows(series):
            y, p, s = series.last(w)
            est = compute(self.metric, y, p, s, positive=self.profile.positive)
            if est is None:
                continue
            drop = ref.value - est.value if self.higher_is_better else est.value - ref.value
            se = math.sqrt(est.stderr**2 + ref.stderr**2)
            z = drop / se if se > 0 else (math.inf if drop > 0 else 0.0)
            if drop >= self.max_drop and z >= z_crit and (best is None or z > best[0]):
                best = (z, drop, est, w)
        if best is None:
            return None
        z, drop, est, w = best
        first_seq, last_seq, first_ts, last_ts = series.bounds(w)
        threshold = (ref.value - self.max_drop if self.higher_is_better
                     else ref.value + self.max_drop)
        evidence: dict[str, EvidenceValue] = {
            "reference": round(ref.value, 6),
            "current": round(est.value, 6),
            "drop": round(drop, 6),
            "max_drop": self.max_drop,
            "stderr": round(est.stderr, 6),
            "reference_stderr": round(ref.stderr, 6),
            "z": round(z, 2),
            "labels": est.n,
            "reference_labels": ref.n,
            "change_detected_at_seq": series.change_seq,
        }
        overall = self._series.get((None, None))
        if key != (None, None) and overall is not None and overall.count:
            evidence["traffic_share"] = round(series.count / overall.count, 4)
        window = Window(first_seq, last_seq, first_ts, last_ts, w)
        return Signal(
            model_id=self.profile.model_id, kind=Kind.PERFORMANCE, subject=self.metric,
            statistic=self.metric, value=round(est.value, 6), threshold=round(threshold, 6),
            window=window, evidence=evidence, ts=last_ts, seq=last_seq,
            model_version=key[1], slice=key[0],
        )

    def counters(self) -> dict[str, Any]:
        return {"labels": self.labels, "series": len(self._series),
                "slices_overflow": self.slices_overflow}
