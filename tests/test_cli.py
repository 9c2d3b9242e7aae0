"""The command line: every bad input is one `satnb: error: ...` line with exit code 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
import torch

import satnb.experiment.run
from satnb.__main__ import main
from satnb.core.store import load_state


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    """No SATNB_THREADS/SATNB_DEVICE from outside (conftest restores torch's thread count)."""
    monkeypatch.delenv("SATNB_THREADS", raising=False)
    monkeypatch.delenv("SATNB_DEVICE", raising=False)


@pytest.fixture
def no_run(monkeypatch):
    """Replace the experiment by a stub that records its arguments (the CLI's checks run for real)."""
    calls = []

    def stub(profile, full, **kwargs):
        calls.append((profile, full, kwargs))
        return {"profile": profile.name, "dataset": full.describe(), "evaluation": {}}

    monkeypatch.setattr(satnb.experiment.run, "run_experiment", stub)
    return calls


def fails(capsys, argv: list[str], *fragments: str) -> str:
    """Run main(argv); assert exit code 2 and a one-line `satnb: error:` message holding every fragment."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("satnb: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_profiles_lists_every_profile(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("smoke", "quick", "cpu", "paper"))


def test_help_and_usage_errors(capsys):
    assert main(["--help"]) == 0
    assert "run" in capsys.readouterr().out
    fails(capsys, [], "the following arguments are required: command")
    fails(capsys, ["train"], "invalid choice: 'train'", "--help")
    fails(capsys, ["run", "--eps-space", "linf"], "invalid choice: 'linf'")
    fails(capsys, ["run", "--bogus"], "unrecognized arguments: --bogus")


def test_run_help_lists_every_profile(capsys):
    from satnb.core.config import PROFILE_NAMES

    assert main(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert ", ".join(PROFILE_NAMES) in out


def test_unknown_profile_stage_method_dataset(capsys, no_run):
    fails(capsys, ["run", "--profile", "nope"], "unknown profile 'nope'", "smoke, quick, cpu, gpu, paper")
    fails(capsys, ["run", "--profile", "smoke", "--stages", "foo"], "unknown stage(s) foo",
          "train, evaluate, sat, baselines")
    fails(capsys, ["run", "--profile", "smoke", "--stages", ","], "(none given)")
    fails(capsys, ["run", "--profile", "smoke", "--methods", "sup,byol"], "unknown method(s) byol",
          "amdim, npid, simclr, sup")
    fails(capsys, ["run", "--profile", "smoke", "--dataset", "imagenet"], "unknown dataset 'imagenet'",
          "cifar10, stl10, mnist, digits")
    assert not no_run


def test_bad_threads_device_and_out(capsys, monkeypatch, tmp_path, no_run):
    fails(capsys, ["run", "--profile", "smoke", "--threads", "0"], "threads must be a positive integer, got '0'")
    monkeypatch.setenv("SATNB_THREADS", "many")
    fails(capsys, ["run", "--profile", "smoke"], "got 'many'", "SATNB_THREADS")
    monkeypatch.delenv("SATNB_THREADS")
    monkeypatch.setenv("SATNB_DEVICE", "tpu:7")
    fails(capsys, ["run", "--profile", "smoke"], "SATNB_DEVICE='tpu:7' is not a torch device")
    monkeypatch.delenv("SATNB_DEVICE")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    fails(capsys, ["run", "--profile", "smoke", "--out", str(blocker / "r.json")], "cannot write the results file",
          "choose another --out")
    fails(capsys, ["run", "--profile", "smoke", "--out", str(tmp_path)], "is a folder")
    assert not no_run


def test_bad_data_paths(capsys, monkeypatch, tmp_path, no_run):
    monkeypatch.setenv("SATNB_DATA", str(tmp_path / "nowhere"))
    fails(capsys, ["run", "--profile", "smoke"], "nowhere does not exist", "SATNB_DATA")
    garbage = tmp_path / "data.npz"
    garbage.write_bytes(b"not a zip file")
    monkeypatch.setenv("SATNB_DATA", str(garbage))
    fails(capsys, ["run", "--profile", "smoke"], "is not a readable .npz file", "numpy.savez")
    x = np.zeros((4, 8, 8, 3), np.uint8)
    np.savez(garbage, x_train=x, y_train=np.zeros(4, np.int64), x_test=x)
    fails(capsys, ["run", "--profile", "smoke"], "data.npz lacks y_test")
    np.savez(garbage, x_train=x.astype(np.float32), y_train=np.zeros(4, np.int64), x_test=x, y_test=np.zeros(4))
    fails(capsys, ["run", "--profile", "smoke"], "x_train has dtype float32; images must be uint8")
    monkeypatch.delenv("SATNB_DATA")
    fails(capsys, ["run", "--profile", "smoke", "--dataset", str(tmp_path / "missing.npz")], "does not exist")
    assert not no_run


def _offline(monkeypatch):
    import torchvision.datasets as tvd

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    for name in ("CIFAR10", "MNIST", "STL10"):
        monkeypatch.setattr(tvd, name, refuse)


def test_no_network_paper_stops_and_smaller_profiles_fall_back(capsys, monkeypatch, tmp_path, no_run):
    _offline(monkeypatch)
    fails(capsys, ["run", "--profile", "paper", "--yes"], "cifar10 not found", "Set SATNB_DATA")
    assert not no_run
    out = tmp_path / "r.json"
    assert main(["run", "--profile", "smoke", "--out", str(out), "--quiet", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "satnb: warning: " in err and "falling back to sklearn digits" in err and "Traceback" not in err
    (profile, full, kwargs), = no_run
    assert profile.name == "smoke" and full.fallback and full.name == "digits"
    assert json.loads(out.read_text())["dataset"]["fallback"] is True
    # without --out, a fallback run writes beside the cache, never into the repository's results/
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--profile", "smoke", "--quiet", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    from satnb.core.environment import cache_dir

    assert not (tmp_path / "results").exists() and (cache_dir() / "results" / "smoke-digits.json").is_file()
    assert "not results/" in err


def test_errors_inside_a_run(capsys, monkeypatch, tmp_path):
    bad = tmp_path / "final.pt"
    torch.save({"w": torch.zeros(100)}, bad)
    bad.write_bytes(bad.read_bytes()[:40])

    def corrupt_cache(*args, **kwargs):
        load_state(bad)

    monkeypatch.setattr(satnb.experiment.run, "run_experiment", corrupt_cache)
    fails(capsys, ["run", "--profile", "smoke", "--dataset", "digits", "--out", str(tmp_path / "r.json")],
          "final.pt could not be loaded safely", "Delete it to recompute the stage")

    def diverged(*args, **kwargs):
        raise FloatingPointError("sup loss became nan at epoch 3; lower the learning rate (now 0.1)")

    monkeypatch.setattr(satnb.experiment.run, "run_experiment", diverged)
    fails(capsys, ["run", "--profile", "smoke", "--dataset", "digits", "--out", str(tmp_path / "r.json")],
          "lower the learning rate")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(satnb.experiment.run, "run_experiment", interrupted)
    assert main(["run", "--profile", "smoke", "--dataset", "digits", "--out", str(tmp_path / "r.json")]) == 130
    err = capsys.readouterr().err
    assert "satnb: interrupted; run the same command again to resume" in err and "Traceback" not in err


def test_report_bad_files(capsys, tmp_path, monkeypatch):
    fails(capsys, ["report", str(tmp_path / "missing.json")], "missing.json does not exist", "python -m satnb run")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    fails(capsys, ["report", str(other)], "other.json lacks 'profile'")
    other.write_text("{half")
    fails(capsys, ["report", str(other)], "other.json is not valid JSON")
    other.write_text("[1, 2]")
    fails(capsys, ["report", str(other)], "not a satnb results file")
    other.write_text(json.dumps({"profile": "smoke", "dataset": "cifar10", "evaluation": {}}))
    fails(capsys, ["report", str(other)], "not a satnb results file")
    other.write_bytes(b"\xff\xfe\x00binary")
    fails(capsys, ["report", str(other)], "other.json is not a text file")
    fails(capsys, ["report", str(tmp_path)], "is a folder")
    monkeypatch.chdir(tmp_path)
    fails(capsys, ["report"], "no results files given and none in results/")


@pytest.mark.parametrize("argv, fragment", [
    (["run", "--profile", "nope"], "valid profiles are smoke, quick, cpu, gpu, paper"),
    (["report", "missing.json"], "missing.json does not exist"),
])
def test_subprocess_exit_code_and_message(tmp_path, argv, fragment):
    out = subprocess.run([sys.executable, "-m", "satnb", *argv], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("satnb: error: ") and out.stderr.count("\n") == 1, out.stderr
    assert fragment in out.stderr and "Traceback" not in out.stderr


def test_warnings_during_a_run_are_one_line_each(capsys, monkeypatch, tmp_path):
    import warnings

    def warns(profile, full, **kwargs):
        warnings.warn("m=30 cut to 1 for every class: class 3 of the kNN library has only 1 image(s)", stacklevel=1)
        return {"profile": profile.name, "dataset": full.describe(), "evaluation": {}}

    monkeypatch.setattr(satnb.experiment.run, "run_experiment", warns)
    assert main(["run", "--profile", "smoke", "--dataset", "digits", "--out", str(tmp_path / "r.json"),
                 "--quiet"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "cut to" in line]
    assert err == ["satnb: warning: m=30 cut to 1 for every class: class 3 of the kNN library has only 1 image(s)"]


def test_the_cli_as_the_readme_shows_it_reads_the_books_data(shared_data, tmp_path):
    """`python -m satnb run --profile smoke` from the repository, SATNB_DATA unset: ../shared/data, as the book."""
    import os
    import re

    from satnb.core import environment

    env = {k: v for k, v in os.environ.items() if k != "SATNB_DATA"}
    env["SATNB_THREADS"] = "1"
    done = subprocess.run([sys.executable, "-m", "satnb", "run", "--profile", "smoke", "--stages", "train",
                           "--methods", "sup", "--out", str(tmp_path / "r.json"), "--quiet"],
                          cwd=environment.REPOSITORY, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r"\[satnb\] profile=smoke dataset=(\S+) \(([^)]*)\)", done.stdout + done.stderr)
    assert found, done.stdout[-2000:]
    beside = environment.REPOSITORY.parent / "shared" / "data"
    if beside.resolve() != shared_data.resolve():
        pytest.skip(f"the data here comes from SATNB_DATA={shared_data}, not from {beside}")
    # the book's scripts export the same folder (scripts/_env.sh; tests/test_data.py checks that rule)
    assert found.group(1) == "cifar10" and found.group(2).endswith(str(beside / "cifar10-jpeg.tar.gz"))
    assert "falling back" not in done.stderr and not (environment.REPOSITORY / "results" / "smoke-digits.json").exists()
