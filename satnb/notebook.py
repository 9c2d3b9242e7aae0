"""What every notebook's setup cell calls: profile, device, data, provenance banner."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import torch

from satnb.config import Profile, get_device, get_profile, parse_threads
from satnb.data import Dataset, load_dataset, profile_subset
from satnb.store import Store, provenance


@dataclass
class Session:
    """The profile, device, artifact store and (lazily) the dataset a notebook works with."""

    profile: Profile
    device: torch.device
    store: Store
    dataset_name: str
    _data: Dataset | None = field(default=None, repr=False)

    @property
    def data(self) -> Dataset:
        """The profile's subset of the resolved dataset (loaded once)."""
        if self._data is None:
            full = load_dataset(self.dataset_name, fallback=self.profile.fallback_to_digits)
            self._data = profile_subset(full, self.profile)
        return self._data

    def provenance(self, **extra) -> dict:
        """Return the provenance record for a result computed in this session."""
        return provenance(profile=self.profile.name, dataset=self.data.describe(), seed=self.profile.seed,
                          device=str(self.device), **extra)

    def banner(self) -> str:
        """Return a one-paragraph Markdown banner naming the data and profile behind every number."""
        d = self.data.describe()
        warn = ""
        if d["fallback"]:
            warn = (f"**Warning: {self.dataset_name} was not found, so every number below comes from sklearn's "
                    "8x8 digits upscaled to 32x32 (set `SATNB_DATA`).** ")
        elif "cifar10-jpeg" in d["source"] or "image-folder" in d["source"] and d["dataset"] == "cifar10":
            warn = "CIFAR-10 rebuilt from JPEG copies (mild artefacts, PSNR ~30 dB): comparable in kind, " \
                   "not to the decimal, with published CIFAR-10 numbers. "
        p = provenance()
        return (f"{warn}Profile **{self.profile.name}**, dataset **{d['dataset']}** ({d['n_train']} train / "
                f"{d['n_test']} test images, from `{d['source']}`), seed {self.profile.seed}, device "
                f"{self.device}, satnb {p['satnb_version']} (code {p['code_fingerprint']}, commit "
                f"{p['git_commit'] or 'n/a'}), torch {p['torch_version']}.")


def setup(profile: str | None = None, dataset: str | None = None, show: bool = True) -> Session:
    """Pick the profile and device, open the artifact store and show the provenance banner."""
    from satnb.plots import set_theme

    prof = get_profile(profile)
    threads = os.environ.get("SATNB_THREADS")
    if threads:
        torch.set_num_threads(parse_threads(threads))
    set_theme()
    session = Session(prof, get_device(), Store(), dataset or prof.dataset)
    if show:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            text = session.banner()
        try:
            from IPython.display import Markdown, display

            display(Markdown(f"> {text}"))
        except ImportError:
            print(text)
    return session
