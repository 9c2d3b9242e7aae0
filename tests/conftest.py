"""Shared fixtures: an isolated cache per test session, the shared data folder, small thread counts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with the offline datasets (skips when absent)."""
    if not (SHARED_DATA / "cifar10-jpeg.tar.gz").is_file():
        pytest.skip(f"offline datasets not found at {SHARED_DATA}")
    return SHARED_DATA
