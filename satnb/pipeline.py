"""The whole experiment for one profile: train or load each model, build its kNN library, evaluate, cache."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from satnb.config import METHODS, ConfigError, Profile
from satnb.data import Dataset, stratified_indices
from satnb.evaluate import (
    as_images,
    build_library,
    eps_sweep,
    evaluate,
    extract_features,
    first_correct,
    gradient_attack,
    restarts_dsr,
    transfer_dsr,
)
from satnb.knn import KNN
from satnb.pretrain import train
from satnb.store import Store, provenance

LABELS = {"amdim": "SSL (AMDIM)", "npid": "SSL (NPID)", "simclr": "SSL (SimCLR)", "sup": "SUP",
          "sat-amdim": "SAT (AMDIM)", "sat-npid": "SAT (NPID)", "sat-simclr": "SAT (SimCLR)",
          "sat-amdim-amdim": "SAT (AMDIM, AMDIM NCE)", "at": "AT", "mat": "MAT", "alp": "ALP"}


@dataclass
class Entry:
    """A trained model known to the pipeline, with the cache key of what produced it."""

    name: str
    model: nn.Module
    key: str
    train_seconds: float
    info: dict = field(default_factory=dict)


class Pipeline:
    """Trains, caches and evaluates the models a profile names; what the notebooks and the CLI call."""

    def __init__(self, profile: Profile, data: Dataset, store: Store | None = None,
                 device: torch.device | str = "cpu", progress: bool = True):
        self.profile, self.data, self.store = profile, data, store or Store()
        self.device, self.progress = torch.device(device), progress
        self.entries: dict[str, Entry] = {}
        self._libraries: dict[str, KNN] = {}
        self._features: dict[tuple[str, str], tuple[str, torch.Tensor]] = {}
        n_lib = profile.n_library
        self.library_index = (stratified_indices(data.y_train, n_lib, profile.seed)
                              if n_lib and n_lib < len(data.y_train) else np.arange(len(data.y_train)))

    @classmethod
    def from_session(cls, session) -> "Pipeline":
        """The pipeline for a notebook session (profile, data, store, device)."""
        return cls(session.profile, session.data, session.store, session.device)

    # models -------------------------------------------------------------
    def train(self, method: str) -> Entry:
        """Train (or load from the cache) one of the paper's representation-learning methods."""
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}; valid methods are {', '.join(METHODS)}")
        if method not in self.entries:
            res = train(method, self.data, self.profile.train[method], self.store, seed=self.profile.seed,
                        device=self.device, progress=self.progress, profile=self.profile.name)
            self.entries[method] = Entry(method, res.model, res.artifact.key, res.wall_time_s,
                                         {"history": res.history, "cached": res.cached,
                                          "epoch_seconds": res.epoch_time_s})
        return self.entries[method]

    def add(self, name: str, model: nn.Module, key: str, train_seconds: float, **info) -> Entry:
        """Register a model produced elsewhere (e.g. by SAT) so it is evaluated like the others."""
        self.entries[name] = Entry(name, model, key, train_seconds, info)
        self._libraries.pop(name, None)
        return self.entries[name]

    def entry(self, name: str) -> Entry:
        """A registered model, training it first when it is one of the base methods."""
        if name not in self.entries:
            if name in METHODS:
                return self.train(name)
            raise ConfigError(f"no model named {name!r}; known: {', '.join(sorted(self.entries)) or 'none'}")
        return self.entries[name]

    # adversarial training -----------------------------------------------
    def trajectory_eval(self, model: nn.Module) -> dict:
        """ACC and DSR small/large of a model under training (library rebuilt from its features)."""
        idx = self.library_index
        knn = build_library(model, self.data.x_train[idx], self.data.y_train[idx], k=self.profile.k,
                            n_classes=self.data.n_classes)
        r = evaluate(model, knn, self.data.x_test, self.data.y_test, self.profile, optimization=False,
                     seed=self.profile.seed, progress=False)
        return {"acc": r["acc"], "dsr_small": r["dsr_small"], "dsr_large": r["dsr_large"]}

    def sat(self, seed_model: str, objective: str | None = None, **kwargs) -> Entry:
        """Self-supervised adversarial training of a self-supervised model (cached); registered as sat-<seed>."""
        from satnb.adversarial import sat

        base, p = self.entry(seed_model), self.profile
        objective = objective or p.sat.objective
        idx = self.library_index
        kwargs = {"keep_only_successful": p.sat.keep_only_successful, "betas": tuple(p.sat.betas),
                  "weight_decay": p.sat.weight_decay, "guide": p.sat.guide, **kwargs}
        res = sat(base.model, self.data.x_train[idx], self.data.y_train[idx], p.sat, p.small, k=p.k,
                  m=self.m(seed_model), objective=objective, store=self.store,
                  data_fingerprint=self.data.fingerprint(), base_key=base.key, seed=p.seed, device=self.device,
                  progress=self.progress, eval_fn=lambda model, it: self.trajectory_eval(model),
                  n_classes=self.data.n_classes, profile=p.name, **kwargs)
        name = f"sat-{seed_model}" + ("" if objective == "heads" else f"-{objective}")
        return self.add(name, res.model, res.artifact.key, res.train_seconds, trajectory=res.trajectory,
                        eval_seconds=res.eval_seconds, n_updates=res.n_updates, seed=seed_model,
                        seconds_per_update=res.seconds_per_update, cached=res.cached)

    def baseline(self, method: str, **kwargs) -> Entry:
        """AT, MAT or ALP fine-tuning of the supervised model (cached); registered under the method's name."""
        from satnb.adversarial import adversarial_train

        base, p = self.entry("sup"), self.profile
        res = adversarial_train(base.model, method, self.data.x_train, self.data.y_train, p.small,
                                epochs=p.sat.baseline_epochs, batch_size=p.sat.batch_size, lr=p.sat.baseline_lr,
                                alp_weight=p.sat.alp_weight, store=self.store,
                                data_fingerprint=self.data.fingerprint(), base_key=base.key, seed=p.seed,
                                device=self.device, progress=self.progress,
                                eval_fn=lambda model, ep: self.trajectory_eval(model), profile=p.name, **kwargs)
        return self.add(method, res.model, res.artifact.key, res.train_seconds, trajectory=res.trajectory,
                        eval_seconds=res.eval_seconds, n_updates=res.n_updates,
                        seconds_per_update=res.seconds_per_update, cached=res.cached)

    # kNN ----------------------------------------------------------------
    def library(self, name: str) -> KNN:
        """The kNN over the library images' features under this model."""
        if name not in self._libraries:
            labels = torch.as_tensor(self.data.y_train[self.library_index])
            self._libraries[name] = KNN(k=self.profile.k, n_classes=self.data.n_classes).fit(
                self.features(name, "library"), labels)
        return self._libraries[name]

    def features(self, name: str, split: str = "test") -> torch.Tensor:
        """Features of the library or test images under a model (cached on disk: a warm book only reads them)."""
        if split not in ("library", "test"):
            raise ConfigError(f"unknown split {split!r}; use 'library' or 'test'")
        ent = self.entry(name)
        memo = self._features.get((name, split))
        if memo is not None and memo[0] == ent.key:
            return memo[1]
        images = self.data.x_train[self.library_index] if split == "library" else self.data.x_test
        index = self.library_index if split == "library" else np.arange(len(images))
        state = self.store.memo_state(
            "features", {"model": ent.key, "split": split, "n": len(images),
                         "index": hashlib.blake2b(index.tobytes(), digest_size=8).hexdigest()},
            lambda: {"features": extract_features(ent.model, images)}, self.data.fingerprint())
        self._features[(name, split)] = (ent.key, state["features"])
        return state["features"]

    def test_features(self, name: str) -> torch.Tensor:
        """Features of the test images under this model."""
        return self.features(name, "test")

    def accuracy(self, name: str, k: int | None = None) -> float:
        """Clean kNN accuracy on the test set (optionally with another k)."""
        knn = self.library(name)
        feats = self.test_features(name)
        if k is None or k == knn.k:
            return knn.score(feats, torch.as_tensor(self.data.y_test))
        other = KNN(k=k, n_classes=knn.n_classes).fit(knn.features, knn.labels)
        return other.score(feats, torch.as_tensor(self.data.y_test))

    def attacked(self, name: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n (default: the profile's N) correctly classified test images and their labels."""
        knn = self.library(name)
        y = torch.as_tensor(self.data.y_test)
        pred = knn.predict(self.test_features(name))
        idx = first_correct(pred, y, min(n or self.profile.n_attack, int((pred == y).sum())))
        return as_images(self.data.x_test[idx.numpy()]), y[idx]

    def library_images(self, library_idx: torch.Tensor) -> np.ndarray:
        """uint8 images of library entries (indices as returned by the kNN search)."""
        return self.data.x_train[self.library_index[np.asarray(library_idx)]]

    def m(self, name: str) -> int:
        """The guide-group size: the profile's m, capped by the smallest library class."""
        return min(self.profile.m, int(self.library(name).class_counts.min()))

    def examples(self, name: str, n: int = 4, setting: str = "small", n_neighbours: int = 5) -> dict:
        """Clean and attacked images with their nearest library images before and after (for figures)."""
        x, y = self.attacked(name, n)
        model, knn = self.entry(name).model, self.library(name)
        adv = gradient_attack(model, knn, getattr(self.profile, setting), self.m(name), seed=self.profile.seed)(x, y)
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
        from satnb.attacks import KNNOptimizationAttack

        ent, p = self.entry(name), self.profile

        def compute() -> dict:
            x, y = self.attacked(name, n)
            r = KNNOptimizationAttack(ent.model, self.library(name), m=self.m(name), seed=p.seed,
                                      binary_search_steps=p.opt_binary_steps, steps=p.opt_steps).run(x, y)
            return {"x": x.cpu(), "adv": r.adv.detach().cpu(), "l2": r.l2, "success": r.success}

        return self.store.memo_state("opt-examples", {"model": ent.key, "n": n, "k": p.k, "m": p.m,
                                                      "opt": [p.opt_binary_steps, p.opt_steps], "seed": p.seed,
                                                      "n_library": len(self.library_index)},
                                     compute, self.data.fingerprint())

    # evaluation ---------------------------------------------------------
    def evaluate(self, name: str, eps_space: str = "pixel", optimization: bool = True) -> dict:
        """ACC, DSR small/large, noise control and L2 for one model (cached)."""
        ent = self.entry(name)
        p = self.profile
        settings = {"model": ent.key, "k": p.k, "m": p.m, "n_attack": p.n_attack, "n_attack_opt": p.n_attack_opt,
                    "small": dataclasses.asdict(p.small), "large": dataclasses.asdict(p.large),
                    "opt": [p.opt_binary_steps, p.opt_steps], "eps_space": eps_space,
                    "optimization": optimization, "n_library": len(self.library_index), "seed": p.seed}
        art = self.store.artifact("evaluate", settings, self.data.fingerprint())
        cached = self.store.load_result(art)
        if cached is not None:
            return cached
        t0 = time.perf_counter()
        out = evaluate(ent.model, self.library(name), self.data.x_test, self.data.y_test, p, eps_space=eps_space,
                       optimization=optimization, seed=p.seed, progress=self.progress)
        out.update(model=name, train_seconds=ent.train_seconds)
        out["provenance"] = provenance(profile=p.name, dataset=self.data.describe(), seed=p.seed,
                                       wall_time_s=time.perf_counter() - t0, device=str(self.device))
        self.store.save_result(art, out)
        return out

    def table(self, names: list[str], eps_space: str = "pixel", optimization: bool = True) -> pd.DataFrame:
        """One row per model: ACC, DSR small/large (with the noise control), L2, times."""
        rows = []
        for name in names:
            r = self.evaluate(name, eps_space, optimization)
            rows.append({
                "model": LABELS.get(name, name), "ACC": r["acc"], "DSR small": r["dsr_small"],
                "DSR large": r["dsr_large"], "noise DSR small": r["noise_dsr_small"],
                "noise DSR large": r["noise_dsr_large"], "L2": r.get("l2", float("nan")),
                "unbroken (opt)": r.get("opt_unbroken"), "N": r["n_attacked"],
                "train s": round(r["train_seconds"], 1),
                "attack s/img (small)": r["attacks"]["small"]["seconds_per_image"],
            })
        return pd.DataFrame(rows).set_index("model")

    # studies: cached like the models, so a warm book only reads them --------
    def _memo(self, stage: str, settings: dict, compute: Callable[[], Any], models: Sequence[str] = ()) -> Any:
        """compute() cached under the settings, the models' cache keys and the profile's kNN settings."""
        p = self.profile
        settings = {**settings, "models": {n: self.entry(n).key for n in models}, "seed": p.seed}
        if models:
            settings.update(k=p.k, m=p.m, n_library=len(self.library_index))
        return self.store.memo(stage, settings, compute, self.data.fingerprint() if models else "",
                               profile=p.name, dataset=self.data.describe() if models else None, seed=p.seed,
                               device=str(self.device))

    def _setting(self, setting: str):
        if setting not in ("small", "large"):
            raise ConfigError(f"unknown attack setting {setting!r}; use 'small' or 'large'")
        return getattr(self.profile, setting)

    def eps_sweep(self, name: str, eps_values: Sequence[float], n: int | None = None,
                  eps_space: str = "pixel") -> pd.DataFrame:
        """DSR of the gradient attack and of same-size uniform noise at each eps (cached)."""
        n = n or self.profile.n_attack

        def compute() -> list[dict]:
            x, y = self.attacked(name, n)
            rows = eps_sweep(self.entry(name).model, self.library(name), x, y, list(eps_values), self.m(name),
                             eps_space, seed=self.profile.seed)
            return [{**r, "model": LABELS.get(name, name)} for r in rows]

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
        from satnb import mi

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
        from satnb import mi

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
        from satnb import mi

        steps = max(100, self.profile.mi_steps)
        settings = {"true_mi": true_mi, "dim": dim, "batch_sizes": [int(b) for b in batch_sizes],
                    "estimators": list(estimators), "steps": steps}
        value = self._memo("mi-batch-sizes", settings, lambda: mi.batch_size_study(
            true_mi, dim, batch_sizes, estimators, steps=steps, seed=self.profile.seed,
            progress=self.progress).to_dict("list"))
        return pd.DataFrame(value)
