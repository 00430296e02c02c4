"""Performance estimated before the labels come: confidence-based performance estimation
(CBPE) of a binary classifier from its scores, tested sequentially, checked when the labels
arrive.

Labels come days or months late; a covariate shift that moves predictions towards the
uncertain middle costs accuracy at once. Every ``eval_every`` predictions form a *block*:
their scores, through the isotonic calibration fit on the labelled reference
(:class:`stream.monitors.estimate.Calibration`), give the block's *expected* metric
(accuracy, F1 or ROC AUC). A CUSUM of the blocks against the tolerance line (the
reference's expected metric moved by ``max_drop``; Gaussian, with the spread of the
reference's own blocks) pages an estimated fall as ``performance`` with statistic
``estimated_<metric>`` and ``estimated: true`` in its evidence. Each block is an
evaluation, as for the realized series (:mod:`stream.monitors.performance`).

When the labels come, they are counted to the block of their prediction: the evidence of
an estimated signal carries the *realized* metric of its blocks beside the estimate
(``realized``, ``realized_labels``). A series that fired stays held (not clear) until the
blocks of its runs that fired, and those after them, hold ``window_labels`` labels; then
the estimate is *confirmed* (realized beyond the line too) or
*withdrawn*: realized within the line, the estimate was wrong, the CUSUM is reset and the
estimate suspended until a calibration check passes, its series clears and the alert
resolves; the realized series pages on its own if the fall is real. (Realized values are
counted for accuracy; for F1 and ROC AUC the realized series alone confirms.)

The calibration itself is checked on every ``window_events`` labels
(:func:`stream.monitors.estimate.calibration_check`): if it no longer holds (``z`` over
:data:`CALIBRATION_Z`), a ``monitoring_health`` signal on ``calibration`` says so (to the
digest) and the estimate is suspended (its series clears) until the labels agree again.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from config.file import MonitoringSettings
from stream.monitors.cusum import Cusum
from stream.monitors.estimate import calibration_check, estimate
from stream.monitors.performance import reference_margin
from stream.reference import ModelProfile, ScoredReference
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

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
ESTIMABLE = frozenset({"accuracy", "roc_auc", "f1"})
MIN_REFERENCE_BLOCKS = 10
REFERENCE_DRAWS = 400  # blocks drawn from the reference for the spread (and the seed)
AWAIT_BLOCKS = 50  # blocks of a run that fired (and after it) kept for its labels
CALIBRATION_Z = 4.0  # the calibration no longer holds
CALIBRATION_OK_Z = 3.0  # ... and holds again


@dataclass(slots=True, eq=False)
class _Block:
    """One block of predictions: where it lies, its estimate (None: none could be made),
    and its labels so far."""

    first_seq: int
    last_seq: int
    first_ts: float
    last_ts: float
    value: float | None
    labels: int = 0
    correct: int = 0


@dataclass(frozen=True, slots=True)
class _LabelChunk:
    """Labelled predictions of one batch, in the order their labels came."""

    prediction_seq: NDArray[np.int64]
    seq: NDArray[np.int64]
    ts: FloatArray
    right: BoolArray
    prob: FloatArray  # calibrated (NaN: no score)
    positive: BoolArray


class EstimatedPerformanceMonitor:
    """Estimated performance of one binary classifier, block by block.

    Parameters
    ----------
    profile
        The model's profile, with its scored reference (``profile.scored``).
    settings
        ``performance.eval_every`` (the block), ``cusum_h``, ``min_labels``,
        ``window_labels`` (blocks kept for the realized values), ``window_events`` (labels
        per calibration check), ``hysteresis``.
    """

    def __init__(self, profile: ModelProfile, settings: MonitoringSettings) -> None:
        scored = profile.scored
        metric = profile.config.performance.metric
        if scored is None or metric not in ESTIMABLE:
            raise ValueError("estimation needs a binary classifier's scored reference and "
                             "accuracy, roc_auc or f1")
        self.profile = profile
        self.settings = settings
        self.scored: ScoredReference = scored
        self.metric = metric
        self.statistic = f"estimated_{metric}"
        self.max_drop = profile.config.performance.max_drop
        perf = settings.performance
        self.block = perf.eval_every
        reference = self._reference_blocks(scored)
        self.reference = float(np.mean(reference))
        spread = float(np.std(reference, ddof=1))
        # the reference mean's own error: blocks' spread over the reference's many blocks
        se = spread / math.sqrt(len(scored.prob) / self.block)
        self.margin = reference_margin(se, self.max_drop)
        self.line = self.reference - self.max_drop - self.margin
        self.cusum = Cusum.gaussian(-(self.reference - se), max(spread, 1e-6), -self.line,
                                    perf.cusum_h)
        self._prob: list[FloatArray] = []
        self._pred: list[BoolArray] = []
        self._scores: list[FloatArray] = []
        self._open = 0  # predictions in the open block
        self._open_start: tuple[int, float] | None = None
        self._blocks: deque[_Block] = deque(maxlen=max(perf.window_labels // self.block, 2))
        self._queued: list[_Block] = []  # closed this batch, evaluated at its flush
        self._open_counts = [0, 0]  # labels (and right ones) of the open block so far
        self._chunks: list[_LabelChunk] = []
        self.peak = 0.0
        self.run: list[_Block] = []  # the blocks since the CUSUM last left zero
        # the blocks of runs that fired, until their labels confirm or withdraw them
        self.awaiting: list[_Block] = []
        self.suspended = False  # the calibration no longer holds
        self._check_prob: list[FloatArray] = []
        self._check_pos: list[BoolArray] = []
        self._check_n = 0
        self._check_span: tuple[int, float] | None = None
        self.blocks_seen = 0
        self.withdrawn = 0
        self.confirmed = 0

    def state(self) -> State:
        """The open block, the recent and awaited blocks, the CUSUM, the calibration check
        so far, as plain data (taken between batches: nothing is queued then)."""
        table: list[_Block] = []
        index: dict[int, int] = {}
        for b in (*self._blocks, *self.run, *self.awaiting):
            if id(b) not in index:
                index[id(b)] = len(table)
                table.append(b)

        def arrays(parts: list[NDArray[Any]]) -> State:
            return array(np.concatenate(parts)) if parts else array(np.zeros(0))

        return {
            "kind": "estimated", "v": 1,
            "blocks": [[b.first_seq, b.last_seq, b.first_ts, b.last_ts, b.value, b.labels,
                        b.correct] for b in table],
            "recent": [index[id(b)] for b in self._blocks],
            "run": [index[id(b)] for b in self.run],
            "awaiting": [index[id(b)] for b in self.awaiting],
            "open": {"prob": arrays(self._prob), "pred": array(
                np.concatenate(self._pred) if self._pred else np.zeros(0, dtype=bool)),
                "scores": arrays(self._scores), "count": self._open,
                "start": list(self._open_start) if self._open_start is not None else None,
                "labels": list(self._open_counts)},
            "cusum": self.cusum.value, "peak": self.peak, "suspended": self.suspended,
            "check": {"prob": arrays(self._check_prob), "positive": array(
                np.concatenate(self._check_pos) if self._check_pos
                else np.zeros(0, dtype=bool)),
                "n": self._check_n,
                "span": list(self._check_span) if self._check_span is not None else None},
            "counters": {"blocks": self.blocks_seen, "withdrawn": self.withdrawn,
                         "confirmed": self.confirmed},
        }

    def restore(self, state: State) -> None:
        state = check(state, "estimated", 1)
        table = [_Block(int(a), int(b), float(c), float(d),
                        None if v is None else float(v), int(n), int(k))
                 for a, b, c, d, v, n, k in state["blocks"]]
        self._blocks.clear()
        self._blocks.extend(table[i] for i in state["recent"])
        self.run = [table[i] for i in state["run"]]
        self.awaiting = [table[i] for i in state["awaiting"]]
        o = state["open"]
        prob, pred, scores = unarray(o["prob"]), unarray(o["pred"]), unarray(o["scores"])
        if not len(prob) == len(pred) == len(scores) == int(o["count"]) < self.block:
            raise StateError("an open block of another size")
        self._prob, self._pred, self._scores = ([prob], [pred], [scores]) if len(prob) else (
            [], [], [])
        self._open = int(o["count"])
        self._open_start = None if o["start"] is None else (int(o["start"][0]),
                                                            float(o["start"][1]))
        self._open_counts = [int(x) for x in o["labels"]]
        self.cusum.value = min(float(state["cusum"]), self.cusum.cap * self.cusum.h)
        self.peak, self.suspended = float(state["peak"]), bool(state["suspended"])
        c = state["check"]
        check_prob, check_pos = unarray(c["prob"]), unarray(c["positive"])
        self._check_prob, self._check_pos = ([check_prob], [check_pos]) if len(
            check_prob) else ([], [])
        self._check_n = int(c["n"])
        self._check_span = None if c["span"] is None else (int(c["span"][0]),
                                                           float(c["span"][1]))
        counters = state["counters"]
        self.blocks_seen = int(counters["blocks"])
        self.withdrawn, self.confirmed = int(counters["withdrawn"]), int(counters["confirmed"])

    def _reference_blocks(self, scored: ScoredReference) -> list[float]:
        """Estimates of blocks drawn from the reference (with replacement, seeded): how a
        block's estimate spreads when nothing changed. A few hundred draws pin the spread
        down better than the reference's few dozen blocks would."""
        n = len(scored.prob)
        if n < MIN_REFERENCE_BLOCKS * self.block:
            raise ValueError(f"the reference holds {n} scored rows; at least "
                             f"{MIN_REFERENCE_BLOCKS * self.block} are needed")
        rng = np.random.default_rng(REFERENCE_DRAWS)
        out = []
        for rows in rng.integers(0, n, size=(REFERENCE_DRAWS, self.block)):
            est = estimate(self.metric, scored.prob[rows], scored.predicted_positive[rows],
                           scored.scores[rows])
            if est is not None:
                out.append(est.value)
        return out

    # -- a batch: its predictions, its labels, then both in event order ----------------------
    def predictions(self, seq: NDArray[np.int64], ts: FloatArray, scores: FloatArray,
                    predicted_positive: BoolArray) -> None:
        """A model's predictions in order (a score of NaN: none): the blocks they complete
        are estimated, and evaluated at :meth:`flush`."""
        prob = self.scored.calibration(scores)
        n, i = len(seq), 0
        while i < n:
            if self._open == 0:
                self._open_start = (int(seq[i]), float(ts[i]))
            end = min(n, i + self.block - self._open)
            self._prob.append(prob[i:end])
            self._pred.append(predicted_positive[i:end])
            self._scores.append(scores[i:end])
            self._open += end - i
            if self._open == self.block:
                self._queue(int(seq[end - 1]), float(ts[end - 1]))
            i = end

    def _queue(self, last_seq: int, last_ts: float) -> None:
        assert self._open_start is not None
        prob, pred, scores = (np.concatenate(self._prob), np.concatenate(self._pred),
                              np.concatenate(self._scores))
        self._prob, self._pred, self._scores, self._open = [], [], [], 0
        est = estimate(self.metric, prob, pred, scores)
        labels, correct = self._open_counts
        self._open_counts = [0, 0]
        self._queued.append(_Block(self._open_start[0], last_seq, self._open_start[1],
                                   last_ts, None if est is None else est.value, labels,
                                   correct))

    def labels(self, prediction_seq: NDArray[np.int64], seq: NDArray[np.int64],
               ts: FloatArray, positive: BoolArray, predicted_positive: BoolArray,
               scores: FloatArray) -> None:
        """Labelled predictions (``prediction_seq``: where each prediction was; ``seq``,
        ``ts``: where its label came), taken in order at :meth:`flush`."""
        if len(seq):
            self._chunks.append(_LabelChunk(prediction_seq, seq, ts,
                                            positive == predicted_positive,
                                            self.scored.calibration(scores), positive))

    def flush(self) -> Findings:
        """The batch's blocks and labels in event order (a block's evaluation sees the
        labels that came before its last prediction, and no other), whatever the batch:
        realized values, confirmations and withdrawals, calibration checks, the blocks'
        evaluations."""
        out = Findings()
        chunks, self._chunks = self._chunks, []
        queued, self._queued = self._queued, []
        if chunks:
            cat = [np.concatenate([getattr(c, f) for c in chunks])
                   for f in ("prediction_seq", "seq", "ts", "right", "prob", "positive")]
            order = np.argsort(cat[1], kind="stable")
            labels = _LabelChunk(*(a[order] for a in cat))
        else:
            labels = None
        # every block a label of this batch can be for (blocks that close here join
        # the recent ones and the awaited ones as they close: all are in this list)
        seen: set[int] = set()
        blocks = []
        for b in (*self._blocks, *self.awaiting, *queued):
            if id(b) not in seen:
                seen.add(id(b))
                blocks.append(b)
        blocks.sort(key=lambda b: b.first_seq)
        start = 0
        for block in queued:
            if labels is not None:
                stop = int(np.searchsorted(labels.seq, block.last_seq, side="right"))
                self._take_labels(labels, start, stop, blocks, out)
                start = stop
            self._close(block, out)
        if labels is not None:
            self._take_labels(labels, start, len(labels.seq), blocks, out)
        return out

    def _take_labels(self, labels: _LabelChunk, start: int, stop: int,
                     blocks: list[_Block], out: Findings) -> None:
        """Labels ``start:stop`` of the batch, in order: counted to their blocks; a run
        waiting for them confirmed or withdrawn; a calibration check every
        ``window_events`` of them."""
        size = self.settings.window_events
        while start < stop:
            end = min(stop, start + size - self._check_n)
            part = slice(start, end)
            self._count(labels.prediction_seq[part], labels.right[part], blocks)
            self._confirm()
            prob, pos = labels.prob[part], labels.positive[part]
            ok = ~np.isnan(prob)
            if self._check_span is None:
                self._check_span = (int(labels.seq[start]), float(labels.ts[start]))
            self._check_prob.append(prob[ok])
            self._check_pos.append(pos[ok])
            self._check_n += end - start
            if self._check_n >= size:
                self._check(int(labels.seq[end - 1]), float(labels.ts[end - 1]), out)
            start = end

    def _close(self, block: _Block, out: Findings) -> None:
        """A block's evaluation: the CUSUM, and whether it fires, is held or is clear."""
        self.blocks_seen += 1
        held: frozenset[SeriesKey] = frozenset()
        fired: frozenset[SeriesKey] = frozenset()
        key: SeriesKey = (Kind.PERFORMANCE, self.metric, self.statistic)
        last_seq, last_ts = block.last_seq, block.last_ts
        samples: tuple[Sample, ...] = ()
        if block.value is None:
            held = frozenset({key})
        else:
            self._blocks.append(block)
            if self.awaiting:  # what follows a run that fired tells whether it was right
                self.awaiting = [*self.awaiting, block][-AWAIT_BLOCKS:]
            # while the calibration does not hold no estimate is trusted: none fires, and
            # the series is clear (an estimated alert resolves)
            if not self.suspended:
                value = self.cusum.add(np.array([-block.value]))
                self.peak = value
                if self.cusum.value == 0.0:
                    self.run = []
                else:
                    self.run.append(block)
                    self.run = self.run[-(self._blocks.maxlen or 1):]
                # the block's estimate; when it fires, the signal's (the run's mean)
                shown = round(block.value, 6)
                if value >= self.cusum.h:
                    signal = self._signal(block)
                    out.signals.append(signal)
                    shown = signal.value
                    fired = frozenset({key})
                    self.awaiting = [*self.awaiting, *(b for b in self.run
                                                       if b not in self.awaiting)][-AWAIT_BLOCKS:]
                elif (value >= (1.0 - self.settings.hysteresis) * self.cusum.h
                      or self.awaiting):
                    # in the band; or it fired and its labels have not said yet whether the
                    # estimate was right: an estimate that recovers is not over until then
                    held = frozenset({key})
                samples = (Sample(*key, None, None, shown, round(self.line, 6)),)
        out.evaluations.append(Evaluation(
            self.profile.model_id,
            Scope(frozenset({Kind.PERFORMANCE}), self.metric, statistics=frozenset(
                {self.statistic})), last_seq, last_ts, held, fired, samples))

    def _realized(self, blocks: list[_Block]) -> tuple[float | None, int]:
        labels = sum(b.labels for b in blocks)
        if self.metric != "accuracy" or not labels:
            return None, labels
        return sum(b.correct for b in blocks) / labels, labels

    def _signal(self, block: _Block) -> Signal:
        run = self.run or [block]
        value = float(np.mean([b.value for b in run]))
        realized, labels = self._realized(run)
        evidence: dict[str, EvidenceValue] = {
            "estimated": True,
            "reference": round(self.reference, 6),
            "current": round(value, 6),
            "drop": round(self.reference - value, 6),
            "max_drop": self.max_drop,
            "tolerance_line": round(self.line, 6),
            "reference_margin": round(self.margin, 6),
            "cusum": round(self.cusum.value, 3),
            "cusum_h": self.cusum.h,
            "predictions": len(run) * self.block,
            "change_detected_at_seq": run[0].first_seq,
            "realized": None if realized is None else round(realized, 6),
            "realized_labels": labels,
            "calibration_rows": self.scored.calibration.n,
        }
        window = Window(run[0].first_seq, block.last_seq, run[0].first_ts, block.last_ts,
                        len(run) * self.block)
        return Signal(model_id=self.profile.model_id, kind=Kind.PERFORMANCE,
                      subject=self.metric, statistic=self.statistic, value=round(value, 6),
                      threshold=round(self.line, 6), window=window, evidence=evidence,
                      ts=block.last_ts, seq=block.last_seq)

    def _count(self, prediction_seq: NDArray[np.int64], right: BoolArray,
               blocks: list[_Block]) -> None:
        """Count labels to the blocks of their predictions (``blocks``, in order: the
        recent ones, those that fired and wait for their labels however long ago, those
        closed this batch), or to the one still open."""
        if not len(prediction_seq):
            return
        if blocks:
            starts = np.fromiter((b.first_seq for b in blocks), np.int64, len(blocks))
            ends = np.fromiter((b.last_seq for b in blocks), np.int64, len(blocks))
            where = np.searchsorted(starts, prediction_seq, side="right") - 1
            ok = where >= 0
            ok[ok] = prediction_seq[ok] <= ends[where[ok]]
            labels = np.bincount(where[ok], minlength=len(blocks))
            correct = np.bincount(where[ok], weights=right[ok], minlength=len(blocks))
            for k in np.flatnonzero(labels).tolist():
                blocks[k].labels += int(labels[k])
                blocks[k].correct += int(correct[k])
        if self._open_start is not None and self._open:  # the open block's, for its close
            mine = prediction_seq >= self._open_start[0]
            if blocks:
                mine &= prediction_seq > blocks[-1].last_seq
            self._open_counts[0] += int(mine.sum())
            self._open_counts[1] += int((right & mine).sum())

    def _confirm(self) -> None:
        """Runs that fired, once their blocks hold enough labels: confirmed (the labels
        show the fall too), or withdrawn (the CUSUM reset: the estimate was wrong, and its
        series clears)."""
        if not self.awaiting:
            return
        realized, labels = self._realized(self.awaiting)
        if realized is None or labels < self.settings.performance.window_labels:
            return
        self.awaiting = []
        if self.reference - realized < (1.0 - self.settings.hysteresis) * self.max_drop:
            # withdrawn: wrong for this stream; trusted again once a calibration check of
            # labels that come from now on passes
            self.cusum.value, self.run, self.suspended = 0.0, [], True
            self._check_prob, self._check_pos, self._check_n, self._check_span = [], [], 0, None
            self.withdrawn += 1
        else:
            self.confirmed += 1

    def _check(self, last_seq: int, last_ts: float, out: Findings) -> None:
        prob, pos = np.concatenate(self._check_prob), np.concatenate(self._check_pos)
        span = self._check_span
        self._check_prob, self._check_pos, self._check_n, self._check_span = [], [], 0, None
        check = calibration_check(prob, pos, reference_n=self.scored.calibration.n)
        if check is None or span is None:
            return
        key: SeriesKey = (Kind.MONITORING_HEALTH, "calibration", "calibration_z")
        fired: frozenset[SeriesKey] = frozenset()
        held: frozenset[SeriesKey] = frozenset()
        if check.z > CALIBRATION_Z:
            self.suspended = True
            self.cusum.value, self.run, self.awaiting = 0.0, [], []
            fired = frozenset({key})
            out.signals.append(Signal(
                model_id=self.profile.model_id, kind=Kind.MONITORING_HEALTH,
                subject="calibration", statistic="calibration_z", value=round(check.z, 3),
                threshold=CALIBRATION_Z,
                window=Window(span[0], last_seq, span[1], last_ts, check.n),
                evidence={"expected_positive_rate": round(check.expected, 6),
                          "realized_positive_rate": round(check.realized, 6),
                          "labels": check.n,
                          "reason": "the labels no longer follow the scores' calibration: "
                                    "performance estimated from scores cannot be trusted "
                                    "(it is suspended until they agree again)"},
                ts=last_ts, seq=last_seq))
        elif check.z > CALIBRATION_OK_Z:
            held = frozenset({key})
        else:
            self.suspended = False
        out.evaluations.append(Evaluation(
            self.profile.model_id, Scope(frozenset({Kind.MONITORING_HEALTH}), "calibration"),
            last_seq, last_ts, held, fired,
            (Sample(*key, None, None, round(check.z, 3), CALIBRATION_Z),)))

    def counters(self) -> dict[str, int | bool]:
        return {"blocks": self.blocks_seen, "confirmed": self.confirmed,
                "withdrawn": self.withdrawn, "suspended": self.suspended}
