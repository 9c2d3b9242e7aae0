"""The paper's protocol: ACC on the clean test set, DSR and L2 on the first N correctly classified images."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from satnb.attacks import KNNOptimizationAttack, UniformNoise, gradient_attack
from satnb.config import AttackSettings, ConfigError, Profile
from satnb.features import as_images, predict
from satnb.knn import KNN

# what every evaluation record holds as a number (a cached record without them is corrupt)
EVALUATION_NUMBERS = ("acc", "dsr_small", "dsr_large", "noise_dsr_small", "noise_dsr_large", "n_attacked")


def first_correct(pred: Tensor, labels: Tensor, n: int) -> Tensor:
    """Indices of the first n test images (in dataset order) that the kNN classifies correctly."""
    if n < 1:
        if len(labels) and not bool((pred == labels).any()):
            raise ConfigError(f"N={n} attacked images: none of the {len(labels)} test images is classified "
                              "correctly (ACC 0), and only correctly classified images are attacked; train longer "
                              "(more epochs) or use a larger test set")
        raise ConfigError(f"N={n} attacked images; use N >= 1 (the paper attacks 1000)")
    if n > len(labels):
        raise ConfigError(f"N={n} is larger than the test set ({len(labels)} images); lower n_attack")
    idx = torch.nonzero(pred == labels).flatten()
    if len(idx) < n:
        raise ConfigError(f"only {len(idx)} test images are classified correctly, fewer than N={n}; "
                          "lower n_attack or use a larger test set")
    return idx[:n]


@dataclass
class AttackOutcome:
    """DSR of one attack on the N attacked images, with the adversarial images and timing."""

    name: str
    dsr: float
    n: int
    seconds: float
    adv: Tensor = field(repr=False)
    pred: Tensor = field(repr=False)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(self.n, 1)


def run_attack(name: str, attack, model: nn.Module, knn: KNN, x: Tensor, y: Tensor) -> AttackOutcome:
    """Attack x, classify the result with the kNN, and return DSR (accuracy on the adversarial images)."""
    t0 = time.perf_counter()
    adv = attack(x, y)
    seconds = time.perf_counter() - t0
    pred = predict(model, knn, adv)
    return AttackOutcome(name, float((pred == y).float().mean()), len(y), seconds, adv, pred)


def evaluate(model: nn.Module, knn: KNN, x_test: np.ndarray | Tensor, y_test: np.ndarray | Tensor,
             profile: Profile, eps_space: str = "pixel", optimization: bool = True, seed: int = 0,
             progress: bool = True, keep_images: bool = False) -> dict:
    """ACC, DSR (small, large, with same-size uniform noise as reference) and the optimisation attack's L2."""
    x_test, y_test = as_images(x_test), torch.as_tensor(np.asarray(y_test))
    t0 = time.perf_counter()
    pred = predict(model, knn, x_test)
    acc = float((pred == y_test).float().mean())
    idx = first_correct(pred, y_test, min(profile.n_attack, int((pred == y_test).sum())))
    x, y = x_test[idx], y_test[idx]
    m = min(profile.m, int(knn.class_counts.min()))
    out: dict = {"acc": acc, "n_test": len(y_test), "n_attacked": len(idx), "k": knn.k, "m": m,
                 "eps_space": eps_space, "attacks": {}}
    steps = [("small", profile.small), ("large", profile.large)]
    images = {}
    for name, setting in tqdm(steps, desc="gradient attacks", disable=not progress, leave=False):
        atk = gradient_attack(model, knn, setting, m, eps_space=eps_space, seed=seed)
        res = run_attack(name, atk, model, knn, x, y)
        noise = run_attack(f"noise_{name}", UniformNoise(setting.eps, seed=seed, model=model, eps_space=eps_space),
                           model, knn, x, y)
        out[f"dsr_{name}"] = res.dsr
        out[f"noise_dsr_{name}"] = noise.dsr
        out["attacks"][name] = {"eps": setting.eps, "step": setting.step, "steps": setting.steps,
                                "dsr": res.dsr, "noise_dsr": noise.dsr,
                                "seconds_per_image": res.seconds_per_image}
        images[name] = res
    if optimization:
        n_opt = min(profile.n_attack_opt, len(idx))
        atk = KNNOptimizationAttack(model, knn, m=m, binary_search_steps=profile.opt_binary_steps,
                                    steps=profile.opt_steps, progress=progress)
        t1 = time.perf_counter()
        r = atk.run(x[:n_opt], y[:n_opt])
        secs = time.perf_counter() - t1
        l2 = r.l2.numpy()
        out["l2"] = r.mean_l2
        out["l2_median"] = float(np.median(l2[np.isfinite(l2)])) if r.n_success else float("nan")
        out["l2_all"] = [float(v) if np.isfinite(v) else None for v in l2]
        out["opt_unbroken"] = int(len(l2) - r.n_success)
        out["opt_n"] = int(n_opt)
        out["attacks"]["optimization"] = {"binary_search_steps": profile.opt_binary_steps,
                                          "steps": profile.opt_steps, "seconds_per_image": secs / max(n_opt, 1)}
        images["optimization"] = r
    out["seconds"] = time.perf_counter() - t0
    if keep_images:
        out["_images"] = {"x": x, "y": y, "idx": idx, **images}
    return out


