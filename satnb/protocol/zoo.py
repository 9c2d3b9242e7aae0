"""Is the robustness real? Every attack we have on one model, and the per-image worst case over all of them.

On the same first N correctly classified test images as the paper's protocol (`evaluate`), for
each eps setting: the paper's gradient attack; the same attack with more steps and random
restarts; PGD on a linear probe transferred to the kNN; the black-box search on the hard vote;
and the worst case, where an image counts as robust only if every attack failed on it. Beside the
paper's optimisation attack, the minimum-norm attack on the vote gives the L2 statistics.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from satnb.attacks import KNNBlackBoxAttack, KNNMinNormAttack, KNNOptimizationAttack, gradient_attack, probe_attack
from satnb.core import stats
from satnb.core.config import AttackSettings, ProtocolSettings, ZooSettings
from satnb.knn.classifier import KNN, guide_size
from satnb.knn.features import as_images, predict
from satnb.protocol.evaluate import attacked_count, first_correct, l2_summary

ATTACKS = ("gradient (paper)", "gradient, more steps + restarts", "linear-probe transfer", "black-box", "worst case")
BUDGETS = (10, 30, 100, 300, 1000, 3000, 10000)


def _strong(setting: AttackSettings, factor: int) -> AttackSettings:
    """The paper's setting with `factor` times the steps (the same step size)."""
    return AttackSettings(setting.eps, setting.step, setting.steps * factor)


def attack_zoo(model: nn.Module, knn: KNN, x_test: np.ndarray | Tensor, y_test: np.ndarray | Tensor,
               protocol: ProtocolSettings, zoo: ZooSettings, eps_space: str = "pixel", seed: int = 0,
               progress: bool = True) -> dict:
    """DSR and robust accuracy (95% intervals, per-image outcomes) under each attack and their worst case."""
    x_test, y_test = as_images(x_test), torch.as_tensor(np.asarray(y_test))
    pred = predict(model, knn, x_test)
    correct = (pred == y_test).numpy()
    idx = first_correct(pred, y_test, attacked_count(zoo.n_images or protocol.n_attack, correct))
    n_prefix = int(idx[-1]) + 1
    x, y = x_test[idx], y_test[idx]
    m = guide_size(knn, protocol.m)
    out: dict = {"n_attacked": len(idx), "n_prefix": n_prefix, "m": m, "eps_space": eps_space,
                 "guide": protocol.guide, "settings": {}}
    for name, setting in (("small", protocol.small), ("large", protocol.large)):
        attacks = {
            "gradient (paper)": [gradient_attack(model, knn, setting, m, eps_space=eps_space, seed=seed,
                                                guide=protocol.guide)],
            "gradient, more steps + restarts": [
                gradient_attack(model, knn, _strong(setting, zoo.steps_factor), m, eps_space=eps_space,
                                seed=seed + 1000 * r, guide=protocol.guide) for r in range(zoo.restarts)],
            "linear-probe transfer": [probe_attack(model, knn, setting, eps_space=eps_space, seed=seed)],
            "black-box": [KNNBlackBoxAttack(model, knn, eps=setting.eps, queries=zoo.queries,
                                            eps_space=eps_space, seed=seed)],
        }
        rows, worst = {}, np.ones(len(y), dtype=bool)
        for attack, runs in tqdm(attacks.items(), desc=f"attack zoo ({name})", disable=not progress, leave=False):
            survived = np.ones(len(y), dtype=bool)
            t0 = time.perf_counter()
            extra = {}
            for atk in runs:  # restarts: an image survives only if every run fails
                if isinstance(atk, KNNBlackBoxAttack):
                    res = atk.run(x, y)
                    adv = res.adv
                    q = np.where(res.success.numpy(), res.queries.numpy(), np.iinfo(np.int64).max)
                    budgets = sorted({b for b in BUDGETS if b < zoo.queries} | {zoo.queries})
                    extra["dsr_by_queries"] = {str(b): float(1 - (q <= b).mean()) for b in budgets}
                else:
                    adv = atk(x, y)
                survived &= (predict(model, knn, adv) == y).numpy()
            seconds = time.perf_counter() - t0
            rows[attack] = _outcome(survived, n_prefix, seconds, **extra)
            worst &= survived
        rows["worst case"] = _outcome(worst, n_prefix, None)
        out["settings"][name] = {"eps": setting.eps, "step": setting.step, "steps": setting.steps, "attacks": rows}
    n_opt = min(protocol.n_attack_opt, len(idx))
    atk = KNNMinNormAttack(model, knn, binary_search_steps=protocol.opt_binary_steps, steps=protocol.opt_steps,
                           max_const=protocol.opt_max_const, progress=progress)
    t0 = time.perf_counter()
    r = atk.run(x[:n_opt], y[:n_opt])
    out["min_norm"] = {**l2_summary(r.adv - x[:n_opt], r.success, model.normalize.std, seed=seed),
                       "seconds": time.perf_counter() - t0}
    return out


def _outcome(survived: np.ndarray, n_prefix: int, seconds: float | None, **extra) -> dict:
    dsr, robust = stats.proportion(survived), stats.wilson(int(survived.sum()), n_prefix)
    return {"dsr": dsr.value, "dsr_ci": [dsr.lo, dsr.hi], "robust": robust.value, "robust_ci": [robust.lo, robust.hi],
            "survived": stats.pack_bits(survived),
            "seconds_per_image": None if seconds is None else seconds / max(len(survived), 1), **extra}


def strong_l2(model: nn.Module, knn: KNN, x_test: np.ndarray | Tensor, y_test: np.ndarray | Tensor,
              protocol: ProtocolSettings, zoo: ZooSettings, progress: bool = True) -> dict:
    """The optimisation attack at the authors' budget on the first attacked images: L2 statistics, timing, budget.

    Claim 1's L2 leg: the protocol's own budget (smaller at the CPU profiles) can leave images unbroken
    that a longer search breaks, and a weak attack inflates L2; this one is the strongest we run.
    """
    x_test, y_test = as_images(x_test), torch.as_tensor(np.asarray(y_test))
    pred = predict(model, knn, x_test)
    correct = (pred == y_test).numpy()
    n = min(zoo.strong_opt_images or protocol.n_attack_opt, int(correct.sum()))
    idx = first_correct(pred, y_test, attacked_count(n, correct))
    x, y = x_test[idx], y_test[idx]
    atk = KNNOptimizationAttack(model, knn, m=guide_size(knn, protocol.m),
                                binary_search_steps=zoo.strong_opt_binary_steps, steps=zoo.strong_opt_steps,
                                max_const=protocol.opt_max_const, guide=protocol.guide, progress=progress)
    t0 = time.perf_counter()
    r = atk.run(x, y)
    seconds = time.perf_counter() - t0
    return {**l2_summary(r.adv - x, r.success, model.normalize.std),
            "binary_search_steps": zoo.strong_opt_binary_steps, "steps": zoo.strong_opt_steps, "guide": protocol.guide,
            "seconds": seconds, "seconds_per_image": seconds / max(len(y), 1)}
