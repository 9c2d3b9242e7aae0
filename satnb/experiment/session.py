"""The one start-up of satnb, for the CLI and every notebook: profile, threads, precision, device, store, data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from satnb.core.checks import parse_switch, parse_threads
from satnb.core.config import Profile, get_profile
from satnb.core.dataset import Dataset, profile_subset
from satnb.core.datasets import load_dataset
from satnb.core.environment import get_device
from satnb.core.precision import get_precision, set_precision
from satnb.core.store import Store, provenance


@dataclass
class Session:
    """The profile, device, artifact store and (lazily) the dataset one run or notebook works with."""

    profile: Profile
    device: torch.device
    store: Store
    dataset_name: str
    precision: str
    progress: bool = True  # progress bars where a person watches; off for the built book ($SATNB_PROGRESS=0)
    _full: Dataset | None = field(default=None, repr=False)
    _data: Dataset | None = field(default=None, repr=False)

    @property
    def full(self) -> Dataset:
        """The whole resolved dataset (loaded once)."""
        if self._full is None:
            self._full = load_dataset(self.dataset_name, fallback=self.profile.fallback_to_digits)
        return self._full

    @property
    def data(self) -> Dataset:
        """The profile's subset of the dataset (what every model is trained and evaluated on)."""
        if self._data is None:
            self._data = profile_subset(self.full, self.profile)
        return self._data

    def provenance(self, **extra) -> dict:
        """The provenance record for a result computed in this session."""
        return provenance(profile=self.profile.name, dataset=self.data.describe(), seed=self.profile.seed,
                          device=str(self.device), **extra)


def start(profile: str | Profile | None = None, dataset: str | None = None, threads: str | int | None = None,
          precision: str | None = None, store: Store | None = None, progress: bool | None = None) -> Session:
    """Pick the profile, torch threads ($SATNB_THREADS), precision ($SATNB_PRECISION), progress bars
    ($SATNB_PROGRESS), device and store."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    threads = threads or os.environ.get("SATNB_THREADS") or None
    if threads is not None:
        torch.set_num_threads(parse_threads(threads))
    precision = get_precision() if precision is None else set_precision(precision)  # decided once, here
    device = get_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN picks the fastest convolution once
    if progress is None:
        progress = parse_switch(os.environ.get("SATNB_PROGRESS", "1"), "SATNB_PROGRESS")
    return Session(prof, device, store or Store(), dataset or prof.dataset, precision, progress)
