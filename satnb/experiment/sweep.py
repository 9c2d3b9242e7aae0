"""A profile's run as independent jobs on a cluster engine (submitit: SLURM job arrays, or local processes).

`plan` expands a run into jobs, one stage of one model each (training a seed, its SAT, a baseline, an evaluation
or an attack zoo in one cell of the protocol grid), in three waves: pretraining, then fine-tuning (SAT and
AT/MAT/ALP need their pretrained model), then measuring (an evaluation or a zoo needs its model). `sweep`
submits each wave as one job array: on SLURM the waves are chained by `afterok` dependencies and the call
returns at once; elsewhere it waits for each wave. Every job works in the shared artifact store, so a job whose
stage is cached only reads it, a pre-empted or killed job resumes from its checkpoint when the sweep is submitted
again, and jobs already done under the same code, data and settings are not submitted at all. `collect` (the
CLI's `--collect`) then assembles the results file from the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from satnb.core.config import METHODS, Profile
from satnb.core.dataset import Dataset
from satnb.core.identity import ModelId
from satnb.core.store import Store, canonical_json
from satnb.experiment.pipeline import Pipeline
from satnb.experiment.run import ALL_STAGES, Measuring, measurements, roster, stage_fingerprints
from satnb.experiment.session import start

WAVES = ("pretrain", "fine-tune", "measure")


@dataclass(frozen=True)
class Job:
    """One stage of one model: what one cluster job computes."""

    stage: str  # "train", "sat", "refresh", "baseline", "evaluate", "robustness", "strong-l2"
    model: ModelId
    eps_space: str = "pixel"
    guide: str | None = None  # None: the profile's guide rule

    @property
    def wave(self) -> int:
        """0: pretraining, 1: fine-tuning (needs its base model), 2: measuring (needs its model)."""
        return 0 if self.stage == "train" else 1 if self.stage in ("sat", "refresh", "baseline") else 2

    @property
    def name(self) -> str:
        """A readable, unique name ("evaluate:sup-s1:pixel")."""
        cell = f":{self.eps_space}" + (f":{self.guide}" if self.guide else "") if self.wave == 2 else ""
        return f"{self.stage}:{self.model.name}{cell}"


def plan(profile: Profile, stages: Sequence[str] = ALL_STAGES, methods: Sequence[str] = METHODS,
         eps_spaces: Sequence[str] = ("pixel", "normalized"), seeds: tuple[int, ...] | None = None,
         grid: bool | None = None) -> list[Job]:
    """Every job of the run `run.collect` would make with these arguments, in wave order."""
    seeds = tuple(profile.seeds if seeds is None else seeds)
    grid = profile.grid if grid is None else grid
    models = roster(profile, stages, methods, seeds, grid)
    jobs = [Job("train", mid) for mid in models.pretrained]
    jobs += [Job("refresh", ModelId.pretrained("amdim"))] if models.refresh else []
    jobs += [Job("sat", mid) for mid in (*models.sat, *models.sat_variants)]
    jobs += [Job("baseline", mid) for mid in models.baselines]
    for stage in ("evaluate", "robustness"):
        if stage in stages:
            jobs += [Job(stage, mid, space, guide) for mid, space, guide in
                     measurements(profile, models, eps_spaces, grid, stage)]
    if "robustness" in stages and grid:
        jobs += [Job("strong-l2", mid) for mid in models.strong_l2]
    return sorted(dict.fromkeys(jobs), key=lambda j: j.wave)


def run_job(job: Job, profile: Profile, data: Dataset | str, store_root: str | Path, device: str = "cpu") -> str:
    """Compute one job in this process (what each cluster job calls); returns its name.

    `data` is the profile's dataset, or its name to load here (the job's machine reads SATNB_DATA as usual);
    a measuring job loads its model (and a fine-tuned model's base) from the store.
    """
    # the job's session as the CLI's: torch threads (SATNB_THREADS), precision (SATNB_PRECISION), the shared store
    session = start(profile, data if isinstance(data, str) else data.name, store=Store(store_root), progress=False)
    data = session.data if isinstance(data, str) else data
    pipe = Pipeline(profile, data, session.store, device=device, progress=False)
    # the attack sizes of the job's protocol cell: claim 1's models, the grid's other cells (as `collect` measures)
    studies = Measuring(pipe)(job.model, job.eps_space or "pixel", job.guide)
    if job.stage == "train":
        pipe.train(job.model)
    elif job.stage == "sat":
        pipe.sat(job.model)
    elif job.stage == "refresh":
        studies.refresh_check(job.model.method)
    elif job.stage == "baseline":
        pipe.baseline(job.model)
    elif job.stage == "evaluate":
        studies.evaluate(job.model, eps_space=job.eps_space, optimization=True,
                         **({"guide": job.guide} if job.guide else {}))
    elif job.stage == "robustness":
        studies.robustness(job.model, eps_space=job.eps_space, guide=job.guide)
    elif job.stage == "strong-l2":
        studies.strong_l2(job.model)
    else:
        raise ValueError(f"unknown job stage {job.stage!r}")
    return job.name


def job_key(job: Job, profile: Profile, data_fingerprint: str) -> str:
    """What a finished job depends on: its identity, the profile's settings, the data and the code of every stage."""
    blob = canonical_json({"job": job.name, "model": dataclasses.asdict(job.model), "profile": profile.to_dict(),
                           "data": data_fingerprint, "code": stage_fingerprints()})
    return hashlib.blake2b(blob.encode(), digest_size=10).hexdigest()


class Ledger:
    """The jobs a sweep has finished, by `job_key`, kept beside the artifact store (one file per job)."""

    def __init__(self, store_root: str | Path):
        self.folder = Path(store_root).parent / "sweep-done"

    def done(self, key: str) -> bool:
        """True when the job with this key finished."""
        return (self.folder / key).is_file()

    def mark(self, key: str, name: str) -> None:
        """Record a finished job."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / key).write_text(name + "\n")


def _run_and_mark(job: Job, profile: Profile, data: Dataset | str, store_root: str, device: str, key: str) -> str:
    name = run_job(job, profile, data, store_root, device)
    Ledger(store_root).mark(key, name)
    return name


@dataclass
class Submitted:
    """What `sweep` submitted: per wave, the jobs and the cluster jobs running them."""

    jobs: list[list[Job]]
    handles: list[list]  # submitit Job objects
    skipped: int  # jobs already done under the same code, data and settings

    @property
    def count(self) -> int:
        """How many jobs were submitted."""
        return sum(map(len, self.jobs))


def sweep(profile: Profile, data: Dataset | str, data_fingerprint: str, executor, store_root: str | Path,
          jobs: list[Job], device: str = "cpu", wait: bool | None = None) -> Submitted:
    """Submit the jobs not yet done, one job array per wave (`executor`: a submitit executor).

    On SLURM (`executor.cluster == "slurm"`) each wave waits for the last through `afterok` dependencies and this
    returns once all are queued; otherwise (`wait`, default) it waits for each wave and raises on a failed job.
    """
    ledger, store_root = Ledger(store_root), str(store_root)
    wait = getattr(executor, "cluster", "local") != "slurm" if wait is None else wait
    submitted = Submitted([], [], 0)
    previous: list = []
    for wave in range(len(WAVES)):
        todo = [(j, job_key(j, profile, data_fingerprint)) for j in jobs if j.wave == wave]
        pending = [(j, k) for j, k in todo if not ledger.done(k)]
        submitted.skipped += len(todo) - len(pending)
        if not pending:
            continue
        if previous and not wait:
            ids = ":".join(str(h.job_id) for h in previous)
            executor.update_parameters(slurm_additional_parameters={"dependency": f"afterok:{ids}"})
        with executor.batch():
            handles = [executor.submit(_run_and_mark, j, profile, data, store_root, device, k) for j, k in pending]
        submitted.jobs.append([j for j, _ in pending])
        submitted.handles.append(handles)
        if wait:
            failed = []
            for (j, _), h in zip(pending, handles):
                try:
                    h.result()
                except Exception as err:  # submitit's FailedJobError / UncompletedJobError carry the log's tail
                    failed.append(f"{j.name} (job {h.job_id}): {str(err).strip().splitlines()[-1][:300]}")
            if failed:
                raise RuntimeError(f"{len(failed)} job(s) of the {WAVES[wave]} wave failed; submit the sweep again to "
                                   "resume them from their checkpoints (finished jobs are not rerun):\n  "
                                   + "\n  ".join(failed))
        previous = handles
    return submitted


def sweep_summary(jobs: list[Job]) -> str:
    """How many jobs of each stage a plan holds, per wave."""
    out = []
    for wave, name in enumerate(WAVES):
        stages: dict[str, int] = {}
        for j in jobs:
            if j.wave == wave:
                stages[j.stage] = stages.get(j.stage, 0) + 1
        if stages:
            out.append(f"{name}: " + ", ".join(f"{n} {s}" for s, n in stages.items()))
    return "; ".join(out)


def ledger_snapshot(store_root: str | Path) -> list[str]:
    """The names of the jobs the ledger holds (for tests and the CLI's summary)."""
    folder = Ledger(store_root).folder
    return sorted(p.read_text().strip() for p in folder.glob("*")) if folder.is_dir() else []

