"""satnb: a tested, reproducible implementation of "Self-supervised adversarial training" (ICASSP 2020)."""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {"config", "data", "fingerprint", "stats", "store", "models", "losses", "augment", "pretrain", "knn",
               "features", "attacks", "adaptive", "mi", "adversarial", "evaluate", "robustness", "registry",
               "libraries", "studies", "pipeline", "results", "paper", "tables", "claims", "plots", "performance",
               "widgets", "notebook"}


def __getattr__(name: str):
    """Import submodules on first use (`satnb.report`), keeping `import satnb` light."""
    if name in _SUBMODULES:
        return importlib.import_module(f"satnb.{name}")
    raise AttributeError(f"module 'satnb' has no attribute {name!r}")


def setup(profile: str | None = None, dataset: str | None = None, show: bool = True):
    """Pick the profile and device, open the artifact store and show the provenance banner."""
    from satnb.notebook import setup as _setup

    return _setup(profile, dataset, show)
