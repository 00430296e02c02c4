"""Confidence-based performance estimation: the calibration, the expected metrics against
hand-computed values and against realized metrics on simulated streams, and the check
that the calibration still holds.

The simulated model: scores ``s ~ Beta(0.5, 0.5)`` (a confident model) with labels
``y ~ Bernoulli(true_p(s))``, ``true_p(s) = expit(6 (s - 0.5))``: the score is monotone in
the truth but not calibrated, the classes are balanced, and the model predicts positive
when ``s >= 0.5``. All randomness is seeded.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.special import expit

from stream.metrics import compute
from stream.monitors.estimate import (
    Calibration,
    CalibrationCheck,
    calibration_check,
    estimate,
    expected_accuracy,
    expected_f1,
    expected_roc_auc,
)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
LO, HI = 1e-6, 1 - 1e-6


def true_p(s: FloatArray) -> FloatArray:
    out: FloatArray = expit(6.0 * (s - 0.5))
    return out


def draw(
    rng: np.random.Generator, n: int, a: float = 0.5, b: float = 0.5
) -> tuple[FloatArray, BoolArray]:
    s = rng.beta(a, b, n)
    return s, rng.random(n) < true_p(s)


def fitted(seed: int, n: int) -> Calibration:
    return Calibration.fit(*draw(np.random.default_rng(seed), n))


@pytest.fixture(scope="module")
def large_calibration() -> Calibration:
    """Fit on 100,000 reference rows: its own error (sd ~0.001 in expected accuracy) is
    small beside the 0.003 bias tolerance."""
    return fitted(11, 100_000)


@pytest.fixture(scope="module")
def small_calibration() -> Calibration:
    return fitted(12, 5_000)


# ---------------------------------------------------------------- calibration, exact cases


def test_calibration_of_a_perfectly_separable_reference() -> None:
    cal = Calibration.fit(np.array([0.9, 0.1, 0.8, 0.2]), np.array([True, False, True, False]))
    assert cal.knots_x.tolist() == [0.1, 0.2, 0.8, 0.9]
    assert cal.knots_y.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert cal.n == 4
    # flat inside each class's block, linear across the gap, clipped away from 0 and 1
    assert cal(np.array([0.15, 0.35, 0.5, 0.65, 0.85])).tolist() == pytest.approx(
        [LO, 0.25, 0.5, 0.75, HI], abs=1e-15
    )


def test_ties_in_score_are_pooled_before_the_isotonic_fit() -> None:
    # four rows at 0.5, one positive: one knot at 0.25, whatever the rows' order
    for labels in itertools.permutations([True, False, False, False]):
        cal = Calibration.fit(np.array([0.5, 0.5, 0.5, 0.5, 0.7]), np.array([*labels, True]))
        assert cal.knots_x.tolist() == [0.5, 0.7]
        assert cal.knots_y.tolist() == [0.25, 1.0]
    # a violation pooled with a tie: 1 at 0.1 then 0, 0 at 0.2 -> one block of mean 1/3
    cal = Calibration.fit(np.array([0.1, 0.2, 0.2, 0.3]), np.array([True, False, False, True]))
    assert cal.knots_x.tolist() == [0.1, 0.2, 0.3]
    assert cal.knots_y.tolist() == pytest.approx([1 / 3, 1 / 3, 1.0])
    assert cal(np.array([0.15])).tolist() == pytest.approx([1 / 3])


def test_knots_are_the_block_ends_and_interpolate_as_every_score_would() -> None:
    rng = np.random.default_rng(3)
    s, y = draw(rng, 2_000)
    s = np.round(s, 3)  # plenty of ties
    cal = Calibration.fit(s, y)
    assert len(cal.knots_x) < len(np.unique(s))
    # the full isotonic fit at every distinct score, by a plain pool-adjacent-violators
    xs, inv = np.unique(s, return_inverse=True)
    w = np.bincount(inv).astype(float)
    m = np.bincount(inv, weights=y.astype(float)) / w
    blocks: list[list[float]] = []  # [mean, weight, count]
    for mi, wi in zip(m.tolist(), w.tolist(), strict=True):
        blocks.append([mi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    full = np.repeat([b[0] for b in blocks], [int(b[2]) for b in blocks])
    grid = np.linspace(-0.1, 1.1, 5_001)
    expect = np.clip(np.interp(grid, xs, full), LO, HI)
    np.testing.assert_allclose(cal(grid), expect, rtol=0, atol=1e-12)


def test_output_is_monotonic_and_within_bounds(small_calibration: Calibration) -> None:
    cal = small_calibration
    assert np.all(np.diff(cal.knots_x) > 0)
    assert np.all(np.diff(cal.knots_y) >= 0)
    assert cal.knots_y[0] >= 0 and cal.knots_y[-1] <= 1
    out = cal(np.linspace(-1, 2, 10_001))
    assert np.all(np.diff(out) >= 0)
    assert out.min() >= LO and out.max() <= HI
    assert out.min() > 0.0 and out.max() < 1.0


def test_clamped_at_the_ends() -> None:
    cal = Calibration.fit(np.array([0.2, 0.4, 0.6, 0.8]), np.array([False, True, False, True]))
    assert cal.knots_y.tolist() == [0.0, 0.5, 0.5, 1.0]
    out = cal(np.array([-np.inf, -5.0, 0.2, 0.8, 5.0, np.inf]))
    assert out.tolist() == [LO, LO, LO, HI, HI, HI]
    mid = Calibration.fit(np.array([0.3, 0.3, 0.7, 0.7]), np.array([False, True, True, True]))
    assert mid(np.array([0.0, 1.0])).tolist() == [0.5, 1.0 - 1e-6]


def test_nan_scores() -> None:
    s = np.array([0.1, np.nan, 0.2, 0.8, np.inf, 0.9])
    y = np.array([False, True, False, True, False, True])
    cal = Calibration.fit(s, y)
    assert cal == Calibration.fit(s[[0, 2, 3, 5]], y[[0, 2, 3, 5]])
    assert cal.n == 4
    out = cal(np.array([np.nan, 0.5, np.nan]))
    assert np.isnan(out[0]) and np.isnan(out[2]) and out[1] == pytest.approx(0.5)
    # the expected metrics leave NaN rows out
    p = np.array([0.9, np.nan, 0.2, 0.7])
    pp = np.array([True, True, False, False])
    acc = expected_accuracy(p, pp)
    assert acc.n == 3 and acc.value == pytest.approx((0.9 + 0.8 + 0.3) / 3)
    f1 = expected_f1(p, pp)
    assert f1 is not None and f1.n == 3
    assert estimate("accuracy", np.full(3, np.nan), np.ones(3, dtype=bool), None) is None
    assert estimate("f1", np.full(3, np.nan), np.ones(3, dtype=bool), None) is None
    auc = expected_roc_auc(np.array([0.1, 0.9, 0.5, 0.2, 0.8]), np.array([1, 4, np.nan, 2, 3.0]))
    assert auc is not None and auc.n == 4


def test_bad_input_raises() -> None:
    one = np.array([0.5])
    with pytest.raises(ValueError, match="at least 2 rows"):
        Calibration.fit(one, np.array([True]))
    with pytest.raises(ValueError, match="at least 2 rows"):
        Calibration.fit(np.array([np.nan, np.nan, 0.3]), np.array([True, False, True]))
    with pytest.raises(ValueError, match="both classes"):
        Calibration.fit(np.array([0.1, 0.2, 0.3]), np.array([True, True, True]))
    with pytest.raises(ValueError, match="one length"):
        Calibration.fit(np.array([0.1, 0.2, 0.3]), np.array([True, False]))
    with pytest.raises(ValueError, match="1-D"):
        Calibration.fit(np.zeros((2, 2)), np.zeros((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="strictly increasing"):
        Calibration(np.array([0.2, 0.1]), np.array([0.1, 0.2]), 10)
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration(np.array([0.1, 0.2]), np.array([0.3, 0.2]), 10)
    with pytest.raises(ValueError, match="within"):
        Calibration(np.array([0.1, 0.2]), np.array([0.3, 1.2]), 10)
    with pytest.raises(ValueError, match="n must be"):
        Calibration(np.array([0.1, 0.2]), np.array([0.3, 0.4]), 1)
    with pytest.raises(ValueError, match="unknown metric"):
        estimate("precision", np.array([0.5]), np.array([True]), None)
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        expected_accuracy(np.array([0.5, 1.5]), np.array([True, False]))
    with pytest.raises(ValueError, match="differ in shape"):
        expected_accuracy(np.array([0.5, 0.5]), np.array([True]))
    with pytest.raises(ValueError, match="no rows"):
        expected_accuracy(np.array([]), np.array([], dtype=bool))
    with pytest.raises(ValueError, match="reference_n"):
        calibration_check(np.full(40, 0.5), np.ones(40, dtype=bool), reference_n=0)


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"knots_x": [0.1, 0.2], "knots_y": [0.1, 0.2]},
        {"knots_x": [0.1, 0.2], "knots_y": [0.1], "n": 5},
        {"knots_x": [], "knots_y": [], "n": 5},
        {"knots_x": [0.1, 0.2], "knots_y": [0.1, "x"], "n": 5},
        {"knots_x": [0.1, float("nan")], "knots_y": [0.1, 0.2], "n": 5},
        {"knots_x": [0.1, 0.2], "knots_y": [0.1, 0.2], "n": 2.5},
        {"knots_x": [0.1, 0.2], "knots_y": [0.1, 0.2], "n": True},
        [1, 2, 3],
    ],
)
def test_malformed_state_raises(state: Any) -> None:
    with pytest.raises(ValueError):
        Calibration.from_state(state)


def test_state_round_trip_gives_identical_outputs(small_calibration: Calibration) -> None:
    cal = small_calibration
    state = json.loads(json.dumps(cal.to_state()))
    back = Calibration.from_state(state)
    assert back == cal and back.n == cal.n == 5_000
    s = np.r_[np.random.default_rng(5).random(10_000), -1.0, 2.0, np.nan]
    np.testing.assert_array_equal(back(s), cal(s))
    assert back != Calibration(cal.knots_x, cal.knots_y, cal.n + 1)
    assert not back.knots_x.flags.writeable and not back.knots_y.flags.writeable


# ---------------------------------------------------------------- expected metrics, exact


def test_expected_accuracy_by_hand() -> None:
    p = np.array([0.1, 0.2, 0.9, 0.6])
    est = expected_accuracy(p, np.array([False, False, True, True]))
    assert est.value == pytest.approx(0.8)
    # sum p(1-p) = 0.58 > the floor: stderr = sqrt(0.58) / 4
    assert est.stderr == pytest.approx(math.sqrt(0.58) / 4)
    assert est.n == 4
    # near-certain rows: the 0.25/n floor of stream.metrics keeps the stderr off zero
    sure = expected_accuracy(np.full(100, HI), np.ones(100, dtype=bool))
    assert sure.value == pytest.approx(1.0)
    assert sure.stderr == pytest.approx(math.sqrt(0.25 / 100 / 100))
    realized = compute("accuracy", np.ones(100), np.ones(100), None, positive=1.0)
    assert realized is not None and sure.stderr == pytest.approx(realized.stderr)


def test_expected_f1_by_hand() -> None:
    p = np.array([0.1, 0.2, 0.9, 0.6])
    pp = np.array([False, False, True, True])
    est = expected_f1(p, pp)
    assert est is not None
    tp, fp, fn = 1.5, 0.5, 0.3
    assert est.value == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # four rows: the floor 0.5 / eff, eff = tp + (fp + fn)/2 = 1.9, binds
    assert est.stderr == pytest.approx(0.5 / 1.9)
    # many rows: the delta method's variance is above the floor
    big = expected_f1(np.tile(p, 250), np.tile(pp, 250))
    assert big is not None and big.value == pytest.approx(est.value)
    n_pp, d = 500, 250 * (2 * tp + fp + fn)
    var = 4 * ((n_pp + 250 * fn) ** 2 * 250 * 0.33 + (250 * tp) ** 2 * 250 * 0.25) / d**4
    assert big.stderr == pytest.approx(math.sqrt(var))
    # no predicted positives and no expected positives: F1 is undefined
    assert expected_f1(np.zeros(5), np.zeros(5, dtype=bool)) is None
    assert estimate("f1", np.zeros(5), np.zeros(5, dtype=bool), None) is None


def _brute_soft_auc(p: FloatArray, s: FloatArray) -> float:
    """Pairs of distinct rows, i as the positive (weight p_i), j as the negative."""
    num = den = 0.0
    for i, j in itertools.permutations(range(len(p)), 2):
        w = p[i] * (1 - p[j])
        den += w
        num += w * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    return num / den


def test_expected_roc_auc_by_hand_with_ties() -> None:
    p = np.array([0.2, 0.4, 0.6, 0.8])
    # no ties: (2.6 + 0.4 - 0.4) / (2 * 2 - 0.8)
    est = expected_roc_auc(p, np.array([1.0, 2.0, 3.0, 4.0]))
    assert est is not None and est.value == pytest.approx(0.8125) and est.n == 4
    # the middle two tied: half credit between them
    tied = expected_roc_auc(p, np.array([1.0, 2.0, 2.0, 3.0]))
    assert tied is not None and tied.value == pytest.approx(0.78125)
    rng = np.random.default_rng(7)
    for _ in range(20):
        q = rng.random(12)
        s = rng.integers(0, 5, 12).astype(float)
        got = expected_roc_auc(q, s)
        assert got is not None
        assert got.value == pytest.approx(_brute_soft_auc(q, s), rel=1e-12)
    # Hanley & McNeil with n1 = sum p, n0 = sum (1 - p)
    a, n1, n0 = 0.8125, 2.0, 2.0
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    assert est.stderr == pytest.approx(math.sqrt(var))
    # too little weight in a class, or no scores: None
    assert expected_roc_auc(np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])) is None
    assert expected_roc_auc(np.array([0.9, 0.8, 0.7]), np.array([1.0, 2.0, 3.0])) is None
    assert estimate("roc_auc", p, p > 0.5, None) is None


def test_hard_probabilities_give_the_realized_metrics() -> None:
    """With p in {0, 1} equal to the labels the expectation is the realized value."""
    rng = np.random.default_rng(8)
    s, y = draw(rng, 500)
    s = np.round(s, 2)  # ties, handled alike by both
    pp = s >= 0.5
    yf, pf = y.astype(np.float64), pp.astype(np.float64)
    for metric in ("accuracy", "f1", "roc_auc"):
        got = estimate(metric, yf, pp, s)
        want = compute(metric, yf, pf, s, positive=1.0)
        assert got is not None and want is not None
        assert got.value == pytest.approx(want.value, abs=1e-12), metric
        assert got.n == want.n == 500


def test_estimate_dispatches() -> None:
    rng = np.random.default_rng(9)
    s = rng.random(300)
    p = np.clip(s * 0.8 + 0.1, 0, 1)
    pp = s > 0.4
    assert estimate("accuracy", p, pp, s) == expected_accuracy(p, pp)
    assert estimate("f1", p, pp, s) == expected_f1(p, pp)
    assert estimate("roc_auc", p, pp, s) == expected_roc_auc(p, s)


# ---------------------------------------------------------------- simulated streams


def _windows(
    cal: Calibration, seed: int, windows: int = 200, size: int = 1_000
) -> dict[str, FloatArray]:
    """(expected, stderr, realized) per window for each metric."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[float, float, float]]] = {"accuracy": [], "f1": [], "roc_auc": []}
    for _ in range(windows):
        s, y = draw(rng, size)
        pp = s >= 0.5
        p = cal(s)
        for metric, rows in out.items():
            est = estimate(metric, p, pp, s)
            real = compute(metric, y.astype(np.float64), pp.astype(np.float64), s, positive=1.0)
            assert est is not None and real is not None
            rows.append((est.value, est.stderr, real.value))
    return {k: np.array(v) for k, v in out.items()}


