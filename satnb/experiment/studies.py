"""The book's evaluations and studies of a pipeline's models, each cached in the store so a warm book only reads them.

`Studies(pipe)` reads only the pipeline's public API. Every result is keyed by the cache keys of
the models it uses, the protocol's settings and the code of the study that computes it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from satnb.attacks import KNNOptimizationAttack, gradient_attack
from satnb.core import stats
from satnb.core.config import AttackSettings, ConfigError
from satnb.core.fingerprint import Code
from satnb.core.identity import ModelId
from satnb.core.store import provenance
from satnb.knn.features import extract_features
from satnb.nets import mi
from satnb.protocol.evaluate import EVALUATION_NUMBERS, eps_sweep, evaluate, restarts_dsr, transfer_dsr
from satnb.protocol.zoo import attack_zoo, strong_l2

if TYPE_CHECKING:
    from satnb.experiment.pipeline import Pipeline

Model = str | ModelId  # a model's ModelId or its name


class Studies:
    """Evaluation (ACC, DSR, L2), the attack zoo and the book's studies of the models of one pipeline."""

    # "Pipeline" quoted: a study's cache key covers its models' keys, not the code of the pipeline that made them
    def __init__(self, pipe: "Pipeline"):
        self.pipe = pipe

    # the one load-or-compute path -------------------------------------------
    def _record(self, stage: str, code: Code, settings: dict, compute: Callable[[], dict],
                models: Sequence[Model] = (), **checks: Any) -> dict:
        """A stage's JSON record: loaded (checked with `checks`) when cached, else computed with provenance, saved.

        The key holds the settings, the seed and, with models, their cache keys, the kNN's k and m and
        the library's size, on the pipeline's data.
        """
        pipe, p = self.pipe, self.pipe.profile
        ids = [pipe.resolve(m) for m in models]
        settings = {**settings, "models": {i.name: pipe.entry(i).key for i in ids}, "seed": p.seed}
        if ids:
            settings.update(k=p.protocol.k, m=p.protocol.m, n_library=len(pipe.library_index))
        data = pipe.data if ids else None
        art = pipe.store.artifact(stage, settings, data.fingerprint() if data else "", code=code)
        cached = pipe.store.load_result(art, **checks)
        if cached is not None:
            return cached
        t0 = time.perf_counter()
        out = compute()
        out["provenance"] = provenance(profile=p.name, dataset=data.describe() if data else None, seed=p.seed,
                                       wall_time_s=time.perf_counter() - t0, device=str(pipe.device), code=code)
        pipe.store.save_result(art, out, sort_keys=False)  # keep the value's key order (a table's columns)
        return json.loads(json.dumps(out))  # what a later, cached call returns (lists for tuples, str keys...)

    def _value(self, stage: str, settings: dict, compute: Callable[[], Any], models: Sequence[Model] = ()) -> Any:
        """compute()'s JSON value, cached as a record of the stage (see `_record`)."""
        record = self._record(stage, Studies, settings, lambda: {"value": compute()}, models, required=("value",))
        return record["value"]

    # the paper's protocol -------------------------------------------------
    def _protocol_settings(self, eps_space: str, guide: str) -> dict:
        """What the paper's protocol depends on beside the model (part of the evaluation's and the zoo's keys)."""
        p = self.pipe.profile.protocol
        return {"n_attack": p.n_attack, "n_subview": p.n_subview, "n_attack_opt": p.n_attack_opt,
                "small": dataclasses.asdict(p.small), "large": dataclasses.asdict(p.large),
                "opt": [p.opt_binary_steps, p.opt_steps, p.opt_max_const],
                "eps_space": eps_space, "guide": guide}

    def _protocol(self, guide: str | None):
        """The profile's protocol, with another guide rule when one is named (a grid cell)."""
        p = self.pipe.profile.protocol
        return p if guide is None or guide == p.guide else dataclasses.replace(p, guide=guide)

    def evaluate(self, model: Model, eps_space: str = "pixel", optimization: bool = True,
                 guide: str | None = None) -> dict:
        """ACC, DSR small/large, noise control and L2 for one model (cached; the record a results file holds)."""
        pipe = self.pipe
        ent, protocol = pipe.entry(model), self._protocol(guide)

        def compute() -> dict:
            out = evaluate(ent.model, pipe.library(ent.id), pipe.data.x_test, pipe.data.y_test, protocol,
                           eps_space=eps_space, optimization=optimization, seed=pipe.profile.seed,
                           progress=pipe.progress)
            return {**out, "train_seconds": ent.train_seconds, "model": ent.name}

        settings = {**self._protocol_settings(eps_space, protocol.guide), "optimization": optimization}
        return self._record("evaluate", Studies.evaluate, settings, compute, (ent.id,), numbers=EVALUATION_NUMBERS)

    def robustness(self, model: Model, eps_space: str = "pixel", guide: str | None = None) -> dict:
        """Every attack we have on one model and their per-image worst case (cached; see `satnb.protocol.zoo`)."""
        pipe = self.pipe
        ent, p, protocol = pipe.entry(model), pipe.profile, self._protocol(guide)

        def compute() -> dict:
            out = attack_zoo(ent.model, pipe.library(ent.id), pipe.data.x_test, pipe.data.y_test, protocol, p.zoo,
                             eps_space=eps_space, seed=p.seed, progress=pipe.progress)
            return {**out, "model": ent.name}

        settings = {**self._protocol_settings(eps_space, protocol.guide), "zoo": dataclasses.asdict(p.zoo)}
        return self._record("robustness", Studies.robustness, settings, compute, (ent.id,),
                            required=("settings", "min_norm"))

    def strong_l2(self, model: Model) -> dict:
        """The optimisation attack at the authors' budget (the zoo's strong_opt settings) on one model, pixel eps."""
        pipe = self.pipe
        ent, p = pipe.entry(model), pipe.profile

        def compute() -> dict:
            out = strong_l2(ent.model, pipe.library(ent.id), pipe.data.x_test, pipe.data.y_test, p.protocol, p.zoo,
                            progress=pipe.progress)
            return {**out, "model": ent.name}

        z = p.zoo
        settings = {**self._protocol_settings("pixel", p.protocol.guide),
                    "strong": [z.strong_opt_binary_steps, z.strong_opt_steps, z.strong_opt_images]}
        return self._record("strong-l2", Studies.strong_l2, settings, compute, (ent.id,), required=("l2_all_px",))

    def evaluations(self, models: Sequence[Model], eps_space: str = "pixel", optimization: bool = True) -> dict:
        """`evaluate` for several models, by name (what `tables.evaluation_table` shows)."""
        return {self.pipe.resolve(m).name: self.evaluate(m, eps_space, optimization) for m in models}

    def refresh_check(self, model: Model = "amdim") -> dict | None:
        """SAT with the profile's library refresh period against a refresh every iteration (the authors'), same length.

        Both runs take `profile.refresh_check_iterations` iterations; DSR and robust accuracy (small)
        are compared with 95% intervals (Newcombe's, unpaired: the runs attack their own first-correct
        images). None when the profile has no check or already refreshes every iteration.
        """
        pipe, p = self.pipe, self.pipe.profile
        n, period = p.refresh_check_iterations, p.sat.refresh_every
        if not n or period == 1:
            return None
        base = pipe.resolve(model)
        runs = {}
        for every in (1, period):
            ent = pipe.sat(ModelId.sat(base, objective=p.sat.objective, refresh_every=every, iterations=n))
            r = self.evaluate(ent.id, optimization=False)
            runs[every] = {"name": ent.name, "train_seconds": ent.train_seconds,
                           **{k: r[k] for k in ("acc", "dsr_small", "dsr_small_ci", "n_attacked", "robust_small",
                                                "robust_small_ci", "n_prefix")}}
        a, b = runs[period], runs[1]
        out = {"seed": base.name, "iterations": n, "refresh_every": period,
               "runs": {str(k): v for k, v in runs.items()}}
        for key, n_key in (("dsr_small", "n_attacked"), ("robust_small", "n_prefix")):
            d = stats.unpaired_difference(round(a[key] * a[n_key]), a[n_key], round(b[key] * b[n_key]), b[n_key])
            out[f"{key}_difference"] = d.value
            out[f"{key}_difference_ci"] = [d.lo, d.hi]
            out[f"{key}_within"] = bool(b[f"{key}_ci"][0] <= a[key] <= b[f"{key}_ci"][1])
        out["speedup"] = b["train_seconds"] / a["train_seconds"] if a["train_seconds"] else None
        return out

    # figures ----------------------------------------------------------------
    def examples(self, model: Model, n: int = 4, setting: str = "small", n_neighbours: int = 5) -> dict:
        """Clean and attacked images with their nearest library images before and after (for figures)."""
        pipe = self.pipe
        x, y = pipe.attacked(model, n)
        net, knn = pipe.entry(model).model, pipe.library(model)
        adv = gradient_attack(net, knn, self._setting(setting), pipe.guide_size(model), seed=pipe.profile.seed,
                              guide=pipe.profile.protocol.guide)(x, y)
        f_x, f_adv = extract_features(net, x), extract_features(net, adv)
        _, before = knn.search(f_x, n_neighbours)
        _, after = knn.search(f_adv, n_neighbours)
        pred = knn.predict(f_adv)
        cls = pipe.data.classes

        def u8(t: torch.Tensor) -> np.ndarray:
            return (t.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()

        return {"x": u8(x), "adv": u8(adv), "before": [pipe.library_images(i) for i in before],
                "after": [pipe.library_images(i) for i in after],
                "titles": [f"{cls[a]} -> {cls[b]}" for a, b in zip(y.tolist(), pred.tolist())]}

    def optimization_examples(self, model: Model, n: int = 4) -> dict:
        """The optimisation attack on the first n correctly classified test images: x, adv, l2, success (cached)."""
        pipe = self.pipe
        ent, p = pipe.entry(model), pipe.profile.protocol

        def compute() -> dict:
            x, y = pipe.attacked(ent.id, n)
            r = KNNOptimizationAttack(ent.model, pipe.library(ent.id), m=pipe.guide_size(ent.id),
                                      seed=pipe.profile.seed, guide=p.guide, binary_search_steps=p.opt_binary_steps,
                                      steps=p.opt_steps).run(x, y)
            return {"x": x.cpu(), "adv": r.adv.detach().cpu(), "l2": r.l2, "success": r.success}

        # tensors: a checkpoint of the stage, not a JSON record
        return pipe.store.memo_state("opt-examples", {"model": ent.key, "n": n, "k": p.k, "m": p.m,
                                                      "opt": [p.opt_binary_steps, p.opt_steps],
                                                      "seed": pipe.profile.seed,
                                                      "n_library": len(pipe.library_index)},
                                     compute, pipe.data.fingerprint(), code=Studies)

    # studies ----------------------------------------------------------------
    def _setting(self, setting: str) -> AttackSettings:
        if setting not in ("small", "large"):
            raise ConfigError(f"unknown attack setting {setting!r}; use 'small' or 'large'")
        return getattr(self.pipe.profile.protocol, setting)

    def eps_sweep(self, model: Model, eps_values: Sequence[float], n: int | None = None,
                  eps_space: str = "pixel") -> pd.DataFrame:
        """DSR of the gradient attack and of same-size uniform noise at each eps (cached); rows name the model."""
        pipe, mid = self.pipe, self.pipe.resolve(model)
        n = n or pipe.profile.protocol.n_subview

        def compute() -> list[dict]:
            x, y = pipe.attacked(mid, n)
            rows = eps_sweep(pipe.entry(mid).model, pipe.library(mid), x, y, list(eps_values), pipe.guide_size(mid),
                             eps_space, seed=pipe.profile.seed, guide=pipe.profile.protocol.guide)
            return [{**r, "model": mid.name} for r in rows]

        rows = self._value("eps-sweep", {"eps": [float(e) for e in eps_values], "n": n, "eps_space": eps_space},
                           compute, (mid,))
        return pd.DataFrame(rows)

    def restarts(self, model: Model, restarts: int = 3, n: int | None = None, setting: str = "small") -> list[float]:
        """DSR after 1..restarts random restarts of the gradient attack (cached)."""
        pipe = self.pipe
        n, atk = n or pipe.profile.protocol.n_subview, self._setting(setting)

        def compute() -> list[float]:
            x, y = pipe.attacked(model, n)
            return restarts_dsr(pipe.entry(model).model, pipe.library(model), x, y, atk, pipe.guide_size(model),
                                restarts=restarts, seed=pipe.profile.seed, guide=pipe.profile.protocol.guide)

        return self._value("restarts", {"restarts": restarts, "n": n, "setting": dataclasses.asdict(atk)},
                           compute, (model,))

    def transfer(self, source: Model, target: Model, n: int | None = None, setting: str = "small") -> float:
        """DSR of the target's kNN on attacks crafted against the source model, on the target's images (cached)."""
        pipe = self.pipe
        n, atk = n or pipe.profile.protocol.n_subview, self._setting(setting)

        def compute() -> float:
            x, y = pipe.attacked(target, n)
            return transfer_dsr(pipe.entry(source).model, pipe.library(source), pipe.entry(target).model,
                                pipe.library(target), x, y, atk,
                                min(pipe.guide_size(source), pipe.guide_size(target)), seed=pipe.profile.seed,
                                guide=pipe.profile.protocol.guide)

        return self._value("transfer", {"source": pipe.resolve(source).name, "target": pipe.resolve(target).name,
                                        "n": n, "setting": dataclasses.asdict(atk)}, compute, (source, target))

    def mi_clean_adversarial(self, model: Model, setting: str = "small", batch_size: int = 64) -> dict:
        """InfoNCE MI between clean and attacked features of every correctly classified test image (cached).

        Also the same estimator on clean vs clean features: the most it can report with this batch size.
        """
        pipe = self.pipe
        atk, steps = self._setting(setting), max(100, pipe.profile.mi_steps)

        def compute() -> dict:
            x, y = pipe.attacked(model, n=len(pipe.data.y_test))
            net = pipe.entry(model).model
            adv = gradient_attack(net, pipe.library(model), atk, pipe.guide_size(model), seed=pipe.profile.seed,
                              guide=pipe.profile.protocol.guide)(x, y)
            z, z_hat = extract_features(net, x), extract_features(net, adv)
            bs = min(batch_size, len(z) // 5)  # 20% of the pairs are held out to evaluate the trained critic
            out = {"n_images": len(z), "batch_size": bs}
            for key, other in (("clean vs adversarial", z_hat), ("clean vs clean", z)):
                est = mi.mi_between_features(z, other, batch_size=bs, steps=steps, seed=pipe.profile.seed,
                                             progress=False)
                out[key], out["log_batch"] = est.value, est.log_batch
            return out

        return self._value("mi-features", {"setting": dataclasses.asdict(atk), "steps": steps,
                                           "batch_size": batch_size}, compute, (model,))

    def mi_staircase(self, estimators: Sequence[str] = ("infonce", "nwj", "js"), dim: int = 20,
                     batch_size: int = 64, levels: Sequence[float] = (2, 4, 6, 8, 10)) -> pd.DataFrame:
        """Poole et al.'s staircase with the profile's MI steps per level (cached; see `satnb.nets.mi.staircase`)."""
        p = self.pipe.profile
        settings = {"estimators": list(estimators), "dim": dim, "batch_size": batch_size,
                    "levels": [float(v) for v in levels], "steps_per_level": p.mi_steps}
        value = self._value("mi-staircase", settings, lambda: mi.staircase(
            estimators, dim=dim, batch_size=batch_size, steps_per_level=p.mi_steps, levels=levels, seed=p.seed,
            progress=self.pipe.progress).to_dict("list"))
        return pd.DataFrame(value)

    def mi_batch_study(self, true_mi: float = 4.0, dim: int = 20,
                       batch_sizes: Sequence[int] = (16, 32, 64, 128, 256),
                       estimators: Sequence[str] = ("infonce", "nwj")) -> pd.DataFrame:
        """Estimates and their spread against the batch size at a fixed true MI (cached; see `satnb.nets.mi`)."""
        p = self.pipe.profile
        steps = max(100, p.mi_steps)
        settings = {"true_mi": true_mi, "dim": dim, "batch_sizes": [int(b) for b in batch_sizes],
                    "estimators": list(estimators), "steps": steps}
        value = self._value("mi-batch-sizes", settings, lambda: mi.batch_size_study(
            true_mi, dim, batch_sizes, estimators, steps=steps, seed=p.seed,
            progress=self.pipe.progress).to_dict("list"))
        return pd.DataFrame(value)
