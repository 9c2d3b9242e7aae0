"""Attacks on a tiny fixed encoder over scikit-learn's bundled digits: constraints, strength, honesty, seeding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from torch import nn

from satnb.attacks import (
    PGD,
    KNNGradientAttack,
    KNNOptimizationAttack,
    OptimizationResult,
    UniformNoise,
    binary_search_step,
)
from satnb.knn.classifier import KNN

K, M = 15, 30


class Normalize(nn.Module):
    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([mean]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([std]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TinyEncoder(nn.Module):
    """A fixed random conv encoder (features) with a fitted linear head (logits) for 1x8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.normalize = Normalize(0.3, 0.4)
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)  # makes train/eval mode observable
        self.fc = nn.Linear(16 * 4 * 4, 32)
        self.head = nn.Linear(32, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(F.relu(self.bn(self.conv(self.normalize(x)))), 2)
        return self.fc(h.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def setup():
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = perm[:1200], perm[1200:]
    model = TinyEncoder().eval()
    with torch.no_grad():
        f_train = model.features(x[train])
        f_test = model.features(x[test])
    head = LogisticRegression(max_iter=2000).fit(f_train.numpy(), y[train].numpy())
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(head.coef_))
        model.head.bias.copy_(torch.from_numpy(head.intercept_))
    knn = KNN(k=K).fit(f_train, y[train])
    correct = knn.predict(f_test) == y[test]
    xs, ys = x[test][correct][:120], y[test][correct][:120]
    return model, knn, xs, ys, f_train, y[train]


def all_attacks(model, knn, eps_space="pixel", seed=0):
    return {
        "noise": UniformNoise(0.05, seed=seed, model=model, eps_space=eps_space),
        "gradient": KNNGradientAttack(model, knn, eps=0.05, step=0.01, steps=5, m=M, eps_space=eps_space, seed=seed),
        "gradient-paper-guide": KNNGradientAttack(model, knn, eps=0.05, step=0.01, steps=3, m=M, guide="paper",
                                                  eps_space=eps_space, seed=seed, batch_size=7),
        "pgd": PGD(model, eps=0.05, step=0.01, steps=5, eps_space=eps_space, seed=seed),
    }


def knn_accuracy(model, knn, x, y) -> float:
    with torch.no_grad():
        return knn.score(model.features(x), y)


@pytest.mark.parametrize("eps_space", ["pixel", "normalized"])
def test_outputs_stay_in_the_ball_and_leave_the_model_alone(setup, eps_space):
    model, knn, xs, ys, *_ = setup
    x, y = xs[:24], ys[:24]
    radius = 0.05 * (model.normalize.std if eps_space == "normalized" else torch.tensor(1.0))
    model.train()
    model.bn.eval()  # a mixed state that must come back exactly
    try:
        for name, atk in all_attacks(model, knn, eps_space).items():
            adv = atk(x, y)
            assert adv.shape == x.shape and adv.dtype == x.dtype, name
            assert adv.min() >= 0 and adv.max() <= 1, name
            delta = (adv - x).abs()
            assert torch.all(delta <= radius + 1e-6), name
            assert delta.max() > 0.9 * radius.max(), name  # the ball is used, not a smaller one
            assert model.training and model.conv.training and not model.bn.training, name
            assert all(p.grad is None for p in model.parameters()), name
        adv64 = all_attacks(model, knn, eps_space)["gradient"](x.double(), y)
        assert adv64.dtype == torch.float64
    finally:
        model.eval()


def test_gradient_attack_beats_uniform_noise(setup):
    model, knn, xs, ys, *_ = setup
    eps = 0.12
    adv = KNNGradientAttack(model, knn, eps=eps, step=0.02, steps=10, m=M, seed=0)(xs, ys)
    noisy = UniformNoise(eps, seed=0)(xs)
    clean_acc, noise_acc, adv_acc = (knn_accuracy(model, knn, v, ys) for v in (xs, noisy, adv))
    assert clean_acc == 1.0  # xs are the correctly classified test images
    assert noise_acc > 0.9
    assert adv_acc < noise_acc - 0.3


def test_paper_presets_weaken_the_knn(setup):
    model, knn, xs, ys, *_ = setup
    small = KNNGradientAttack.small(model, knn, m=M, seed=0)
    large = KNNGradientAttack.large(model, knn, m=M, seed=0)
    assert (small.eps, small.step, small.steps) == (0.03, 0.005, 10)
    assert (large.eps, large.step, large.steps, large.m) == (0.06, 0.005, 20, M)
    acc_small = knn_accuracy(model, knn, small(xs, ys), ys)
    acc_large = knn_accuracy(model, knn, large(xs, ys), ys)
    assert acc_large < acc_small < 1.0


def test_pgd_beats_uniform_noise_on_the_logits(setup):
    model, _, xs, ys, *_ = setup
    eps = 0.12
    with torch.no_grad():
        clean = (model(xs).argmax(1) == ys).float().mean()
        noise = (model(UniformNoise(eps, seed=0)(xs)).argmax(1) == ys).float().mean()
        adv = (model(PGD(model, eps=eps, step=0.02, steps=10, seed=0)(xs, ys)).argmax(1) == ys).float().mean()
    assert clean > 0.85 and noise > 0.8
    assert adv < noise - 0.3


def independent_knn_fooled(f_lib, y_lib, feats, labels, k) -> torch.Tensor:
    """Float64 brute-force kNN: is the true label not the vote winner (ties: closest class wins)?"""
    idx = torch.cdist(feats.double(), f_lib.double()).topk(k, largest=False, sorted=True).indices
    fooled = []
    for row, label in zip(idx.tolist(), labels.tolist()):
        classes = [int(y_lib[j]) for j in row]
        votes = {c: classes.count(c) for c in classes}
        top = max(votes.values())
        winner = next(c for c in classes if votes[c] == top)  # first in distance order among the tied
        fooled.append(winner != label)
    return torch.tensor(fooled)


def test_optimization_attack_reports_honestly(setup):
    model, knn, xs, ys, f_lib, y_lib = setup
    x, y = xs[:16], ys[:16]
    atk = KNNOptimizationAttack(model, knn, m=M, binary_search_steps=3, steps=20, lr=0.05, initial_const=1.0)
    res = atk.run(x, y)
    assert isinstance(res, OptimizationResult)
    assert res.adv.shape == x.shape and res.adv.dtype == x.dtype
    assert res.adv.min() >= 0 and res.adv.max() <= 1
    assert res.n_success >= 8  # the attack works on most images
    with torch.no_grad():
        feats = model.features(res.adv)
    fooled = independent_knn_fooled(f_lib, y_lib, feats, y, K)
    assert torch.all(fooled[res.success])
    true_l2 = (res.adv - x).flatten(1).norm(dim=1)
    assert torch.allclose(res.l2[res.success], true_l2[res.success], atol=1e-6)
    assert torch.all(res.l2[res.success] > 0)
    assert torch.all(torch.isinf(res.l2[~res.success])) and torch.equal(res.adv[~res.success], x[~res.success])
    assert torch.all(torch.isnan(res.const[~res.success])) and torch.all(res.const[res.success] > 0)
    assert res.mean_l2 == pytest.approx(float(true_l2[res.success].mean()))
    assert all(p.grad is None for p in model.parameters())
    # the search keeps the smallest successful example: one more bisection never makes it larger
    longer = KNNOptimizationAttack(model, knn, m=M, binary_search_steps=4, steps=20, lr=0.05, initial_const=1.0)
    res2 = longer.run(x, y)
    assert torch.all(res2.success[res.success])
    assert torch.all(res2.l2[res.success] <= res.l2[res.success] + 1e-6)


def test_optimization_attack_keeps_the_smallest_success(setup):
    model, knn, xs, ys, *_ = setup
    x, y = xs[:12], ys[:12]
    # one search step with a large c: the short run's iterates are a prefix of the long run's,
    # and later iterates drift further towards the guide group (larger L2)
    # (max_const = the first c: one round only, no escalation for the images it leaves unbroken)
    short = KNNOptimizationAttack(model, knn, m=M, binary_search_steps=1, steps=12, lr=0.1, initial_const=100.0,
                                  max_const=100.0)
    long = KNNOptimizationAttack(model, knn, m=M, binary_search_steps=1, steps=30, lr=0.1, initial_const=100.0,
                                 max_const=100.0)
    a, b = short.run(x, y), long.run(x, y)
    assert a.n_success >= 6 and torch.all(b.success[a.success])
    assert torch.all(b.l2[a.success] <= a.l2[a.success] + 1e-6)


def test_binary_search_on_c():
    c, lo, hi = torch.tensor([0.01, 0.01]), torch.zeros(2), torch.full((2,), float("inf"))
    trace = []
    # image 0: fails at 0.01 and 0.1, succeeds from 1 on; image 1: fails at 0.01, 0.1, 1, then succeeds
    for success in ([False, False], [False, False], [True, False], [True, True], [False, True]):
        c, lo, hi = binary_search_step(c, lo, hi, torch.tensor(success))
        trace.append(c.tolist())
    expected = [[0.1, 0.1], [1.0, 1.0], [0.55, 10.0], [0.325, 5.5], [0.4375, 3.25]]
    for got, want in zip(trace, expected):
        assert got == pytest.approx(want)
    assert hi.tolist() == pytest.approx([0.55, 5.5]) and lo.tolist() == pytest.approx([0.325, 1.0])


def test_optimization_attack_is_deterministic(setup):
    model, knn, xs, ys, *_ = setup
    atk = KNNOptimizationAttack(model, knn, m=M, binary_search_steps=2, steps=12, lr=0.05, initial_const=10.0)
    res = atk.run(xs[:8], ys[:8])
    assert torch.equal(atk(xs[:8], ys[:8]), res.adv)  # __call__ returns the same images
    assert res.n_success > 0


def test_fixed_seed_gives_identical_outputs(setup):
    model, knn, xs, ys, *_ = setup
    x, y = xs[:16], ys[:16]
    for name in ("noise", "gradient", "gradient-paper-guide", "pgd"):
        a = all_attacks(model, knn, seed=3)[name](x, y)
        b = all_attacks(model, knn, seed=3)[name](x, y)
        c = all_attacks(model, knn, seed=4)[name](x, y)
        assert torch.equal(a, b), name
        assert not torch.equal(a, c), name
    atk = all_attacks(model, knn, seed=3)["gradient"]
    assert torch.equal(atk(x, y), atk(x, y))  # each call restarts from the seed
    no_start = KNNGradientAttack(model, knn, eps=0.05, step=0.01, steps=3, m=M, random_start=False)
    assert torch.equal(no_start(x, y), no_start(x, y))


def test_validation_errors(setup):
    model, knn, xs, ys, *_ = setup
    for kwargs, match in [
        ({"eps": 0.0}, "eps must be a positive"),
        ({"eps": -0.1}, "eps must be a positive"),
        ({"eps": 1.5}, "larger than 1"),
        ({"step": 0.0}, "step must be a positive"),
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"m": 10_000}, r"m=10000 guide samples per group, but library class \d+ has only"),
        ({"m": 2.5}, r"m must be an integer >= 1, got 2\.5; the paper uses m=300"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"seed": 1.5}, "seed must be an int or None"),
        ({"guide": "closest"}, "unknown guide mode"),
        ({"eps_space": "logit"}, "unknown eps_space"),
    ]:
        with pytest.raises(ValueError, match=match):
            KNNGradientAttack(model, knn, **{"m": M, **kwargs})
    with pytest.raises(ValueError, match="eps must be a positive"):
        PGD(model, eps=0)
    with pytest.raises(ValueError, match="larger than 1"):
        UniformNoise(2.0)
    with pytest.raises(ValueError, match="needs the model's normalisation"):
        UniformNoise(0.03, eps_space="normalized")
    with pytest.raises(ValueError, match="guide samples per group"):
        KNNOptimizationAttack(model, knn, m=10_000)
    with pytest.raises(ValueError, match="binary_search_steps must be"):
        KNNOptimizationAttack(model, knn, m=M, binary_search_steps=0)
    with pytest.raises(ValueError, match="larger than the library"):
        KNN(k=len(knn.features) + 1).fit(knn.features, knn.labels)
    atk = KNNGradientAttack(model, knn, m=M)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        atk(xs[:2] * 2 - 1, ys[:2])
    with pytest.raises(ValueError, match="needs the true labels"):
        atk(xs[:2])
    with pytest.raises(ValueError, match="float NCHW"):
        atk(xs[0], ys[:1])