def test_unbiased_and_covered_on_a_well_fit_calibration(large_calibration: Calibration) -> None:
    """200 windows of 1,000 rows. The mean of (expected - realized) over windows has a
    noise sd of ~0.0008 (accuracy, F1) and ~0.0007 (AUC), so 0.003 is ~4 sd; the
    calibration's own error adds ~0.001 (over 30 seeds: bias within ±0.0023 for every
    metric, coverage 0.92-0.99). ±2 stderr should cover ~95% of windows."""
    res = _windows(large_calibration, seed=21)
    for metric, v in res.items():
        diff = v[:, 0] - v[:, 2]
        cover = float(np.mean(np.abs(diff) <= 2 * v[:, 1]))
        assert abs(diff.mean()) < 0.003, (metric, diff.mean())
        assert 0.88 <= cover <= 0.99, (metric, cover)
        # the stderr is the spread of the realized value about the estimate, not wider
        assert 0.8 < diff.std() / v[:, 1].mean() < 1.2, metric


def test_a_5000_row_calibration_adds_a_shared_error(small_calibration: Calibration) -> None:
    """The same on a calibration fit on 5,000 rows. Its own error is one bias shared by
    every window, left out of the stderr by design: over 30 seeds it moved the mean
    (expected - realized) by +0.002 ± 0.0043 (accuracy; F1 and AUC alike, worst 0.011),
    so the bound here is 0.015 (3 sd), and coverage fell to 0.80-0.98."""
    res = _windows(small_calibration, seed=22)
    for metric, v in res.items():
        diff = v[:, 0] - v[:, 2]
        cover = float(np.mean(np.abs(diff) <= 2 * v[:, 1]))
        assert abs(diff.mean()) < 0.015, (metric, diff.mean())
        assert 0.75 <= cover <= 0.99, (metric, cover)


