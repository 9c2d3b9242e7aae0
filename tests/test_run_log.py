"""A run writes one line per finished model of each stage, so a run of hours shows where it is without progress
bars; a second run says what it read from the cache."""

import dataclasses
import re

from satnb.experiment.run import collect


def test_collect_logs_each_finished_model_once_with_its_time(tiny_pipeline):
    pipe = tiny_pipeline
    pipe.profile = dataclasses.replace(pipe.profile, grid=False, seeds=(0,))
    lines: list[str] = []
    collect(pipe, ("train", "sat", "baselines", "evaluate"), ("npid", "sup"), ("pixel",), log=lines.append)
    units = [re.match(r"\[satnb\] (\w+) (\d+)/(\d+) (.+?): (\d+) s", line).groups() for line in lines]
    assert [(u[0], u[3]) for u in units] == [
        ("train", "npid"), ("train", "sup"), ("sat", "sat-npid"), ("baselines", "at"), ("baselines", "mat"),
        ("baselines", "alp"), *[("evaluate", f"{m} (pixel, paper guide)") for m in
                                ("npid", "sup", "sat-npid", "at", "mat", "alp")]]
    for stage in ("train", "baselines", "evaluate"):  # numbered within its stage, out of the stage's count
        mine = [u for u in units if u[0] == stage]
        assert [(int(u[1]), int(u[2])) for u in mine] == [(i, len(mine)) for i in range(1, len(mine) + 1)]
    assert "(training " in lines[0] and "(fine-tuning " in lines[2] and ", trajectory " in lines[2]

    again: list[str] = []  # a fresh pipeline on the same store: every model comes from the cache
    fresh = type(pipe)(pipe.profile, pipe.data, pipe.store, progress=False)
    collect(fresh, ("train", "sat", "baselines"), ("npid", "sup"), ("pixel",), log=again.append)
    assert len(again) == 6 and all(line.endswith("(read from the cache)") for line in again)


def test_collect_without_a_log_prints_nothing(tiny_pipeline, capsys):
    pipe = tiny_pipeline
    pipe.profile = dataclasses.replace(pipe.profile, grid=False, seeds=(0,))
    collect(pipe, ("train",), ("sup",), ("pixel",))
    assert "[satnb]" not in capsys.readouterr().err


def test_the_cli_logs_on_stdout_and_keeps_stderr_for_errors(capsys, monkeypatch, tmp_path):
    from satnb.__main__ import main

    monkeypatch.setenv("SATNB_THREADS", "1")
    out = tmp_path / "run.json"
    assert main(["run", "--profile", "smoke", "--dataset", "digits", "--stages", "train", "--methods", "sup",
                 "--seeds", "1", "--no-grid", "--quiet", "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert "[satnb] train 1/1 sup: " in said.out and "[satnb] train" not in said.err


def test_the_refresh_check_line_says_what_both_runs_cost():
    from satnb.experiment.run import _refresh_detail

    check = {"refresh_every": 10, "runs": {"1": {"train_seconds": 1162.4}, "10": {"train_seconds": 111.0}}}
    assert _refresh_detail(check) == "fine-tuning 1162 s refreshed every iteration, 111 s every 10"
    assert _refresh_detail(None) == "not run by this profile"


def test_a_run_records_the_code_it_started_with(tiny_pipeline, monkeypatch):
    """A commit made while a run goes on does not relabel its provenance: collect pins the commit (and the code
    fingerprint) when it starts, before any model is made."""
    from satnb.core import store

    pipe = tiny_pipeline
    pipe.profile = dataclasses.replace(pipe.profile, grid=False, seeds=(0,))
    head = {"now": "first"}
    monkeypatch.setattr(store.subprocess, "run", lambda cmd, **kw: type("Done", (), {
        "returncode": 0, "stdout": "" if "status" in cmd else head["now"] + "\n"})())
    train = pipe.train

    def commit_then_train(*args, **kwargs):
        head["now"] = "later"  # a commit lands once the run is under way
        return train(*args, **kwargs)

    monkeypatch.setattr(pipe, "train", commit_then_train)
    store.git_commit.cache_clear()
    store.code_fingerprint.cache_clear()
    try:
        res = collect(pipe, ("train",), ("sup",), ("pixel",))
        assert head["now"] == "later" and res["provenance"]["git_commit"] == "first"
        assert res["provenance"]["code_fingerprint"] == store.code_fingerprint()
    finally:
        store.git_commit.cache_clear()
        store.code_fingerprint.cache_clear()
