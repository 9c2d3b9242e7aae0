"""scripts/reference_run.sh keeps the time of a stage that was killed outright (no trap runs on SIGKILL)."""

import os
import shutil
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo(tmp_path):
    """A git repository holding the script, a stand-in for _env.sh (no set-up) and a stand-in for the venv's
    python whose behaviour each test sets through FAKE_PYTHON (a shell command)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "reference_run.sh", tmp_path / "scripts")
    (tmp_path / "scripts" / "_env.sh").write_text('cd "$(dirname "${BASH_SOURCE[0]}")/.."\nstart=$(date +%s)\n')
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/usr/bin/env bash\neval "$FAKE_PYTHON"\n')
    python.chmod(0o755)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    return tmp_path


def _env(repo: Path, fake: str) -> dict:
    return {**os.environ, "SATNB_VENV": str(repo / "venv"), "SATNB_CACHE": str(repo / "cache"),
            "REFERENCE_LOG": str(repo / "stages.tsv"), "HEARTBEAT_SECONDS": "1", "STAGES": "train",
            "FAKE_PYTHON": fake}


def _rows(repo: Path) -> list[list[str]]:
    return [line.split("\t") for line in (repo / "stages.tsv").read_text().splitlines()[1:]]


def test_a_killed_stage_is_logged_when_the_run_starts_again(repo):
    beat = repo / "cache" / "reference-run.heartbeat"
    run = subprocess.Popen(["bash", "scripts/reference_run.sh"], cwd=repo, env=_env(repo, "sleep 60"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while not (beat.exists() and int(beat.read_text().split("\t")[1]) >= 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # what taking the machine back does: no trap runs
    run.wait()
    stage, seconds, *_ = beat.read_text().split("\t")
    assert stage == "train" and int(seconds) >= 2
    assert _rows(repo) == []  # nothing logged by the killed run itself
    time.sleep(2.5)  # the heartbeat is now older than two beats: the run is dead, not alive elsewhere
    done = subprocess.run(["bash", "scripts/reference_run.sh"], cwd=repo, env=_env(repo, "true"),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "stage train stopped after" in done.stdout
    rows = _rows(repo)
    assert [r[0] for r in rows] == ["train (stopped)", "train"] and int(rows[0][1]) == int(seconds)
    assert not beat.exists()


def test_a_live_heartbeat_refuses_a_second_run(repo):
    beat = repo / "cache" / "reference-run.heartbeat"
    beat.parent.mkdir()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    beat.write_text(f"sat\t120\t{now}\tabc\t2\n")
    done = subprocess.run(["bash", "scripts/reference_run.sh"], cwd=repo, env=_env(repo, "true"),
                          capture_output=True, text=True)
    assert done.returncode == 1 and "another reference run" in done.stdout and "wait for it or stop it" in done.stdout
    assert beat.exists() and _rows(repo) == []


def test_a_failed_stage_logs_its_time_and_leaves_no_heartbeat(repo):
    failed = subprocess.run(["bash", "scripts/reference_run.sh"], cwd=repo, env=_env(repo, "sleep 2; exit 1"),
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    rows = _rows(repo)
    assert [r[0] for r in rows] == ["train (failed)"] and int(rows[0][1]) >= 2
    assert not (repo / "cache" / "reference-run.heartbeat").exists()


def test_jobs_ahead_of_their_stage_log_under_that_stage(repo):
    args = repo / "args.txt"
    env = {**_env(repo, f'echo "$@" >> {args}'), "JOBS": "evaluate:amdim:pixel robustness:sup:pixel"}
    done = subprocess.run(["bash", "scripts/reference_run.sh"], cwd=repo, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert [r[0] for r in _rows(repo)] == ["evaluate (job evaluate:amdim:pixel)",
                                           "robustness (job robustness:sup:pixel)"]
    calls = args.read_text().splitlines()
    assert len(calls) == 2 and all("satnb sweep --profile cpu --cluster debug" in c for c in calls)
    assert "--jobs evaluate:amdim:pixel" in calls[0] and "--jobs robustness:sup:pixel" in calls[1]


def test_a_stage_row_names_the_commit_it_started_from(repo):
    """A commit made while a stage runs (its code already imported) does not relabel the stage's row."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()
    commit = "git -c user.email=t@t -c user.name=t commit -q --allow-empty -m later"
    done = subprocess.run(["bash", "scripts/reference_run.sh"], cwd=repo, env=_env(repo, f"{commit}; sleep 2.5"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    later = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                           check=True).stdout.strip()
    assert later != head and [r[3] for r in _rows(repo)] == [head]