def test_the_search_raises_c_until_the_images_break(setup):
    """With the authors' budget alone a too-small c leaves images unbroken; the escalation past it breaks them."""
    model, knn, xs, ys, *_ = setup
    x, y = xs[:16], ys[:16]
    capped = KNNOptimizationAttack(model, knn, m=M, binary_search_steps=2, steps=20, lr=0.05, initial_const=1e-6,
                                   max_const=1e-6).run(x, y)
    searched = KNNOptimizationAttack(model, knn, m=M, binary_search_steps=2, steps=20, lr=0.05, initial_const=1e-6,
                                     max_const=1e6).run(x, y)
    assert capped.n_success <= 4 and searched.n_success >= 15
    assert torch.all(searched.const[searched.success] > 1e-5)  # reached only by raising c past the budget


def test_never_broken_images_give_an_l2_that_says_so():
    """An attack that breaks nothing reports infinite median L2 and the ceiling as mean, not a small mean."""
    from satnb.protocol.evaluate import l2_summary

    delta = torch.zeros(10, 3, 4, 4)
    none = l2_summary(delta, torch.zeros(10, dtype=torch.bool), torch.full((3,), 0.25))
    assert none["opt_success"] == 0 and none["opt_unbroken"] == 10 and none["opt_success_ci"][1] < 0.35
    assert none["l2_median_px"] == math.inf and none["l2_median_norm"] == math.inf
    assert none["l2_mean_px"] == pytest.approx(math.sqrt(48))
    assert none["l2_mean_norm"] == pytest.approx(4 * math.sqrt(48))
    assert math.isnan(none["l2_mean_broken_px"]) and none["l2_all_px"] == [None] * 10
    # two broken images with small perturbations, eight never broken: the mean over all stays large
    delta[:2] = 0.01
    some = l2_summary(delta, torch.tensor([True, True] + [False] * 8), torch.full((3,), 0.25))
    assert some["l2_mean_broken_px"] == pytest.approx(0.01 * math.sqrt(48))
    assert some["l2_mean_px"] > 0.7 * math.sqrt(48) and some["l2_median_px"] == math.inf
