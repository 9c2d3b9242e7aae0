"""`python -m satnb sweep`'s engine: a run as independent jobs through submitit's local executor (separate
processes), collected into the same results as `python -m satnb run`; a killed job resumes when the sweep is
submitted again; a finished sweep submits nothing."""

import dataclasses
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from satnb.core.identity import ModelId
from satnb.core.store import Store
from satnb.experiment.pipeline import Pipeline
from satnb.experiment.run import collect
from satnb.experiment.sweep import Job, job_key, ledger_snapshot, plan, run_job, sweep

submitit = pytest.importorskip("submitit", reason="the sweep's engine: pip install 'satnb[cluster]'")

STAGES, METHODS, SPACES = ("train", "evaluate"), ("npid", "sup"), ("pixel",)


@pytest.fixture
def sweep_profile(tiny_profile):
    """The tiny profile with two training seeds and the primary protocol only (two seeds of two methods)."""
    return dataclasses.replace(tiny_profile, seeds=(0, 1), grid=False)


def _executor(folder):
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster="local")
    executor.update_parameters(timeout_min=10)
    return executor


def test_plan_mirrors_the_run(sweep_profile):
    jobs = plan(sweep_profile, STAGES, METHODS, SPACES)
    trained = {j.model for j in jobs if j.stage == "train"}
    assert trained == {ModelId.pretrained(m, seed=s) for m in METHODS for s in (0, 1)}
    assert {j.model for j in jobs if j.stage == "evaluate"} == trained  # each model evaluated once, pixel eps
    assert [j.wave for j in jobs] == sorted(j.wave for j in jobs)  # pretraining before measuring
    full = plan(dataclasses.replace(sweep_profile, grid=True), ("train", "sat", "baselines", "evaluate", "robustness"),
                ("amdim", "npid", "sup"))
    sat = [j for j in full if j.stage == "sat"]
    bases = {ModelId.pretrained(m, seed=s) for m in ("amdim", "npid") for s in (0, 1)}
    assert {j.model.base for j in sat if not j.model.variant} == bases
    assert all(j.wave == 1 for j in full if j.stage in ("sat", "baseline", "refresh"))
    assert len(full) == len(set(full))
    assert {j.model.base for j in full if j.stage == "baseline"} == {ModelId.pretrained("sup", seed=s) for s in (0, 1)}
    # baseline_seeds=1: AT, MAT and ALP from the primary SUP only (the cpu profile's choice)
    first = plan(dataclasses.replace(sweep_profile, baseline_seeds=1), ("train", "baselines"), ("sup",))
    assert sorted(j.model.name for j in first if j.stage == "baseline") == ["alp", "at", "mat"]


def test_grid_zoo_off_keeps_the_attack_zoo_to_the_primary_cell(sweep_profile):
    stages, spaces = ("train", "evaluate", "robustness"), ("pixel", "normalized")
    cells = {}
    for zoo in (True, False):
        jobs = plan(dataclasses.replace(sweep_profile, grid=True, grid_zoo=zoo), stages, ("amdim", "sup"), spaces)
        cells[zoo] = {stage: {(j.eps_space, j.guide) for j in jobs if j.stage == stage}
                      for stage in ("evaluate", "robustness")}
    others = {("normalized", None), ("pixel", "authors"), ("normalized", "authors")}
    assert cells[True]["evaluate"] == cells[False]["evaluate"] == {("pixel", None), *others}
    assert cells[True]["robustness"] == {("pixel", None), *others}
    assert cells[False]["robustness"] == {("pixel", None)}  # the cpu profile's choice


