"""95% intervals for the book's numbers: proportions (Wilson), differences (paired and unpaired), bootstrap statistics.

The verdicts built on them (holds / does not hold / inconclusive at this N) are in `satnb.report.claims`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval and the number of images behind it."""

    value: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval's width."""
        return (self.hi - self.lo) / 2

    def to_dict(self) -> dict:
        """Plain JSON data."""
        return asdict(self)

    def __format__(self, spec: str) -> str:
        spec = spec or ".3f"
        return f"{self.value:{spec}} [{self.lo:{spec}}, {self.hi:{spec}}]"


def wilson(k: int, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval of a proportion k / n (nan when n = 0)."""
    if n <= 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # min/max: rounding must never leave p outside its own interval (k = 0 or k = n)
    return Interval(p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)), n)


def proportion(outcomes) -> Interval:
    """Wilson interval of the mean of 0/1 outcomes."""
    a = np.asarray(outcomes, dtype=bool)
    return wilson(int(a.sum()), len(a))


def paired_difference(a, b, z: float = Z95) -> Interval:
    """Interval of mean(a) - mean(b) for 0/1 outcomes on the same images (Agresti-Min: Wald on the 2x2 table + 0.5)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same images: got {a.shape} and {b.shape}")
    n = len(a)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())  # only the discordant images move the difference
    # Agresti & Min (2005): add 1/2 to every cell, then the Wald interval of p1+ - p+1
    c10, c01, t = n10 + 0.5, n01 + 0.5, n + 2.0
    d = (c10 - c01) / t
    var = ((c10 + c01) - (c10 - c01) ** 2 / t) / t ** 2
    half = z * math.sqrt(max(var, 0.0))
    diff = (n10 - n01) / n
    return Interval(diff, max(-1.0, d - half), min(1.0, d + half), n)


def unpaired_difference(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> Interval:
    """Interval of k1/n1 - k2/n2 for independent samples (Newcombe's hybrid score interval from two Wilsons)."""
    a, b = wilson(k1, n1, z), wilson(k2, n2, z)
    if not (n1 and n2):
        return Interval(math.nan, math.nan, math.nan, 0)
    d = a.value - b.value
    lo = d - math.sqrt((a.value - a.lo) ** 2 + (b.hi - b.value) ** 2)
    hi = d + math.sqrt((a.hi - a.value) ** 2 + (b.value - b.lo) ** 2)
    return Interval(d, lo, hi, min(n1, n2))


Statistic = Callable[..., np.ndarray]  # numpy-style, with an `axis` argument: np.mean, np.median


def _percentiles(stats: np.ndarray) -> tuple[float, float]:
    # "lower"/"higher" pick sample values, so an inf (an unbroken image) never becomes nan by interpolation
    return (float(np.quantile(stats, 0.025, method="lower")), float(np.quantile(stats, 0.975, method="higher")))


def bootstrap(values, statistic: Statistic = np.median, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of a statistic of the values (inf values allowed, e.g. unbroken images)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    lo, hi = _percentiles(statistic(x[idx], axis=1))
    return Interval(float(statistic(x)), lo, hi, len(x))


def paired_bootstrap(a, b, statistic: Statistic = np.median, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Bootstrap interval of statistic(a) - statistic(b), resampling the same images for both."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same images: got {a.shape} and {b.shape}")
    if len(a) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_boot, len(a)))
    with np.errstate(invalid="ignore"):
        diffs = statistic(a[idx], axis=1) - statistic(b[idx], axis=1)
        point = float(statistic(a) - statistic(b))
    diffs = np.where(np.isnan(diffs), 0.0, diffs)  # inf - inf: both unbroken at this resample, no difference
    lo, hi = _percentiles(diffs)
    return Interval(point, lo, hi, len(a))


def pack_bits(outcomes) -> str:
    """0/1 outcomes per image as a compact hex string (how results files keep per-image outcomes)."""
    a = np.asarray(outcomes, dtype=bool)
    return f"{len(a)}:" + np.packbits(a).tobytes().hex()


def unpack_bits(packed: str) -> np.ndarray:
    """The boolean array `pack_bits` packed."""
    n, _, hexed = packed.partition(":")
    return np.unpackbits(np.frombuffer(bytes.fromhex(hexed), dtype=np.uint8))[: int(n)].astype(bool)
