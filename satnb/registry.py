"""The models of one profile: the paper's encoders trained or loaded, fine-tuned with SAT or AT/MAT/ALP, registered."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from satnb.adversarial import BASELINES, adversarial_train, sat
from satnb.config import METHODS, ConfigError, Profile
from satnb.data import Dataset, stratified_indices
from satnb.evaluate import evaluate
from satnb.features import build_library, predict
from satnb.pretrain import train
from satnb.store import Store


@dataclass
class TrainedModel:
    """A model known to the pipeline, the cache key of what produced it, and how it was trained."""

    name: str
    model: nn.Module
    key: str
    train_seconds: float  # pretraining or fine-tuning wall time (evaluation excluded)
    cached: bool  # loaded from the artifact store rather than trained now
    kind: str = "pretrained"  # "pretrained", "sat" or "baseline"
    history: list[dict] = field(default_factory=list)  # per epoch (pretraining) or per unit of fine-tuning
    trajectory: list[dict] = field(default_factory=list)  # fine-tuning: ACC and DSR at each evaluation point
    n_updates: int | None = None  # fine-tuning: optimiser steps taken
    eval_seconds: float | None = None  # fine-tuning: wall time of the trajectory's evaluations
    seed_model: str | None = None  # fine-tuning: the model it started from

    @property
    def epoch_seconds(self) -> float:
        """Mean seconds per pretraining epoch (nan when none ran)."""
        times = [h["seconds"] for h in self.history if "seconds" in h and "epoch" in h]
        return float(np.mean(times)) if times else float("nan")

    @property
    def seconds_per_update(self) -> float:
        """Mean fine-tuning wall time per optimiser step."""
        return self.train_seconds / self.n_updates if self.n_updates else float("nan")

    @property
    def trajectory_seconds(self) -> list[float]:
        """Fine-tuning wall time spent before each trajectory point (evaluations excluded)."""
        unit = "epoch" if self.kind == "baseline" else "iteration"
        return [float(sum(h["seconds"] for h in self.history if h[unit] <= row[unit])) for row in self.trajectory]

    def fine_tuning_record(self) -> dict:
        """What a results file records of a SAT or baseline run."""
        trajectory = [{**row, "train_seconds": s} for row, s in zip(self.trajectory, self.trajectory_seconds)]
        return {"name": self.name, "train_seconds": self.train_seconds, "trajectory": trajectory,
                "eval_seconds": self.eval_seconds, "n_updates": self.n_updates,
                "seconds_per_update": self.seconds_per_update,
                **({"seed": self.seed_model} if self.kind == "sat" else {})}


# what every evaluation point of a fine-tuning trajectory records (part of the fine-tuning runs' cache keys)
TRAJECTORY_FIELDS = ("acc", "dsr_small", "dsr_large", "robust_small", "robust_large")


class Models:
    """Trains, fine-tunes and registers the models a profile names (every run cached in the store)."""

    def __init__(self, profile: Profile, data: Dataset, store: Store | None = None,
                 device: torch.device | str = "cpu", progress: bool = True):
        self.profile, self.data, self.store = profile, data, store or Store()
        self.device, self.progress = torch.device(device), progress
        self.entries: dict[str, TrainedModel] = {}
        n_lib = profile.n_library
        if profile.labelled_per_class:
            n_lib = _labelled_count(profile.labelled_per_class, data)
        self.library_index = (stratified_indices(data.y_train, n_lib, profile.seed)
                              if n_lib and n_lib < len(data.y_train) else np.arange(len(data.y_train)))
        # the images whose labels training may read: all of them, or only the library in the label-scarce regime
        self.labelled_index = self.library_index if profile.labelled_per_class else np.arange(len(data.y_train))

    def labelled_data(self) -> Dataset:
        """The training split restricted to the images whose labels may be used (SUP, AT, MAT, ALP)."""
        if not self.profile.labelled_per_class:
            return self.data
        idx = self.labelled_index
        return dataclasses.replace(self.data, x_train=self.data.x_train[idx], y_train=self.data.y_train[idx],
                                   x_unlabeled=None, _fingerprint=None)

    def train(self, method: str) -> TrainedModel:
        """Train (or load from the cache) one of the paper's methods, or a supervised twin ("sup-resnet18")."""
        twins = self.profile.supervised_twins()
        if method not in METHODS and method not in twins:
            known = [*METHODS, *twins]
            raise ConfigError(f"unknown method {method!r}; valid methods are {', '.join(known)}")
        if method not in self.entries:
            supervised = method == "sup" or method in twins
            data = self.labelled_data() if supervised else self.data
            settings = twins.get(method) or self.profile.train[method]
            every = self.profile.curve_every
            curve = (lambda model, epoch: self._curve_point(model, epoch, settings.epochs)) if every else None
            res = train("sup" if supervised else method, data, settings, self.store, seed=self.profile.seed,
                        device=self.device, progress=self.progress, profile=self.profile.name,
                        curve=curve,
                        curve_key=f"knn_acc every {every} epochs, k={self.profile.k}" if every else "")
            self.entries[method] = TrainedModel(method, res.model, res.artifact.key, res.wall_time_s, res.cached,
                                                history=res.history)
        return self.entries[method]

    def knn_accuracy(self, model: nn.Module) -> float:
        """Clean kNN accuracy on the test split, the library built from the model's features."""
        idx = self.library_index
        knn = build_library(model, self.data.x_train[idx], self.data.y_train[idx], k=self.profile.k,
                            n_classes=self.data.n_classes)
        return float((predict(model, knn, self.data.x_test).numpy() == self.data.y_test).mean())

    def _curve_point(self, model: nn.Module, epoch: int, epochs: int) -> dict:
        """A pretraining curve's point: kNN accuracy every `curve_every` epochs and at the last one."""
        if epoch % self.profile.curve_every and epoch != epochs:
            return {}
        return {"knn_acc": self.knn_accuracy(model)}

    def add(self, entry: TrainedModel) -> TrainedModel:
        """Register a model produced elsewhere so it is evaluated like the others."""
        self.entries[entry.name] = entry
        self._forget(entry.name)
        return entry

    def _forget(self, name: str) -> None:
        """Drop what is cached in memory about a model (overridden where libraries are kept)."""

    def entry(self, name: str) -> TrainedModel:
        """A registered model, training it first when it is one of the base methods."""
        if name not in self.entries:
            if name in METHODS or name in self.profile.supervised_twins():
                return self.train(name)
            raise ConfigError(f"no model named {name!r}; known: {', '.join(sorted(self.entries)) or 'none'}")
        return self.entries[name]

    def m(self, name: str) -> int:
        """The guide-group size: the profile's m, capped by the smallest class of the library."""
        counts = np.bincount(self.data.y_train[self.library_index], minlength=self.data.n_classes)
        return min(self.profile.m, int(counts.min()))

    def trajectory_eval(self, model: nn.Module) -> dict:
        """ACC and DSR small/large of a model under training (library rebuilt from its features)."""
        idx = self.library_index
        knn = build_library(model, self.data.x_train[idx], self.data.y_train[idx], k=self.profile.k,
                            n_classes=self.data.n_classes)
        r = evaluate(model, knn, self.data.x_test, self.data.y_test, self.profile, optimization=False,
                     seed=self.profile.seed, progress=False)
        return {k: r[k] for k in TRAJECTORY_FIELDS}

    def sat(self, seed_model: str, objective: str | None = None, refresh_every: int | None = None,
            iterations: int | None = None) -> TrainedModel:
        """SAT of a self-supervised model with the profile's settings (cached); registered as sat-<seed>.

        `objective` overrides the profile's `sat.objective`; a run with AMDIM's NCE is registered
        as sat-<seed>-amdim. `refresh_every` and `iterations` override the library refresh period and
        the run's length (registered with "-refresh<R>-it<N>" appended).
        """
        base, p = self.entry(seed_model), self.profile
        changes = {k: v for k, v in (("objective", objective), ("refresh_every", refresh_every),
                                     ("iterations", iterations)) if v is not None}
        settings = dataclasses.replace(p.sat, **changes)
        idx = self.library_index
        res = sat(base.model, self.data.x_train[idx], self.data.y_train[idx], settings, p.small, k=p.k,
                  m=self.m(seed_model), store=self.store, data_fingerprint=self.data.fingerprint(),
                  base_key=base.key, seed=p.seed, device=self.device, progress=self.progress,
                  eval_fn=lambda model, it: self.trajectory_eval(model), n_classes=self.data.n_classes,
                  eval_key=",".join(TRAJECTORY_FIELDS), profile=p.name)
        name = f"sat-{seed_model}" + ("" if settings.objective == "heads" else f"-{settings.objective}")
        if refresh_every is not None or iterations is not None:
            name += f"-refresh{settings.refresh_every}-it{settings.iterations}"
        return self.add(TrainedModel(name, res.model, res.artifact.key, res.train_seconds, res.cached, kind="sat",
                                     history=res.history, trajectory=res.trajectory, n_updates=res.n_updates,
                                     eval_seconds=res.eval_seconds, seed_model=seed_model))

    def baseline(self, method: str) -> TrainedModel:
        """AT, MAT or ALP fine-tuning of the supervised model with the profile's settings (cached)."""
        if method not in BASELINES:
            raise ConfigError(f"unknown baseline {method!r}; use one of {', '.join(BASELINES)}")
        base, p = self.entry("sup"), self.profile
        labelled = self.labelled_data()
        res = adversarial_train(base.model, method, labelled.x_train, labelled.y_train, p.small, p.baselines,
                                store=self.store, data_fingerprint=self.data.fingerprint(), base_key=base.key,
                                seed=p.seed, device=self.device, progress=self.progress,
                                eval_fn=lambda model, ep: self.trajectory_eval(model),
                                eval_key=",".join(TRAJECTORY_FIELDS), profile=p.name)
        return self.add(TrainedModel(method, res.model, res.artifact.key, res.train_seconds, res.cached,
                                     kind="baseline", history=res.history, trajectory=res.trajectory,
                                     n_updates=res.n_updates, eval_seconds=res.eval_seconds, seed_model="sup"))



def _labelled_count(per_class: int, data: Dataset) -> int:
    """How many labelled images the label-scarce regime keeps, checked against the data."""
    counts = np.bincount(data.y_train, minlength=data.n_classes)
    if per_class < 1 or per_class > counts.min():
        raise ConfigError(f"labelled_per_class={per_class} must be between 1 and {int(counts.min())} (the smallest "
                          "class of the training split); lower it")
    return per_class * data.n_classes