def test_a_sweep_collects_what_a_run_makes_and_resubmits_nothing(sweep_profile, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SATNB_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    root = tmp_path / "shared" / "artifacts"
    jobs = plan(sweep_profile, STAGES, METHODS, SPACES)
    done = sweep(sweep_profile, tiny_data, tiny_data.fingerprint(), _executor(tmp_path / "logs"), root, jobs)
    assert done.count == len(jobs) and done.skipped == 0
    pids = {h.job_id for wave in done.handles for h in wave}
    assert len(pids) == len(jobs)  # one process per job
    assert sorted(ledger_snapshot(root)) == sorted(j.name for j in jobs)

    again = sweep(sweep_profile, tiny_data, tiny_data.fingerprint(), _executor(tmp_path / "logs2"), root, jobs)
    assert again.count == 0 and again.skipped == len(jobs)  # a finished sweep submits nothing

    writes = []
    monkeypatch.setattr(Store, "save_checkpoint", lambda self, art, state, final=False: writes.append(art.stage))
    swept = collect(Pipeline(sweep_profile, tiny_data, Store(root), progress=False), STAGES, METHODS, SPACES)
    assert writes == []  # the collection trained nothing: every model came from the jobs
    monkeypatch.undo()
    monkeypatch.setenv("SATNB_THREADS", "1")
    ran = collect(Pipeline(sweep_profile, tiny_data, Store(tmp_path / "run" / "artifacts"), progress=False),
                  STAGES, METHODS, SPACES)
    # the same numbers as one process running the profile (wall times aside)
    assert _measures(swept["evaluation"]) == _measures(ran["evaluation"])
    assert _measures({k: v["curve"] for k, v in swept["training"].items()}) == \
        _measures({k: v["curve"] for k, v in ran["training"].items()})


def _measures(evaluation: dict) -> dict:
    """Every recorded number but the wall times."""
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if "second" not in k and k not in ("wall_time_s", "time")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return strip(evaluation)


RUNNER = """
import pickle, sys
from satnb.experiment.sweep import run_job
job, profile, data, root = pickle.load(open(sys.argv[1], "rb"))
run_job(job, profile, data, root)
"""


def test_a_killed_job_resumes_when_the_sweep_is_submitted_again(sweep_profile, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SATNB_THREADS", "1")
    root = tmp_path / "shared" / "artifacts"
    job = Job("train", ModelId.pretrained("sup", seed=1))
    args = tmp_path / "job.pkl"
    args.write_bytes(pickle.dumps((job, sweep_profile, tiny_data, str(root))))
    script = tmp_path / "runner.py"
    script.write_text(textwrap.dedent(RUNNER))
    proc = subprocess.Popen([sys.executable, str(script), str(args)], stderr=subprocess.PIPE,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not list(root.glob("train-sup/*/progress.pt")):  # killed after its first checkpoint (a pre-emption)
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(root.glob("train-sup/*/final.pt"))
    assert not ledger_snapshot(root)

    done = sweep(sweep_profile, tiny_data, tiny_data.fingerprint(), _executor(tmp_path / "logs"), root, [job])
    assert done.count == 1 and ledger_snapshot(root) == [job.name]
    resumed = Pipeline(sweep_profile, tiny_data, Store(root), progress=False).train(job.model)
    fresh = Pipeline(sweep_profile, tiny_data, Store(tmp_path / "fresh"), progress=False).train(job.model)
    assert resumed.cached and [h["epoch"] for h in resumed.history] == [h["epoch"] for h in fresh.history]
    for name, value in fresh.model.state_dict().items():
        assert (resumed.model.state_dict()[name] == value).all(), f"{name} differs after the kill and resume"


def test_a_job_key_changes_with_the_settings(sweep_profile, tiny_data):
    job = Job("train", ModelId.pretrained("sup"))
    key = job_key(job, sweep_profile, tiny_data.fingerprint())
    assert key == job_key(job, sweep_profile, tiny_data.fingerprint())
    assert key != job_key(job, dataclasses.replace(sweep_profile, seed=7), tiny_data.fingerprint())
    assert key != job_key(job, sweep_profile, "another-dataset")


def test_run_job_refuses_an_unknown_stage(sweep_profile, tiny_data, tmp_path):
    with pytest.raises(ValueError, match="unknown job stage"):
        run_job(Job("paint", ModelId.pretrained("sup")), sweep_profile, tiny_data, tmp_path / "artifacts")


def test_the_cli_submits_only_the_named_jobs(tmp_path, capsys, monkeypatch):
    from satnb.__main__ import main

    monkeypatch.setenv("SATNB_THREADS", "1")
    out = tmp_path / "never.json"
    common = ["sweep", "--profile", "smoke", "--methods", "sup", "--stages", "train,evaluate", "--out", str(out)]
    assert main([*common, "--dry-run", "--jobs", "train:sup"]) == 0
    said = capsys.readouterr().out
    assert "sweep of 1 jobs" in said and "  train:sup\n" in said and "evaluate:" not in said
    assert main([*common, "--dry-run", "--jobs", "train:nope"]) == 2
    err = capsys.readouterr().err
    assert "no job named train:nope" in err and "--dry-run` lists the job names" in err
    # one job, in this process (submitit's debug executor): it trains SUP and writes no results file
    assert main([*common, "--jobs", "train:sup", "--cluster", "debug", "--folder", str(tmp_path / "logs")]) == 0
    said = capsys.readouterr().out
    assert "submitted 1 jobs to debug" in said and "train:sup: done in" in said and not out.exists()
