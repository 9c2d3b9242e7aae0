"""The models of one profile: trained or loaded, fine-tuned (SAT, AT/MAT/ALP), registered by `ModelId`, their libraries.

`Pipeline` is what the notebooks and the CLI hold: it trains (or loads from the artifact store)
the paper's encoders, fine-tunes them, registers each as a `TrainedModel` under its typed identity
and keeps, per model, the features of the library and test images (cached on disk) and its kNN
library. The studies (`satnb.experiment.studies`) take a pipeline and read only this public API.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from satnb.core.config import METHODS, ConfigError, Profile, ProtocolSettings, SATSettings, TrainSettings
from satnb.core.dataset import Dataset, stratified_indices
from satnb.core.identity import BASELINES, ModelId
from satnb.core.store import Store
from satnb.core.variants import RECIPE_VARIANTS, SAT_VARIANTS
from satnb.defences import adversarial_train, sat
from satnb.experiment.session import Session
from satnb.knn.classifier import KNN, guide_size
from satnb.knn.features import as_images, build_library, extract_features, predict
from satnb.nets.pretrain import train
from satnb.protocol.evaluate import evaluate, first_correct

# what every evaluation point of a fine-tuning trajectory records (part of the fine-tuning runs' cache keys):
# the numbers, and the per-image outcomes that pair two points or two models on the same test images
TRAJECTORY_FIELDS = ("acc", "dsr_small", "dsr_large", "robust_small", "robust_large", "n_attacked", "n_prefix",
                     "per_image")
SPLITS = ("library", "test")


@dataclass
class TrainedModel:
    """A model known to the pipeline: its identity, the cache key of what produced it, and how it was trained."""

    id: ModelId
    model: nn.Module
    key: str
    train_seconds: float  # pretraining or fine-tuning wall time (evaluation excluded)
    cached: bool  # loaded from the artifact store rather than trained now
    history: list[dict] = field(default_factory=list)  # per epoch (pretraining) or per unit of fine-tuning
    trajectory: list[dict] = field(default_factory=list)  # fine-tuning: ACC and DSR at each evaluation point
    n_updates: int | None = None  # fine-tuning: optimiser steps taken
    eval_seconds: float | None = None  # fine-tuning: wall time of the trajectory's evaluations

    @property
    def name(self) -> str:
        """The model's key in caches, results files and tables (derived from its `ModelId`)."""
        return self.id.name

    @property
    def kind(self) -> str:
        """"pretrained", "sat" or "baseline"."""
        return self.id.kind

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
                **({"seed": self.id.base.name} if self.kind == "sat" else {})}


