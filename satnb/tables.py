"""pandas tables for the book and the CLI: profiles, data, evaluations, Table 1 beside ours, run times, environment."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from satnb.config import PROFILES
from satnb.data import DATASETS, Dataset, short_source
from satnb.paper import PAPER_TABLE1
from satnb.results import check_entries

LABELS = {"amdim": "SSL (AMDIM)", "npid": "SSL (NPID)", "simclr": "SSL (SimCLR)", "sup": "SUP",
          "sat-amdim": "SAT (AMDIM)", "sat-npid": "SAT (NPID)", "sat-simclr": "SAT (SimCLR)",
          "sat-amdim-amdim": "SAT (AMDIM, AMDIM NCE)", "at": "AT", "mat": "MAT", "alp": "ALP"}


def label(name: str) -> str:
    """The display name of a model ("sat-amdim" -> "SAT (AMDIM)", "sup-resnet18" -> "SUP (resnet18 twin)")."""
    if name not in LABELS and name.startswith("sup-"):
        return f"SUP ({name[4:]} twin)"
    return LABELS.get(name, name)


def profile_table() -> pd.DataFrame:
    """One row per profile: data sizes, epochs per method, attack sizes."""
    rows = []
    for p in PROFILES.values():
        rows.append({
            "profile": p.name,
            "train images": p.n_train or "all",
            "test images": p.n_test or "all",
            "kNN k / m": f"{p.k} / {p.m}",
            "attacked N (grad / opt)": f"{p.n_attack} / {p.n_attack_opt}",
            **{f"{m} epochs": f"{t.epochs} ({t.encoder})" for m, t in p.train.items()},
            "SAT iterations": p.sat.iterations,
        })
    return pd.DataFrame(rows).set_index("profile")


def class_counts(data: Dataset) -> pd.DataFrame:
    """Images per class in each split."""
    return pd.DataFrame({
        "class": list(data.classes),
        "train": np.bincount(data.y_train, minlength=data.n_classes),
        "test": np.bincount(data.y_test, minlength=data.n_classes),
    }).set_index("class")


MEASURES = (("ACC", "acc"), ("DSR small", "dsr_small"), ("DSR large", "dsr_large"),
            ("robust small", "robust_small"), ("robust large", "robust_large"))


def _measures(r: dict) -> dict:
    """The proportions of an evaluation record as table columns, each with "<column> lo" / "<column> hi"."""
    row = {}
    for col, key in MEASURES:
        lo, hi = r.get(f"{key}_ci") or (np.nan, np.nan)
        row[col], row[f"{col} lo"], row[f"{col} hi"] = r.get(key, np.nan), lo, hi
    return row


def evaluation_table(records: Mapping[str, dict]) -> pd.DataFrame:
    """One row per model (from `Pipeline.evaluations`): ACC, DSR and robust accuracy with the noise control and L2.

    Each measured proportion carries its 95% interval as "<column> lo" / "<column> hi".
    """
    rows = []
    for name, r in records.items():
        row = {"model": label(name), "encoder": r.get("encoder", "not recorded"), **_measures(r)}
        row.update({
            "noise DSR small": r["noise_dsr_small"], "noise DSR large": r["noise_dsr_large"],
            "opt success": r.get("opt_success", np.nan), "L2 median (px)": r.get("l2_median_px", np.nan),
            "L2 mean (px)": r.get("l2_mean_px", np.nan), "L2 median (norm)": r.get("l2_median_norm", np.nan),
            "L2 mean (norm)": r.get("l2_mean_norm", np.nan), "unbroken (opt)": r.get("opt_unbroken"),
            "N": r["n_attacked"], "N (robust)": r.get("n_prefix"), "train s": round(r["train_seconds"], 1),
            "attack s/img (small)": r["attacks"]["small"]["seconds_per_image"],
            "opt attack s": (r["attacks"].get("optimization") or {}).get("seconds", np.nan),
        })
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def with_intervals(table: pd.DataFrame, columns: list[str], fmt: str = "{:.1%}") -> pd.DataFrame:
    """The columns as text "value [lo, hi]" from a table with "<column> lo" / "<column> hi" (for display)."""
    out = pd.DataFrame(index=table.index)
    for col in columns:
        if f"{col} lo" in table:
            out[col] = [f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]"
                        for v, lo, hi in zip(table[col], table[f"{col} lo"], table[f"{col} hi"])]
        else:
            out[col] = [fmt.format(v) for v in table[col]]
    return out


def results_frame(res: dict, space: str = "pixel") -> pd.DataFrame:
    """One row per evaluated model of a results file: ACC, DSR, robust accuracy (with intervals), L2, times."""
    check_entries(res)
    rows = []
    for name, r in res["evaluation"].get(space, {}).items():
        row = {"name": name, "model": label(name), "encoder": r.get("encoder", "not recorded"), **_measures(r)}
        row.update({"L2": r.get("l2", np.nan), "L2 broken": r.get("l2_mean_broken_norm", r.get("l2", np.nan)),
                    "opt success": r.get("opt_success", np.nan), "N": r["n_attacked"],
                    "train s": r.get("train_seconds", np.nan)})
        rows.append(row)
    return pd.DataFrame(rows).set_index("name") if rows else pd.DataFrame()


def paper_table(res: dict, spaces: tuple[str, ...] = ("pixel", "normalized")) -> pd.DataFrame:
    """Paper Table 1 beside ours (SUP and SSL-AMDIM, every eps convention that was run), with differences."""
    ds = res["dataset"]["dataset"]
    if ds not in DATASETS:  # a user's own data: the paper has nothing to set it against
        return pd.DataFrame()
    paper = PAPER_TABLE1[PAPER_TABLE1.dataset == ("stl10" if ds == "stl10" else "cifar10")].set_index("model")
    rows = []
    for space in spaces:
        ours = results_frame(res, space)
        if ours.empty:
            continue
        for name in ("sup", "amdim"):
            if name not in ours.index:
                continue
            shown = label(name)
            row = {"eps units": space, "model": shown}
            # Table 1's L2 like for like: the mean over the images the attack broke, in normalised units (the
            # authors' code's); the share it broke beside it. The verdicts use the median over all images instead.
            for col, ours_col in (("ACC", "ACC"), ("DSR small", "DSR small"), ("DSR large", "DSR large"),
                                  ("L2", "L2 broken")):
                row[f"{col} paper"] = paper.loc[shown, col]
                row[f"{col} ours"] = ours.loc[name, ours_col]
                row[f"{col} diff"] = ours.loc[name, ours_col] - paper.loc[shown, col]
            row["L2: share broken (ours)"] = ours.loc[name, "opt success"]
            rows.append(row)
    return pd.DataFrame(rows).set_index(["eps units", "model"]) if rows else pd.DataFrame()


def run_times(res: dict) -> pd.DataFrame:
    """Wall time of each stage and each model's training or fine-tuning."""
    rows = [{"what": f"stage: {k}", "seconds": v} for k, v in res.get("stage_seconds", {}).items()]
    rows += [{"what": f"train {label(m)} ({t['epochs']} epochs, {t['encoder']})", "seconds": t["seconds"]}
             for m, t in res.get("training", {}).items()]
    rows += [{"what": f"fine-tune {label(r['name'])} ({r.get('n_updates', '?')} updates)",
              "seconds": r["train_seconds"]}
             for r in [*res.get("sat", {}).values(), *res.get("baselines", {}).values()]]
    return pd.DataFrame(rows).set_index("what").round(1)