def test_covariate_shift_lowers_the_expected_accuracy_and_it_matches(
    large_calibration: Calibration,
) -> None:
    """More rows near 0.5 (Beta(3, 3) scores), P(y | score) unchanged. On 20,000 rows the
    realized accuracy itself has an sd of ~0.0034 about its expectation, so 0.01 is ~3 sd
    (over 60 seeds the largest gap was 0.008)."""
    cal = large_calibration
    rng = np.random.default_rng(31)
    s0, y0 = draw(rng, 20_000)
    s1, y1 = draw(rng, 20_000, a=3.0, b=3.0)
    before = expected_accuracy(cal(s0), s0 >= 0.5)
    after = expected_accuracy(cal(s1), s1 >= 0.5)
    realized_before = float(np.mean(y0 == (s0 >= 0.5)))
    realized_after = float(np.mean(y1 == (s1 >= 0.5)))
    assert before.value - after.value > 0.1
    assert realized_before - realized_after > 0.1
    assert abs(after.value - realized_after) < 0.01
    assert abs(before.value - realized_before) < 0.01
    # against the exact expectation (no label noise) the gap is the calibration's alone
    exact = float(np.mean(np.where(s1 >= 0.5, true_p(s1), 1 - true_p(s1))))
    assert abs(after.value - exact) < 0.008