class Pipeline:
    """Trains, caches and registers the models a profile names: `Pipeline(profile, data, store, device)`."""

    def __init__(self, profile: Profile, data: Dataset, store: Store | None = None,
                 device: torch.device | str = "cpu", progress: bool = True):
        self.profile, self.data, self.store = profile, data, store or Store()
        self.device, self.progress = torch.device(device), progress
        self.entries: dict[ModelId, TrainedModel] = {}
        self._maker: Pipeline = self  # the pipeline that makes (and keys) this one's models: itself unless `sized`
        self._libraries: dict[ModelId, KNN] = {}
        self._features: dict[tuple[ModelId, str], torch.Tensor] = {}
        n_lib = profile.n_library
        if profile.labelled_per_class:
            n_lib = _labelled_count(profile.labelled_per_class, data)
        self.library_index = (stratified_indices(data.y_train, n_lib, profile.seed)
                              if n_lib and n_lib < len(data.y_train) else np.arange(len(data.y_train)))
        _check_library_size(len(self.library_index), profile, data.n_classes)
        # the images whose labels training may read: all of them, or only the library in the label-scarce regime
        self.labelled_index = self.library_index if profile.labelled_per_class else np.arange(len(data.y_train))

    @classmethod
    def from_session(cls, session: Session) -> Pipeline:
        """The pipeline for a notebook session (profile, data, store, device)."""
        return cls(session.profile, session.data, session.store, session.device, progress=session.progress)

    # identities -------------------------------------------------------------
    def pretrained_ids(self) -> list[ModelId]:
        """The pretrained models the profile can train: the paper's four methods and SUP's encoder twins."""
        return [*map(ModelId.pretrained, METHODS), *self.profile.twins()]

    def resolve(self, model: str | ModelId) -> ModelId:
        """The identity of a model given by its ModelId or its name (a registered or a pretrained model's)."""
        if isinstance(model, ModelId):
            return model
        known = {i.name: i for i in [*self.entries, *self.pretrained_ids()]}
        if model not in known:
            raise ConfigError(f"no model named {model!r}; known: {', '.join(sorted(known))} (SAT and baseline "
                              "models are known once `sat(...)` or `baseline(...)` made them)")
        return known[model]

    def entry(self, model: str | ModelId) -> TrainedModel:
        """A registered model; one not registered yet is trained or fine-tuned first (loaded when cached)."""
        mid = self.resolve(model)
        if mid in self.entries:
            return self.entries[mid]
        maker = self._maker
        make = {"pretrained": maker.train, "sat": maker.sat, "baseline": maker.baseline}[mid.kind]
        return make(mid)

    def sized(self, profile: Profile) -> Pipeline:
        """This pipeline measuring with another profile's attack sizes (`Profile.for_grid`, `for_claim1`): the same
        data, store and models, each made once, by this pipeline."""
        # a fine-tuning run's cache key names its trajectory's attack size against its own profile's, so a second
        # pipeline making the models itself would miss this one's cached runs and fine-tune them all again
        if dataclasses.replace(profile, protocol=self.profile.protocol, zoo=self.profile.zoo) != self.profile:
            raise ConfigError("a sized pipeline differs from its own only in attack sizes (protocol and zoo "
                              "settings); make a new Pipeline for a profile that trains or fine-tunes otherwise")
        other = Pipeline(profile, self.data, self.store, device=self.device, progress=self.progress)
        other._maker = self._maker
        other.entries, other._libraries, other._features = self.entries, self._libraries, self._features
        return other

    def add(self, entry: TrainedModel) -> TrainedModel:
        """Register a model (produced here or elsewhere) so it is evaluated like the others."""
        self.entries[entry.id] = entry
        self._libraries.pop(entry.id, None)
        for split in SPLITS:
            self._features.pop((entry.id, split), None)
        return entry

    # training ---------------------------------------------------------------
    def labelled_data(self) -> Dataset:
        """The training split restricted to the images whose labels may be used (SUP, AT, MAT, ALP)."""
        if not self.profile.labelled_per_class:
            return self.data
        idx = self.labelled_index
        return dataclasses.replace(self.data, x_train=self.data.x_train[idx], y_train=self.data.y_train[idx],
                                   x_unlabeled=None, _fingerprint=None)

    def recipe(self, model: str | ModelId) -> TrainSettings:
        """How the profile pretrains a model (SUP's twins: SUP's recipe on the twin's encoder; a variant's changes)."""
        mid = self.resolve(model)
        if mid.kind != "pretrained":
            raise ConfigError(f"{mid.name} is fine-tuned, not pretrained; pretrain one of "
                              f"{', '.join(i.name for i in self.pretrained_ids())}")
        settings = self.profile.twins().get(dataclasses.replace(mid, seed=0, variant="")) if mid.twin \
            else self.profile.train.get(mid.method)
        if settings is None:
            raise ConfigError(f"profile {self.profile.name!r} has no recipe for {mid.name}; add one to its `train`")
        if mid.variant:
            if mid.variant not in RECIPE_VARIANTS:
                raise ConfigError(f"unknown recipe variant {mid.variant!r} of {mid.method}; use one of "
                                  f"{', '.join(RECIPE_VARIANTS)}")
            settings = dataclasses.replace(settings, **RECIPE_VARIANTS[mid.variant])
        return settings

    def training_seed(self, model: str | ModelId) -> int:
        """The seed a model is trained or fine-tuned from: the profile's, plus 1000 per training seed of its ModelId."""
        return self.profile.seed + 1000 * self.resolve(model).seed

    def train(self, model: str | ModelId) -> TrainedModel:
        """Train (or load from the cache) one of the paper's methods ("sup", a ModelId), or a supervised twin."""
        mid, p = self.resolve(model), self.profile
        if mid in self.entries:
            return self.entries[mid]
        settings = self.recipe(mid)
        data = self.labelled_data() if mid.supervised else self.data
        every = p.curve_every
        curve = (lambda net, epoch: self._curve_point(net, epoch, settings.epochs)) if every else None
        res = train(mid.method, data, settings, self.store, seed=self.training_seed(mid), device=self.device,
                    progress=self.progress, profile=p.name, curve=curve,
                    curve_key=f"knn_acc every {every} epochs, k={p.protocol.k}" if every else "")
        return self.add(TrainedModel(mid, res.model, res.artifact.key, res.wall_time_s, res.cached,
                                     history=res.history))

    def _fresh_library(self, model: nn.Module) -> KNN:
        """The kNN library of a model under training (features extracted now, never cached)."""
        idx = self.library_index
        return build_library(model, self.data.x_train[idx], self.data.y_train[idx], k=self.profile.protocol.k,
                             n_classes=self.data.n_classes)

    def _curve_point(self, model: nn.Module, epoch: int, epochs: int) -> dict:
        """A pretraining curve's point: kNN accuracy every `curve_every` epochs and at the last one."""
        if epoch % self.profile.curve_every and epoch != epochs:
            return {}
        pred = predict(model, self._fresh_library(model), self.data.x_test)
        return {"knn_acc": float((pred.numpy() == self.data.y_test).mean())}

    def _trajectory_point(self, model: nn.Module) -> dict:
        """ACC, DSR and robust accuracy small/large with per-image outcomes, of a model under fine-tuning (library
        rebuilt from its features)."""
        r = evaluate(model, self._fresh_library(model), self.data.x_test, self.data.y_test, self._trajectory_protocol,
                     optimization=False, seed=self.profile.seed, progress=False)
        return {k: r[k] for k in TRAJECTORY_FIELDS}

    @property
    def _trajectory_protocol(self) -> ProtocolSettings:
        """The protocol of a trajectory point: the profile's, on its first `trajectory_images` attacked images."""
        return self.profile.for_trajectory().protocol

    @property
    def _trajectory_key(self) -> str:
        """What a trajectory point records and on how many images (part of a fine-tuning run's cache key)."""
        n = self._trajectory_protocol.n_attack
        return ",".join(TRAJECTORY_FIELDS) + ("" if n == self.profile.protocol.n_attack else f",n_attack={n}")

    def sat(self, model: str | ModelId) -> TrainedModel:
        """SAT of a self-supervised model with the profile's settings, or the run a SAT ModelId names (cached).

        `model` is the model to fine-tune ("amdim", a ModelId) or a `ModelId.sat(...)`, whose objective,
        refresh period and length override the profile's.
        """
        mid, p = self.resolve(model), self.profile
        if mid.kind != "sat":
            mid = ModelId.sat(mid, objective=p.sat.objective)
        if (mid.refresh_every is None) != (mid.iterations is None):  # an override names both, as its name shows
            mid = dataclasses.replace(mid, refresh_every=mid.refresh_every or p.sat.refresh_every,
                                      iterations=mid.iterations or p.sat.iterations)
        if mid in self.entries:
            return self.entries[mid]
        base = self.entry(mid.base)
        settings, eps_space = self.sat_settings(mid)
        idx = self.library_index
        res = sat(base.model, self.data.x_train[idx], self.data.y_train[idx], settings, p.protocol.small,
                  k=p.protocol.k, m=self.guide_size(base.id), eps_space=eps_space, store=self.store,
                  data_fingerprint=self.data.fingerprint(), base_key=base.key, seed=self.training_seed(mid),
                  device=self.device, progress=self.progress, eval_fn=lambda net, it: self._trajectory_point(net),
                  n_classes=self.data.n_classes, eval_key=self._trajectory_key, profile=p.name)
        return self.add(TrainedModel(mid, res.model, res.artifact.key, res.train_seconds, res.cached,
                                     history=res.history, trajectory=res.trajectory, n_updates=res.n_updates,
                                     eval_seconds=res.eval_seconds))

    def sat_settings(self, mid: ModelId) -> tuple[SATSettings, str]:
        """The SAT settings and eps convention of a SAT model: the profile's, its variant's changes, its overrides."""
        if mid.variant and mid.variant not in SAT_VARIANTS:
            raise ConfigError(f"unknown SAT variant {mid.variant!r}; use one of {', '.join(SAT_VARIANTS)}")
        changes = dict(SAT_VARIANTS.get(mid.variant, {}))
        eps_space = changes.pop("eps_space", "pixel")
        if changes.get("objective", mid.objective) != mid.objective:
            raise ConfigError(f"the SAT variant {mid.variant!r} trains with the {changes['objective']!r} objective; "
                              f"name it so: ModelId.sat(base, objective={changes['objective']!r}, "
                              f"variant={mid.variant!r})")
        changes.update({k: v for k, v in (("refresh_every", mid.refresh_every), ("iterations", mid.iterations))
                        if v is not None})
        changes["objective"] = mid.objective
        return dataclasses.replace(self.profile.sat, **changes), eps_space

    def baseline(self, model: str | ModelId) -> TrainedModel:
        """AT, MAT or ALP fine-tuning ("mat", or a `ModelId.baseline`) of a supervised model, profile's settings."""
        if isinstance(model, str) and model not in BASELINES:
            raise ConfigError(f"unknown baseline {model!r}; use one of {', '.join(BASELINES)}")
        mid, p = self.resolve(model) if isinstance(model, ModelId) else ModelId.baseline(model), self.profile
        if mid.kind != "baseline":
            raise ConfigError(f"{mid.name} is not a supervised baseline; use one of {', '.join(BASELINES)}")
        if mid in self.entries:
            return self.entries[mid]
        base, labelled = self.entry(mid.base), self.labelled_data()
        res = adversarial_train(base.model, mid.method, labelled.x_train, labelled.y_train, p.protocol.small,
                                p.baselines, store=self.store, data_fingerprint=self.data.fingerprint(),
                                base_key=base.key, seed=self.training_seed(mid), device=self.device,
                                progress=self.progress, eval_fn=lambda net, ep: self._trajectory_point(net),
                                eval_key=self._trajectory_key, profile=p.name)
        return self.add(TrainedModel(mid, res.model, res.artifact.key, res.train_seconds, res.cached,
                                     history=res.history, trajectory=res.trajectory, n_updates=res.n_updates,
                                     eval_seconds=res.eval_seconds))

    # features and libraries -------------------------------------------------
    def features(self, model: str | ModelId, split: str = "test") -> torch.Tensor:
        """Features of the library or test images under a model (cached on disk: a warm book only reads them)."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; use 'library' or 'test'")
        ent = self.entry(model)
        if (ent.id, split) not in self._features:
            images = self.data.x_train[self.library_index] if split == "library" else self.data.x_test
            index = self.library_index if split == "library" else np.arange(len(images))
            state = self.store.memo_state(
                "features", {"model": ent.key, "split": split, "n": len(images),
                             "index": hashlib.blake2b(index.tobytes(), digest_size=8).hexdigest()},
                lambda: {"features": extract_features(ent.model, images)}, self.data.fingerprint(),
                code=extract_features)
            self._features[(ent.id, split)] = state["features"]
        return self._features[(ent.id, split)]

    def test_features(self, model: str | ModelId) -> torch.Tensor:
        """Features of the test images under this model."""
        return self.features(model, "test")

    def library(self, model: str | ModelId) -> KNN:
        """The kNN over the library images' features under this model."""
        mid = self.entry(model).id
        if mid not in self._libraries:
            labels = torch.as_tensor(self.data.y_train[self.library_index])
            self._libraries[mid] = KNN(k=self.profile.protocol.k, n_classes=self.data.n_classes,
                                       device=self.device).fit(self.features(mid, "library"), labels)
        return self._libraries[mid]

    def guide_size(self, model: str | ModelId) -> int:
        """The guide-group size of the attacks on a model: the protocol's m, capped by its library's smallest class."""
        return guide_size(self.library(model), self.profile.protocol.m)

    def accuracy(self, model: str | ModelId, k: int | None = None) -> float:
        """Clean kNN accuracy on the test set (optionally with another k)."""
        knn, labels = self.library(model), torch.as_tensor(self.data.y_test)
        if k is not None and k != knn.k:
            knn = KNN(k=k, n_classes=knn.n_classes, device=knn.device).fit(knn.features, knn.labels)
        return knn.score(self.test_features(model), labels)

    def attacked(self, model: str | ModelId, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n (default: the protocol's N, None: all) correctly classified test images and their labels."""
        y = torch.as_tensor(self.data.y_test)
        pred = self.library(model).predict(self.test_features(model))
        n_correct = int((pred == y).sum())
        idx = first_correct(pred, y, min(n, n_correct) if n else self.profile.protocol.attack_count(n_correct))
        return as_images(self.data.x_test[idx.numpy()]), y[idx]

    def library_images(self, library_idx: torch.Tensor) -> np.ndarray:
        """uint8 images of library entries (indices as returned by the kNN search)."""
        return self.data.x_train[self.library_index[np.asarray(library_idx)]]


def _check_library_size(n: int, profile: Profile, n_classes: int) -> None:
    """Refuse, before any training, a kNN library smaller than the k neighbours each vote reads."""
    k = profile.protocol.k
    if n >= k:
        return
    if profile.labelled_per_class:
        fix = (f"use --labelled-per-class {-(-k // n_classes)} or more ({profile.labelled_per_class} labelled "
               f"images per class x {n_classes} classes make it), or lower k")
    else:
        fix = "use more training images (n_train, n_library) or lower k"
    raise ConfigError(f"the kNN library would hold {n} images, fewer than k={k} neighbours per vote; {fix}")


def _labelled_count(per_class: int, data: Dataset) -> int:
    """How many labelled images the label-scarce regime keeps, checked against the data."""
    counts = np.bincount(data.y_train, minlength=data.n_classes)
    if per_class < 1 or per_class > counts.min():
        raise ConfigError(f"labelled_per_class={per_class} must be between 1 and {int(counts.min())} (the smallest "
                          "class of the training split); lower it")
    return per_class * data.n_classes
