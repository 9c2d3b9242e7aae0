"""The book's evaluations and studies of registered models, each cached in the store so a warm book only reads them.

Every result is keyed by the cache keys of the models it uses, the profile's kNN and attack
settings and the code of this module's import closure.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from satnb import mi, stats
from satnb.attacks import KNNOptimizationAttack, gradient_attack
from satnb.config import AttackSettings, ConfigError
from satnb.evaluate import EVALUATION_NUMBERS, eps_sweep, evaluate, restarts_dsr, transfer_dsr
from satnb.features import extract_features
from satnb.store import provenance


class Studies:
    """Evaluation (ACC, DSR, L2) and the book's studies; mixed into `Pipeline` after `Libraries` and `Models`.

    Needs `entry`, `library`, `attacked`, `m`, `library_images` and the pipeline's profile, data and store.
    """

    # the paper's protocol -------------------------------------------------
    def _protocol_settings(self, name: str, eps_space: str) -> dict:
        """What the paper's protocol on one model depends on (part of the evaluation's and the zoo's keys)."""
        p = self.profile
        return {"model": self.entry(name).key, "k": p.k, "m": p.m, "n_attack": p.n_attack,
                "n_attack_opt": p.n_attack_opt, "small": dataclasses.asdict(p.small),
                "large": dataclasses.asdict(p.large), "opt": [p.opt_binary_steps, p.opt_steps, p.opt_max_const],
                "eps_space": eps_space, "n_library": len(self.library_index), "seed": p.seed}

    def _cached_record(self, stage: str, code: str, name: str, settings: dict, compute: Callable[[], dict],
                       **checks: Any) -> dict:
        """A model's JSON record of a stage: loaded (checked with `checks`) when cached, else computed and saved."""
        art = self.store.artifact(stage, settings, self.data.fingerprint(), code=code)
        cached = self.store.load_result(art, **checks)
        if cached is not None:
            return cached
        p, t0 = self.profile, time.perf_counter()
        out = compute()
        out["model"] = name
        out["provenance"] = provenance(profile=p.name, dataset=self.data.describe(), seed=p.seed,
                                       wall_time_s=time.perf_counter() - t0, device=str(self.device),
                                       code_module=code)
        self.store.save_result(art, out)
        return out

    def evaluate(self, name: str, eps_space: str = "pixel", optimization: bool = True) -> dict:
        """ACC, DSR small/large, noise control and L2 for one model (cached; the record a results file holds)."""
        ent, p = self.entry(name), self.profile

        def compute() -> dict:
            out = evaluate(ent.model, self.library(name), self.data.x_test, self.data.y_test, p,
                           eps_space=eps_space, optimization=optimization, seed=p.seed, progress=self.progress)
            return {**out, "train_seconds": ent.train_seconds}

        settings = {**self._protocol_settings(name, eps_space), "optimization": optimization}
        return self._cached_record("evaluate", "satnb.evaluate", name, settings, compute, numbers=EVALUATION_NUMBERS)

    def robustness(self, name: str, eps_space: str = "pixel") -> dict:
        """Every attack we have on one model and their per-image worst case (cached; see `satnb.robustness`)."""
        from satnb.robustness import attack_zoo

        ent, p = self.entry(name), self.profile
        settings = {**self._protocol_settings(name, eps_space),
                    "zoo": [p.n_attack_zoo, p.zoo_queries, p.zoo_restarts, p.zoo_steps_factor]}
        return self._cached_record(
            "robustness", "satnb.robustness", name, settings,
            lambda: attack_zoo(ent.model, self.library(name), self.data.x_test, self.data.y_test, p,
                               eps_space=eps_space, seed=p.seed, progress=self.progress),
            required=("settings", "min_norm"))

    def evaluations(self, names: Sequence[str], eps_space: str = "pixel", optimization: bool = True) -> dict:
        """`evaluate` for several models, by name (what `tables.evaluation_table` shows)."""
        return {name: self.evaluate(name, eps_space, optimization) for name in names}

    def refresh_check(self, seed_model: str = "amdim") -> dict | None:
        """SAT with the profile's library refresh period against a refresh every iteration (the authors'), same length.

        Both runs take `profile.refresh_check_iterations` iterations; DSR and robust accuracy (small)
        are compared with 95% intervals (Newcombe's, unpaired: the runs attack their own first-correct
        images). None when the profile has no check or already refreshes every iteration.
        """
        p = self.profile
        n, period = p.refresh_check_iterations, p.sat.refresh_every
        if not n or period == 1:
            return None
        runs = {}
        for every in (1, period):
            ent = self.sat(seed_model, refresh_every=every, iterations=n)
            r = self.evaluate(ent.name, optimization=False)
            runs[every] = {"name": ent.name, "train_seconds": ent.train_seconds, "acc": r["acc"],
                           "dsr_small": r["dsr_small"], "dsr_small_ci": r["dsr_small_ci"],
                           "n_attacked": r["n_attacked"],
                           "robust_small": r["robust_small"], "robust_small_ci": r["robust_small_ci"],
                           "n_prefix": r["n_prefix"]}
        a, b = runs[period], runs[1]
        out = {"seed": seed_model, "iterations": n, "refresh_every": period,
               "runs": {str(k): v for k, v in runs.items()}}
        for key, n_key in (("dsr_small", "n_attacked"), ("robust_small", "n_prefix")):
            d = stats.unpaired_difference(round(a[key] * a[n_key]), a[n_key], round(b[key] * b[n_key]), b[n_key])
            out[f"{key}_difference"] = d.value
            out[f"{key}_difference_ci"] = [d.lo, d.hi]
            out[f"{key}_within"] = bool(b[f"{key}_ci"][0] <= a[key] <= b[f"{key}_ci"][1])
        out["speedup"] = b["train_seconds"] / a["train_seconds"] if a["train_seconds"] else None
        return out

    # figures ----------------------------------------------------------------
    def examples(self, name: str, n: int = 4, setting: str = "small", n_neighbours: int = 5) -> dict:
        """Clean and attacked images with their nearest library images before and after (for figures)."""
        x, y = self.attacked(name, n)
        model, knn = self.entry(name).model, self.library(name)
        adv = gradient_attack(model, knn, self._setting(setting), self.m(name), seed=self.profile.seed)(x, y)
        f_x, f_adv = extract_features(model, x), extract_features(model, adv)
        _, before = knn.search(f_x, n_neighbours)
        _, after = knn.search(f_adv, n_neighbours)
        pred = knn.predict(f_adv)
        cls = self.data.classes

        def u8(t: torch.Tensor) -> np.ndarray:
            return (t.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()

        return {"x": u8(x), "adv": u8(adv), "before": [self.library_images(i) for i in before],
                "after": [self.library_images(i) for i in after],
                "titles": [f"{cls[a]} -> {cls[b]}" for a, b in zip(y.tolist(), pred.tolist())]}

    def optimization_examples(self, name: str, n: int = 4) -> dict:
        """The optimisation attack on the first n correctly classified test images: x, adv, l2, success (cached)."""
        ent, p = self.entry(name), self.profile

        def compute() -> dict:
            x, y = self.attacked(name, n)
            r = KNNOptimizationAttack(ent.model, self.library(name), m=self.m(name), seed=p.seed,
                                      binary_search_steps=p.opt_binary_steps, steps=p.opt_steps).run(x, y)
            return {"x": x.cpu(), "adv": r.adv.detach().cpu(), "l2": r.l2, "success": r.success}

        return self.store.memo_state("opt-examples", {"model": ent.key, "n": n, "k": p.k, "m": p.m,
                                                      "opt": [p.opt_binary_steps, p.opt_steps], "seed": p.seed,
                                                      "n_library": len(self.library_index)},
                                     compute, self.data.fingerprint(), code=__name__)

    # studies ----------------------------------------------------------------
    def _memo(self, stage: str, settings: dict, compute: Callable[[], Any], models: Sequence[str] = ()) -> Any:
        """compute() cached under the settings, the models' cache keys and the profile's kNN settings."""
        p = self.profile
        settings = {**settings, "models": {n: self.entry(n).key for n in models}, "seed": p.seed}
        if models:
            settings.update(k=p.k, m=p.m, n_library=len(self.library_index))
        return self.store.memo(stage, settings, compute, self.data.fingerprint() if models else "",
                               code=__name__, profile=p.name, dataset=self.data.describe() if models else None,
                               seed=p.seed, device=str(self.device))

    def _setting(self, setting: str) -> AttackSettings:
        if setting not in ("small", "large"):
            raise ConfigError(f"unknown attack setting {setting!r}; use 'small' or 'large'")
        return getattr(self.profile, setting)

    def eps_sweep(self, name: str, eps_values: Sequence[float], n: int | None = None,
                  eps_space: str = "pixel") -> pd.DataFrame:
        """DSR of the gradient attack and of same-size uniform noise at each eps (cached); rows name the model."""
        n = n or self.profile.n_attack

        def compute() -> list[dict]:
            x, y = self.attacked(name, n)
            rows = eps_sweep(self.entry(name).model, self.library(name), x, y, list(eps_values), self.m(name),
                             eps_space, seed=self.profile.seed)
            return [{**r, "model": name} for r in rows]

        rows = self._memo("eps-sweep", {"eps": [float(e) for e in eps_values], "n": n, "eps_space": eps_space},
                          compute, (name,))
        return pd.DataFrame(rows)

    def restarts(self, name: str, restarts: int = 3, n: int | None = None, setting: str = "small") -> list[float]:
        """DSR after 1..restarts random restarts of the gradient attack (cached)."""
        n, atk = n or self.profile.n_attack, self._setting(setting)

        def compute() -> list[float]:
            x, y = self.attacked(name, n)
            return restarts_dsr(self.entry(name).model, self.library(name), x, y, atk, self.m(name),
                                restarts=restarts, seed=self.profile.seed)

        return self._memo("restarts", {"restarts": restarts, "n": n, "setting": dataclasses.asdict(atk)},
                          compute, (name,))

    def transfer(self, source: str, target: str, n: int | None = None, setting: str = "small") -> float:
        """DSR of the target's kNN on attacks crafted against the source model, on the target's images (cached)."""
        n, atk = n or self.profile.n_attack, self._setting(setting)

        def compute() -> float:
            x, y = self.attacked(target, n)
            return transfer_dsr(self.entry(source).model, self.library(source), self.entry(target).model,
                                self.library(target), x, y, atk, min(self.m(source), self.m(target)),
                                seed=self.profile.seed)

        return self._memo("transfer", {"source": source, "target": target, "n": n,
                                       "setting": dataclasses.asdict(atk)}, compute, (source, target))

    def mi_clean_adversarial(self, name: str, setting: str = "small", batch_size: int = 64) -> dict:
        """InfoNCE MI between clean and attacked features of every correctly classified test image (cached).

        Also the same estimator on clean vs clean features: the most it can report with this batch size.
        """
        atk, steps = self._setting(setting), max(100, self.profile.mi_steps)

        def compute() -> dict:
            x, y = self.attacked(name, n=len(self.data.y_test))
            model = self.entry(name).model
            adv = gradient_attack(model, self.library(name), atk, self.m(name), seed=self.profile.seed)(x, y)
            z, z_hat = extract_features(model, x), extract_features(model, adv)
            bs = min(batch_size, len(z) // 5)  # 20% of the pairs are held out to evaluate the trained critic
            out = {"n_images": len(z), "batch_size": bs}
            for key, other in (("clean vs adversarial", z_hat), ("clean vs clean", z)):
                est = mi.mi_between_features(z, other, batch_size=bs, steps=steps, seed=self.profile.seed,
                                             progress=False)
                out[key], out["log_batch"] = est.value, est.log_batch
            return out

        return self._memo("mi-features", {"setting": dataclasses.asdict(atk), "steps": steps,
                                          "batch_size": batch_size}, compute, (name,))

    def mi_staircase(self, estimators: Sequence[str] = ("infonce", "nwj", "js"), dim: int = 20,
                     batch_size: int = 64, levels: Sequence[float] = (2, 4, 6, 8, 10)) -> pd.DataFrame:
        """Poole et al.'s staircase with the profile's MI steps per level (cached; see `satnb.mi.staircase`)."""
        steps = self.profile.mi_steps
        settings = {"estimators": list(estimators), "dim": dim, "batch_size": batch_size,
                    "levels": [float(v) for v in levels], "steps_per_level": steps}
        value = self._memo("mi-staircase", settings, lambda: mi.staircase(
            estimators, dim=dim, batch_size=batch_size, steps_per_level=steps, levels=levels,
            seed=self.profile.seed, progress=self.progress).to_dict("list"))
        return pd.DataFrame(value)

    def mi_batch_study(self, true_mi: float = 4.0, dim: int = 20,
                       batch_sizes: Sequence[int] = (16, 32, 64, 128, 256),
                       estimators: Sequence[str] = ("infonce", "nwj")) -> pd.DataFrame:
        """Estimates and their spread against the batch size at a fixed true MI (cached; see `satnb.mi`)."""
        steps = max(100, self.profile.mi_steps)
        settings = {"true_mi": true_mi, "dim": dim, "batch_sizes": [int(b) for b in batch_sizes],
                    "estimators": list(estimators), "steps": steps}
        value = self._memo("mi-batch-sizes", settings, lambda: mi.batch_size_study(
            true_mi, dim, batch_sizes, estimators, steps=steps, seed=self.profile.seed,
            progress=self.progress).to_dict("list"))
        return pd.DataFrame(value)
