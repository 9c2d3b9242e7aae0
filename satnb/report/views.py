"""The report's tables shaped for reading on the page: few columns, each number with its interval and unit in one cell.

Each view takes the data table another module computes (and tests) and only reshapes and formats it; the book
shows the views, code that computes with the numbers uses the data tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from satnb.report.cells import attacked, count, missing
from satnb.report.claims import CLAIMS, assess
from satnb.report.record import MISSING

# the unit of a difference: percentage points for proportions; an L2 metric names its own unit
POINTS = "pts"


def signed(value, unit: str = POINTS) -> str:
    """A difference as text in its unit: "+3.2" (percentage points) or "+0.120" (anything else)."""
    if missing(value):
        return MISSING
    return f"{value * 100:+.1f}" if unit == POINTS else f"{value:+.3f}"


def with_interval(value, lo, hi, unit: str = POINTS) -> str:
    """A difference with its 95% interval and unit: "+2.7 [+0.5, +5.0] pts"."""
    if missing(value):
        return MISSING
    ci = "" if missing(lo) or missing(hi) else f" [{signed(lo, unit)}, {signed(hi, unit)}]"
    return f"{signed(value, unit)}{ci} {unit}".strip()


def _unit(metric: str) -> str:
    return "" if "L2" in metric else POINTS


def hoist(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """Drop each of `columns` that holds one value on every row; return the rest and "column: value; ..." for them.

    A constant column (every model on one encoder) says the same thing once, in a caption, not on every row.
    """
    same = [c for c in columns if c in frame and len(frame) and frame[c].nunique(dropna=False) == 1]
    caption = "; ".join(f"{c}: {frame[c].iloc[0]}" for c in same)
    return frame.drop(columns=same), caption


def differences_view(diffs: pd.DataFrame) -> pd.DataFrame:
    """`claims.differences_table` for reading: each difference with interval and unit in one cell, p to 2 figures."""
    if diffs.empty:
        return diffs
    return pd.DataFrame({
        "claim": diffs["claim"], "metric": diffs["metric"], "models": diffs["models"],
        "difference [95%]": [with_interval(v, lo, hi, _unit(m)) for v, lo, hi, m in
                             zip(diffs["difference"], diffs["95% low"], diffs["95% high"], diffs["metric"])],
        "threshold": [with_interval(t, None, None, _unit(m)) for t, m in zip(diffs["threshold"], diffs["metric"])],
        "n": [count(n) for n in diffs["n images"]],
        "p": [MISSING if missing(p) else f"{p:.2g}" for p in diffs["p"]],
        "verdict": diffs["verdict"],
    }).set_index(["claim", "metric", "models"])


def claim_columns(table: pd.DataFrame) -> pd.DataFrame:
    """A table indexed by the claims' full text (`claims.CLAIMS`) with that index as "claim 1".."claim 4"."""
    number = {text: n for n, text in CLAIMS.items()}
    return table.rename(index=lambda text: f"claim {number[text]}" if text in number else text)


def grid_view(grid: pd.DataFrame) -> pd.DataFrame:
    """`grid.grid_verdicts` turned on its side: a row per cell of the grid (then the grid's verdict and what flips
    it), a column per claim ("claim 1"), so the long cell names wrap as row labels."""
    return claim_columns(grid.drop(columns=["rule"], errors="ignore")).T.rename_axis("cell of the grid")


def seed_view(spread: pd.DataFrame) -> pd.DataFrame:
    """`grid.seed_spread` for reading: each seed's difference and verdict in one cell, then the range over seeds."""
    if spread.empty:
        return spread
    seeds = [c[len("seed "):] for c in spread.columns if c.startswith("seed ")]
    out = spread[["claim", "metric", "models"]].copy()
    for s in seeds:
        values, verdicts = spread[f"seed {s}"], spread[f"verdict seed {s}"]
        out[f"seed {s}"] = [f"{signed(v, _unit(m))} {_unit(m)}: {verdict}".replace(" :", ":")
                            if not missing(v) else verdict for v, m, verdict in zip(values, spread["metric"], verdicts)]
    out["range over seeds"] = [MISSING if missing(lo) else f"{signed(lo, _unit(m))} to {signed(hi, _unit(m))}"
                               for lo, hi, m in zip(spread["min"], spread["max"], spread["metric"])]
    return out.set_index(["claim", "metric", "models"])


