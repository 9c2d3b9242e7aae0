"""The process's environment: the artifact cache folder, the data folder and the torch device."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from satnb.core.config import ConfigError


def cache_dir() -> Path:
    """Return the artifact/data cache directory (`SATNB_CACHE`, else ~/.cache/satnb)."""
    root = os.environ.get("SATNB_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "satnb"
    name = f"SATNB_CACHE={path}" if root else f"the cache folder {path}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{name} is a file, not a folder; set SATNB_CACHE to a folder (created if missing)") from None
    except OSError as err:
        raise ConfigError(f"{name} cannot be created ({err.strerror or err}); set SATNB_CACHE to a folder "
                          "you can write") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{name} is not writable (permission denied); set SATNB_CACHE to a folder you can write")
    return path


REPOSITORY = Path(__file__).resolve().parents[2]
SHARED_DATA = REPOSITORY.parent / "shared" / "data"  # this project's offline data, beside the repository


INSTALLED = Path("share") / "satnb"  # where a wheel puts the committed results (pyproject's data-files)


def installed_data_dirs() -> list[Path]:
    """The folders where an installed wheel's data files may lie (the install scheme's data path, the prefix, the
    user base): `pip install` of satnb outside a checkout puts results/ and benchmarks/results.json there."""
    import site
    import sys
    import sysconfig

    bases = [sysconfig.get_path("data"), sys.prefix, getattr(site, "USER_BASE", None)]
    return [Path(b) / INSTALLED for b in dict.fromkeys(b for b in bases if b)]


def shipped(relative: str) -> Path | None:
    """A file or folder the repository commits (e.g. "results", "benchmarks/results.json"): from the checkout
    satnb runs in, else from an installed wheel's data files; None when neither has it."""
    for root in (REPOSITORY, *installed_data_dirs()):
        if (root / relative).exists() and (root is not REPOSITORY or (root / "satnb").is_dir()):
            return root / relative
    return None


def data_env() -> Path | None:
    """Where data is read first: `SATNB_DATA` if set, else `../shared/data` beside the repository if it exists.

    The one rule of the CLI, the book, the tests and the scripts (`scripts/_env.sh` sets the same folder).
    """
    value = os.environ.get("SATNB_DATA")
    if value:
        return Path(value).expanduser()
    return SHARED_DATA if SHARED_DATA.is_dir() else None


def get_device(name: str | None = None) -> torch.device:
    """Return the torch device (`SATNB_DEVICE`, else cuda when available, else cpu)."""
    name = name or os.environ.get("SATNB_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"SATNB_DEVICE={name!r} is not a torch device; use cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; set SATNB_DEVICE=cpu")
    choices = ["cpu", *(["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
                        if torch.cuda.is_available() else []), *(["mps"] if torch.backends.mps.is_available() else [])]
    usable = device.type == "cpu" or (device.type == "mps" and "mps" in choices) or (
        device.type == "cuda" and (device.index or 0) < torch.cuda.device_count())
    if not usable:
        raise ConfigError(f"device {name!r} cannot run satnb here (torch on this machine computes on "
                          f"{', '.join(choices)}); set SATNB_DEVICE to one of them")
    return device