# ---------------------------------------------------------------- calibration check


def test_calibration_check_by_hand() -> None:
    assert calibration_check(np.full(29, 0.5), np.ones(29, dtype=bool)) is None
    # 40 rows at p = 0.5, 30 positive: one bin (total variance 10), H = (30 - 20)^2 / 10
    y = np.r_[np.ones(30, dtype=bool), np.zeros(10, dtype=bool)]
    chk = calibration_check(np.full(40, 0.5), y)
    assert chk is not None
    wh = (10 ** (1 / 3) - (1 - 2 / 9)) / math.sqrt(2 / 9)
    assert (chk.expected, chk.realized, chk.n) == (0.5, 0.75, 40)
    assert chk.z == pytest.approx(wh)
    assert isinstance(chk, CalibrationCheck)
    # reference_n scales the variance by 1 + n/reference_n
    half = calibration_check(np.full(40, 0.5), y, reference_n=40)
    assert half is not None
    assert half.z == pytest.approx((5 ** (1 / 3) - (1 - 2 / 9)) / math.sqrt(2 / 9))
    # NaN rows are left out
    nan = calibration_check(np.r_[np.full(40, 0.5), np.nan], np.r_[y, True])
    assert nan == chk


def _concept_flip(rng: np.random.Generator, y: BoolArray, share: float) -> BoolArray:
    out: BoolArray = y ^ (rng.random(len(y)) < share)
    return out


