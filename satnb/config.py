"""Profiles (every size that matters), environment variables and device choice."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

PROFILE_NAMES = ("smoke", "quick", "cpu", "paper")
DEFAULT_PROFILE = "quick"
METHODS = ("amdim", "npid", "simclr", "sup")


class ConfigError(ValueError):
    """A setting or input is invalid; the message names the problem and the fix."""


@dataclass(frozen=True)
class AttackSettings:
    """One gradient-attack setting of the paper: eps-ball radius, step size, iterations."""

    eps: float
    step: float
    steps: int


@dataclass(frozen=True)
class TrainSettings:
    """How one representation-learning method is trained."""

    encoder: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    encoder_kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SATSettings:
    """Self-supervised adversarial training (Algorithm 1): every setting `adversarial.sat` reads."""

    iterations: int
    batch_size: int = 100
    lr: float = 1e-4
    refresh_every: int = 1  # rebuild the kNN library every this many iterations (authors: 1)
    eval_every: int = 10
    objective: str = "heads"  # the paper's phi1/phi2 critic; "amdim": AMDIM's own NCE (authors' code)
    keep_only_successful: bool = False  # authors' code: True
    betas: tuple[float, float] = (0.9, 0.999)  # paper: plain Adam; authors' code: (0.8, 0.999)
    weight_decay: float = 0.0  # authors' code: 1e-5
    guide: str = "authors"  # guide-group rule of the attacks: "authors" (the authors' code) or "paper"
    critic_hidden: int = 256  # the separable critic phi1/phi2 of objective="heads"
    critic_embed: int = 64


@dataclass(frozen=True)
class BaselineSettings:
    """Supervised adversarial fine-tuning (AT, MAT, ALP) of the SUP model: every setting `adversarial_train` reads."""

    epochs: int = 1
    batch_size: int = 100
    lr: float = 1e-3
    alp_weight: float = 0.5  # ALP's logit-pairing weight (eq. 4)
    adv_weight: float = 1.0  # weight of the adversarial cross-entropy in MAT and ALP (eq. 3: a plain sum)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    eval_every_epochs: int = 1


@dataclass(frozen=True)
class Profile:
    """Every size a run depends on, from a CI smoke test to the paper's settings."""

    name: str
    dataset: str = "cifar10"
    n_train: int | None = None  # stratified subset of the training split (None: all)
    n_test: int | None = None  # stratified subset of the test split (None: all)
    n_library: int | None = None  # images of the train subset that form the kNN library
    # claim 4's label-scarce regime: only this many images per class carry labels; they form the kNN
    # library and are all SUP and the supervised baselines see, while SSL and SAT use every image
    labelled_per_class: int | None = None
    train: dict[str, TrainSettings] = field(default_factory=dict)
    k: int = 75
    m: int = 300
    n_attack: int = 1000  # first N correctly classified test images that are attacked
    n_attack_opt: int = 1000
    small: AttackSettings = AttackSettings(0.03, 0.005, 10)
    large: AttackSettings = AttackSettings(0.06, 0.005, 20)
    opt_binary_steps: int = 10
    opt_steps: int = 100
    opt_max_const: float = 1e6  # an image never fooled keeps raising c (x10) up to this, past the search steps
    n_attack_zoo: int | None = None  # images the attack zoo attacks: the first ones of the N (None: all N)
    zoo_queries: int = 1000  # the black-box attack's query budget per image ("Is the robustness real?")
    zoo_restarts: int = 3  # random restarts of the stronger gradient attack
    zoo_steps_factor: int = 5  # ... which takes this many times the paper's steps
    sat: SATSettings = SATSettings(iterations=300)
    baselines: BaselineSettings = BaselineSettings()
    mi_steps: int = 300  # critic training steps per level of the MI staircase
    seed: int = 2019
    fallback_to_digits: bool = True  # smaller profiles may run on sklearn digits offline

    def replace(self, **changes) -> "Profile":
        """Return a copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Return the settings as plain JSON-able data."""
        return dataclasses.asdict(self)


def _cpu_train(epochs: dict[str, int], batch_size: int, encoder: str = "convnet", **enc) -> dict:
    # short CPU runs use larger Adam steps than the paper's 300-epoch AMDIM (2e-4)
    lrs = {"amdim": 1e-3, "npid": 1e-3, "simclr": 1e-3, "sup": 1e-3}
    return {
        m: TrainSettings(encoder="amdim" if m == "amdim" else encoder, epochs=e, batch_size=batch_size,
                         lr=lrs[m], encoder_kwargs=(enc.get("amdim", {}) if m == "amdim" else {}))
        for m, e in epochs.items()
    }


