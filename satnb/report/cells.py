"""Numbers as the cells of the report's tables: measures with their 95% intervals, text, counts, point differences."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from satnb.core.stats import wilson
from satnb.report.record import MISSING

MEASURES = (("ACC", "acc"), ("DSR small", "dsr_small"), ("DSR large", "dsr_large"),
            ("robust small", "robust_small"), ("robust large", "robust_large"))
L2_MEASURES = (("median L2 (norm)", "l2_median_norm"), ("mean L2 (norm)", "l2_mean_norm"), ("broken", "opt_success"))


def measure_columns(r: dict, measures: Sequence[tuple[str, str]] = MEASURES) -> dict:
    """The proportions of an evaluation record as table columns, each with "<column> lo" / "<column> hi"."""
    row = {}
    for col, key in measures:
        lo, hi = r.get(f"{key}_ci") or (np.nan, np.nan)
        row[col], row[f"{col} lo"], row[f"{col} hi"] = r.get(key, np.nan), lo, hi
    return row


def missing(value) -> bool:
    """True for None and nan (a number a record does not hold)."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def text(value, fmt: str = "{:.1%}", lo=None, hi=None) -> str:
    """A number as text, "value [lo, hi]" when its interval is known, "not recorded" when it is missing."""
    if missing(value):
        return MISSING
    if missing(lo) or missing(hi):
        return fmt.format(value)
    return f"{fmt.format(value)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def proportion_text(p, n: int, fmt: str = "{:.1%}") -> str:
    """A proportion measured on n images as text with its Wilson 95% interval ("52.0% [42.3%, 61.5%]")."""
    if missing(p) or not n:
        return MISSING
    ci = wilson(int(round(p * n)), int(n))
    return text(ci.value, fmt, ci.lo, ci.hi)


def interval_text(r: dict, key: str) -> str:
    """A record's proportion `key` as text with its interval `<key>_ci` when recorded."""
    lo, hi = r.get(f"{key}_ci") or (None, None)
    return text(r.get(key), lo=lo, hi=hi)


def count(n) -> str:
    """An image count as text ("1,000"), "?" when unknown."""
    return f"{int(n):,}" if isinstance(n, (int, float, np.integer)) and not missing(n) else "?"


def attacked(records: Mapping[str, dict]) -> str:
    """N attacked as text: "1,000" when every record shares it, "6,242 to 8,372 by model" when not, "?" when none."""
    ns = sorted({int(r["n_attacked"]) for r in records.values()
                 if isinstance(r, dict) and not missing(r.get("n_attacked"))})
    if not ns:
        return "?"
    return count(ns[0]) if len(ns) == 1 else f"{count(ns[0])} to {count(ns[-1])} by model"


def points(a, b) -> str:
    """a minus b in percentage points ("+3.2 points"), "not recorded" when either is missing."""
    return MISSING if missing(a) or missing(b) else f"{(a - b) * 100:+.1f} points"


def with_intervals(table: pd.DataFrame, columns: list[str], fmt: str = "{:.1%}") -> pd.DataFrame:
    """The columns as text "value [lo, hi]" from a table with "<column> lo" / "<column> hi" (for display).

    A missing number reads "not recorded"; a number without its interval is shown alone.
    """
    out = pd.DataFrame(index=table.index)
    for col in columns:
        if f"{col} lo" in table:
            out[col] = [text(v, fmt, lo, hi) for v, lo, hi in zip(table[col], table[f"{col} lo"], table[f"{col} hi"])]
        else:
            out[col] = [text(v, fmt) for v in table[col]]
    return out


def run_encoder(evaluations: Mapping[str, Mapping[str, dict]] | None, run: str, name: str) -> str:
    """The encoder a run's evaluation record of a model names (run heading -> records; "not recorded" if none)."""
    return (((evaluations or {}).get(run) or {}).get(name) or {}).get("encoder") or MISSING


def by_model(table: pd.DataFrame) -> pd.DataFrame:
    """A long table indexed by (model, run), each model's runs together, models in order of first appearance."""
    order = {m: i for i, m in enumerate(dict.fromkeys(table["model"]))}
    return table.sort_values("model", key=lambda s: s.map(order), kind="stable").set_index(["model", "run"])

