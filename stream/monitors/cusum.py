"""Sequential detection of a metric that stays beyond its tolerance line: a one-sided CUSUM.

A fixed window tested on its own must pick between seeing small falls late (a long window)
and paging on noise (a short one), and a Bonferroni level over every window divides what
each test may see. A CUSUM (Page, 1954) accumulates the evidence instead: each labelled
prediction adds its log-likelihood ratio of "beyond the tolerance line" against "as in the
reference", the sum is kept at zero or above, and it *alarms* when it reaches ``h``. A model
as good as its reference drives the sum down; a model beyond the line drives it up, by
about the Kullback-Leibler divergence per label, so a small fall is seen after about
``h / KL`` labels, a large one after a few dozen. Lorden's bound gives the false-alarm
rate: on a model as good as its reference, at most one alarm per ``exp(h)`` labels on
average (the default ``h = 14``: one per 1.2 million labels; measured rarer still: none in
20 million labels of a 0.944-accurate model, see the README).

*Against the tolerance line*: the increments are chosen so that their mean is exactly zero
for a model at ``reference - max_drop`` (the line): above it the sum drifts down, below it
up. For accuracy the increment is the Bernoulli log-likelihood ratio of error rates ``p0``
(the reference's) and ``p1``, with ``p1`` the rate at which its break-even point is the line.
Metrics that are means of a per-label loss (MAE, squared error for RMSE) use the Gaussian
ratio with the reference's spread; ROC AUC and F1, which are not, are computed on blocks of
labels, each block one increment. river's detectors (``PageHinkley``, ADWIN) test a stream
against its own running mean and have no tolerance line or false-alarm rate, hence this.

The sum is capped at ``cap * h`` so that once a condition ends the sum falls below ``h``
again within a few hundred labels, however long the condition lasted.

>>> c = Cusum.bernoulli(p0=0.056, line=0.076, h=12.0)
>>> round(c.p1, 4), round(c.up, 4), round(c.down, 4)
(0.0999, 0.5784, -0.0476)
>>> c.add(np.array([0.0] * 100)), c.value  # a hundred right answers: stays at zero
(0.0, 0.0)
>>> peak = c.add(np.array([1.0] * 21)); round(peak, 2), c.alarm  # 21 errors in a row
(12.15, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def breakeven_p1(p0: float, line: float) -> float:
    """The error rate ``p1`` whose Bernoulli log-likelihood ratio against ``p0`` has mean
    zero at the rate ``line`` (``p0 < line < 1``): solved by bisection.

    >>> round(breakeven_p1(0.1, 0.15), 4)
    0.2113
    """
    if not 0.0 < p0 < line < 1.0:
        raise ValueError(f"need 0 < p0 < line < 1, got p0={p0}, line={line}")
    lo, hi = line, 1.0 - 1e-12
    for _ in range(200):
        mid = (lo + hi) / 2
        up, down = math.log(mid / p0), math.log((1 - mid) / (1 - p0))
        if -down / (up - down) < line:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(slots=True)
class Cusum:
    """A one-sided CUSUM on increments ``scale * (x - line)`` (Gaussian) or, for 0/1 losses,
    ``up`` for a 1 and ``down`` for a 0 (Bernoulli). ``value`` is the current sum."""

    h: float
    cap: float
    line: float
    scale: float = 0.0  # Gaussian: increment = scale * (clip(x) - line)
    clip: float = math.inf  # Gaussian: a single loss counts at most this much
    up: float = 0.0  # Bernoulli: increment of a 1 (an error)
    down: float = 0.0  # Bernoulli: increment of a 0
    p1: float = 0.0
    value: float = 0.0
    binary: bool = False  # Bernoulli increments

    @classmethod
    def bernoulli(cls, p0: float, line: float, h: float, cap: float = 1.5) -> Cusum:
        """Error rate ``p0`` in the reference, alarm beyond the rate ``line``."""
        p0 = min(max(p0, 1e-4), line - 1e-6)
        p1 = breakeven_p1(p0, line)
        return cls(h=h, cap=cap, line=line, up=math.log(p1 / p0),
                   down=math.log((1 - p1) / (1 - p0)), p1=p1, binary=True)

    @classmethod
    def gaussian(cls, mu0: float, sigma0: float, line: float, h: float,
                 cap: float = 1.5) -> Cusum:
        """Mean ``mu0`` with spread ``sigma0`` in the reference, alarm beyond ``line``
        (``line > mu0``): the log-likelihood ratio of N(mu1, sigma0) against N(mu0, sigma0)
        with ``mu1 = 2 * line - mu0``, so that its mean is zero at the line."""
        if not line > mu0:
            raise ValueError(f"the line ({line}) must lie beyond the reference ({mu0})")
        sigma0 = max(sigma0, 1e-12)
        return cls(h=h, cap=cap, line=line, scale=2 * (line - mu0) / sigma0**2,
                   clip=line + 4 * sigma0)

    @property
    def alarm(self) -> bool:
        return self.value >= self.h

    def increments(self, losses: FloatArray) -> FloatArray:
        if self.binary:
            inc: FloatArray = np.where(losses > 0.5, self.up, self.down)
            return inc
        return self.scale * (np.minimum(losses, self.clip) - self.line)

    def path(self, losses: FloatArray) -> list[float]:
        """Add losses in order; returns the sum after each (empty if there were none).

        The sum kept at zero or above is Lindley's recursion, which numpy computes at once
        (the sum is the walk less its running minimum); only a stretch that reaches the cap
        is walked step by step.
        """
        if len(losses) == 0:
            return []
        top = self.cap * self.h
        inc = self.increments(losses)
        walk = np.cumsum(inc)
        floor = np.minimum(np.minimum.accumulate(walk), -self.value)
        sums = walk - floor
        if float(sums.max()) <= top:
            self.value = float(sums[-1])
            return [float(v) for v in sums.tolist()]
        path = list(accumulate(inc.tolist(), lambda s, x: min(top, max(0.0, s + x)),
                               initial=self.value))
        self.value = path[-1]
        return path[1:]

    def add(self, losses: FloatArray) -> float:
        """Add losses in order; returns the highest sum reached while adding them (the
        current sum if there were none)."""
        return max(self.path(losses), default=self.value)

__all__ = ["Cusum", "breakeven_p1"]
