"""Claim 4 as a frontier comparison: robust accuracy at matched clean accuracy along the fine-tuning trajectories.

The endpoint comparison (`claims.claim4`) sets SAT's last point against each defence's last point,
whatever their clean accuracies. Here every evaluation point of SAT's trajectory (AMDIM, from its
start) is paired with every point of a defence's (AT, MAT or ALP, from SUP): the pair whose clean
accuracies are closest is the matched pair, and robust accuracy (small) is compared there, paired
on the same test images. The pair is *matched* when the paired clean-accuracy difference's 95%
interval holds 0; otherwise the trajectories never meet in clean accuracy and the closest pair is
shown for what it is. Holm's step-down at 5% runs over the matched defences' robust comparisons.
Only points after fine-tuning began are paired: each trajectory's first point (iteration or epoch 0)
is its starting model, SSL (AMDIM) for SAT and SUP for the defences, so a pair holding one would
compare an undefended model (both starting points: claim 1's AMDIM against SUP), not SAT against
the defence.
Against a defence SAT wins when it is matched and more robust, loses when matched and less robust;
unmatched, SAT wins when the closest pair has it better on both axes (it dominates) and loses when
worse on both, else the defence is not comparable. The claim holds, does not hold, is mixed or
is inconclusive by `verdicts.combine` of the defences SAT is comparable with.
"""

from __future__ import annotations

import math

import pandas as pd

from satnb.report.claims import named_models
from satnb.report.paired import has_outcomes, paired_acc, paired_robust
from satnb.report.verdicts import FAILS, HOLDS, INCONCLUSIVE, combine, decide, holm_decide

DEFENCES = ("AT", "MAT", "ALP")
NOT_COMPARABLE = "not comparable"
OUTCOME = {HOLDS: "wins", FAILS: "loses", NOT_COMPARABLE: "not comparable"}  # SAT's outcome against one defence
RULE = ("claim 4 on the frontier: along SAT's and each defence's fine-tuning trajectories (after fine-tuning began: "
        "each starting model, SSL or SUP, is left out), the pair of points with the closest clean accuracy; "
        "matched when their paired clean-accuracy difference's 95% interval holds 0, then SAT wins or loses by "
        "robust accuracy small there (Holm over the matched defences); unmatched, SAT wins when better on both "
        "axes, loses when worse on both, else not comparable; the claim combines the comparable defences "
        "(holds / does not hold / mixed / inconclusive at this N)")


def _points(run: dict | None) -> list[dict]:
    """The trajectory points of a fine-tuning run after its first (its starting model) with per-image outcomes."""
    return [r for r in ((run or {}).get("trajectory") or [])[1:] if has_outcomes(r) and r.get("acc") is not None]


def matched_pair(sat_points: list[dict], defence_points: list[dict]) -> tuple[dict, dict] | None:
    """The (SAT point, defence point) with the closest clean accuracy (ties: the later SAT point); None if empty."""
    pairs = [(s, d) for s in sat_points for d in defence_points]
    if not pairs:
        return None
    return min(pairs, key=lambda p: (abs(p[0]["acc"] - p[1]["acc"]), -sat_points.index(p[0])))


def frontier(res: dict, seed: int = 0) -> pd.DataFrame:
    """One row per defence: the matched pair's points, clean-accuracy and robust-accuracy differences (95%
    intervals), whether matched, and SAT's outcome against it; empty where the trajectories keep no outcomes."""
    n = named_models(seed)
    sat_points = _points((res.get("sat") or {}).get(n["AMDIM"].name))
    rows = []
    for name in DEFENCES:
        d_points = _points((res.get("baselines") or {}).get(n[name].name))
        pair = matched_pair(sat_points, d_points)
        if pair is None:
            continue
        s, d = pair
        acc, robust = paired_acc(s, d), paired_robust(s, d, "small")
        rows.append({"defence": n[name].label, "SAT point": s.get("iteration"), "defence point": d.get("epoch"),
                     "SAT clean": s["acc"], "defence clean": d["acc"], "clean difference": acc.value,
                     "clean 95%": [acc.lo, acc.hi], "robust small difference": robust.value,
                     "robust 95%": [robust.lo, robust.hi], "n images": robust.n,
                     "matched": bool(acc.lo <= 0 <= acc.hi), "_acc": acc, "_robust": robust})
    if not rows:
        return pd.DataFrame()
    matched = [r for r in rows if r["matched"]]
    decided = holm_decide([(r["_robust"], 0.0) for r in matched])
    for r, v in zip(matched, decided):
        r["SAT"] = v
    for r in rows:
        if not r["matched"]:
            a, b = decide(r["_acc"], 0.0), decide(r["_robust"], 0.0)
            r["SAT"] = HOLDS if a == b == HOLDS else FAILS if a == b == FAILS else NOT_COMPARABLE
    return pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])


def frontier_verdict(table: pd.DataFrame) -> str:
    """The claim's verdict on the frontier: `combine` of SAT's outcome against each comparable defence."""
    if table.empty:
        return "not tested"
    outcomes = [v for v in table["SAT"] if v != NOT_COMPARABLE]
    return combine(outcomes) if outcomes else INCONCLUSIVE


def frontier_text(res: dict, seeds: list[int]) -> list[str]:
    """Plain lines for the CLI: the frontier reading of claim 4 on each seed, with its rule."""
    lines = []
    for seed in seeds:
        table = frontier(res, seed)
        if table.empty:
            continue
        lines.append(f"  seed {seed}: {frontier_verdict(table).upper()}")
        for _, r in table.iterrows():
            outcome = OUTCOME.get(r["SAT"], r["SAT"])
            lines.append(f"   - vs {r['defence']}: SAT {outcome} (clean {r['SAT clean']:.1%} vs "
                         f"{r['defence clean']:.1%}, {_pts(r['clean difference'], r['clean 95%'])}; robust small "
                         f"{_pts(r['robust small difference'], r['robust 95%'])}; "
                         f"{'matched' if r['matched'] else 'closest, not matched'}, n = {r['n images']})")
    regime = [] if (res.get("settings") or {}).get("labelled_per_class") else [
        "   this run has every training label: a reading outside claim 4's few-label regime, not a verdict on it"]
    return ["Claim 4 on the frontier (robust accuracy at matched clean accuracy along the trajectories):",
            f"   rule: {RULE}", *regime, *lines] if lines else []


def _pts(value: float, ci: list[float]) -> str:
    return f"{value * 100:+.1f} pts [{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]" if not math.isnan(value) else "n/a"
