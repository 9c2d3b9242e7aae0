"""Paired comparisons of two models on the same test images, from the per-image outcomes a results record keeps.

Every claim pairs its models here: clean accuracy on the whole test set, DSR on the images both
attacked, robust accuracy on the images both scanned, median L2 on the images both attacked by an
optimisation attack. A fine-tuning trajectory point with per-image outcomes pairs the same way.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from satnb.core import stats
from satnb.report.record import label


def _bits(r: dict, key: str) -> np.ndarray:
    return stats.unpack_bits(r["per_image"][key])


def _attacked(r: dict) -> np.ndarray:
    """Test-set indices of the N attacked images: the first N the model classifies correctly."""
    return np.flatnonzero(_bits(r, "correct"))[: r["n_attacked"]]


def _robust(r: dict, setting: str) -> np.ndarray:
    """Per test image of the scanned prefix: correct and still correct after the attack."""
    out = np.zeros(r["n_prefix"], dtype=bool)
    out[_attacked(r)] = _bits(r, f"survived_{setting}")
    return out


def _on_common(ra: dict, rb: dict, values_a: np.ndarray, values_b: np.ndarray, n_a: int, n_b: int):
    """The values of two models on the test images both attacked (the first n_a / n_b of each one's attacked)."""
    ia, ib = _attacked(ra)[:n_a], _attacked(rb)[:n_b]
    common, pa, pb = np.intersect1d(ia, ib, return_indices=True)
    return values_a[pa], values_b[pb]


def paired_acc(ra: dict, rb: dict) -> stats.Interval:
    """Clean accuracy of a minus b on the whole test set."""
    return stats.paired_difference(_bits(ra, "correct"), _bits(rb, "correct"))


def paired_dsr(ra: dict, rb: dict, setting: str) -> stats.Interval:
    """DSR of a minus b on the test images both classify correctly and both attacked (the common set)."""
    a, b = _on_common(ra, rb, _bits(ra, f"survived_{setting}"), _bits(rb, f"survived_{setting}"),
                      ra["n_attacked"], rb["n_attacked"])
    return stats.paired_difference(a, b)


def paired_robust(ra: dict, rb: dict, setting: str) -> stats.Interval:
    """Robust accuracy of a minus b on the test images inside both models' scanned prefixes."""
    a, b = _robust(ra, setting), _robust(rb, setting)
    n = min(len(a), len(b))
    return stats.paired_difference(a[:n], b[:n])


def paired_l2(ra: dict, rb: dict, unit: str = "norm", seed: int = 0) -> stats.Interval | None:
    """Median L2 of a minus b (unbroken = infinite) on the images both attacked with the optimisation attack."""
    key = f"l2_all_{unit}"
    if key not in ra or key not in rb:
        return None
    inf = lambda vals: np.array([math.inf if v is None else v for v in vals], dtype=np.float64)  # noqa: E731
    a, b = _on_common(ra, rb, inf(ra[key]), inf(rb[key]), ra["opt_n"], rb["opt_n"])
    return stats.paired_bootstrap(a, b, np.median, seed=seed)


def has_outcomes(r: dict) -> bool:
    """True when an evaluation record holds the per-image outcomes paired comparisons need."""
    return isinstance(r.get("per_image"), dict) and "n_prefix" in r


def common_set_dsr(ev: dict, names: list[str], setting: str = "small") -> pd.DataFrame:
    """DSR of each model on the test images that every one of them attacked (all classify them correctly).

    Beside each model's own DSR (its first N correct images, the paper's protocol) it shows the
    selection effect directly: a model that loses clean accuracy keeps only easier images.
    """
    names = [n for n in names if n in ev and has_outcomes(ev[n])]
    if not names:
        return pd.DataFrame()
    common = _attacked(ev[names[0]])
    for n in names[1:]:
        common = np.intersect1d(common, _attacked(ev[n]))
    rows = []
    for n in names:
        pos = np.searchsorted(_attacked(ev[n]), common)
        survived = _bits(ev[n], f"survived_{setting}")[pos]
        ci = stats.proportion(survived)
        rows.append({"model": label(n), f"DSR {setting} (own N)": ev[n][f"dsr_{setting}"],
                     f"DSR {setting} (common set)": ci.value, "95% low": ci.lo, "95% high": ci.hi,
                     "common images": len(common)})
    return pd.DataFrame(rows).set_index("model")
