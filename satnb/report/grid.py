"""The protocol grid of a results record: each claim judged in every cell (eps convention x guide rule x attack set).

The primary cell is the record's declared protocol (`res["protocol"]["primary"]`, by default pixel
eps, the paper's guide rule and the paper's attacks); every other cell is a named variant of it. In
each cell a claim's verdict is `verdicts.across_seeds` of its verdicts on each training seed, and the
grid's verdict is `verdicts.across_cells` of the cells': the shared verdict, else "depends on the
protocol" with the choices that flip it. What the record holds, per cell:

- the primary guide rule: `res["evaluation"][space]` and `res["robustness"][space]` (the attack zoo);
- the other guide rule: the entry of `res["grid"]` with that "eps_space" and "guide", holding
  "evaluation" and "robustness" of the same form;
- the attack set "worst case": the zoo's per-image worst case (`record.worst_case_view`) of either.

Claim 3 is a measured fine-tuning time, the same in every cell: it gets one line, across seeds.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from satnb.core.variants import GUIDE_RULES
from satnb.report.claims import CLAIMS, RULES, Claim, assess, named_models, seeds
from satnb.report.record import MISSING, worst_case_view
from satnb.report.verdicts import (
    ATTACK_SETS,
    AXES,
    EPS_SPACES,
    PRIMARY,
    Cell,
    across_cells,
    across_seeds,
    word,
)

JUDGED = (1, 2, 4)  # the claims judged per cell; claim 3 (a fine-tuning time) is not
EPS_TEXT = {"pixel": "pixel units in [0, 1] (the paper's text)",
            "normalized": "units of the normalised input tensor (the authors' code)"}
GUIDE_TEXT = {"paper": "the nearest group of m library images of another class (the paper's text)",
              "authors": "the authors' code's rule (guide mode 2)"}
ATTACK_TEXT = {"paper": "the paper's gradient and optimisation attacks",
               "worst case": "the per-image worst case over the attack zoo (and the minimum-norm attack's L2)"}
PAPER_K, PAPER_M = 75, 300


def primary_cell(res: dict) -> Cell:
    """The record's primary protocol (`res["protocol"]["primary"]`), else pixel eps, paper's guide rule and attacks."""
    declared = (res.get("protocol") or {}).get("primary")
    if not isinstance(declared, dict):
        # records made before the primary protocol was declared name their guide rule per evaluation, or (older
        # still) used the authors' rule, the default then
        guides = {r.get("guide", "authors") for models in (res.get("evaluation") or {}).values()
                  if isinstance(models, dict) for r in models.values() if isinstance(r, dict)}
        return replace(PRIMARY, guide=guides.pop()) if len(guides) == 1 else PRIMARY
    return Cell(**{axis: declared.get(axis, getattr(PRIMARY, axis)) for axis in AXES})


def _records(res: dict, space: str, guide: str) -> tuple[dict, dict]:
    """The evaluation and attack-zoo records of one eps convention under one guide rule ({} where none)."""
    if guide == primary_cell(res).guide:
        return ((res.get("evaluation") or {}).get(space) or {}), ((res.get("robustness") or {}).get(space) or {})
    entry = next((g for g in res.get("grid") or [] if isinstance(g, dict) and g.get("eps_space") == space
                  and g.get("guide") == guide), {})
    return entry.get("evaluation") or {}, entry.get("robustness") or {}


def cell_view(res: dict, cell: Cell) -> dict:
    """A results record whose `evaluation[cell.eps_space]` (and `robustness`) are the cell's, for `claims.assess`.

    The primary guide rule's cells read the record's own sections, the other rule's its `grid` entry;
    the "worst case" attack set is `record.worst_case_view` of that. A cell without records has an
    empty evaluation there, so its claims read "not tested".
    """
    space = cell.eps_space
    if cell.guide == primary_cell(res).guide:
        view = res
    else:
        ev, zoo = _records(res, space, cell.guide)
        view = {**res, "evaluation": {**(res.get("evaluation") or {}), space: dict(ev)},
                "robustness": {**(res.get("robustness") or {}), space: dict(zoo)}}
    return worst_case_view(view, space) if cell.attacks == "worst case" else view


def cells(res: dict) -> list[Cell]:
    """Every cell a record can judge, the primary first (then by eps convention, guide rule, attack set)."""
    primary = primary_cell(res)
    found = [primary]
    for space in EPS_SPACES:
        for guide in sorted(GUIDE_RULES, key=lambda g: g != primary.guide):
            ev, zoo = _records(res, space, guide)
            for attacks in ATTACK_SETS:
                cell = Cell(space, guide, attacks)
                if ev and (attacks == "paper" or zoo) and cell not in found:
                    found.append(cell)
    return found


def judged(res: dict) -> dict[Cell, dict[int, list[Claim]]]:
    """The four claims in every cell of a record, on every training seed: {cell: {seed: claims}}."""
    return {cell: {s: assess(cell_view(res, cell), cell.eps_space, s) for s in seeds(res)} for cell in cells(res)}


def _row(number: int, per_cell: dict[Cell, dict[int, list[Claim]]], primary: Cell) -> dict:
    """One claim's line of the grid: its verdict in each cell (across seeds), the grid's verdict, what flips it."""
    if number not in JUDGED:  # the same time in every cell: the primary's, across seeds
        by_seed = per_cell[primary]
        return {**{c.label: "" for c in per_cell}, "verdict": across_seeds({s: v[number - 1].verdict
                                                                            for s, v in by_seed.items()}),
                "flipped by": f"not judged per cell (a fine-tuning time; seeds {', '.join(map(str, by_seed))})",
                "rule": RULES[number]}
    in_cell = {c: across_seeds({s: v[number - 1].verdict for s, v in by_seed.items()}) for c, by_seed in
               per_cell.items()}
    verdict, flips = across_cells(in_cell, primary)
    return {**{c.label: v for c, v in in_cell.items()}, "verdict": verdict, "flipped by": ", ".join(flips),
            "rule": RULES[number]}


def grid_verdicts(res: dict, per_cell: dict[Cell, dict[int, list[Claim]]] | None = None) -> pd.DataFrame:
    """One row per claim: its verdict in each cell (across seeds), the grid's verdict, what flips it, and the rule
    (`per_cell`: `judged(res)` when already computed)."""
    per_cell, primary = judged(res) if per_cell is None else per_cell, primary_cell(res)
    rows = {CLAIMS[number]: _row(number, per_cell, primary) for number in sorted(CLAIMS)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("claim")


def seed_spread(res: dict, cell: Cell | str | None = None,
                per_cell: dict[Cell, dict[int, list[Claim]]] | None = None) -> pd.DataFrame:
    """Each comparison of each claim in one cell (default: the primary; a str: its eps convention) across seeds.

    Columns: the estimate on each seed, its minimum and maximum over seeds, and each seed's verdict
    (`per_cell`: `judged(res)` when already computed).
    """
    primary = primary_cell(res)
    cell = primary if cell is None else Cell(cell, primary.guide, primary.attacks) if isinstance(cell, str) else cell
    runs = seeds(res)
    done = (per_cell or {}).get(cell) or {}
    found: dict[tuple, dict] = {}
    for s in runs:
        role = {mid: key for key, mid in named_models(s).items()}  # the same role on every seed: "SAT_AMDIM"...
        for claim in done.get(s) or assess(cell_view(res, cell), cell.eps_space, s):
            for k in claim.comparisons:
                key = (claim.number, k.metric, *(role.get(m, m.name) for m in k.models))
                found.setdefault(key, {})[s] = k
    first = named_models(0)
    rows = []
    for (number, metric, a, b), by_seed in found.items():
        values = [by_seed[s].diff.value for s in runs if s in by_seed]
        finite = [v for v in values if not math.isnan(v)]
        name = lambda r: first[r].label if r in first else r  # noqa: E731
        rows.append({"claim": number, "metric": metric, "models": f"{name(a)} - {name(b)}",
                     **{f"seed {s}": by_seed[s].diff.value if s in by_seed else math.nan for s in runs},
                     "min": min(finite, default=math.nan), "max": max(finite, default=math.nan),
                     **{f"verdict seed {s}": by_seed[s].verdict if s in by_seed else "not tested" for s in runs}})
    return pd.DataFrame(rows)


def _sup_text(res: dict) -> str:
    sup = ((res.get("settings") or {}).get("train") or {}).get("sup") or {}
    smoothing = sup.get("label_smoothing")
    if smoothing:
        return f"cross-entropy with label smoothing {smoothing} (NOT the paper's plain cross-entropy)"
    return "plain cross-entropy (the paper's)" if sup else f"plain cross-entropy (the paper's; recipe {MISSING})"


def primary_text(res: dict) -> list[str]:
    """The primary protocol of a record, one line per setting."""
    settings = res.get("settings") or {}
    protocol = settings.get("protocol") or settings  # older files hold the protocol's settings at the top
    primary, k, m = primary_cell(res), protocol.get("k", MISSING), protocol.get("m", MISSING)
    return ["The primary protocol (every other cell of the grid is a named variant of it):",
            f"  eps: {EPS_TEXT[primary.eps_space]}",
            f"  guide rule ({primary.guide}): {GUIDE_TEXT[primary.guide]}",
            f"  attacks: {ATTACK_TEXT[primary.attacks]}",
            f"  SUP: {_sup_text(res)}",
            f"  kNN: k = {k}, m = {m} (the paper: k = {PAPER_K}, m = {PAPER_M})",
            f"  training seeds: {', '.join(map(str, seeds(res)))}",
            *[f"  {r['setting']}: {r['value']} [{r['source']}]" for r in
              ((res.get("protocol") or {}).get("declared") or []) if isinstance(r, dict) and {"setting", "value",
                                                                                              "source"} <= set(r)]]


def _spread_lines(spread: pd.DataFrame, runs: list[int]) -> list[str]:
    lines = []
    for _, r in spread.iterrows():
        # a comparison a seed never made (e.g. the strong L2 leg, recorded on seed 0 only) is left out, not shown as nan
        per = ", ".join(f"seed {s} {r[f'seed {s}']:+.3f} ({r[f'verdict seed {s}']})" for s in runs
                        if not math.isnan(r[f"seed {s}"]))
        lines.append(f"  claim {r['claim']}, {r['metric']}, {r['models']}: {r['min']:+.3f} to {r['max']:+.3f}; "
                     f"{per}")
    return lines


def grid_text(res: dict) -> str:
    """Plain text for the CLI: the primary protocol, each claim in every cell with its rule, the seed spread."""
    primary, per_cell, runs = primary_cell(res), judged(res), seeds(res)
    table = grid_verdicts(res, per_cell)
    lines = [*primary_text(res), "", "Each claim in every cell of the protocol grid (each cell's verdict across "
                                     "training seeds):"]
    for claim, row in table.iterrows():
        bare = word(row["verdict"])
        lines.append(f"{claim}: {bare.upper()}{row['verdict'][len(bare):]}")
        lines.append(f"   rule: {row['rule']}")
        if row["flipped by"]:
            lines.append(f"   {'' if claim == CLAIMS[3] else 'flipped by: '}{row['flipped by']}")
        for cell in cells(res):
            if row[cell.label]:
                lines.append(f"   - {cell.label}{' (primary)' if cell == primary else ''}: {row[cell.label]}")
    spread = seed_spread(res, per_cell=per_cell)
    if len(runs) > 1 and not spread.empty:
        lines += ["", f"Seed spread in the primary cell ({primary.label}): each difference's estimate across "
                      "seeds, min to max, then each seed's (verdict)", *_spread_lines(spread, runs)]
    return "\n".join(lines)
