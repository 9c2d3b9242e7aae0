"""The intervals cover the truth about 95% of the time on simulated data; verdicts follow the intervals."""

import math

import numpy as np
import pytest

from satnb.core import stats
from satnb.report import claims

REPS = 2000


@pytest.mark.parametrize("p, n", [(0.1, 40), (0.5, 40), (0.9, 200), (0.2, 500)])
def test_wilson_covers_the_true_proportion(p, n):
    rng = np.random.default_rng(0)
    k = rng.binomial(n, p, size=REPS)
    cover = np.mean([(lambda i: i.lo <= p <= i.hi)(stats.wilson(int(ki), n)) for ki in k])
    assert 0.93 <= cover <= 0.99


def test_wilson_matches_a_known_value():
    # 7 of 10: Wilson's 95% interval is [0.3968, 0.8922] (Newcombe 1998, table I)
    i = stats.wilson(7, 10)
    assert i.value == 0.7 and i.lo == pytest.approx(0.3968, abs=1e-4) and i.hi == pytest.approx(0.8922, abs=1e-4)


@pytest.mark.parametrize("pa, pb, rho, n", [(0.5, 0.4, 0.6, 200), (0.3, 0.3, 0.2, 100), (0.85, 0.7, 0.8, 500)])
def test_paired_difference_covers_the_true_difference(pa, pb, rho, n):
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(REPS // 2):
        # correlated 0/1 outcomes on the same images: a shared latent Gaussian, thresholded per model
        from scipy.stats import norm

        z = rng.standard_normal((n, 2)) @ np.linalg.cholesky([[1, rho], [rho, 1]]).T
        a, b = z[:, 0] < norm.ppf(pa), z[:, 1] < norm.ppf(pb)
        i = stats.paired_difference(a, b)
        hits += i.lo <= pa - pb <= i.hi
    assert 0.93 <= hits / (REPS // 2) <= 0.99


def test_paired_difference_is_narrower_than_unpaired_when_outcomes_agree():
    rng = np.random.default_rng(2)
    a = rng.random(400) < 0.6
    b = a.copy()
    b[:20] = ~b[:20]
    paired = stats.paired_difference(a, b)
    unpaired = stats.unpaired_difference(int(a.sum()), 400, int(b.sum()), 400)
    assert paired.half_width < unpaired.half_width / 2


@pytest.mark.parametrize("p1, p2, n1, n2", [(0.5, 0.3, 100, 150), (0.9, 0.85, 300, 300)])
def test_unpaired_difference_covers(p1, p2, n1, n2):
    rng = np.random.default_rng(3)
    k1, k2 = rng.binomial(n1, p1, REPS), rng.binomial(n2, p2, REPS)
    cover = np.mean([(lambda i: i.lo <= p1 - p2 <= i.hi)(stats.unpaired_difference(int(a), n1, int(b), n2))
                     for a, b in zip(k1, k2)])
    assert 0.93 <= cover <= 0.99


def test_bootstrap_median_covers_and_handles_unbroken_images():
    rng = np.random.default_rng(4)
    true_median = math.log(2)  # exponential(1)
    cover = np.mean([(lambda i: i.lo <= true_median <= i.hi)(stats.bootstrap(rng.exponential(1, 150), np.median,
                                                                              n_boot=400, seed=s))
                     for s in range(300)])
    assert 0.91 <= cover <= 0.99
    # most images never broken: the median is infinite, and the interval says so instead of a small number
    l2 = np.array([0.2, 0.3] + [math.inf] * 8)
    i = stats.bootstrap(l2, np.median, n_boot=200)
    assert i.value == math.inf and i.hi == math.inf


def test_paired_bootstrap_of_identical_values_is_zero():
    x = np.random.default_rng(5).exponential(1, 50)
    i = stats.paired_bootstrap(x, x, np.median, n_boot=200)
    assert i.value == i.lo == i.hi == 0.0


def test_decide_and_n_to_decide():
    assert claims.decide(stats.Interval(0.1, 0.02, 0.18, 100)) == claims.HOLDS
    assert claims.decide(stats.Interval(-0.1, -0.18, -0.02, 100)) == claims.FAILS
    wide = stats.Interval(0.03, -0.03, 0.09, 100)
    assert claims.decide(wide) == claims.INCONCLUSIVE
    assert claims.n_to_decide(wide) == 400  # half-width 0.06 vs a gap of 0.03: four times the images
    assert claims.decide(stats.Interval(0.08, 0.06, 0.10, 100), threshold=0.05) == claims.HOLDS
    assert claims.n_to_decide(stats.Interval(0.0, -0.1, 0.1, 100)) is None


def test_n_to_decide_uses_the_side_that_crosses_the_threshold():
    lopsided = stats.Interval(1.4, -0.1, 2.2, 17)  # a bootstrap interval barely reaching below 0
    assert claims.n_to_decide(lopsided) == math.ceil(17 * (1.5 / 1.4) ** 2)
