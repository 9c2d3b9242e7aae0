"""Running a profile end to end: every stage of every model, collected into one results record."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from satnb.core.config import METHODS, Profile
from satnb.core.dataset import Dataset, profile_subset
from satnb.core.fingerprint import PACKAGE_DIR, code_ids, source_fingerprint
from satnb.core.identity import BASELINES, SSL, ModelId
from satnb.core.store import Store, provenance
from satnb.defences import adversarial_train, sat
from satnb.experiment.pipeline import Pipeline
from satnb.experiment.studies import Studies
from satnb.nets.encoders import describe_encoder
from satnb.nets.pretrain import train
from satnb.protocol.evaluate import evaluate
from satnb.protocol.zoo import attack_zoo

ALL_STAGES = ("train", "evaluate", "sat", "baselines", "robustness")
# The code that computes each stage of a results record (what `report.record.staleness` compares).
STAGE_CODE = {"train": train, "sat": sat, "baselines": adversarial_train, "evaluate": evaluate,
              "robustness": attack_zoo}


def stage_fingerprints(root: Path = PACKAGE_DIR) -> dict[str, str]:
    """The current fingerprint of the code behind each stage of a results record (`root`: another copy of satnb)."""
    return {stage: source_fingerprint(code_ids(code), root) for stage, code in STAGE_CODE.items()}


def _slim(result: dict) -> dict:
    """An evaluation record without its provenance (the run's own provenance covers it)."""
    return {k: v for k, v in result.items() if k != "provenance"}


def run_experiment(profile: Profile, full: Dataset, device: torch.device | str = "cpu",
                   stages: list[str] | tuple[str, ...] = ALL_STAGES,
                   methods: list[str] | tuple[str, ...] = METHODS, eps_spaces: list[str] | tuple[str, ...] = ("pixel",),
                   progress: bool = True, store: Store | None = None) -> dict:
    """Train, attack and evaluate every model of the profile; every stage is cached and resumable."""
    pipe = Pipeline(profile, profile_subset(full, profile), store or Store(), device=device, progress=progress)
    return collect(pipe, stages, methods, eps_spaces)


def collect(pipe: Pipeline, stages: list[str] | tuple[str, ...] = ALL_STAGES,
            methods: list[str] | tuple[str, ...] = METHODS,
            eps_spaces: list[str] | tuple[str, ...] = ("pixel", "normalized")) -> dict:
    """The results record of a pipeline (what a notebook session or the CLI ran), computing what is missing."""
    profile, data, device, studies = pipe.profile, pipe.data, pipe.device, Studies(pipe)
    t_start = time.perf_counter()
    out: dict = {"profile": profile.name, "settings": profile.to_dict(), "dataset": data.describe(),
                 "stage_seconds": {}, "training": {}, "evaluation": {}, "sat": {}, "baselines": {}}

    t0 = time.perf_counter()
    pretrained = [*map(ModelId.pretrained, methods), *twin_ids(profile, methods)]
    for mid in pretrained:
        e, settings = pipe.train(mid), pipe.recipe(mid)
        out["training"][e.name] = {"seconds": e.train_seconds, "epochs": settings.epochs,
                                   "encoder": settings.encoder, "encoder_name": describe_encoder(e.model),
                                   "epoch_seconds": e.epoch_seconds,
                                   "final_loss": e.history[-1]["loss"] if e.history else None,
                                   "curve": [{k: h[k] for k in ("epoch", "loss", "seconds", "lr", "knn_acc") if k in h}
                                             for h in e.history]}
    out["stage_seconds"]["train"] = time.perf_counter() - t0

    fine_tuned = []
    if "sat" in stages:
        t0 = time.perf_counter()
        for base in (mid for mid in pretrained if mid.method in SSL):
            e = pipe.sat(base)
            out["sat"][base.name] = e.fine_tuning_record()
            fine_tuned.append(e.id)
        if "amdim" in methods:
            out["sat_refresh"] = studies.refresh_check("amdim")
        out["stage_seconds"]["sat"] = time.perf_counter() - t0
    if "baselines" in stages and "sup" in methods:
        t0 = time.perf_counter()
        for method in BASELINES:
            e = pipe.baseline(method)
            out["baselines"][e.name] = e.fine_tuning_record()
            fine_tuned.append(e.id)
        out["stage_seconds"]["baselines"] = time.perf_counter() - t0

    every = [*pretrained, *fine_tuned]
    out["models"] = {mid.name: dataclasses.asdict(mid) for mid in every}  # read back by `report.record.model_ids`
    if "evaluate" in stages:
        t0 = time.perf_counter()
        for i, space in enumerate(eps_spaces):
            # the first convention evaluates every model; the others only paper Table 1's (SUP, AMDIM)
            ids = every if i == 0 else [ModelId.pretrained(m) for m in ("sup", "amdim") if m in methods]
            out["evaluation"][space] = {mid.name: _slim(studies.evaluate(mid, eps_space=space, optimization=True))
                                        for mid in ids}
        out["stage_seconds"]["evaluate"] = time.perf_counter() - t0
    if "robustness" in stages:
        t0 = time.perf_counter()
        out["robustness"] = {"pixel": {mid.name: _slim(studies.robustness(mid)) for mid in every}}
        out["stage_seconds"]["robustness"] = time.perf_counter() - t0
    out["provenance"] = provenance(profile=profile.name, dataset=data.describe(), seed=profile.seed,
                                   wall_time_s=time.perf_counter() - t_start, device=str(device))
    # a stage the methods give nothing to do (sat without a self-supervised model, baselines without sup) did not run
    idle = {"sat"} if not set(SSL) & set(methods) else set()
    idle |= {"baselines"} if "sup" not in methods else set()
    ran = {"train"} | {s for s in stages if s in STAGE_CODE and s not in idle}
    out["provenance"]["stage_code"] = {s: fp for s, fp in stage_fingerprints().items() if s in ran}
    return out


def twin_ids(profile: Profile, methods: list[str] | tuple[str, ...]) -> list[ModelId]:
    """The supervised twins a run needs: one per other encoder of the self-supervised methods it trains."""
    if "sup" not in methods:
        return []
    return [twin for twin, t in profile.twins().items()
            if any(m in methods and (profile.train[m].encoder, profile.train[m].encoder_kwargs)
                   == (t.encoder, t.encoder_kwargs) for m in ("npid", "simclr"))]
