"""A whole run of a profile as a JSON results record: made (`collect`), read (`load_results`), checked (`staleness`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

import satnb
from satnb.config import METHODS, Profile
from satnb.data import Dataset, profile_subset
from satnb.fingerprint import STAGE_MODULES, stage_fingerprints
from satnb.models import describe_encoder
from satnb.pipeline import Pipeline
from satnb.store import Store, provenance

SSL_SEEDS = ("amdim", "npid", "simclr")
ALL_STAGES = ("train", "evaluate", "sat", "baselines", "robustness")


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
    profile, data, device = pipe.profile, pipe.data, pipe.device
    t_start = time.perf_counter()
    out: dict = {"profile": profile.name, "settings": profile.to_dict(), "dataset": data.describe(),
                 "stage_seconds": {}, "training": {}, "evaluation": {}, "sat": {}, "baselines": {}}

    t0 = time.perf_counter()
    twins = twin_names(profile, methods)
    twin_settings = profile.supervised_twins()
    for m in [*methods, *twins]:
        e = pipe.train(m)
        settings = twin_settings.get(m) or profile.train[m]
        out["training"][m] = {"seconds": e.train_seconds, "epochs": settings.epochs,
                              "encoder": settings.encoder, "encoder_name": describe_encoder(e.model),
                              "epoch_seconds": e.epoch_seconds,
                              "final_loss": e.history[-1]["loss"] if e.history else None,
                              "curve": [{k: h[k] for k in ("epoch", "loss", "seconds", "lr", "knn_acc") if k in h}
                                        for h in e.history]}
    out["stage_seconds"]["train"] = time.perf_counter() - t0

    sat_names, base_names = [], []
    if "sat" in stages:
        t0 = time.perf_counter()
        for seed_model in (m for m in methods if m in SSL_SEEDS):
            e = pipe.sat(seed_model)
            out["sat"][seed_model] = e.fine_tuning_record()
            sat_names.append(e.name)
        if "amdim" in methods:
            out["sat_refresh"] = pipe.refresh_check("amdim")
        out["stage_seconds"]["sat"] = time.perf_counter() - t0
    if "baselines" in stages and "sup" in methods:
        t0 = time.perf_counter()
        for method in ("at", "mat", "alp"):
            e = pipe.baseline(method)
            out["baselines"][method] = e.fine_tuning_record()
            base_names.append(e.name)
        out["stage_seconds"]["baselines"] = time.perf_counter() - t0

    if "evaluate" in stages:
        t0 = time.perf_counter()
        for i, space in enumerate(eps_spaces):
            # the first convention evaluates every model; the others only paper Table 1's (SUP, AMDIM)
            names = [*methods, *twins, *sat_names, *base_names] if i == 0 else \
                [m for m in ("sup", "amdim") if m in methods]
            out["evaluation"][space] = {n: _slim(pipe.evaluate(n, eps_space=space, optimization=True))
                                        for n in names}
        out["stage_seconds"]["evaluate"] = time.perf_counter() - t0
    if "robustness" in stages:
        t0 = time.perf_counter()
        names = [*methods, *twins, *sat_names, *base_names]
        out["robustness"] = {"pixel": {n: _slim(pipe.robustness(n)) for n in names}}
        out["stage_seconds"]["robustness"] = time.perf_counter() - t0
    out["provenance"] = provenance(profile=profile.name, dataset=data.describe(), seed=profile.seed,
                                   wall_time_s=time.perf_counter() - t_start, device=str(device))
    ran = {"train"} | {s for s in stages if s in STAGE_MODULES}
    out["provenance"]["stage_code"] = {s: fp for s, fp in stage_fingerprints().items() if s in ran}
    return out


def twin_names(profile: Profile, methods: list[str] | tuple[str, ...]) -> list[str]:
    """The supervised twins a run needs: one per other encoder of the self-supervised methods it trains."""
    if "sup" not in methods:
        return []
    return [name for name, t in profile.supervised_twins().items()
            if any(m in methods and profile.train[m].encoder == t.encoder
                   and profile.train[m].encoder_kwargs == t.encoder_kwargs for m in ("npid", "simclr"))]


# ----------------------------------------------------------------------------- reading and checking results files


def load_results(path) -> dict:
    """Read a results JSON written by `python -m satnb run`."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass a results JSON file written by `python -m satnb run`")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `python -m satnb run --profile ...` to make it")
    fix = "pass a results JSON written by `python -m satnb run`"
    try:
        res = json.loads(path.read_text())
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a text file ({err.reason}); {fix}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {fix}") from err
    if not isinstance(res, dict):
        raise ValueError(f"{path} holds a JSON {type(res).__name__}, not a satnb results file; {fix}")
    for key, kind in (("profile", str), ("dataset", dict), ("evaluation", dict)):
        if not isinstance(res.get(key), kind):
            raise ValueError(f"{path} lacks {key!r} (or it is not a {kind.__name__}): not a satnb results file; {fix}")
    check_entries(res, str(path))
    return res


