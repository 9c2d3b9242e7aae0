"""Data-parallel pretraining under torchrun (gloo, 2 CPU processes): one step's loss and gradients equal one
process's; a training run's kNN accuracy matches the single-process run within the paired interval; a run whose
rank dies resumes from rank 0's checkpoint to the same weights; the CLI refuses stages it cannot spread."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from satnb.__main__ import main
from satnb.core.stats import paired_difference

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is needed")
SCRIPT = str(Path(__file__).with_name("ddp_train.py"))


def _run(args: list[str], ranks: int, *, fails: bool = False) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"] \
        if ranks > 1 else [sys.executable]
    # fp32: the check is that ranks change only the order of float sums; in bf16 (a CPU with bf16 kernels) that
    # order compounds into another training trajectory, which the paired interval over test images does not cover
    done = subprocess.run([*launcher, SCRIPT, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "SATNB_PRECISION": "fp32"})
    assert (done.returncode != 0) == fails, done.stderr[-3000:]
    return done


def test_one_step_equals_one_process_for_every_method(tmp_path):
    _run(["-", str(tmp_path / "one.npz"), "gradients"], 1)
    _run(["-", str(tmp_path / "two.npz"), "gradients"], 2)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(one) == sorted(two)
    assert {k.split("/")[0] for k in one} == {"sup", "simclr", "npid", "amdim"}
    for key in one:  # the global batch's loss, every parameter's gradient and NPID's updated memory bank
        scale = max(float(np.abs(one[key]).max()), 1e-12)
        assert np.abs(one[key] - two[key]).max() <= 1e-3 * scale, key  # float sums in another order


def _train(tmp_path, name: str, method: str, ranks: int, *extra: str, fails: bool = False) -> dict | None:
    out = tmp_path / f"{name}.json"
    _run([str(tmp_path / f"store-{name}"), str(out), method, *extra], ranks, fails=fails)
    return None if fails else json.loads(out.read_text())


@pytest.mark.parametrize("method", ["sup", "simclr"])
def test_training_on_two_ranks_matches_one_process(tmp_path, method):
    one = _train(tmp_path, "one", method, 1)
    two = _train(tmp_path, "two", method, 2)
    assert (one["world"], two["world"]) == (1, 2)
    assert two["epochs"] == one["epochs"] == list(range(1, 7))
    diff = paired_difference(two["outcomes"], one["outcomes"])
    assert diff.lo <= 0 <= diff.hi, f"{method}: two ranks minus one process = {diff}"
    assert two["losses"][-1] < two["losses"][0]  # it learned


def test_a_killed_rank_resumes_to_the_same_weights(tmp_path):
    whole = _train(tmp_path, "whole", "sup", 2)
    _train(tmp_path, "resumed", "sup", 2, "3", fails=True)  # rank 1 dies after epoch 3: torchrun stops the job
    assert (tmp_path / "resumed.json.killed").exists() and not (tmp_path / "resumed.json").exists()
    resumed = _train(tmp_path, "resumed", "sup", 2, "3")  # the job submitted again
    assert resumed["epochs"] == list(range(1, 7)) and whole["ran"] == list(range(1, 7))
    assert resumed["ran"] == [4, 5, 6]  # from rank 0's checkpoint of epoch 3, not from the start
    assert resumed["weights"] == whole["weights"]
    assert resumed["losses"] == whole["losses"]


def test_the_cli_under_torchrun_runs_only_the_train_stage(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["run", "--profile", "smoke", "--stages", "train,evaluate"]) == 2
    err = capsys.readouterr().err
    assert "only the train stage runs data-parallel" in err and "--stages train" in err
