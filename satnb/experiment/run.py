"""Running a profile end to end: every stage of every model, collected into one results record."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from satnb.core.config import METHODS, Profile
from satnb.core.dataset import Dataset, profile_subset
from satnb.core.fingerprint import PACKAGE_DIR, code_ids, source_fingerprint
from satnb.core.identity import BASELINES, SSL, ModelId
from satnb.core.store import Store, code_fingerprint, git_commit, provenance
from satnb.core.variants import GUIDE_RULES, SAT_VARIANTS
from satnb.defences import adversarial_train, sat
from satnb.experiment.pipeline import Pipeline, TrainedModel
from satnb.experiment.studies import Studies
from satnb.nets.encoders import describe_encoder
from satnb.nets.pretrain import train
from satnb.protocol.evaluate import evaluate
from satnb.protocol.primary import declared_protocol
from satnb.protocol.zoo import attack_zoo, strong_l2

ALL_STAGES = ("train", "evaluate", "sat", "baselines", "robustness")
# The code that computes each stage of a results record (what `report.record.staleness` compares).
STAGE_CODE = {"train": train, "sat": sat, "baselines": adversarial_train, "evaluate": evaluate,
              "robustness": (attack_zoo, strong_l2)}


def stage_fingerprints(root: Path = PACKAGE_DIR) -> dict[str, str]:
    """The current fingerprint of the code behind each stage of a results record (`root`: another copy of satnb)."""
    return {stage: source_fingerprint(code_ids(code), root) for stage, code in STAGE_CODE.items()}


def _slim(result: dict) -> dict:
    """An evaluation record without its provenance (the run's own provenance covers it)."""
    return {k: v for k, v in result.items() if k != "provenance"}


Log = Callable[[str], None]  # where a run writes one line per finished model


def run_experiment(profile: Profile, full: Dataset, device: torch.device | str = "cpu",
                   stages: list[str] | tuple[str, ...] = ALL_STAGES,
                   methods: list[str] | tuple[str, ...] = METHODS, eps_spaces: list[str] | tuple[str, ...] = ("pixel",),
                   progress: bool = True, store: Store | None = None, log: Log | None = None) -> dict:
    """Train, attack and evaluate every model of the profile; every stage is cached and resumable (`log`: one line
    per finished model, as `collect` writes them)."""
    pipe = Pipeline(profile, profile_subset(full, profile), store or Store(), device=device, progress=progress)
    return collect(pipe, stages, methods, eps_spaces, log=log)


class Announcer:
    """Numbers the finished units of one stage and logs each with its wall time ("[satnb] sat 2/10 sat-npid: 1468 s
    (...)"): a run of hours shows where it is without progress bars (`--quiet`). A None log says nothing."""

    def __init__(self, log: Log | None, stage: str, total: int):
        self.log, self.stage, self.total, self.count = log, stage, total, 0

    def __call__(self, name: str, t0: float, detail: str = "") -> None:
        """Log the next unit, `name`, as finished now (started at t0)."""
        self.count += 1
        if self.log is not None:
            tail = f" ({detail})" if detail else ""
            self.log(f"[satnb] {self.stage} {self.count}/{self.total} {name}: {time.perf_counter() - t0:.0f} s{tail}")


def _made(e: TrainedModel) -> str:
    """What `Announcer` says of a trained or fine-tuned model: read from the cache, or how its time split."""
    if e.cached:
        return "read from the cache"
    if e.kind == "pretrained":
        return f"training {e.train_seconds:.0f} s"
    return f"fine-tuning {e.train_seconds:.0f} s, trajectory {e.eval_seconds or 0:.0f} s"


def _refresh_detail(check: dict | None) -> str:
    """What `Announcer` says of the refresh check: the fine-tuning seconds of its two runs (cached or not)."""
    if not check:
        return "not run by this profile"
    runs, every = check["runs"], check["refresh_every"]
    return (f"fine-tuning {runs['1']['train_seconds']:.0f} s refreshed every iteration, "
            f"{runs[str(every)]['train_seconds']:.0f} s every {every}")


# the methods whose models enter a verdict, trained from every seed of the profile (SimCLR only backs a side note)
SEEDED = ("amdim", "npid", "sup")


def decides_claim1(mid: ModelId) -> bool:
    """AMDIM or SUP (any training seed, the paper's recipe): the two models claim 1 compares."""
    return mid.kind == "pretrained" and mid.method in ("amdim", "sup") and not mid.twin and not mid.variant


class Measuring:
    """The studies that measure a model under one protocol: the profile's; for the models that decide claim 1
    under the primary protocol, its claim-1 attack sizes (`Profile.claim1_zoo_images`, ...); in the grid's other
    cells and for recipe variants, its grid sizes (`Profile.grid_images`). All share the pipeline's data, store
    and models."""

    def __init__(self, pipe: Pipeline):
        self.pipe = pipe
        self.studies = Studies(pipe)
        self.claim1 = self._sized(pipe.profile.for_claim1())
        self.grid = self._sized(pipe.profile.for_grid())

    def _sized(self, profile: Profile) -> Studies:
        return self.studies if profile is self.pipe.profile else Studies(self.pipe.sized(profile))

    def __call__(self, mid: ModelId, eps_space: str = "pixel", guide: str | None = None) -> Studies:
        """The studies that measure `mid` with eps in `eps_space` units under the guide rule `guide` (None: the
        profile's)."""
        primary = eps_space == "pixel" and guide in (None, self.pipe.profile.protocol.guide)
        if not primary or mid.variant:
            return self.grid
        return self.claim1 if decides_claim1(mid) else self.studies


def pretrained_ids(profile: Profile, methods: list[str] | tuple[str, ...], seeds: tuple[int, ...],
                   variants: bool = True) -> list[ModelId]:
    """The pretrained models a run trains: each method, SUP's twins, its recipe variants (with the grid), the seeds."""
    ids = [*map(ModelId.pretrained, methods), *twin_ids(profile, methods)]
    ids += [ModelId.pretrained("sup", variant=v) for v in profile.sup_variants if "sup" in methods and variants]
    ids += [ModelId.pretrained(m, seed=s) for s in seeds if s for m in methods if m in SEEDED]
    return ids


def sat_variant_ids(profile: Profile) -> list[ModelId]:
    """The SAT (AMDIM) variants a grid run trains beside the paper's SAT (the profile's `sat_variants`)."""
    return [ModelId.sat(ModelId.pretrained("amdim"), objective=SAT_VARIANTS[v].get("objective", profile.sat.objective),
                        variant=v) for v in profile.sat_variants]


def baseline_ids(profile: Profile, pretrained: Sequence[ModelId]) -> list[ModelId]:
    """AT, MAT and ALP fine-tuned from each SUP of the profile's recipe among `pretrained` (its first
    `baseline_seeds` seeds)."""
    bases = [mid for mid in pretrained if mid.method == "sup" and not mid.twin and not mid.variant
             and (profile.baseline_seeds is None or mid.seed < profile.baseline_seeds)]
    return [ModelId.baseline(method, base=sup) for sup in bases for method in BASELINES]


def grid_ids(models: list[ModelId], label_scarce: bool = False) -> list[ModelId]:
    """The models the protocol grid evaluates: those that decide claims 1, 2 and 4 (not SimCLR's, not the twins;
    AT, MAT and ALP only where claim 4 is judged, in the label-scarce regime)."""
    return [mid for mid in models if mid.root.method != "simclr" and not mid.root.twin
            and (label_scarce or mid.kind != "baseline")]


@dataclass(frozen=True)
class Roster:
    """Every model a run makes, in the order it makes them, and those the grid's other cells measure (the one
    source of both `collect` and `sweep.plan`)."""

    pretrained: list[ModelId]
    sat: list[ModelId]  # SAT from each self-supervised model
    sat_variants: list[ModelId]  # the grid's SAT configurations on AMDIM's first seed
    baselines: list[ModelId]
    judged: list[ModelId]  # the models the grid's other cells measure
    refresh: bool  # the check that the library refresh period matches refreshing every iteration

    @property
    def every(self) -> list[ModelId]:
        """Every model of the run: pretrained, then fine-tuned."""
        return [*self.pretrained, *self.sat, *self.sat_variants, *self.baselines]

    @property
    def strong_l2(self) -> list[ModelId]:
        """Claim 1's models of the first seed, whose L2 leg the grid measures at the authors' budget."""
        return [mid for mid in self.pretrained if mid in (ModelId.pretrained("amdim"), ModelId.pretrained("sup"))]


def roster(profile: Profile, stages: Sequence[str], methods: Sequence[str], seeds: tuple[int, ...],
           grid: bool) -> Roster:
    """The models of a run of these stages, methods, training seeds and grid setting."""
    pretrained = pretrained_ids(profile, methods, seeds, variants=grid)
    sat = [ModelId.sat(base) for base in pretrained if base.method in SSL] if "sat" in stages else []
    refresh = "sat" in stages and "amdim" in methods
    variants = sat_variant_ids(profile) if refresh and grid else []
    baselines = baseline_ids(profile, pretrained) if "baselines" in stages and "sup" in methods else []
    every = [*pretrained, *sat, *variants, *baselines]
    judged = (grid_ids(every, bool(profile.labelled_per_class)) if grid
              else [ModelId.pretrained(m) for m in ("sup", "amdim") if m in methods])
    if profile.grid_seeds is not None:  # the cells beside the primary judge the first seeds only (cost)
        judged = [mid for mid in judged if mid.seed < profile.grid_seeds]
    return Roster(pretrained, sat, variants, baselines, judged, refresh)


def measurements(profile: Profile, models: Roster, eps_spaces: Sequence[str], grid: bool,
                 stage: str) -> list[tuple[ModelId, str, str | None]]:
    """(model, eps units, guide rule: None for the profile's) of every evaluation (`stage` "evaluate") or attack zoo
    ("robustness") of a run: the first eps convention on every model, the others and the other guide rule on the
    judged models (the attack zoo beyond the first convention only with the grid and the profile's `grid_zoo`)."""
    zoo_beyond = grid and profile.grid_zoo
    out = [(mid, space, None) for i, space in enumerate(eps_spaces) if i == 0 or zoo_beyond or stage == "evaluate"
           for mid in (models.every if i == 0 else models.judged)]
    if grid and (stage == "evaluate" or zoo_beyond):
        other = next(g for g in GUIDE_RULES if g != profile.protocol.guide)
        out += [(mid, space, other) for space in eps_spaces for mid in models.judged]
    return out


def collect(pipe: Pipeline, stages: list[str] | tuple[str, ...] = ALL_STAGES,
            methods: list[str] | tuple[str, ...] = METHODS,
            eps_spaces: list[str] | tuple[str, ...] = ("pixel", "normalized"), seeds: tuple[int, ...] | None = None,
            grid: bool | None = None, log: Log | None = None) -> dict:
    """The results record of a pipeline (what a notebook session or the CLI ran), computing what is missing.

    `seeds` (default: the profile's) are the training seeds of the models that enter a verdict; with
    `grid` (default: the profile's), the SUP and SAT variants are trained too, every such model is also
    evaluated under the other guide rule and, for each eps convention in `eps_spaces`, by the attack zoo (the
    cells of the protocol grid), and claim 1's models by the optimisation attack at the authors' budget.
    """
    git_commit(), code_fingerprint()  # provenance names the code this process runs, not a commit made meanwhile
    profile, data, device, studies = pipe.profile, pipe.data, pipe.device, Studies(pipe)
    measuring = Measuring(pipe)
    seeds = tuple(profile.seeds if seeds is None else seeds)
    grid = profile.grid if grid is None else grid
    t_start = time.perf_counter()
    primary = {"eps_space": "pixel", "guide": profile.protocol.guide, "attacks": "paper"}
    out: dict = {"profile": profile.name, "settings": profile.to_dict(), "dataset": data.describe(),
                 "protocol": {"primary": primary, "declared": declared_protocol(profile)}, "seeds": list(seeds),
                 "stage_seconds": {}, "training": {}, "evaluation": {}, "sat": {}, "baselines": {}}

    models = roster(profile, stages, methods, seeds, grid)
    t0 = time.perf_counter()
    said = Announcer(log, "train", len(models.pretrained))
    for mid in models.pretrained:
        t1 = time.perf_counter()
        e, settings = pipe.train(mid), pipe.recipe(mid)
        said(e.name, t1, _made(e))
        out["training"][e.name] = {"seconds": e.train_seconds, "epochs": settings.epochs,
                                   "encoder": settings.encoder, "encoder_name": describe_encoder(e.model),
                                   "epoch_seconds": e.epoch_seconds,
                                   "final_loss": e.history[-1]["loss"] if e.history else None,
                                   "curve": [{k: h[k] for k in ("epoch", "loss", "seconds", "lr", "knn_acc") if k in h}
                                             for h in e.history]}
    out["stage_seconds"]["train"] = time.perf_counter() - t0
    if "sat" in stages:
        t0 = time.perf_counter()
        said = Announcer(log, "sat", len(models.sat) + bool(models.refresh) + len(models.sat_variants))
        for mid in models.sat:
            t1 = time.perf_counter()
            e = pipe.sat(mid.base)
            out["sat"][mid.base.name] = e.fine_tuning_record()
            said(e.name, t1, _made(e))
        if models.refresh:
            t1 = time.perf_counter()
            out["sat_refresh"] = check = studies.refresh_check("amdim")
            said("refresh check (amdim)", t1, _refresh_detail(check))
        for mid in models.sat_variants:  # the SAT configurations around the paper's, on AMDIM's first seed
            t1 = time.perf_counter()
            e = pipe.sat(mid)
            out.setdefault("sat_variants", {})[e.name] = e.fine_tuning_record()
            said(e.name, t1, _made(e))
        out["stage_seconds"]["sat"] = time.perf_counter() - t0
    if models.baselines:
        t0 = time.perf_counter()
        said = Announcer(log, "baselines", len(models.baselines))
        for mid in models.baselines:
            t1 = time.perf_counter()
            e = pipe.baseline(mid)
            out["baselines"][e.name] = e.fine_tuning_record()
            said(e.name, t1, _made(e))
        out["stage_seconds"]["baselines"] = time.perf_counter() - t0

    out["models"] = {mid.name: dataclasses.asdict(mid) for mid in models.every}  # read by `report.record.model_ids`
    cells = {space: {"eps_space": space, "guide": g, "evaluation": {}, "robustness": {}} for space in eps_spaces
             for g in GUIDE_RULES if g != profile.protocol.guide} if grid else {}
    for stage in ("evaluate", "robustness"):
        if stage not in stages:
            continue
        t0 = time.perf_counter()
        key = "evaluation" if stage == "evaluate" else "robustness"
        out[key] = {space: {} for space in eps_spaces} if stage == "evaluate" else {}
        todo = measurements(profile, models, eps_spaces, grid, stage)
        said = Announcer(log, stage, len(todo))
        for mid, space, guide in todo:
            t1 = time.perf_counter()
            studies_here = measuring(mid, space, guide)
            kwargs = {"eps_space": space, **({"guide": guide} if guide else {})}
            record = _slim(studies_here.evaluate(mid, optimization=True, **kwargs) if stage == "evaluate"
                           else studies_here.robustness(mid, **kwargs))
            (cells[space][key] if guide else out.setdefault(key, {}).setdefault(space, {}))[mid.name] = record
            said(f"{mid.name} ({space}, {guide or profile.protocol.guide} guide)", t1)
        if stage == "robustness" and grid:  # claim 1's L2 leg at the authors' budget, on its seed-0 models
            out["strong_l2"], said = {}, Announcer(log, "strong L2", len(models.strong_l2))
            for mid in models.strong_l2:
                t1 = time.perf_counter()
                out["strong_l2"][mid.name] = _slim(measuring(mid).strong_l2(mid))
                said(mid.name, t1)
        out["stage_seconds"][stage] = time.perf_counter() - t0
    cells = list(cells.values())
    if cells and ("evaluate" in stages or "robustness" in stages):
        out["grid"] = cells
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
