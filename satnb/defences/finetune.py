"""What SAT and the supervised baselines share: the fine-tuning result, its evaluation trajectory, input checks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from satnb.core.checks import integer
from satnb.core.config import ConfigError
from satnb.core.runs import Progress, Run
from satnb.core.store import Artifact, provenance
from satnb.knn.features import as_images

EvalFn = Callable[[nn.Module, int], dict]
Images = np.ndarray | Tensor


@dataclass
class AdvTrainResult:
    """A fine-tuned model with its evaluation trajectory, per-unit history and timings (SAT and baselines)."""

    method: str  # "sat-heads", "sat-amdim", "at", "mat" or "alp"
    model: nn.Module
    trajectory: list[dict]  # one row per evaluation point: iteration, loss, mi_estimate, eval_fn's dict
    history: list[dict]  # one row per SAT iteration / baseline epoch, with its phase timings
    train_seconds: float  # wall time of training only (attacks, library refreshes, updates)
    eval_seconds: float  # wall time spent in eval_fn
    n_updates: int  # optimiser steps taken (SAT: iterations minus skipped ones)
    settings: dict
    artifact: Artifact
    cached: bool
    objective: nn.Module | None = field(default=None, repr=False)

    @property
    def seconds_per_update(self) -> float:
        """Mean training wall time per optimiser step."""
        return self.train_seconds / self.n_updates if self.n_updates else float("nan")


@dataclass
class FineTuning:
    """How one fine-tuning run goes: its units, evaluation points and what its rows hold."""

    method: str
    settings: dict  # the run's cache key: every setting it depends on
    total: int  # units: SAT iterations or baseline epochs
    every: int  # evaluate (and checkpoint) every this many units, at 0 and at the end
    unit_name: str  # "iteration" or "epoch"
    updates: Callable[[dict], int]  # optimiser steps a history row stands for
    point_fields: Callable[[int], dict] = lambda t: {}  # extra fields of the trajectory row at unit t


def fine_tune(run: Run, how: FineTuning, unit: Callable[[int], dict], eval_fn: EvalFn | None, *, desc: str,
              progress: bool, seed: int, device: torch.device, profile: str | None) -> AdvTrainResult:
    """Load the finished run `run`, or train it unit by unit with eval_fn(model, t) at each evaluation point."""
    model, objective = run.keep["model"], run.keep.get("objective")
    done = run.cached(numbers=("n_updates",))
    cached = done is not None
    if not cached:
        u = how.unit_name

        def evaluate(t: int, p: Progress) -> dict:
            since = p.trajectory[-1][u] if p.trajectory else -1
            row = {u: t, **how.point_fields(t), **_summary([r for r in p.history if r[u] > since])}
            if eval_fn is not None:
                model.eval()
                row.update(_plain(eval_fn(model, t)))
                model.train()
            return row

        p = run.run(how.total, unit, every=how.every, evaluate=evaluate, unit_name=u, desc=desc, progress=progress)
        model.eval()
        done = run.finish(p, method=how.method, settings=how.settings, n_updates=sum(map(how.updates, p.history)),
                          provenance=provenance(profile=profile, seed=seed, wall_time_s=p.train_seconds,
                                                device=str(device), method=how.method,
                                                eval_seconds=round(p.eval_seconds, 3)))
    return AdvTrainResult(how.method, model.eval(), done["trajectory"], done["history"], done["train_seconds"],
                          done["eval_seconds"], done["n_updates"], how.settings, run.art, cached, objective)


def arrays_fingerprint(x: Images, y: Images) -> str:
    """Short hash of the training images and labels (a subset or relabelling changes the cache key)."""
    h = hashlib.blake2b(digest_size=8)
    for a in (x, y):
        arr = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
        h.update(str((arr.dtype, arr.shape)).encode())
        h.update(np.ascontiguousarray(arr).data)
    return h.hexdigest()


def labels_of(y: Images, n: int, name: str) -> Tensor:
    """The labels as a CPU long tensor, or a ConfigError unless there is one per training image."""
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y).long().cpu()
    if y.shape != (n,):
        raise ConfigError(f"{name} must hold one label per training image ({n}), got shape {tuple(y.shape)}")
    return y


def batch_size(value: object, n: int, fix: str) -> int:
    """settings.batch_size as an int: at least 2 and at most the n training images."""
    bs = integer(value, "settings.batch_size", fix, 2)
    if bs > n:
        raise ConfigError(f"settings.batch_size={bs} is larger than the {n} training images; lower it")
    return bs


def batch(images: Images, idx: Tensor, device: torch.device) -> Tensor:
    """Float NCHW [0,1] images at idx, on the device."""
    part = images[idx.numpy()] if isinstance(images, np.ndarray) else images[idx]
    return as_images(part).to(device)


def _plain(obj: Any) -> Any:
    """JSON- and weights_only-safe copy of an eval record (numpy/torch scalars to Python; '_' keys dropped)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (Tensor, np.ndarray)):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ConfigError(f"eval_fn returned a {type(obj).__name__}; return numbers, strings, lists and dicts")


def _summary(records: list[dict]) -> dict:
    """Mean loss and MI estimate over the history rows since the previous evaluation point."""
    out = {}
    for key in ("loss", "mi_estimate"):
        vals = [r[key] for r in records if r.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out
