"""Model-quality metrics over arrays of labelled predictions, each with its standard error.

The standard error lets a monitor tell a real fall in a metric from the noise of a small
window (a slice with 150 labels moves by ±3 points of accuracy by chance alone).

>>> import numpy as np
>>> y = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=np.float64)
>>> p = np.array([1, 0, 0, 1, 0, 1, 1, 0], dtype=np.float64)
>>> est = compute("accuracy", y, p, None, positive=1.0)
>>> est.value, round(est.stderr, 4)
(0.75, 0.1531)
>>> s = np.array([0.9, 0.2, 0.4, 0.8, 0.1, 0.6, 0.7, 0.3])
>>> compute("roc_auc", y, p, s, positive=1.0).value
0.9375
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A metric value, its standard error and the number of labels behind it."""

    value: float
    stderr: float
    n: int


def _accuracy(y: FloatArray, p: FloatArray) -> Estimate:
    n = len(y)
    acc = int(np.count_nonzero(y == p)) / n  # (what np.mean gives, without its overhead)
    return Estimate(acc, math.sqrt(max(acc * (1 - acc), 0.25 / n) / n), n)


def _f1(y: FloatArray, p: FloatArray, positive: float) -> Estimate | None:
    yt = y == positive
    yp = p == positive
    tp = float(np.count_nonzero(yt & yp))
    fp = float(np.count_nonzero(~yt & yp))
    fn = float(np.count_nonzero(yt & ~yp))
    denom = 2 * tp + fp + fn
    if denom == 0:
        return None
    f1 = 2 * tp / denom
    # F1 behaves like a proportion over the tp + (fp + fn)/2 "relevant" rows.
    eff = max(tp + (fp + fn) / 2, 1.0)
    return Estimate(f1, math.sqrt(max(f1 * (1 - f1), 0.25 / eff) / eff), len(y))


def _roc_auc(y: FloatArray, s: FloatArray, positive: float) -> Estimate | None:
    pos = y == positive
    n1 = int(pos.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.arange(1, len(s) + 1, dtype=np.float64)
    # average ranks over ties
    sorted_s = s[order]
    _, start, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    if len(start) < len(s):
        avg = start + (counts + 1) / 2.0
        ranks[order] = np.repeat(avg, counts)
    auc = (float(ranks[pos].sum()) - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    # Hanley & McNeil (1982)
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)
    return Estimate(auc, math.sqrt(max(var, 1e-12)), len(y))


def _mae(y: FloatArray, p: FloatArray) -> Estimate:
    e = np.abs(y - p)
    n = len(e)
    return Estimate(float(e.mean()), float(e.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0, n)


def _rmse(y: FloatArray, p: FloatArray) -> Estimate:
    sq = (y - p) ** 2
    n = len(sq)
    mse = float(sq.mean())
    rmse = math.sqrt(mse)
    se_mse = float(sq.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return Estimate(rmse, se_mse / (2 * rmse) if rmse > 0 else se_mse, n)


def compute(
    metric: str,
    y: FloatArray,
    pred: FloatArray,
    score: FloatArray | None,
    *,
    positive: float,
) -> Estimate | None:
    """The metric over labels ``y`` and predictions ``pred`` (class codes or numbers).

    Returns None where the window cannot define it (one class only, no scores for AUC).
    """
    if len(y) == 0:
        return None
    if metric == "accuracy":
        return _accuracy(y, pred)
    if metric == "f1":
        return _f1(y, pred, positive)
    if metric == "roc_auc":
        if score is None:
            return None
        ok = ~np.isnan(score)
        if not ok.all():
            y, score = y[ok], score[ok]
            if len(y) == 0:
                return None
        return _roc_auc(y, score, positive)
    if metric == "mae":
        return _mae(y, pred)
    if metric == "rmse":
        return _rmse(y, pred)
    raise ValueError(f"unknown metric {metric!r}")
