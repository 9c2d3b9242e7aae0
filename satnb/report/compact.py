"""How a results file keeps its per-image distances small: float32 arrays as base64 text, unpacked on load.

The minimum-norm attack records one L2 distance per attacked image (None where it failed). As JSON numbers these
lists were half of the reference run's results file; the same float32 values as base64 take a quarter of the space
and unpack to exactly the numbers the run measured.
"""
from __future__ import annotations

import base64
import binascii
import math

import numpy as np

PACKED_KEYS = ("l2_all_px", "l2_all_norm")  # per-image distances of the minimum-norm attack, in both eps units
PREFIX = "f32:"


def pack_distances(values: list) -> str | list:
    """Per-image distances (None: unbroken) as 'f32:<n>:<base64>', or the list itself where float32 would change one."""
    if any(v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v != v) for v in values):
        return values  # not numbers, or a NaN that unpacking would turn into None
    a = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    f = a.astype("<f4")
    if not np.array_equal(f.astype(np.float64), a, equal_nan=True):
        return values
    return f"{PREFIX}{len(values)}:" + base64.b64encode(f.tobytes()).decode("ascii")


def unpack_distances(packed: str, where: str) -> list:
    """The list `pack_distances` packed; a malformed string raises ValueError naming `where`."""
    count, sep, text = packed.removeprefix(PREFIX).partition(":")
    fix = "rewrite it with `python -m satnb run --out ...` (every stage is cached)"
    try:
        n, raw = int(count), base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as err:
        raise ValueError(f"{where} is not packed distances ('f32:<n>:<base64>'): {err}; {fix}") from err
    if not packed.startswith(PREFIX) or not sep or len(raw) != 4 * n:
        raise ValueError(f"{where} is not packed distances ('f32:<n>:<base64>' of n float32 values, here "
                         f"{len(raw)} bytes for n = {count}); {fix}")
    return [None if math.isnan(v) else v for v in np.frombuffer(raw, dtype="<f4").astype(np.float64).tolist()]


def pack_results(results):
    """A copy of a results structure with every per-image distance list packed."""
    if isinstance(results, dict):
        return {k: pack_distances(v) if k in PACKED_KEYS and isinstance(v, list) else pack_results(v)
                for k, v in results.items()}
    if isinstance(results, list):
        return [pack_results(v) for v in results]
    return results


def unpack_results(results, where: str = "results"):
    """A results structure read from a file, its packed distances unpacked into lists."""
    if isinstance(results, dict):
        return {k: unpack_distances(v, f"{where}.{k}") if k in PACKED_KEYS and isinstance(v, str)
                else unpack_results(v, f"{where}.{k}") for k, v in results.items()}
    if isinstance(results, list):
        return [unpack_results(v, f"{where}[{i}]") for i, v in enumerate(results)]
    return results
