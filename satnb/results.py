"""One whole run of a profile as a JSON-able results record (what the CLI writes to results/)."""

from __future__ import annotations

import time

import torch

from satnb.config import METHODS, Profile
from satnb.data import Dataset, profile_subset
from satnb.pipeline import Pipeline
from satnb.store import Store, provenance

SSL_SEEDS = ("amdim", "npid", "simclr")


def _slim(result: dict) -> dict:
    """An evaluation record without the per-image lists (kept small for committing)."""
    return {k: v for k, v in result.items() if k not in ("l2_all", "provenance")}


def _info(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in ("cached",)}


def run_experiment(profile: Profile, full: Dataset, device: torch.device | str = "cpu",
                   stages: list[str] | tuple[str, ...] = ("train", "evaluate", "sat", "baselines"),
                   methods: list[str] | tuple[str, ...] = METHODS, eps_spaces: list[str] | tuple[str, ...] = ("pixel",),
                   progress: bool = True, store: Store | None = None) -> dict:
    """Train, attack and evaluate every model of the profile; every stage is cached and resumable."""
    pipe = Pipeline(profile, profile_subset(full, profile), store or Store(), device=device, progress=progress)
    return collect(pipe, stages, methods, eps_spaces)


def collect(pipe: Pipeline, stages: list[str] | tuple[str, ...] = ("train", "evaluate", "sat", "baselines"),
            methods: list[str] | tuple[str, ...] = METHODS,
            eps_spaces: list[str] | tuple[str, ...] = ("pixel", "normalized")) -> dict:
    """The results record of a pipeline (what a notebook session or the CLI ran), computing what is missing."""
    profile, data, device = pipe.profile, pipe.data, pipe.device
    t_start = time.perf_counter()
    out: dict = {"profile": profile.name, "settings": profile.to_dict(), "dataset": data.describe(),
                 "stage_seconds": {}, "training": {}, "evaluation": {}, "sat": {}, "baselines": {}}

    t0 = time.perf_counter()
    for m in methods:
        e = pipe.train(m)
        out["training"][m] = {"seconds": e.train_seconds, "epochs": profile.train[m].epochs,
                              "encoder": profile.train[m].encoder, "epoch_seconds": e.info["epoch_seconds"],
                              "final_loss": e.info["history"][-1]["loss"] if e.info["history"] else None}
    out["stage_seconds"]["train"] = time.perf_counter() - t0

    sat_names, base_names = [], []
    if "sat" in stages:
        t0 = time.perf_counter()
        for seed_model in (m for m in methods if m in SSL_SEEDS):
            e = pipe.sat(seed_model)
            out["sat"][seed_model] = {"name": e.name, "train_seconds": e.train_seconds, **_info(e.info)}
            sat_names.append(e.name)
        out["stage_seconds"]["sat"] = time.perf_counter() - t0
    if "baselines" in stages and "sup" in methods:
        t0 = time.perf_counter()
        for method in ("at", "mat", "alp"):
            e = pipe.baseline(method)
            out["baselines"][method] = {"name": e.name, "train_seconds": e.train_seconds, **_info(e.info)}
            base_names.append(e.name)
        out["stage_seconds"]["baselines"] = time.perf_counter() - t0

    if "evaluate" in stages:
        t0 = time.perf_counter()
        for i, space in enumerate(eps_spaces):
            # the first convention evaluates every model; the others only paper Table 1's (SUP, AMDIM)
            names = [*methods, *sat_names, *base_names] if i == 0 else [m for m in ("sup", "amdim") if m in methods]
            # the optimisation attack (L2) runs on the base models; SAT and baseline models get ACC and DSR
            out["evaluation"][space] = {n: _slim(pipe.evaluate(n, eps_space=space, optimization=n in methods))
                                        for n in names}
        out["stage_seconds"]["evaluate"] = time.perf_counter() - t0
    out["provenance"] = provenance(profile=profile.name, dataset=data.describe(), seed=profile.seed,
                                   wall_time_s=time.perf_counter() - t_start, device=str(device))
    return out
