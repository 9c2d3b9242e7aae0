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

from satnb import stats
from satnb.adaptive import KNNBlackBoxAttack, KNNMinNormAttack, probe_attack
from satnb.attacks import gradient_attack
from satnb.config import AttackSettings, Profile
from satnb.evaluate import first_correct, l2_summary
from satnb.features import as_images, predict
from satnb.knn import KNN

ATTACKS = ("gradient (paper)", "gradient, more steps + restarts", "linear-probe transfer", "black-box", "worst case")
BUDGETS = (10, 30, 100, 300, 1000, 3000, 10000)


def _strong(setting: AttackSettings, factor: int) -> AttackSettings:
    """The paper's setting with `factor` times the steps (the same step size)."""
    return AttackSettings(setting.eps, setting.step, setting.steps * factor)


def attack_zoo(model: nn.Module, knn: KNN, x_test: np.ndarray | Tensor, y_test: np.ndarray | Tensor,
               profile: Profile, eps_space: str = "pixel", seed: int = 0, progress: bool = True) -> dict:
    """DSR and robust accuracy (95% intervals, per-image outcomes) under each attack and their worst case."""
    x_test, y_test = as_images(x_test), torch.as_tensor(np.asarray(y_test))
    pred = predict(model, knn, x_test)
    correct = (pred == y_test).numpy()
    idx = first_correct(pred, y_test, min(profile.n_attack_zoo or profile.n_attack, int(correct.sum())))
    n_prefix = int(idx[-1]) + 1
    x, y = x_test[idx], y_test[idx]
    m = min(profile.m, int(knn.class_counts.min()))
    out: dict = {"n_attacked": len(idx), "n_prefix": n_prefix, "eps_space": eps_space, "settings": {}}
    for name, setting in (("small", profile.small), ("large", profile.large)):
        attacks = {
            "gradient (paper)": [gradient_attack(model, knn, setting, m, eps_space=eps_space, seed=seed)],
            "gradient, more steps + restarts": [
                gradient_attack(model, knn, _strong(setting, profile.zoo_steps_factor), m, eps_space=eps_space,
                                seed=seed + 1000 * r) for r in range(profile.zoo_restarts)],
            "linear-probe transfer": [probe_attack(model, knn, setting, eps_space=eps_space, seed=seed)],
            "black-box": [KNNBlackBoxAttack(model, knn, eps=setting.eps, queries=profile.zoo_queries,
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
                    budgets = sorted({b for b in BUDGETS if b < profile.zoo_queries} | {profile.zoo_queries})
                    extra["dsr_by_queries"] = {str(b): float(1 - (q <= b).mean()) for b in budgets}
                else:
                    adv = atk(x, y)
                survived &= (predict(model, knn, adv) == y).numpy()
            seconds = time.perf_counter() - t0
            rows[attack] = _outcome(survived, n_prefix, seconds, **extra)
            worst &= survived
        rows["worst case"] = _outcome(worst, n_prefix, None)
        out["settings"][name] = {"eps": setting.eps, "step": setting.step, "steps": setting.steps, "attacks": rows}
    n_opt = min(profile.n_attack_opt, len(idx))
    atk = KNNMinNormAttack(model, knn, binary_search_steps=profile.opt_binary_steps, steps=profile.opt_steps,
                           max_const=profile.opt_max_const, progress=progress)
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


def worst_case_view(res: dict, space: str = "pixel") -> dict:
    """A results record whose evaluation outcomes are the attack zoo's worst case (and L2 the minimum-norm attack's).

    Claims computed on it (`claims.assess`) are the paper's claims re-judged against the strongest
    attack we have; models without a zoo record are left out.
    """
    zoo = (res.get("robustness") or {}).get(space) or {}
    view = {**res, "evaluation": {**res.get("evaluation", {}), space: {}}}
    for name, r in res.get("evaluation", {}).get(space, {}).items():
        if name not in zoo:
            continue
        z = zoo[name]
        # the zoo may attack fewer images than the evaluation (n_attack_zoo): its own N and prefix go with its bits
        rec = {**r, "per_image": dict(r.get("per_image") or {}), "n_attacked": z["n_attacked"],
               "n_prefix": z["n_prefix"]}
        for setting in ("small", "large"):
            w = z["settings"][setting]["attacks"]["worst case"]
            rec[f"dsr_{setting}"], rec[f"dsr_{setting}_ci"] = w["dsr"], w["dsr_ci"]
            rec[f"robust_{setting}"], rec[f"robust_{setting}_ci"] = w["robust"], w["robust_ci"]
            rec["per_image"][f"survived_{setting}"] = w["survived"]
        mn = z.get("min_norm") or {}
        for unit in ("px", "norm"):  # per image, the smaller L2 of the paper's attack and the minimum-norm one
            a, b = r.get(f"l2_all_{unit}"), mn.get(f"l2_all_{unit}")
            if a is not None and b is not None and len(a) == len(b):
                rec[f"l2_all_{unit}"] = [None if u is None and v is None else min(w for w in (u, v) if w is not None)
                                         for u, v in zip(a, b)]
            elif b is not None:
                rec[f"l2_all_{unit}"], rec["opt_n"] = b, mn.get("opt_n")
        view["evaluation"][space][name] = rec
    return view