def environment(res: dict) -> pd.Series:
    """Where and with what code a run was made."""
    p = res.get("provenance", {})
    keys = ("satnb_version", "git_commit", "code_fingerprint", "torch_version", "python", "platform", "device",
            "threads", "profile", "seed", "wall_time_s", "finished_at")
    source = short_source(res["dataset"]["source"])
    return pd.Series({k: p.get(k) for k in keys} | {"dataset source": source}, name="value")


def zoo_table(records: Mapping[str, dict]) -> pd.DataFrame:
    """One row per model, eps setting and attack (from `Pipeline.robustness`): DSR and robust accuracy, intervals."""
    rows = []
    for name, rec in records.items():
        for setting, block in rec["settings"].items():
            for attack, r in block["attacks"].items():
                rows.append({"model": label(name), "setting": setting, "attack": attack, "DSR": r["dsr"],
                             "DSR lo": r["dsr_ci"][0], "DSR hi": r["dsr_ci"][1], "robust": r["robust"],
                             "robust lo": r["robust_ci"][0], "robust hi": r["robust_ci"][1],
                             "s / image": r.get("seconds_per_image")})
    return pd.DataFrame(rows)


def l2_attacks_table(evaluations: Mapping[str, dict], zoo: Mapping[str, dict]) -> pd.DataFrame:
    """The paper's optimisation attack beside the minimum-norm attack: success and median L2 with intervals."""
    rows = []
    for name in zoo:
        for attack, r in (("optimisation (paper)", evaluations.get(name, {})), ("minimum-norm", zoo[name]["min_norm"])):
            if "opt_success" not in r:
                continue
            rows.append({"model": label(name), "attack": attack, "broken": r["opt_success"],
                         "broken lo": r["opt_success_ci"][0], "broken hi": r["opt_success_ci"][1],
                         "median L2 (px)": r["l2_median_px"], "median L2 (px) lo": r["l2_median_px_ci"][0],
                         "median L2 (px) hi": r["l2_median_px_ci"][1], "median L2 (norm)": r["l2_median_norm"],
                         "images": r["opt_n"]})
    return pd.DataFrame(rows).set_index(["model", "attack"]) if rows else pd.DataFrame()
