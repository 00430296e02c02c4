"""Statistical tests shared by the monitors: small, vectorised, dependency-light.

Every test here answers two questions, because a page needs both: is the change *large*
(an effect size against a practical threshold) and is it *real* (significant at a level
corrected for how many tests run at once)?

>>> round(psi([50, 50], [50, 50]), 6)
0.0
>>> round(psi([90, 10], [50, 50]), 3)
0.879
>>> rate_increase_z(count=50, n=1000, ref_rate=0.02, ref_n=5000) > 6
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import chi2, norm

FloatArray = NDArray[np.float64]
Histogram = Sequence[float] | NDArray[Any]
_PSI_FLOOR = 1e-4


@lru_cache(maxsize=4096)
def z_critical(alpha: float, tests: int = 1) -> float:
    """One-sided critical z for level ``alpha`` Bonferroni-corrected over ``tests`` tests
    (memoised: scipy's ``isf`` costs tens of microseconds).

    >>> round(z_critical(0.05), 3)
    1.645
    """
    return float(norm.isf(alpha / max(tests, 1)))


def _proportions(counts: Histogram) -> FloatArray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return np.full(c.shape, 1.0 / max(len(c), 1), dtype=np.float64)
    shares: FloatArray = np.maximum(c / total, _PSI_FLOOR)
    return shares


def psi(current: Histogram, reference: Histogram) -> float:
    """Population stability index of two histograms over the same bins (counts or shares)."""
    p = _proportions(current)
    q = _proportions(reference)
    return float(np.sum((p - q) * np.log(p / q)))


def chi2_homogeneity_p(
    current: Histogram, reference: Histogram
) -> float:
    """p-value of the chi-square test that two histograms come from one distribution.

    >>> chi2_homogeneity_p([500, 500], [5000, 5000]) > 0.9
    True
    >>> chi2_homogeneity_p([900, 100], [5000, 5000]) < 1e-10
    True
    """
    obs = np.vstack([np.asarray(current, np.float64), np.asarray(reference, np.float64)])
    obs = obs[:, obs.sum(axis=0) > 0]
    if obs.shape[1] < 2 or (obs.sum(axis=1) <= 0).any():
        return 1.0
    expected = obs.sum(axis=1, keepdims=True) * obs.sum(axis=0, keepdims=True) / obs.sum()
    stat = float(((obs - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, obs.shape[1] - 1))


def rate_increase_z(count: int, n: int, ref_rate: float, ref_n: int) -> float:
    """z of a one-sided test that a rate in a window (``count``/``n``) exceeds a reference rate.

    The variance includes the reference's own sampling error, and a zero reference rate is
    floored at half an event in the reference, so that "never seen before" is not infinitely
    surprising after a single occurrence.
    """
    if n <= 0:
        return 0.0
    p = count / n
    p0 = max(ref_rate, 0.5 / max(ref_n, 1))
    var = p0 * (1 - p0) / n + p0 * (1 - p0) / max(ref_n, 1)
    return (p - ref_rate) / math.sqrt(var)


def welch_drop_z(
    ref_mean: float, ref_var: float, ref_n: int, cur_mean: float, cur_var: float, cur_n: int
) -> float:
    """z of the fall from a reference mean to a current mean (positive = fell).

    >>> round(welch_drop_z(0.3, 0.21, 500, 0.18, 0.15, 400), 2)
    4.26
    """
    se = math.sqrt(max(ref_var, 0.0) / max(ref_n, 1) + max(cur_var, 0.0) / max(cur_n, 1))
    if se == 0:
        return math.inf if ref_mean > cur_mean else 0.0
    return (ref_mean - cur_mean) / se