def test_calibration_check_finds_a_concept_shift_that_keeps_the_mean(
    small_calibration: Calibration,
) -> None:
    cal = small_calibration
    rng = np.random.default_rng(41)
    s, y = draw(rng, 2_000)
    p = cal(s)
    flipped = _concept_flip(rng, y, 0.3)
    chk = calibration_check(p, flipped, reference_n=cal.n)
    assert chk is not None and chk.n == 2_000
    assert abs(chk.z) > 4 and chk.z > 15
    # the positive rate barely moved (0.3 + 0.4 * 0.5 = 0.5): a test on the mean alone
    # sees noise only (its z has an sd of ~1.7 here: the flipped labels are near coin
    # flips, more variable than the calibration says), the bins see the shift clearly
    assert abs(chk.realized - chk.expected) < 0.04
    mean_z = (chk.realized - chk.expected) * chk.n / math.sqrt(float(np.dot(p, 1 - p)))
    assert abs(mean_z) < chk.z / 3
    # and the estimate, trusting the old calibration, is far from the new truth: the
    # realized accuracy fell from ~0.84 to ~0.3 + 0.4 * 0.84 = 0.64
    pp = s >= 0.5
    assert expected_accuracy(p, pp).value - float(np.mean(flipped == pp)) > 0.15


