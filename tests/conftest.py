"""Shared fixtures: an isolated cache per test session, the shared data folder, small thread counts, a tiny pipeline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from satnb.core.config import Profile, ProtocolSettings, SATSettings, TrainSettings, ZooSettings, get_profile

# The suite's models are tiny: a second intra-op thread only adds OpenMP spin-waits (10x slower on a busy box).
torch.set_num_threads(1)

SHARED_DATA = Path(os.environ.get("SATNB_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test starts with one torch thread, whatever an earlier test set."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets a private cache dir and no SATNB_DATA unless it sets one."""
    cache = tmp_path_factory.getbasetemp() / "satnb-cache"
    monkeypatch.setenv("SATNB_CACHE", str(cache))
    monkeypatch.delenv("SATNB_DATA", raising=False)
    monkeypatch.delenv("SATNB_PROFILE", raising=False)
    monkeypatch.delenv("SATNB_PROGRESS", raising=False)
    from satnb.core import environment

    # tests that want the offline data name it (SATNB_DATA); the folder beside the repository is not read
    monkeypatch.setattr(environment, "SHARED_DATA", cache / "no-shared-data-in-tests")


@pytest.fixture(autouse=True)
def _process_precision():
    """Every test starts and ends with the process precision undecided (read from the environment on first use)."""
    from satnb.core import precision as core_precision

    core_precision._PRECISION.clear()
    yield
    core_precision._PRECISION.clear()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with the offline datasets (skips when absent)."""
    if not (SHARED_DATA / "cifar10-jpeg.tar.gz").is_file():
        pytest.skip(f"offline datasets not found at {SHARED_DATA}")
    return SHARED_DATA


# ------------------------------------------------------------------ a tiny profile and pipeline on offline digits
# (satnb's upper layers are imported inside the fixtures: a test that needs none of them never imports them)
TINY_RECIPE = TrainSettings("convnet", epochs=6, batch_size=32, lr=5e-3, encoder_kwargs={"widths": (16, 32, 64)})


@pytest.fixture(scope="session")
def tiny_data():
    """400 training and 120 test images of sklearn's digits (offline, seconds to train on)."""
    from satnb.core.datasets import load_digits

    return load_digits().subset(400, 120, seed=0)


@pytest.fixture(scope="session")
def tiny_profile() -> Profile:
    """The smoke profile with a small convnet for SUP, SimCLR and NPID and a protocol, zoo and SAT sized to match."""
    return get_profile("smoke").replace(
        train={m: TINY_RECIPE for m in ("sup", "simclr", "npid")}, curve_every=0,
        protocol=ProtocolSettings(k=5, m=10, n_attack=30, n_attack_opt=6, opt_binary_steps=3, opt_steps=10),
        zoo=ZooSettings(n_images=25, queries=60, restarts=2, steps_factor=2),
        sat=SATSettings(iterations=2, batch_size=40, refresh_every=2, eval_every=2))


@pytest.fixture
def tiny_pipeline(tiny_profile, tiny_data, tmp_path):
    """A pipeline of the tiny profile on the tiny data, with a fresh artifact store."""
    from satnb.core.store import Store
    from satnb.experiment.pipeline import Pipeline

    return Pipeline(tiny_profile, tiny_data, Store(tmp_path / "store"), progress=False)


def image_tree(root: Path, classes: list[str], n: int = 2, base: int = 0) -> Path:
    """A tiny image-folder dataset: train/<class>/<i>.png and test/<class>/<i>.png, n flat 32x32 images each."""
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                value = (base + 40 * i) % 256
                Image.fromarray(np.full((32, 32, 3), value, dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root