ENTRY_NUMBERS = ("acc", "dsr_small", "dsr_large", "n_attacked")


def check_entries(res: dict, where: str = "the results record") -> None:
    """Raise ValueError unless every evaluation entry holds the numbers the report tables read."""
    fix = "rerun `python -m satnb run` for it or delete the entry"
    evaluation = res.get("evaluation")
    if not isinstance(evaluation, dict):
        raise ValueError(f"{where} lacks 'evaluation' (or it is not a dict); pass a results JSON written by "
                         "`python -m satnb run`")
    for space, models in evaluation.items():
        if not isinstance(models, dict):
            raise ValueError(f"{where}: evaluation.{space} is a {type(models).__name__}, not a dict of models; {fix}")
        for name, r in models.items():
            if not isinstance(r, dict):
                raise ValueError(f"{where}: evaluation.{space}.{name} is a {type(r).__name__}, not a dict; {fix}")
            for key in ENTRY_NUMBERS:
                value = r.get(key)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    got = "missing" if key not in r else f"{value!r}, not a number"
                    raise ValueError(f"{where}: evaluation.{space}.{name}.{key} is {got}; {fix}")


def results_dir() -> Path:
    """The repository's results/ folder (searched upward from here and from the package)."""
    for start in (Path.cwd(), Path(satnb.__file__).resolve().parent):
        for d in (start, *start.parents):
            if (d / "results").is_dir() and (d / "satnb").is_dir():
                return d / "results"
    raise FileNotFoundError("no results/ folder found next to the satnb package; run from a checkout")


def committed_results() -> dict[str, dict]:
    """Every committed reference run in results/, by file name."""
    return {p.name: load_results(p) for p in sorted(results_dir().glob("*.json"))}


def staleness(res: dict, root: Path | None = None) -> dict[str, str]:
    """Which stages of a results record were made by code other than today's: {stage: why}; empty when current.

    Compares the fingerprint of each stage's code recorded in the file (`provenance.stage_code`)
    with the current one (`satnb.fingerprint`); a file that predates stage fingerprints is
    stale in every stage, since nothing shows what made it.
    """
    recorded = (res.get("provenance") or {}).get("stage_code")
    current = stage_fingerprints() if root is None else stage_fingerprints(root)
    if not isinstance(recorded, dict):
        return {"all": "made before satnb recorded the code of each stage; rerun it to check it"}
    return {stage: f"the code of {STAGE_MODULES[stage]} (or a module it imports) changed"
            for stage, fp in recorded.items() if stage in current and current[stage] != fp}


def freshness(res: dict) -> str:
    """One line: "current" or "stale: <stages and why>" (what the report chapter and `satnb report` print)."""
    stale = staleness(res)
    if not stale:
        return "current: every stage was made by the code at HEAD"
    return "stale: " + "; ".join(f"{stage} ({why})" for stage, why in stale.items())
