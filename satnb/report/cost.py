"""Claim 3 in both framings: fine-tuning time only (the primary) and including each method's pretraining.

The paper compares the adversarial training processes, each of which starts from a trained model
(SAT from AMDIM, MAT and ALP from SUP): the primary framing counts fine-tuning time only. A user
who trains from nothing pays the pretraining too, so the second framing adds AMDIM's pretraining
time to SAT's and SUP's to MAT's and ALP's. Both read the time to the same target (the lower of
the two methods' best robust accuracy, small) along the trajectories, and apply claim 3's rule (SAT
cheaper when it needs at most `MUCH_CHEAPER` of the other's time). The fine-tuning runs of one
record were timed in the run that made them, one after another on the same machine; pretraining
times are those recorded when each model was trained.
"""

from __future__ import annotations

import math

import pandas as pd

from satnb.report.claims import MUCH_CHEAPER, named_models, time_to_target
from satnb.report.verdicts import FAILS, HOLDS, INCONCLUSIVE, combine

FRAMINGS = ("fine-tuning only (primary)", "including pretraining")


def _best(run: dict, key: str) -> float:
    return max((row.get(key) or 0.0) for row in run["trajectory"])


def cost_table(res: dict, seed: int = 0, key: str = "robust_small") -> pd.DataFrame:
    """One row per framing and defence (MAT, ALP): SAT's and the defence's seconds to the common target, their
    ratio and SAT's outcome; empty where the runs or their times are missing."""
    n = named_models(seed)
    sat = (res.get("sat") or {}).get(n["AMDIM"].name)
    training = res.get("training") or {}
    pre = {m: (training.get(n[m].name) or {}).get("seconds") for m in ("AMDIM", "SUP")}
    rows = []
    for name in ("MAT", "ALP"):
        b = (res.get("baselines") or {}).get(n[name].name)
        if not sat or not b or not sat.get("trajectory") or not b.get("trajectory"):
            continue
        target = min(_best(sat, key), _best(b, key))
        t_sat, t_b = time_to_target(sat["trajectory"], target, key), time_to_target(b["trajectory"], target, key)
        if t_sat is None or t_b is None:
            continue
        for framing in FRAMINGS:
            extra = framing != FRAMINGS[0]
            if extra and (pre["AMDIM"] is None or pre["SUP"] is None):
                continue
            a, d = t_sat + (pre["AMDIM"] if extra else 0.0), t_b + (pre["SUP"] if extra else 0.0)
            ratio = a / d if d else math.inf
            outcome = INCONCLUSIVE if (not extra and t_sat == 0) else HOLDS if ratio <= MUCH_CHEAPER else FAILS
            rows.append({"framing": framing, "defence": n[name].label, "target": target, "SAT s": a,
                         "defence s": d, "ratio": ratio, "SAT": outcome})
    return pd.DataFrame(rows)


def framing_verdicts(table: pd.DataFrame) -> dict[str, str]:
    """Claim 3's verdict in each framing: `combine` of SAT's outcome against MAT and ALP."""
    if table.empty:
        return {}
    return {f: combine(list(table[table["framing"] == f]["SAT"])) for f in FRAMINGS if (table["framing"] == f).any()}


def cost_text(res: dict, seeds: list[int]) -> list[str]:
    """Plain lines for the CLI: claim 3 in both framings on each seed."""
    lines = []
    for seed in seeds:
        table = cost_table(res, seed)
        for framing, verdict in framing_verdicts(table).items():
            part = table[table["framing"] == framing]
            lines.append(f"  seed {seed}, {framing}: {verdict.upper()} ("
                         + "; ".join(f"SAT {r['SAT s']:.0f} s vs {r['defence']} {r['defence s']:.0f} s, ratio "
                                     f"{r['ratio']:.2f}" for _, r in part.iterrows()) + ")")
    return ["Claim 3 in both framings (time to the same robust accuracy; SAT cheaper at a ratio <= "
            f"{MUCH_CHEAPER}):", *lines] if lines else []
