"""The CUSUM against the tolerance line (``stream.monitors.cusum``): where it alarms, where
it does not, and that its mean increment is zero exactly at the line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from config.file import PerformanceSettings
from stream.monitors.cusum import Cusum, breakeven_p1

H = PerformanceSettings().cusum_h  # the default threshold


def test_the_bernoulli_increment_has_mean_zero_at_the_line() -> None:
    for p0, line in [(0.056, 0.076), (0.1, 0.15), (0.3, 0.32), (0.01, 0.5)]:
        c = Cusum.bernoulli(p0, line, h=12.0)
        assert line * c.up + (1 - line) * c.down == pytest.approx(0.0, abs=1e-9)
        assert c.up > 0 > c.down
        # the increment is the log-likelihood ratio of p1 against p0
        assert c.up == pytest.approx(math.log(c.p1 / p0))
        assert c.down == pytest.approx(math.log((1 - c.p1) / (1 - p0)))


def test_the_gaussian_increment_has_mean_zero_at_the_line() -> None:
    c = Cusum.gaussian(mu0=1.0, sigma0=0.5, line=1.2, h=12.0)
    assert float(c.increments(np.array([1.2]))[0]) == 0.0
    assert float(c.increments(np.array([1.0]))[0]) == pytest.approx(-0.32)  # 2*0.2/0.25*-0.2
    assert float(c.increments(np.array([100.0]))[0]) == pytest.approx(1.6 * 2.0)  # clipped
    with pytest.raises(ValueError):
        Cusum.gaussian(mu0=1.0, sigma0=0.5, line=0.9, h=12.0)


def test_breakeven_needs_an_ordered_pair() -> None:
    with pytest.raises(ValueError):
        breakeven_p1(0.2, 0.1)
    assert breakeven_p1(0.056, 0.076) == pytest.approx(0.09991, abs=1e-4)


def test_it_alarms_at_an_exact_label_and_falls_back_after_the_condition_ends() -> None:
    c = Cusum.bernoulli(0.1, 0.15, h=12.0)
    path = c.path(np.ones(40))
    first = next(i for i, v in enumerate(path) if v >= c.h)
    assert first == 16  # the 17th error in a row: 17 * log(p1/p0) = 12.7 >= 12
    assert max(path) == pytest.approx(1.5 * 12.0)  # capped
    back = c.path(np.zeros(1000))
    below = next(i for i, v in enumerate(back) if v < c.h)
    assert below == 45  # 6 over the threshold at 0.132 per right answer
    assert back[-1] == 0.0


def test_a_stationary_model_does_not_alarm_in_two_million_labels() -> None:
    rng = np.random.default_rng(2026)
    c = Cusum.bernoulli(0.056, 0.076, h=H)
    peak = max(c.add((rng.random(200_000) < 0.056).astype(np.float64)) for _ in range(10))
    assert peak < H
    assert peak > 5.0  # it does move: a reflected walk, not a constant


@pytest.mark.parametrize(("accuracy", "within"), [(0.915, 3_000), (0.88, 1_000)])
def test_sustained_falls_are_found_within_the_targets(accuracy: float, within: int) -> None:
    """Reference accuracy 0.944, max_drop 0.02 (line at 0.924): the median delay over 21
    seeded runs is within the target."""
    delays = []
    for seed in range(21):
        rng = np.random.default_rng(seed)
        c = Cusum.bernoulli(1 - 0.944, 1 - 0.944 + 0.02, h=H)
        path = c.path((rng.random(20_000) < 1 - accuracy).astype(np.float64))
        delays.append(next(i for i, v in enumerate(path) if v >= c.h))
    assert float(np.median(delays)) <= within
