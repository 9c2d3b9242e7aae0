"""Where a notebook runs (Colab or not, CPU or which GPU, bfloat16 or not) and which profile fits it, with its cost.

The figures come from what was measured (`benchmarks/results.json`, `results/gpu-check.json`); a profile whose
time on this kind of machine has not been measured says so instead of guessing.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from satnb.core.environment import shipped
from satnb.core.precision import cpu_has_bf16

DRIVE_MOUNT = Path("/content/drive")
DRIVE_CACHE = DRIVE_MOUNT / "MyDrive" / "satnb-cache"


@dataclass(frozen=True)
class Runtime:
    """The machine a notebook runs on."""

    colab: bool
    device: str  # "cpu" or the CUDA device's name
    bf16: bool  # bfloat16 kernels where satnb computes (the GPU's, else the CPU's)
    cores: int

    @property
    def gpu(self) -> bool:
        """True on a CUDA device."""
        return self.device != "cpu"


def detect() -> Runtime:
    """This machine: Colab or not, the CUDA device (if any) and whether it computes in bfloat16."""
    try:
        colab = importlib.util.find_spec("google.colab") is not None
    except (ModuleNotFoundError, ValueError):  # no `google` package at all: find_spec imports the parent first
        colab = False
    if torch.cuda.is_available():
        return Runtime(colab, torch.cuda.get_device_name(0), bool(torch.cuda.is_bf16_supported()), os.cpu_count() or 1)
    return Runtime(colab, "cpu", cpu_has_bf16(), os.cpu_count() or 1)


def _measured_book_minutes() -> dict[str, float]:
    """Cold book build minutes per profile, as benchmarks/results.json measured them (empty when absent)."""
    from satnb.report.performance import Benchmarks  # the one reader of that file

    try:
        table = Benchmarks.load().table
    except (FileNotFoundError, ValueError):
        return {}
    rows = table[(table["benchmark"] == "book") & table["metric"].str.contains("cold cache (wall)", regex=False)]
    return {m.split()[0]: float(v) / 60 if u == "s" else float(v)
            for m, v, u in zip(rows["metric"], rows["value"], rows["unit"]) if pd.notna(v)}


def recommend(rt: Runtime) -> str:
    """One paragraph: the profile that fits this runtime and what it costs here, measured or marked as not."""
    book = _measured_book_minutes()
    quick = (f"the quick book took {book['quick']:.0f} min cold on 2 CPU cores (measured)" if "quick" in book
             else "the quick book's time is in README's cost table")
    gpu_measured = shipped("results/gpu-check.json") is not None
    if rt.gpu and rt.bf16:
        return (f"{rt.device} with bfloat16: `SATNB_PROFILE=gpu` (the paper's architectures, fewer epochs) fits it; "
                + ("see results/gpu-check.json for its measured stage times" if gpu_measured else
                   "its time has not been measured on a GPU yet (projected about an hour on an A100/H100)")
                + f". The default quick profile also runs here, much faster than on a CPU ({quick}).")
    if rt.gpu:
        return (f"{rt.device} without bfloat16 (it computes in float32): `SATNB_PROFILE=quick` (the default) fits it "
                f"({quick}; a GPU is faster); the gpu profile would take several hours here (not measured).")
    return (f"CPU only ({rt.cores} cores, {'with' if rt.bf16 else 'without'} bfloat16 kernels): `SATNB_PROFILE=quick` "
            f"(the default; {quick}) or `smoke` for a minutes-long check. "
            + ("On Colab, Runtime > Change runtime type > GPU runs every profile faster." if rt.colab else ""))


def describe(rt: Runtime, profile: str) -> str:
    """The runtime in one sentence, with the full recommendation where a user picks a machine (Colab, a GPU)."""
    where = "Colab" if rt.colab else "this machine"
    kind = f"GPU {rt.device}" if rt.gpu else f"CPU, {rt.cores} cores"
    line = f"Runtime: {where}, {kind}, {'with' if rt.bf16 else 'without'} bfloat16; profile {profile}."
    return f"{line} {recommend(rt)}" if rt.colab or rt.gpu else line


def keep_cache_on_drive(rt: Runtime) -> Path | None:
    """On Colab: mount Google Drive and point SATNB_CACHE there, so a disconnect loses no trained model.

    Does nothing (None) off Colab. Must run before the session opens its store (satnb.setup does it first).
    """
    if not rt.colab:
        return None
    from google.colab import drive  # only on Colab

    drive.mount(str(DRIVE_MOUNT))
    DRIVE_CACHE.mkdir(parents=True, exist_ok=True)
    os.environ["SATNB_CACHE"] = str(DRIVE_CACHE)
    return DRIVE_CACHE
