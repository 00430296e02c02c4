"""Performance before the labels arrive: confidence-based performance estimation (CBPE).

A binary classifier's score, mapped through a calibration fit on the labelled reference,
gives each unlabelled row a probability ``p`` that its label is the positive class. If the
calibration still holds (no *concept* shift: P(y | score) unchanged), the expected value of
any confusion-matrix metric over a window follows from those probabilities alone, so a
window of predictions is scored the moment it closes. This is the case CBPE is for: a
*covariate* shift that moves rows towards the uncertain middle lowers the expected accuracy,
and the estimate follows it. Whether the calibration itself still holds can only be checked
on labelled rows: :func:`calibration_check`.

Standard errors: each estimate's ``stderr`` is the sampling noise of the *realized* metric
around the estimate, given the window's probabilities (rows are independent Bernoulli
draws), with the floors of :mod:`stream.metrics` so the two compare directly; ±2 stderr
covered the realized value in ~95% of simulated windows for all three metrics. It does
not include the calibration's own error (a fit on ``Calibration.n`` reference rows): that
is one bias shared by every window, not noise that averages out (with 5,000 reference
rows it measured ±0.004 in expected accuracy, one sd over refits; ±0.001 with 100,000).

>>> scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
>>> labels = np.array([0, 0, 1, 0, 1, 0, 1, 1], dtype=bool)
>>> cal = Calibration.fit(scores, labels)
>>> cal.knots_x.tolist(), cal.knots_y.tolist()
([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0.0, 0.0, 0.5, 0.5, 1.0, 1.0])
>>> cal(np.array([0.05, 0.25, 0.5, 0.95, np.nan])).tolist()
[1e-06, 0.25, 0.5, 0.999999, nan]
>>> prob = np.array([0.1, 0.2, 0.9, 0.6])
>>> est = expected_accuracy(prob, prob >= 0.5)
>>> round(est.value, 12), round(est.stderr, 4), est.n
(0.8, 0.1904, 4)
>>> round(expected_f1(prob, prob >= 0.5).value, 4)
0.7895
>>> auc = expected_roc_auc(np.array([0.2, 0.4, 0.6, 0.8]), np.array([1.0, 2.0, 3.0, 4.0]))
>>> round(auc.value, 12), auc.n
(0.8125, 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import isotonic_regression

from stream.metrics import Estimate

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

PROB_FLOOR = 1e-6
"""Calibrated probabilities are clipped to [PROB_FLOOR, 1 - PROB_FLOOR]."""
MIN_CHECK_ROWS = 30
""":func:`calibration_check` needs at least this many labelled rows."""
CHECK_BINS = 10
CHECK_BIN_VARIANCE = 10.0
"""Each bin of :func:`calibration_check` holds at least this much Bernoulli variance."""
METRICS = ("accuracy", "roc_auc", "f1")


@dataclass(frozen=True, slots=True, eq=False)
class Calibration:
    """Isotonic map from a model's score to P(label == positive), fit on the reference.

    Only the ends of each isotonic block are kept as knots: interpolating between them
    gives exactly what interpolating between every distinct reference score would. The
    knot arrays are read-only; two calibrations are equal when their knots and ``n`` are.

    >>> c = Calibration.fit(np.array([0.3, 0.3, 0.6, 0.9]), np.array([1, 0, 0, 1], dtype=bool))
    >>> c.knots_x.tolist(), c.knots_y.tolist(), c.n
    ([0.3, 0.6, 0.9], [0.3333333333333333, 0.3333333333333333, 1.0], 4)
    >>> Calibration.from_state(c.to_state()) == c
    True
    """

    knots_x: FloatArray
    """Increasing scores."""
    knots_y: FloatArray
    """Calibrated probabilities at them (non-decreasing, in [0, 1])."""
    n: int
    """Reference rows it was fit on."""

    def __post_init__(self) -> None:
        x = np.array(self.knots_x, dtype=np.float64)
        y = np.array(self.knots_y, dtype=np.float64)
        if x.ndim != 1 or y.shape != x.shape or len(x) == 0:
            raise ValueError("knots_x and knots_y must be 1-D, non-empty and of one length")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("knots must be finite")
        if (np.diff(x) <= 0).any():
            raise ValueError("knots_x must be strictly increasing")
        if (np.diff(y) < 0).any() or y[0] < 0 or y[-1] > 1:
            raise ValueError("knots_y must be non-decreasing and within [0, 1]")
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer) or self.n < 2:
            raise ValueError(f"n must be an integer >= 2, got {self.n!r}")
        x.setflags(write=False)
        y.setflags(write=False)
        object.__setattr__(self, "knots_x", x)
        object.__setattr__(self, "knots_y", y)
        object.__setattr__(self, "n", int(self.n))

    @classmethod
    def fit(cls, scores: FloatArray, positive: BoolArray) -> Calibration:
        """Isotonic regression of ``positive`` on ``scores`` (rows with a NaN or infinite
        score are dropped; rows that share a score are pooled first, weighted by count).

        Raises ValueError if the arrays differ in shape, fewer than 2 rows remain, or they
        hold one class only.
        """
        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(positive, dtype=np.bool_)
        if s.ndim != 1 or y.shape != s.shape:
            raise ValueError("scores and positive must be 1-D arrays of one length")
        ok = np.isfinite(s)
        if not ok.all():
            s, y = s[ok], y[ok]
        n = len(s)
        if n < 2:
            raise ValueError(f"a calibration needs at least 2 rows with a score, got {n}")
        n_pos = int(np.count_nonzero(y))
        if n_pos == 0 or n_pos == n:
            raise ValueError("a calibration needs both classes in the reference")
        order = np.argsort(s, kind="stable")
        ss = s[order]
        ys = y[order].astype(np.float64)
        starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
        counts = np.diff(np.r_[starts, n]).astype(np.float64)
        means = np.add.reduceat(ys, starts) / counts
        xs = ss[starts]
        iso = isotonic_regression(means, weights=counts, increasing=True)
        fitted = np.clip(np.asarray(iso.x, dtype=np.float64), 0.0, 1.0)
        blocks = np.asarray(iso.blocks, dtype=np.intp)
        keep = np.unique(np.r_[blocks[:-1], blocks[1:] - 1])
        return cls(xs[keep], fitted[keep], n)

    def __call__(self, scores: FloatArray) -> FloatArray:
        """P(label == positive) at each score: linear between knots, flat beyond the ends,
        clipped to [1e-6, 1 - 1e-6]; NaN scores give NaN."""
        s = np.asarray(scores, dtype=np.float64)
        out: FloatArray = np.clip(
            np.asarray(np.interp(s, self.knots_x, self.knots_y), dtype=np.float64),
            PROB_FLOOR,
            1.0 - PROB_FLOOR,
        )
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Calibration):
            return NotImplemented
        return (
            self.n == other.n
            and np.array_equal(self.knots_x, other.knots_x)
            and np.array_equal(self.knots_y, other.knots_y)
        )

    def to_state(self) -> dict[str, list[float] | int]:
        """A JSON-able dict that :meth:`from_state` turns back into this calibration
        (floats survive a JSON round trip exactly)."""
        return {"knots_x": self.knots_x.tolist(), "knots_y": self.knots_y.tolist(), "n": self.n}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Calibration:
        """The calibration :meth:`to_state` saved; ValueError if the state is malformed."""
        try:
            x, y, n = state["knots_x"], state["knots_y"], state["n"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a calibration state: {exc!r}") from exc
        try:
            xa = np.asarray(x, dtype=np.float64)
            ya = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a calibration state: {exc!r}") from exc
        return cls(xa, ya, n)


def _rows(prob: FloatArray, *others: NDArray[Any]) -> tuple[FloatArray, ...]:
    """Validated 1-D float arrays of one length, without the rows where any is NaN."""
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("prob must be a 1-D array")
    arrays = [p]
    for a in others:
        arr = np.asarray(a, dtype=np.float64)
        if arr.shape != p.shape:
            raise ValueError(f"arrays differ in shape: {p.shape} and {arr.shape}")
        arrays.append(arr)
    bad = np.isnan(p)
    for arr in arrays[1:]:
        bad |= np.isnan(arr)
    if bad.any():
        arrays = [arr[~bad] for arr in arrays]
        p = arrays[0]
    if len(p) and (p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("prob must lie within [0, 1]")
    return tuple(arrays)


def expected_accuracy(prob: FloatArray, predicted_positive: BoolArray) -> Estimate:
    """Mean over rows of P(the prediction is right): ``p`` where the model predicted the
    positive class, ``1 - p`` elsewhere.

    ``stderr`` is the realized accuracy's sampling noise given the probabilities,
    sqrt(sum p(1-p)) / n, with ``stream.metrics``' floor of 0.25/n on the per-row
    variance (a window of near-certain rows still gets a non-zero stderr). The
    calibration's own error is not in it. Rows with a NaN probability are left out;
    ValueError if none remain.
    """
    p, pp = _rows(prob, predicted_positive)
    n = len(p)
    if n == 0:
        raise ValueError("no rows with a probability")
    pos = pp != 0
    correct = np.where(pos, p, 1.0 - p)
    acc = float(correct.sum()) / n
    var_row = float(np.dot(p, 1.0 - p)) / n
    return Estimate(acc, math.sqrt(max(var_row, 0.25 / n) / n), n)


def expected_f1(prob: FloatArray, predicted_positive: BoolArray) -> Estimate | None:
    """F1 of the expected confusion matrix: E[TP] = sum of ``p`` over predicted positives,
    E[FP] = sum of ``1 - p`` over them, E[FN] = sum of ``p`` over predicted negatives.

    ``stderr``: like the accuracy's, the realized F1's sampling noise given the
    probabilities, here by the delta method (F1 = 2TP / (n_pred_pos + TP + FN) with TP and
    FN independent sums of Bernoulli rows), floored as ``stream.metrics``' F1 is: at least
    0.5 / eff with eff = tp + (fp + fn)/2 "relevant" rows. (``stream.metrics``' own
    formula, a proportion over eff rows, also counts the spread of the scores from window
    to window; against the realized F1 it came out 1.5 times too wide, ±2 stderr covering
    99.7% of windows instead of 95%.) None when 2·E[TP] + E[FP] + E[FN] is 0 (or no rows
    have a probability).
    """
    p, pp = _rows(prob, predicted_positive)
    pos = pp != 0
    p_pos = p[pos]
    p_neg = p[~pos]
    tp = float(p_pos.sum())
    fp = len(p_pos) - tp
    fn = float(p_neg.sum())
    denom = 2 * tp + fp + fn
    if denom <= 0:
        return None
    f1 = 2 * tp / denom
    var_tp = float(np.dot(p_pos, 1.0 - p_pos))
    var_fn = float(np.dot(p_neg, 1.0 - p_neg))
    var = 4 * ((len(p_pos) + fn) ** 2 * var_tp + tp * tp * var_fn) / denom**4
    eff = max(tp + (fp + fn) / 2, 1.0)
    return Estimate(f1, math.sqrt(max(var, 0.25 / (eff * eff))), len(p))


def expected_roc_auc(prob: FloatArray, scores: FloatArray) -> Estimate | None:
    """ROC AUC with every row counted as a positive of weight ``p`` and a negative of
    weight ``1 - p`` (NannyML's CBPE): rows sorted by score, soft TPR against soft FPR,
    trapezoids, tied scores as one step (half credit, as average ranks give).

    Unlike the plain trapezoid, a row is never paired with itself (a realized AUC only
    pairs distinct rows): the self-pairs' half credit, sum p(1-p)/2, comes off the
    numerator and sum p(1-p) off the denominator. This removes a pull towards 0.5 of
    order sum p(1-p)/(n1·n0), a few 1e-4 on 1,000 rows.

    ``stderr`` by Hanley & McNeil as in ``stream.metrics`` with n1 = sum(p) and
    n0 = sum(1 - p). Rows with a NaN probability or score are left out; None when
    n1 or n0 is under 1.
    """
    p, s = _rows(prob, scores)
    n1 = float(p.sum())
    n0 = len(p) - n1
    if n1 < 1.0 or n0 < 1.0:
        return None
    order = np.argsort(s, kind="stable")
    ss = s[order]
    ps = p[order]
    if (ss[1:] == ss[:-1]).any():
        starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
        pos_w = np.add.reduceat(ps, starts)
        neg_w = np.diff(np.r_[starts, len(ps)]) - pos_w
    else:
        pos_w = ps
        neg_w = 1.0 - ps
    neg_below = np.cumsum(neg_w) - neg_w
    half_self = 0.5 * float(np.dot(p, 1.0 - p))
    numer = float(np.dot(pos_w, neg_below)) + 0.5 * float(np.dot(pos_w, neg_w)) - half_self
    pairs = n1 * n0 - 2 * half_self
    auc = min(max(numer / pairs, 0.0), 1.0)
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)
    return Estimate(auc, math.sqrt(max(var, 1e-12)), len(p))


def estimate(
    metric: str,
    prob: FloatArray,
    predicted_positive: BoolArray,
    scores: FloatArray | None,
) -> Estimate | None:
    """The expected ``metric`` ("accuracy", "roc_auc" or "f1") of a window of predictions.

    None where the window cannot define it (no rows with a probability; no scores, or
    too little weight in a class, for AUC). ValueError on an unknown metric.
    """
    if metric == "accuracy":
        p = np.asarray(prob, dtype=np.float64)
        if np.isnan(p).all():
            return None
        return expected_accuracy(p, predicted_positive)
    if metric == "f1":
        return expected_f1(prob, predicted_positive)
    if metric == "roc_auc":
        if scores is None:
            return None
        return expected_roc_auc(prob, scores)
    raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")


@dataclass(frozen=True, slots=True)
class CalibrationCheck:
    """Realized vs expected: does the calibration still hold on labelled rows?

    ``z`` is one-sided: large positive values mean the labels disagree with the
    probabilities more than chance allows; values near or below 0 mean they agree.
    """

    expected: float
    """Mean calibrated probability (the expected positive rate)."""
    realized: float
    """Realized positive rate on the same rows."""
    z: float
    n: int


def _wilson_hilferty(stat: float, dof: int) -> float:
    """The standard-normal quantile of a chi-square(dof) value (Wilson & Hilferty, 1931)."""
    c = 2.0 / (9.0 * dof)
    return (math.pow(stat / dof, 1.0 / 3.0) - (1.0 - c)) / math.sqrt(c)


def calibration_check(
    prob: FloatArray, positive: BoolArray, *, reference_n: int | None = None
) -> CalibrationCheck | None:
    """Whether labelled rows still follow their calibrated probabilities.

    The rows are sorted by ``p`` and cut into bins of equal Bernoulli variance, as many
    as hold about 10 of sum p(1-p) each (at least 1, at most 10); the statistic is
    H = sum over bins of (positives - sum p)^2 / sum p(1-p), chi-square with one degree
    of freedom per bin while the calibration holds (it was fit elsewhere, so no degrees
    are lost), reported as ``z`` by Wilson-Hilferty.

    Why bins and not only the mean: a concept shift can leave the positive rate where it
    was. Labels flipped at random for 30% of rows turn P(y|score) = p into 0.3 + 0.4p; on
    a balanced stream the mean test gives |z| ~ 1 on 2,000 rows, H gives z ~ 25. Bins of
    equal variance rather than equal count keep every term near-normal (rows with p near
    0 or 1 are pooled into wider bins) and let the bin count follow the window. A
    2-degree-of-freedom score test of the calibration's intercept and slope did as well
    on flips (z ~ 30) but was nearly blind to local changes: with the middle band of
    scores turned to coin flips, z > 4 on 2,000 rows in 12% of windows against 69% for
    the bins. The price: a uniform shift of the positive rate is found later than by the
    mean test alone (+0.05 on every row of 2,000: z ~ 4.6, the mean test ~ 6.3).

    ``reference_n`` (pass ``Calibration.n``) allows for the calibration's own sampling
    error: the bins' variances are scaled by 1 + n/reference_n, which assumes the labelled
    rows spread over the scores like the reference. Without it a window not much smaller
    than the reference reads the fit's noise as miscalibration (2,000 rows against a
    5,000-row reference: |z| > 3 in 2.3% of windows, 0.5% with it; 5,000 against 5,000:
    14% and 0.9%).

    Rows with a NaN probability are left out; None under 30 rows.
    """
    if reference_n is not None and reference_n < 1:
        raise ValueError(f"reference_n must be at least 1, got {reference_n}")
    p, y = _rows(prob, positive)
    n = len(p)
    if n < MIN_CHECK_ROWS:
        return None
    order = np.argsort(p, kind="stable")
    ps = p[order]
    resid = (y[order] != 0) - ps
    var = ps * (1.0 - ps)
    cum = np.cumsum(var)
    total = float(cum[-1])
    bins = int(min(CHECK_BINS, max(1, total // CHECK_BIN_VARIANCE)))
    cuts = np.searchsorted(cum, total * np.arange(1, bins) / bins, side="right")
    starts = np.unique(np.r_[0, cuts])
    starts = starts[starts < n]
    r_b = np.add.reduceat(resid, starts)
    v_b = np.maximum(np.add.reduceat(var, starts), 1e-12)
    if reference_n is not None:
        v_b *= 1.0 + n / reference_n
    stat = float(np.sum(r_b * r_b / v_b))
    expected = float(p.mean())
    realized = float(np.count_nonzero(y)) / n
    return CalibrationCheck(expected, realized, _wilson_hilferty(stat, len(starts)), n)