def test_calibration_check_finds_a_shift_of_the_positive_rate(
    small_calibration: Calibration,
) -> None:
    rng = np.random.default_rng(42)
    s, y = draw(rng, 2_000)
    y = y | ((~y) & (rng.random(2_000) < 0.10))  # a tenth of the negatives turn positive
    chk = calibration_check(small_calibration(s), y, reference_n=small_calibration.n)
    assert chk is not None and chk.z > 4 and chk.realized > chk.expected


def test_calibration_check_finds_a_local_change(large_calibration: Calibration) -> None:
    """The middle band of scores becomes a coin flip; the mean and the ends stay."""
    rng = np.random.default_rng(43)
    s = rng.beta(0.5, 0.5, 5_000)
    band = (s > 0.3) & (s < 0.7)
    y = rng.random(5_000) < np.where(band, 0.5, true_p(s))
    chk = calibration_check(large_calibration(s), y, reference_n=large_calibration.n)
    assert chk is not None and chk.z > 4


def test_calibration_check_is_quiet_on_the_unshifted_stream(
    small_calibration: Calibration,
) -> None:
    """50 windows of 2,000 rows against the 5,000-row calibration. Per window the rate of
    |z| > 3 measured 0.5% (the nominal two-tailed rate is 0.27%), so "all 50 below 3"
    holds for ~80% of seeds (16 of 20 tried), about what an exact test would give (87%)."""
    cal = small_calibration
    rng = np.random.default_rng(44)
    zs = []
    for _ in range(50):
        s, y = draw(rng, 2_000)
        chk = calibration_check(cal(s), y, reference_n=cal.n)
        assert chk is not None
        zs.append(chk.z)
    z = np.array(zs)
    assert np.all(np.abs(z) < 3), z.round(2)
    # near a standard normal
    assert abs(z.mean()) < 0.5 and 0.6 < z.std() < 1.4
