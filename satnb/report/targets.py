"""The reference run's kNN-accuracy targets per pretrained method: met or not, and what longer training bought.

A target is met when the mean over the method's training seeds of its final kNN accuracy (k = 75, all
test images) reaches it. Where it is not, measured facts say what it would take: the gain of the
run's own last curve step (kNN accuracy per epoch between its last two curve points), the median
seconds an epoch costs (and so what as many epochs again cost, all seeds), and, when a longer run of
the same method is committed (`results/longer/`), how far that run's epochs took it and how its recipe
differed. No accuracy is extrapolated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from satnb.report.record import model_ids, results_dir

# the reference run's targets (issue "The reference run, remade"): mean kNN accuracy over training seeds
TARGETS = {"sup": 0.90, "amdim": 0.75, "simclr": 0.72, "npid": 0.65}
RULE = ("met: the mean over training seeds of the final kNN accuracy (k = 75, every test image) reaches the "
        "target; otherwise the last curve step and a longer committed run say what more epochs bought (measured)")


def _curve(t: dict) -> list[tuple[int, float]]:
    return [(int(c["epoch"]), float(c["knn_acc"])) for c in t.get("curve") or [] if c.get("knn_acc") is not None]


def _final(t: dict) -> float | None:
    """The kNN accuracy at the model's last epoch (None when its curve stops short of it)."""
    curve = _curve(t)
    return curve[-1][1] if curve and curve[-1][0] == t.get("epochs") else None


def _recipe_differences(ours: dict, theirs: dict) -> str:
    """The settings (other than epochs) in which `theirs` differs from `ours`: "label_smoothing 0.1 (here 0.0)"."""
    keys = sorted((set(ours) | set(theirs)) - {"epochs"})
    diff = [f"{k} {theirs.get(k)} (here {ours.get(k)})" for k in keys if ours.get(k) != theirs.get(k)]
    return "; ".join(diff) or "same recipe"


def target_table(res: dict, longer: dict | None = None) -> pd.DataFrame:
    """One row per pretrained method with a target: seeds, mean (range) final kNN accuracy, met, the last curve step's
    gain per epoch, median seconds per epoch, and the longer run's epochs, accuracy and recipe difference."""
    ids = model_ids(res)
    recipes = (res.get("settings") or {}).get("train") or {}
    rows = []
    for method, target in TARGETS.items():
        names = [n for n, mid in ids.items() if mid.kind == "pretrained" and mid.method == method
                 and not mid.twin and not mid.variant and n in (res.get("training") or {})]
        if not names:
            continue
        records = [res["training"][n] for n in sorted(names, key=lambda n: ids[n].seed)]
        finals = [f for f in map(_final, records) if f is not None]
        mean = float(np.mean(finals)) if finals else np.nan
        curve = _curve(records[0])
        step = ((curve[-1][1] - curve[-2][1]) / (curve[-1][0] - curve[-2][0])) if len(curve) >= 2 else np.nan
        epoch_s = [c["seconds"] for t in records for c in t.get("curve") or [] if c.get("seconds") is not None]
        row = {"method": method, "target": target, "seeds": len(finals), "epochs": records[0].get("epochs"),
               "kNN accuracy (mean)": mean, "lowest seed": min(finals, default=np.nan),
               "highest seed": max(finals, default=np.nan), "met": bool(finals) and mean >= target,
               "last step gain per epoch": step, "seconds per epoch (median)": float(np.median(epoch_s))
               if epoch_s else np.nan}
        # the next step: as many epochs again for every seed, at the measured median cost of an epoch
        row["next step minutes (2x epochs, all seeds)"] = (row["seconds per epoch (median)"] * (row["epochs"] or 0)
                                                           * max(len(finals), 1) / 60)
        t_long = ((longer or {}).get("training") or {}).get(method)
        if t_long is not None:
            recipe_long = ((longer.get("settings") or {}).get("train") or {}).get(method) or {}
            final_long = _final(t_long)
            row.update({"longer run epochs": t_long.get("epochs"), "longer run kNN accuracy": final_long,
                        "longer run best": max((a for _, a in _curve(t_long)), default=np.nan),
                        "longer run reaches target": final_long is not None and final_long >= target,
                        "longer run recipe": _recipe_differences(recipes.get(method) or {}, recipe_long),
                        "longer run precision": (longer.get("provenance") or {}).get("precision")})
        rows.append(row)
    return pd.DataFrame(rows).set_index("method") if rows else pd.DataFrame()


