"""satnb: a tested, reproducible implementation of "Self-supervised adversarial training" (ICASSP 2020).

The package face: nothing inside satnb imports it for names. Its sub-packages, lowest first, each
importing only from those before it:

- `core`: settings and profiles, datasets, the artifact store, code fingerprints, statistics;
- `nets`: encoders, augmentations, losses, mutual-information critics, pretraining;
- `knn`: the kNN classifier, feature extraction, guide groups;
- `attacks`: the white-box and black-box attacks on a kNN, PGD, the noise control;
- `defences`: SAT and the supervised AT, MAT and ALP;
- `protocol`: the paper's evaluation protocol and the attack zoo;
- `experiment`: the session, the pipeline of a profile's models, the studies, a whole run;
- `report`: the results record, the claims, tables, plots, the paper's numbers, benchmarks;
- `notebook`: the notebooks' setup cell, source display and widgets.
"""

from satnb.core.lazy import lazy_modules
from satnb.core.version import __version__

SUBPACKAGES = ("core", "nets", "knn", "attacks", "defences", "protocol", "experiment", "report", "notebook")
__all__ = ["__version__", "setup", *SUBPACKAGES]
__getattr__ = lazy_modules(__name__, SUBPACKAGES)  # sub-packages are imported on first use: `import satnb` is light


def setup(profile: str | None = None, dataset: str | None = None, show: bool = True, drive: bool = False):
    """Start a notebook session: profile, threads, precision, device, store; show the provenance banner and runtime.

    `drive=True` keeps the artifact cache on Google Drive when running on Colab (nothing elsewhere).
    """
    from satnb.notebook.display import setup as _setup

    return _setup(profile, dataset, show, drive)
