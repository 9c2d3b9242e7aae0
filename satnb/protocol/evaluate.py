"""The paper's protocol: ACC on the clean test set, DSR and L2 on the first N correctly classified images."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from satnb.attacks import KNNOptimizationAttack, UniformNoise, gradient_attack
from satnb.core import stats
from satnb.core.config import AttackSettings, ConfigError, ProtocolSettings
from satnb.knn.classifier import KNN, guide_size
from satnb.knn.features import as_images, predict
from satnb.nets.encoders import describe_encoder

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


def attacked_count(n: int | None, correct: np.ndarray) -> int:
    """The N to attack: the protocol's (None: every correctly classified test image), cut (with a warning) to the
    test images the kNN classifies correctly."""
    n_correct = int(correct.sum())
    if n is None:
        return n_correct
    if 0 < n_correct < n:
        warnings.warn(f"N={n} cut to {n_correct} attacked images: only {n_correct} of the {len(correct)} test "
                      "images are classified correctly (the record's n_attacked says so; its intervals are wider); "
                      "use a larger test set or lower n_attack", stacklevel=2)
    return min(n, n_correct)


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
             protocol: ProtocolSettings, eps_space: str = "pixel", optimization: bool = True, seed: int = 0,
             progress: bool = True, keep_images: bool = False) -> dict:
    """ACC, DSR and robust accuracy (small, large, uniform noise as reference), the optimisation attack; 95% intervals.

    DSR on the first N correctly classified test images (the primary N: all of them; the paper's N =
    1 000 is the sub-view `dsr_<setting>_subview`, on the first `n_subview`). Robust accuracy is
    measured on the first `n_prefix` test images, the ones scanned to find those N: an image counts
    when it is classified correctly and still is after the attack, so it is an unbiased
    proportion over n_prefix images that, unlike DSR, does not reward losing clean accuracy.
    Per-image outcomes (`per_image`, packed bits) let claims pair two models on the same images.
    """
    x_test, y_test = as_images(x_test), torch.as_tensor(np.asarray(y_test))
    t0 = time.perf_counter()
    pred = predict(model, knn, x_test)
    correct = (pred == y_test).numpy()
    acc = float(correct.mean())
    idx = first_correct(pred, y_test, attacked_count(protocol.n_attack, correct))
    n_prefix = int(idx[-1]) + 1
    x, y = x_test[idx], y_test[idx]
    m = guide_size(knn, protocol.m)
    n_sub = min(protocol.n_subview, len(idx))
    out: dict = {"encoder": describe_encoder(model), "acc": acc, "acc_ci": _ci(stats.proportion(correct)),
                 "n_test": len(y_test),
                 "n_attacked": len(idx), "n_subview": n_sub, "n_prefix": n_prefix, "k": knn.k, "m": m,
                 "eps_space": eps_space,
                 "guide": protocol.guide,
                 "attacks": {}, "per_image": {"correct": stats.pack_bits(correct)}}
    steps = [("small", protocol.small), ("large", protocol.large)]
    images = {}
    for name, setting in tqdm(steps, desc="gradient attacks", disable=not progress, leave=False):
        atk = gradient_attack(model, knn, setting, m, eps_space=eps_space, seed=seed, guide=protocol.guide)
        res = run_attack(name, atk, model, knn, x, y)
        noise = run_attack(f"noise_{name}", UniformNoise(setting.eps, seed=seed, model=model, eps_space=eps_space),
                           model, knn, x, y)
        survived, noise_survived = (res.pred == y).numpy(), (noise.pred == y).numpy()
        out[f"dsr_{name}"], out[f"dsr_{name}_ci"] = res.dsr, _ci(stats.proportion(survived))
        sub = stats.proportion(survived[:n_sub])
        out[f"dsr_{name}_subview"], out[f"dsr_{name}_subview_ci"] = sub.value, _ci(sub)
        robust = stats.wilson(int(survived.sum()), n_prefix)
        out[f"robust_{name}"], out[f"robust_{name}_ci"] = robust.value, _ci(robust)
        out[f"noise_dsr_{name}"] = noise.dsr
        out["per_image"][f"survived_{name}"] = stats.pack_bits(survived)
        out["per_image"][f"noise_survived_{name}"] = stats.pack_bits(noise_survived)
        out["attacks"][name] = {"eps": setting.eps, "step": setting.step, "steps": setting.steps,
                                "dsr": res.dsr, "noise_dsr": noise.dsr, "robust": robust.value,
                                "seconds_per_image": res.seconds_per_image}
        images[name] = res
    if optimization:
        n_opt = min(protocol.n_attack_opt, len(idx))
        atk = KNNOptimizationAttack(model, knn, m=m, binary_search_steps=protocol.opt_binary_steps,
                                    steps=protocol.opt_steps, max_const=protocol.opt_max_const, guide=protocol.guide,
                                    progress=progress)
        t1 = time.perf_counter()
        r = atk.run(x[:n_opt], y[:n_opt])
        secs = time.perf_counter() - t1
        out.update(l2_summary(r.adv - x[:n_opt], r.success, model.normalize.std))
        out["attacks"]["optimization"] = {"binary_search_steps": protocol.opt_binary_steps,
                                          "steps": protocol.opt_steps, "max_const": protocol.opt_max_const,
                                          "seconds": secs, "seconds_per_image": secs / max(n_opt, 1)}
        images["optimization"] = r
    out["seconds"] = time.perf_counter() - t0
    if keep_images:
        out["_images"] = {"x": x, "y": y, "idx": idx, **images}
    return out


def _ci(interval: stats.Interval) -> list[float]:
    return [interval.lo, interval.hi]


UNBROKEN_RULE = ("an image the attack never broke counts as infinitely far in the median and at the largest L2 "
                 "any image can be moved (the distance to the farthest corner of the image cube) in the mean")


def l2_summary(delta: Tensor, success: Tensor, std: Tensor, seed: int = 0) -> dict:
    """Success rate and L2 statistics over ALL attacked images, in pixel and in normalised units (see UNBROKEN_RULE).

    Normalised units divide each channel's change by the model's normalisation std (the authors'
    code measured L2 on the normalised tensor, about 4x the pixel value on CIFAR-10).
    """
    ok = success.cpu().numpy().astype(bool)
    n = len(ok)
    std = std.detach().cpu().reshape(1, -1, 1, 1).to(delta.dtype)
    out: dict = {"opt_n": n, "opt_unbroken": int(n - ok.sum()), "opt_success": float(ok.mean()) if n else math.nan,
                 "opt_success_ci": _ci(stats.proportion(ok)), "l2_rule": UNBROKEN_RULE}
    corner = torch.ones_like(delta[:1].cpu())  # the farthest an image can move: across the whole cube
    ceilings = (float(corner.flatten().norm()), float((corner / std).flatten().norm())) if n else (math.nan,) * 2
    for unit, scaled, ceiling in (("px", delta.cpu(), ceilings[0]), ("norm", delta.cpu() / std, ceilings[1])):
        l2 = scaled.flatten(1).norm(dim=1).double().numpy()
        inf_l2 = np.where(ok, l2, math.inf)
        capped = np.where(ok, l2, ceiling)
        med, mean = stats.bootstrap(inf_l2, np.median, seed=seed), stats.bootstrap(capped, np.mean, seed=seed)
        out[f"l2_median_{unit}"], out[f"l2_median_{unit}_ci"] = med.value, _ci(med)
        out[f"l2_mean_{unit}"], out[f"l2_mean_{unit}_ci"] = mean.value, _ci(mean)
        out[f"l2_mean_broken_{unit}"] = float(l2[ok].mean()) if ok.any() else math.nan
        out[f"l2_all_{unit}"] = [float(v) if k else None for v, k in zip(l2, ok)]
    out["l2"] = out["l2_mean_norm"]  # the paper's Table 1 statistic, in its (normalised) units
    return out


def sweep_setting(eps: float) -> AttackSettings:
    """The attack setting for one eps of a sweep: both of the paper's settings are points of this rule.

    step = min(eps/6, 0.005) and enough steps to cross the ball 1.67 times (10 at eps=0.03, 20 at 0.06).
    """
    step = min(eps / 6, 0.005)
    return AttackSettings(eps, step, max(10, math.ceil(round(eps / step * 10 / 6, 6))))


def eps_sweep(model: nn.Module, knn: KNN, x: Tensor, y: Tensor, eps_values: list[float], m: int,
              eps_space: str = "pixel", seed: int = 0, progress: bool = False, guide: str = "paper") -> list[dict]:
    """DSR of the gradient attack and of uniform noise at each eps (settings from `sweep_setting`)."""
    rows = []
    for eps in tqdm(eps_values, desc="eps sweep", disable=not progress, leave=False):
        setting = sweep_setting(eps)
        atk = run_attack("gradient", gradient_attack(model, knn, setting, m, eps_space=eps_space, seed=seed,
                                                     guide=guide), model, knn, x, y)
        noise = run_attack("noise", UniformNoise(eps, seed=seed, model=model, eps_space=eps_space), model, knn, x, y)
        rows.append({"eps": eps, "attack": "gradient", "dsr": atk.dsr})
        rows.append({"eps": eps, "attack": "uniform noise", "dsr": noise.dsr})
    return rows


def restarts_dsr(model: nn.Module, knn: KNN, x: Tensor, y: Tensor, setting: AttackSettings, m: int,
                 restarts: int = 3, eps_space: str = "pixel", seed: int = 0, guide: str = "paper") -> list[float]:
    """DSR after 1..R random restarts: an image counts as defended only if every restart fails."""
    defended = torch.ones(len(y), dtype=torch.bool)
    out = []
    for r in range(restarts):
        res = run_attack("gradient", gradient_attack(model, knn, setting, m, eps_space=eps_space, seed=seed + 1000 * r,
                                                     guide=guide), model, knn, x, y)
        defended &= res.pred == y
        out.append(float(defended.float().mean()))
    return out


def transfer_dsr(source: nn.Module, source_knn: KNN, target: nn.Module, target_knn: KNN, x: Tensor, y: Tensor,
                 setting: AttackSettings, m: int, eps_space: str = "pixel", seed: int = 0,
                 guide: str = "paper") -> float:
    """DSR of the target kNN on adversarial images crafted against the source model (a black-box check)."""
    adv = gradient_attack(source, source_knn, setting, m, eps_space=eps_space, seed=seed, guide=guide)(x, y)
    return float((predict(target, target_knn, adv) == y).float().mean())