def sweep_setting(eps: float) -> AttackSettings:
    """The attack setting for one eps of a sweep: both of the paper's settings are points of this rule.

    step = min(eps/6, 0.005) and enough steps to cross the ball 1.67 times (10 at eps=0.03, 20 at 0.06).
    """
    step = min(eps / 6, 0.005)
    return AttackSettings(eps, step, max(10, math.ceil(round(eps / step * 10 / 6, 6))))


def eps_sweep(model: nn.Module, knn: KNN, x: Tensor, y: Tensor, eps_values: list[float], m: int,
              eps_space: str = "pixel", seed: int = 0, progress: bool = False) -> list[dict]:
    """DSR of the gradient attack and of uniform noise at each eps (settings from `sweep_setting`)."""
    rows = []
    for eps in tqdm(eps_values, desc="eps sweep", disable=not progress, leave=False):
        setting = sweep_setting(eps)
        atk = run_attack("gradient", gradient_attack(model, knn, setting, m, eps_space=eps_space, seed=seed),
                         model, knn, x, y)
        noise = run_attack("noise", UniformNoise(eps, seed=seed, model=model, eps_space=eps_space), model, knn, x, y)
        rows.append({"eps": eps, "attack": "gradient", "dsr": atk.dsr})
        rows.append({"eps": eps, "attack": "uniform noise", "dsr": noise.dsr})
    return rows


def restarts_dsr(model: nn.Module, knn: KNN, x: Tensor, y: Tensor, setting: AttackSettings, m: int,
                 restarts: int = 3, eps_space: str = "pixel", seed: int = 0) -> list[float]:
    """DSR after 1..R random restarts: an image counts as defended only if every restart fails."""
    defended = torch.ones(len(y), dtype=torch.bool)
    out = []
    for r in range(restarts):
        res = run_attack("gradient", gradient_attack(model, knn, setting, m, eps_space=eps_space, seed=seed + 1000 * r),
                         model, knn, x, y)
        defended &= res.pred == y
        out.append(float(defended.float().mean()))
    return out


def transfer_dsr(source: nn.Module, source_knn: KNN, target: nn.Module, target_knn: KNN, x: Tensor, y: Tensor,
                 setting: AttackSettings, m: int, eps_space: str = "pixel", seed: int = 0) -> float:
    """DSR of the target kNN on adversarial images crafted against the source model (a black-box check)."""
    adv = gradient_attack(source, source_knn, setting, m, eps_space=eps_space, seed=seed)(x, y)
    return float((predict(target, target_knn, adv) == y).float().mean())