def tradeoff_view(table: pd.DataFrame) -> pd.DataFrame:
    """`tradeoff.sat_tradeoff` for reading: the gain and the cost each with its interval, in points."""
    if table.empty:
        return table

    def points(v, ci: str) -> str:
        return MISSING if missing(v) else f"{v * 100:+.1f} {ci} pts".replace("  ", " ")

    return pd.DataFrame({
        "SAT run": table["SAT run"],
        "paper's accuracy cost": [f"{v * 100:.1f} pts" for v in table["paper's accuracy cost"]],
        "best robust-small gain within it": [
            points(v, ci) for v, ci in zip(table["best robust-small gain within it"], table["gain 95% interval"])],
        "at iteration": [MISSING if missing(i) else str(int(i)) for i in table["at iteration"]],
        "its accuracy cost": [points(v, ci) for v, ci in zip(table["its accuracy cost"], table["cost 95% interval"])],
        "endpoint accuracy cost": [f"{v * 100:+.1f} pts" for v in table["endpoint accuracy cost"]],
        "DSR small per accuracy point, ours (paper's)": [
            f"{o:.2f} ({p:.2f})" if not missing(o) else f"{MISSING} ({p:.2f})"
            for o, p in zip(table["DSR small per accuracy point (ours)"], table["(paper's)"])],
    }).set_index("SAT run")


def paper_view(table: pd.DataFrame) -> pd.DataFrame:
    """`tables.paper_table` for reading: each measure as "ours (paper's)", the share of images the L2 attack broke."""
    if table.empty:
        return table
    out = pd.DataFrame(index=table.index)
    for col in ("ACC", "DSR small", "DSR large"):
        out[col] = [f"{o:.1%} ({p:.1%})" if not missing(o) else f"{MISSING} ({p:.1%})"
                    for o, p in zip(table[f"{col} ours"], table[f"{col} paper"])]
    out["L2, broken images"] = [f"{o:.3f} ({p:.3f})" if not missing(o) else f"{MISSING} ({p:.3f})"
                                for o, p in zip(table["L2 ours"], table["L2 paper"])]
    out["broken by L2 attack"] = [MISSING if missing(s) else f"{s:.0%}" for s in table["L2: share broken (ours)"]]
    return out


def frontier_view(front: pd.DataFrame) -> pd.DataFrame:
    """`frontier.frontier` for reading: clean accuracies side by side, each paired difference with its interval."""
    if front.empty:
        return front
    return pd.DataFrame({
        "defence": front["defence"],
        "points (SAT it. / defence ep.)": [f"{'-' if missing(s) else int(s)} / {'-' if missing(d) else int(d)}"
                                           for s, d in zip(front["SAT point"], front["defence point"])],
        "clean, SAT / defence": [f"{s:.1%} / {d:.1%}" for s, d in zip(front["SAT clean"], front["defence clean"])],
        "clean difference [95%]": [with_interval(v, *ci)
                                   for v, ci in zip(front["clean difference"], front["clean 95%"])],
        "robust small difference [95%]": [with_interval(v, *ci) for v, ci in
                                          zip(front["robust small difference"], front["robust 95%"])],
        "n": [count(n) for n in front["n images"]],
        "clean matched": ["yes" if m else "no" for m in front["matched"]],
        "SAT": front["SAT"],
    }).set_index("defence")


def environment_view(env: pd.Series) -> pd.Series:
    """`tables.environment` for reading: a short commit, the wall time in minutes."""
    out = env.copy()
    commit = out.get("git_commit")
    if isinstance(commit, str) and len(commit) > 12:
        head, _, dirty = commit.partition("+")
        out["git_commit"] = head[:10] + (f"+{dirty}" if dirty else "")
    wall = out.get("wall_time_s")
    if isinstance(wall, (int, float)) and not (isinstance(wall, float) and math.isnan(wall)):
        out["wall_time_s"] = f"{wall:,.1f} s ({wall / 60:,.1f} min)"
    return out.rename({"wall_time_s": "wall time"})


def environment_tables(envs: dict[str, pd.Series], per_table: int = 3) -> list[pd.DataFrame]:
    """`environment_view` of each run, a column per run, in tables of at most `per_table` runs (fits the page)."""
    if per_table < 1:
        raise ValueError(f"per_table must be at least 1, not {per_table}")
    names = list(envs)
    return [pd.concat({name: environment_view(envs[name]) for name in names[i:i + per_table]}, axis=1)
            for i in range(0, len(names), per_table)]


def verdicts(runs: dict[str, dict], space: str = "pixel") -> pd.DataFrame:
    """One row of claim verdicts per run (this build's and every committed one), a column per claim ("claim 1")."""
    rows = {}
    for name, res in runs.items():
        n = attacked(res["evaluation"].get(space, {}))
        heading = f"{name} ({res['profile']}, {res['dataset']['dataset']}, N={n})"
        rows[heading] = {f"claim {c.number}": c.verdict for c in assess(res, space)}
    return pd.DataFrame.from_dict(rows, orient="index")
