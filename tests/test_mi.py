"""Tests for satnb.nets.mi: bounds, critics, the contrast loss and the correlated-Gaussian checks."""

import math

import numpy as np
import pytest
import torch

from satnb.core.config import ConfigError
from satnb.nets import mi


def gaussian_log_ratio(x: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
    """Exact log p(y_j | x_i) / p(y_j) for every pair: the optimal critic up to a constant."""
    d = x.shape[1]
    resid = y[None, :, :] - rho * x[:, None, :]
    return -d / 2 * math.log(1 - rho**2) - (resid**2).sum(-1) / (2 * (1 - rho**2)) + (y[None] ** 2).sum(-1) / 2


def gaussian_pairs(mi_nats: float, dim: int, n: int, seed: int = 1):
    rho = mi.rho_for_mi(mi_nats, dim)
    return mi.sample_correlated_gaussian(n, dim, rho, torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("b", [2, 7, 64])
def test_infonce_never_exceeds_log_batch(b):
    g = torch.Generator().manual_seed(b)
    log_b = math.log(b)
    for scale in (0.1, 1.0, 100.0):
        s = scale * torch.randn(b, b, generator=g)
        assert mi.infonce_lower_bound(s).item() <= log_b + 1e-5
    huge = torch.randn(b, b, generator=g) + torch.diag(torch.full((b,), 1e4))
    value = mi.infonce_lower_bound(huge).item()
    assert log_b - 1e-4 <= value <= log_b + 1e-5  # a perfect critic reaches the ceiling, not beyond


def test_contrast_loss_is_log_batch_minus_infonce():
    g = torch.Generator().manual_seed(0)
    for b in (2, 16, 128):
        s = 3 * torch.randn(b, b, generator=g)
        torch.testing.assert_close(mi.contrast_loss(s), math.log(b) - mi.infonce_lower_bound(s))


def test_nwj_matches_explicit_formula():
    s = torch.randn(5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    off = [s[i, j].exp() for i in range(5) for j in range(5) if i != j]
    expected = s.diagonal().mean() - math.exp(-1) * torch.stack(off).mean()
    torch.testing.assert_close(mi.nwj_lower_bound(s), expected)


def test_bounds_are_tight_for_the_exact_log_density_ratio():
    x, y = gaussian_pairs(2.0, dim=4, n=1024, seed=0)
    rho = mi.rho_for_mi(2.0, 4)
    f = gaussian_log_ratio(x.double(), y.double(), rho)
    # NWJ is tight at 1 + log ratio; JS is maximised at the log ratio itself and is read out as NWJ(f + 1).
    assert mi.nwj_lower_bound(f + 1).item() == pytest.approx(2.0, abs=0.1)
    assert mi.nwj_lower_bound(f).item() == pytest.approx(2.0 - math.exp(-1), abs=0.1)
    assert mi.js_lower_bound(f).item() == pytest.approx(2.0, abs=0.1)
    js_at_optimum = mi.js_training_objective(f).item()
    assert all(mi.js_training_objective(f + c).item() < js_at_optimum for c in (-0.5, 0.5))
    assert mi.infonce_lower_bound(f).item() == pytest.approx(2.0, abs=0.1)


def test_js_bound_has_nwj_value_and_js_gradient():
    s1 = torch.randn(8, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    s2 = s1.detach().clone().requires_grad_(True)
    value = mi.js_lower_bound(s1)
    value.backward()
    mi.js_training_objective(s2).backward()
    torch.testing.assert_close(value.detach(), mi.nwj_lower_bound(s1.detach() + 1))
    torch.testing.assert_close(s1.grad, s2.grad)
    assert s1.grad.abs().sum() > 0
    assert set(mi.BOUNDS) == {"infonce", "nwj", "js"}


# ----------------------------------------------------------------------------- critics


def test_critics_score_every_pair_with_positives_on_the_diagonal():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, generator=g), torch.randn(6, 5, generator=g)
    sep = mi.SeparableCritic(3, 5, hidden=16, embed=8, layers=2)
    cat = mi.ConcatCritic(3, 5, hidden=16)
    s_sep, s_cat = sep(x, y), cat(x, y)
    assert s_sep.shape == s_cat.shape == (6, 6)
    torch.testing.assert_close(s_sep[2, 4], sep.phi1(x[2]) @ sep.phi2(y[4]))
    torch.testing.assert_close(s_cat[2, 4], cat.f(torch.cat([x[2], y[4]]))[0])


# ----------------------------------------------------------------------------- trained estimates


def test_infonce_recovers_moderate_gaussian_mi():
    x, y = gaussian_pairs(1.5, dim=4, n=20_000)
    est = mi.estimate_mi(x, y, method="infonce", batch_size=128, steps=600, progress=False)
    assert abs(est.value - 1.5) < 0.3
    assert len(est.history) == 600 and est.log_batch == pytest.approx(math.log(128))


def test_infonce_saturates_below_log_batch_for_large_mi():
    x, y = gaussian_pairs(10.0, dim=4, n=20_000)
    est = mi.estimate_mi(x, y, method="infonce", batch_size=128, steps=400, progress=False)
    assert est.log_batch - 0.3 < est.value <= est.log_batch + 1e-5
    assert max(est.history) <= est.log_batch + 1e-5


@pytest.mark.parametrize("method", ["infonce", "nwj"])
def test_independent_variables_give_about_zero(method):
    x, y = gaussian_pairs(0.0, dim=4, n=10_000)
    est = mi.estimate_mi(x, y, method=method, batch_size=128, steps=300, progress=False)
    assert abs(est.value) < 0.1


def test_estimate_is_deterministic_and_leaves_global_rng_alone():
    x, y = gaussian_pairs(1.0, dim=2, n=1_000)
    state = torch.get_rng_state()
    a = mi.estimate_mi(x, y, method="js", steps=20, batch_size=32, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    b = mi.estimate_mi(x.numpy(), y.numpy(), method="js", steps=20, batch_size=32, progress=False)
    assert a.history == b.history and a.value == b.value


def test_concat_critic_trains():
    x, y = gaussian_pairs(1.0, dim=2, n=2_000)
    est = mi.estimate_mi(x, y, critic="concat", hidden=64, steps=200, batch_size=32, lr=2e-3, progress=False)
    assert 0.6 < est.value <= math.log(32)  # true MI is 1 nat


def test_mi_between_features_standardises_and_flattens():
    x, y = gaussian_pairs(1.0, dim=4, n=2_000)
    kw = dict(steps=50, batch_size=64, progress=False)
    plain = mi.mi_between_features(x, y, **kw)
    rescaled = mi.mi_between_features(1000 * x.reshape(-1, 1, 2, 2) + 7, 0.01 * y - 3, **kw)
    assert rescaled.value == pytest.approx(plain.value, abs=1e-3)


# ----------------------------------------------------------------------------- correlated Gaussians


def test_gaussian_mi_known_value_and_round_trip():
    assert mi.gaussian_mi(0.5, 1) == pytest.approx(-0.5 * math.log(0.75))
    assert mi.gaussian_mi(0.0, 20) == 0.0
    for dim in (1, 4, 20):
        for nats in (0.1, 2.0, 10.0):
            assert mi.gaussian_mi(mi.rho_for_mi(nats, dim), dim) == pytest.approx(nats)


def test_sampler_has_the_requested_correlation():
    x, y = mi.sample_correlated_gaussian(50_000, 3, 0.8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (50_000, 3)
    for d in range(3):
        assert np.corrcoef(x[:, d], y[:, d])[0, 1] == pytest.approx(0.8, abs=0.01)
    assert y.var(0).numpy() == pytest.approx(np.ones(3), abs=0.03)
    assert abs(np.corrcoef(x[:, 0], y[:, 1])[0, 1]) < 0.02


def test_staircase_table_and_infonce_rises_with_level():
    levels = (1, 2, 4)
    df = mi.staircase(estimators=("infonce", "js"), dim=6, steps_per_level=150, levels=levels, progress=False)
    assert list(df.columns) == ["step", "level", "true_mi", "method", "estimate"]
    assert len(df) == 2 * 3 * 150
    assert sorted(df.level.unique()) == list(levels)
    assert np.allclose(df.true_mi, df.level)
    late = df[(df.method == "infonce") & (df.step % 150 >= 75)].groupby("level").estimate.mean()
    assert late.is_monotonic_increasing and late.diff().dropna().min() > 0.3
    assert df[df.method == "infonce"].estimate.max() <= math.log(64) + 1e-5


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(x=torch.zeros(20, 2), y=torch.zeros(19, 2)), "same number of paired samples"),
        (dict(x=torch.zeros(20, 2), y=torch.zeros(20, 2), batch_size=64), "batch_size=64"),
        (dict(x=torch.zeros(20, 2), y=torch.zeros(20, 2), method="mine"), r"unknown MI method 'mine'.*infonce"),
        (dict(x=torch.zeros(20, 2), y=torch.zeros(20, 2), critic="bilinear"), "unknown critic 'bilinear'"),
        (dict(x=torch.zeros(20, 2, 2), y=torch.zeros(20, 2)), r"x must be 2-D.*reshape"),
        (dict(x=torch.zeros(20), y=torch.zeros(20, 2)), "x must be 2-D"),
        (dict(x=torch.zeros(20, 2), y=torch.zeros(20, 2), holdout=1.0), "holdout"),
        (dict(x=torch.zeros(20, 2), y=torch.zeros(20, 2), steps=0), "steps must be an integer >= 1, got 0"),
    ],
)
def test_estimate_mi_rejects_bad_input(kwargs, match):
    kwargs = {"batch_size": 4, "steps": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        mi.estimate_mi(progress=False, **kwargs)


def test_bounds_reject_non_square_scores():
    for bad in (torch.zeros(3, 4), torch.zeros(1, 1), torch.zeros(3)):
        with pytest.raises(ValueError, match="square"):
            mi.infonce_lower_bound(bad)
    with pytest.raises(ValueError, match="unknown MI method"):
        mi.staircase(estimators=("nce",), progress=False)
    with pytest.raises(ValueError, match="rho"):
        mi.gaussian_mi(1.0, 2)


def test_batch_size_study_infonce_stays_under_log_batch():
    study = mi.batch_size_study(true_mi=3.0, dim=6, batch_sizes=(8, 32), estimators=("infonce", "nwj"),
                                n_samples=2000, steps=60, seed=0, progress=False)
    assert len(study) == 4 and set(study["method"]) == {"infonce", "nwj"}
    info = study[study["method"] == "infonce"]
    assert (info["estimate"] <= info["log(batch)"] + 1e-6).all()
    assert study["true_mi"].round(6).eq(3.0).all()
    with pytest.raises(ConfigError, match="unknown"):
        mi.batch_size_study(estimators=("mine",), progress=False)
