"""Adaptive attacks on small synthetic kNN problems with known answers."""

import math

import pytest
import torch
from torch import nn

from satnb.attacks import KNNBlackBoxAttack, KNNGradientAttack, KNNMinNormAttack, KNNOptimizationAttack, probe_attack
from satnb.core.config import AttackSettings, ConfigError
from satnb.knn.classifier import KNN


class Flat(nn.Module):
    """The identity encoder: the kNN runs on the pixels themselves (optionally quantised)."""

    def __init__(self, levels: int | None = None) -> None:
        super().__init__()
        self.levels = levels
        self.unused = nn.Parameter(torch.zeros(1))  # a parameter, so the model has a device

    def features(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1)
        return torch.floor(z * self.levels) / self.levels if self.levels else z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def problem(k: int, n_lib: int = 240, d: int = 4, n_query: int = 40, seed: int = 0):
    """Library points in [0.2, 0.8]^d labelled by the nearest of three centres; queries the kNN gets right."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(3, d, generator=g) * 0.6 + 0.2
    lib = torch.rand(n_lib, d, generator=g) * 0.6 + 0.2
    labels = torch.cdist(lib, centres).argmin(1)
    knn = KNN(k=k, n_classes=3).fit(lib, labels)
    q = torch.rand(400, d, generator=g) * 0.6 + 0.2
    y = torch.cdist(q, centres).argmin(1)
    ok = knn.predict(q) == y
    x = q[ok][:n_query].view(-1, 1, 1, d)
    return Flat(), knn, x, y[ok][:n_query], lib, labels


def one_nn_lower_bound(x: torch.Tensor, y: torch.Tensor, lib: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """No shorter perturbation flips 1-NN: min_p (||x - p|| - ||x - s||) / 2, p of another class, s the nearest same."""
    d = torch.cdist(x.flatten(1), lib)
    same = torch.where(labels[None] == y[:, None], d, torch.inf).amin(1)
    other = torch.where(labels[None] != y[:, None], d, torch.inf).amin(1)
    return (other - same) / 2


@pytest.mark.parametrize("k", [1, 5])
def test_min_norm_breaks_every_image_at_no_more_than_the_papers_attack(k):
    model, knn, x, y, lib, labels = problem(k)
    budget = {"binary_search_steps": 6, "steps": 60, "lr": 0.02}
    ours = KNNMinNormAttack(model, knn, **budget).run(x, y)
    paper = KNNOptimizationAttack(model, knn, m=20, initial_const=1e-1, **budget).run(x, y)
    assert ours.n_success >= math.ceil(0.99 * len(y))
    assert ours.l2.median() <= paper.l2.median() * 1.02
    changed = (ours.adv != x).flatten(1).any(1)
    assert torch.all(knn.predict(model.features(ours.adv))[changed] != y[changed])  # what it returns is broken
    assert torch.equal(changed, ours.success)
    if k == 1:
        lower = one_nn_lower_bound(x, y, lib, labels)
        assert torch.all(ours.l2[ours.success] >= lower[ours.success] - 1e-4)


def quantised_problem():
    """Two classes of 4x4 images near 0.3 and near 0.7, seen through a quantised encoder (zero gradients)."""
    g = torch.Generator().manual_seed(1)
    lib = torch.cat([0.3 + 0.1 * torch.rand(60, 16, generator=g), 0.7 - 0.1 * torch.rand(60, 16, generator=g)])
    labels = torch.cat([torch.zeros(60, dtype=torch.long), torch.ones(60, dtype=torch.long)])
    model = Flat(levels=8)
    knn = KNN(k=5, n_classes=2).fit(model.features(lib.view(-1, 1, 4, 4)), labels)
    x = (0.38 + 0.04 * torch.rand(30, 16, generator=g)).view(-1, 1, 4, 4)
    y = torch.zeros(30, dtype=torch.long)
    assert torch.all(knn.predict(model.features(x)) == y)
    return model, knn, x, y


def test_zero_gradients_defeat_the_gradient_attack_but_not_the_black_box_attack():
    model, knn, x, y = quantised_problem()
    eps = 0.3
    grad_adv = KNNGradientAttack(model, knn, eps=eps, step=0.05, steps=20, m=10, seed=0)(x, y)
    grad_dsr = float((knn.predict(model.features(grad_adv)) == y).float().mean())
    bb = KNNBlackBoxAttack(model, knn, eps=eps, queries=500, seed=0).run(x, y)
    bb_dsr = float((knn.predict(model.features(bb.adv)) == y).float().mean())
    assert grad_dsr >= 0.8 and bb_dsr <= 0.2
    assert (bb.adv - x).abs().max() <= eps + 1e-6 and bb.adv.min() >= 0 and bb.adv.max() <= 1
    assert torch.equal(bb.success, knn.predict(model.features(bb.adv)) != y)
    assert torch.all(bb.queries[bb.success] <= 500)


def test_black_box_is_seeded_and_respects_its_budget():
    model, knn, x, y = quantised_problem()
    a = KNNBlackBoxAttack(model, knn, eps=0.3, queries=50, seed=3).run(x, y)
    b = KNNBlackBoxAttack(model, knn, eps=0.3, queries=50, seed=3).run(x, y)
    assert torch.equal(a.adv, b.adv) and int(a.queries.max()) <= 50


def test_probe_transfer_attack_stays_in_the_ball_and_hurts_the_knn():
    model, knn, x, y, *_ = problem(5, d=16)
    x = x.view(-1, 1, 4, 4)
    adv = probe_attack(model, knn, AttackSettings(0.15, 0.02, 20), seed=0)(x, y)
    assert (adv - x).abs().max() <= 0.15 + 1e-6
    assert float((knn.predict(model.features(adv)) == y).float().mean()) < 0.7


def test_adaptive_attacks_name_a_bad_setting_and_its_fix():
    model, knn, *_ = problem(5, n_lib=30)
    for make, match in [
        (lambda: KNNMinNormAttack(model, knn, candidates=0), "candidates must be an integer >= 1, got 0; e.g. k"),
        (lambda: KNNMinNormAttack(model, knn, temperature=-1.0), "temperature must be a positive number"),
        (lambda: KNNBlackBoxAttack(model, knn, queries=2.5), r"queries must be an integer >= 1, got 2\.5"),
        (lambda: KNNBlackBoxAttack(model, knn, p_init=1.5), r"p_init=1\.5 is larger than 1\.0; e\.g\. 0\.3"),
        (lambda: probe_attack(model, knn, AttackSettings(1.5, 0.02, 1), epochs=1), "eps=1.5 is larger than 1.0"),
    ]:
        with pytest.raises(ConfigError, match=match):
            make()
    smallest = int(knn.class_counts.min())
    assert KNNMinNormAttack(model, knn, candidates=10_000).m == smallest < 10_000  # capped by the smallest class


def test_probe_attack_owes_nothing_to_the_global_rng():
    model, knn, x, y, *_ = problem(5, d=16)
    x = x.view(-1, 1, 4, 4)
    advs = []
    for disturb in (0, 123):
        torch.manual_seed(disturb)
        torch.rand(1000)  # the probe's start and shuffles must not read this
        advs.append(probe_attack(model, knn, AttackSettings(0.15, 0.02, 5), seed=0, epochs=2)(x, y))
    assert torch.equal(advs[0], advs[1])