_SMALL_AMDIM = {"ndf": 32, "n_rkhs": 128, "n_depth": 1}

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", n_train=1000, n_test=500, k=15, m=30, n_attack=40, n_attack_opt=12,
        train=_cpu_train({"amdim": 1, "npid": 1, "simclr": 1, "sup": 2}, 128,
                         amdim={"ndf": 16, "n_rkhs": 64, "n_depth": 1}),
        opt_binary_steps=3, opt_steps=15, zoo_queries=100, zoo_restarts=2, zoo_steps_factor=2,
        sat=SATSettings(iterations=4, batch_size=50, refresh_every=2, eval_every=2),
        baselines=BaselineSettings(epochs=1, batch_size=50), mi_steps=40,
    ),
    "quick": Profile(
        name="quick", n_train=5000, n_test=1000, k=75, m=100, n_attack=200, n_attack_opt=30,
        train=_cpu_train({"amdim": 5, "npid": 6, "simclr": 8, "sup": 10}, 256, amdim=_SMALL_AMDIM),
        opt_binary_steps=4, opt_steps=30, n_attack_zoo=100, zoo_queries=200, zoo_restarts=2, zoo_steps_factor=3,
        sat=SATSettings(iterations=40, batch_size=100, refresh_every=10, eval_every=20),
        baselines=BaselineSettings(epochs=1, batch_size=100),
    ),
    "cpu": Profile(
        name="cpu", n_train=10000, n_test=2000, k=75, m=300, n_attack=500, n_attack_opt=100,
        train=_cpu_train({"amdim": 12, "npid": 20, "simclr": 30, "sup": 30}, 256, amdim=_SMALL_AMDIM),
        opt_binary_steps=5, opt_steps=50,
        sat=SATSettings(iterations=150, batch_size=100, refresh_every=10, eval_every=50),
        baselines=BaselineSettings(epochs=2, batch_size=100),
        mi_steps=800,
    ),
    "paper": Profile(
        name="paper", n_train=None, n_test=None, n_library=45000, k=75, m=300, n_attack=1000,
        n_attack_opt=1000,
        train={
            "amdim": TrainSettings("amdim", 300, 200, 2e-4,
                                   encoder_kwargs={"ndf": 128, "n_rkhs": 128, "n_depth": 3}),
            "npid": TrainSettings("resnet18", 200, 128, 0.03, optimizer="sgd"),
            "simclr": TrainSettings("resnet18", 200, 256, 1e-3),
            "sup": TrainSettings("amdim", 400, 200, 1e-3,
                                 encoder_kwargs={"ndf": 128, "n_rkhs": 128, "n_depth": 3}),
        },
        opt_binary_steps=10, opt_steps=100,
        sat=SATSettings(iterations=300, batch_size=100, eval_every=25),
        baselines=BaselineSettings(epochs=30, batch_size=100), mi_steps=4000,
        fallback_to_digits=False,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile (default: `SATNB_PROFILE`, else `quick`)."""
    name = name if name is not None else os.environ.get("SATNB_PROFILE", DEFAULT_PROFILE)
    key = name.strip().lower()
    if key not in PROFILES:
        raise ConfigError(
            f"unknown profile {name!r}; valid profiles are {', '.join(PROFILE_NAMES)} "
            "(set SATNB_PROFILE, --profile or profile=...)"
        )
    return PROFILES[key]


def parse_threads(value: str | int) -> int:
    """A positive thread count (from --threads or SATNB_THREADS)."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ConfigError(f"threads must be a positive integer, got {value!r}; use e.g. --threads 1 or "
                          "SATNB_THREADS=1 (or unset SATNB_THREADS for torch's choice)")
    return n


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


def data_env() -> Path | None:
    """Return the path named by `SATNB_DATA`, if set."""
    value = os.environ.get("SATNB_DATA")
    return Path(value).expanduser() if value else None


def get_device(name: str | None = None) -> torch.device:
    """Return the torch device (`SATNB_DEVICE`, else cuda when available, else cpu)."""
    name = name or os.environ.get("SATNB_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"SATNB_DEVICE={name!r} is not a torch device; use cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; set SATNB_DEVICE=cpu")
    return device