PERCENT = ("target", "kNN accuracy (mean)", "lowest seed", "highest seed", "longer run kNN accuracy", "longer run best")


def target_view(table: pd.DataFrame) -> pd.DataFrame:
    """`target_table` to read: a row per measure and a column per method (it fits a page), values formatted."""
    def fmt(column: str, v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        if column in PERCENT:
            return f"{v:.1%}"
        if column == "last step gain per epoch":
            return f"{v * 100:+.2f} points"
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        return f"{v:.0f}" if isinstance(v, float) else str(v)
    return pd.DataFrame({m: {c: fmt(c, r.get(c)) for c in table.columns} for m, r in table.iterrows()})


def what_it_would_take(table: pd.DataFrame) -> dict[str, str]:
    """Per method missing its target, one sentence from the measured columns of `target_table` (no extrapolation)."""
    out = {}
    for method, r in table.iterrows():
        if r["met"]:
            continue
        short, gain = (r["target"] - r["kNN accuracy (mean)"]) * 100, r["last step gain per epoch"] * 100
        text = (f"{r['kNN accuracy (mean)']:.1%} over {r['seeds']} seed(s) at {r['epochs']} epochs, "
                f"{short:.1f} points short of {r['target']:.0%}; its last curve step gained {gain:+.2f} points per "
                f"epoch at a median {r['seconds per epoch (median)']:.0f} s per epoch, so {r['epochs']} more epochs "
                f"for each seed cost about {r['next step minutes (2x epochs, all seeds)']:.0f} min here")
        if isinstance(r.get("longer run recipe"), str):
            reach = "reaches" if r["longer run reaches target"] else "does not reach"
            text += (f"; the longer committed run ({r['longer run epochs']} epochs, {r['longer run recipe']}, "
                     f"{r['longer run precision']}) ended at "
                     f"{r['longer run kNN accuracy']:.1%} (best {r['longer run best']:.1%}) and {reach} it")
        out[method] = text
    return out


def longer_run(profile: str, dataset: str, directory: Path | None = None) -> dict | None:
    """The committed longer training run of a profile (`results/longer/<profile>-<dataset>.json`), or None."""
    try:
        path = (directory or results_dir() / "longer") / f"{profile}-{dataset}.json"
    except FileNotFoundError:
        return None
    return json.loads(path.read_text()) if path.is_file() else None


def targets_text(res: dict) -> list[str]:
    """The report's lines on a reference run's targets (the `cpu` profile's; [] for other profiles)."""
    if res.get("profile") != "cpu" or (res.get("settings") or {}).get("labelled_per_class"):
        return []  # a label-scarce run trains SUP on a subset: the targets are the full run's
    table = target_table(res, longer_run("cpu", (res.get("dataset") or {}).get("dataset", "")))
    if table.empty:
        return []
    lines = [f"kNN-accuracy targets of the reference run ({RULE}):"]
    for method, r in table.iterrows():
        spread = f"{r['lowest seed']:.1%} to {r['highest seed']:.1%}, {r['seeds']} seeds"
        seeds = f"{r['kNN accuracy (mean)']:.1%} ({spread})"
        lines.append(f"   {method}: target {r['target']:.0%}, {seeds}: {'MET' if r['met'] else 'not met'}")
    lines += [f"   - {method}: {text}" for method, text in what_it_would_take(table).items()]
    return lines
