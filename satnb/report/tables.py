"""pandas tables of one run for the book and the CLI: profiles, data, evaluations, paper Table 1, times, environment.

Tables that set runs beside each other are in `reference` (the committed reference run beside this
build), `table1`, `pretraining` and `fine_tuning`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from satnb.core.config import PROFILES
from satnb.core.dataset import Dataset, short_source
from satnb.core.datasets import DATASETS
from satnb.core.identity import ModelId
from satnb.report import stagelog
from satnb.report.cells import measure_columns, text
from satnb.report.paper import PAPER_TABLE1
from satnb.report.record import (
    METHOD_NAMES,
    MISSING,
    check_entries,
    label,
    model_ids,
    results_dir,
    settings_encoder_name,
)


def profile_table() -> pd.DataFrame:
    """One row per profile: data sizes, epochs per method, encoders, attack sizes, seeds and grid."""
    rows = []
    for p in PROFILES.values():
        methods = [m for m in METHOD_NAMES if m in p.train]
        by_encoder: dict[str, list[str]] = {}
        for m, t in p.train.items():
            by_encoder.setdefault(t.encoder, []).append(METHOD_NAMES[m])
        encoders = "; ".join(f"{e} ({', '.join(ms)})" for e, ms in by_encoder.items()) if len(by_encoder) > 1 \
            else f"{next(iter(by_encoder), '-')} (all)"
        rows.append({
            "profile": p.name,
            "train / test images": f"{p.n_train or 'all'} / {p.n_test or 'all'}",
            "kNN k / m": f"{p.protocol.k} / {p.protocol.m}",
            "attacked N (grad / opt)": f"{p.protocol.n_attack or 'every correct'} / {p.protocol.n_attack_opt}",
            f"epochs ({' / '.join(METHOD_NAMES[m] for m in methods)})": " / ".join(str(p.train[m].epochs)
                                                                                 for m in methods),
            "encoders": encoders,
            "SAT iterations": p.sat.iterations,
            "training seeds": len(p.seeds),
            "grid cells judged on": ("all seeds" if p.grid_seeds is None else f"{p.grid_seeds} seed(s)") if p.grid
            else "no grid (primary only)",
        })
    frame = pd.DataFrame(rows).set_index("profile")
    return frame[[c for c in frame.columns if not c.startswith("epochs")][:3]
                 + [c for c in frame.columns if c.startswith("epochs")]
                 + [c for c in frame.columns if not c.startswith("epochs")][3:]]


def class_counts(data: Dataset) -> pd.DataFrame:
    """Images per class in each split."""
    return pd.DataFrame({
        "class": list(data.classes),
        "train": np.bincount(data.y_train, minlength=data.n_classes),
        "test": np.bincount(data.y_test, minlength=data.n_classes),
    }).set_index("class")


def evaluation_table(records: Mapping[str, dict]) -> pd.DataFrame:
    """One row per model (from `Studies.evaluations`): ACC, DSR and robust accuracy with the noise control and L2.

    Each measured proportion carries its 95% interval as "<column> lo" / "<column> hi".
    """
    rows = []
    for name, r in records.items():
        row = {"model": label(name), "encoder": r.get("encoder", MISSING), **measure_columns(r)}
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


def results_frame(res: dict, space: str = "pixel") -> pd.DataFrame:
    """One row per evaluated model of a results file: ACC, DSR, robust accuracy (with intervals), L2, times."""
    check_entries(res)
    ids = model_ids(res)
    rows = []
    for name, r in res["evaluation"].get(space, {}).items():
        row = {"name": name, "model": label(name, ids), "encoder": r.get("encoder", MISSING), **measure_columns(r)}
        l2_ci, opt_ci = r.get("l2_mean_norm_ci") or (np.nan, np.nan), r.get("opt_success_ci") or (np.nan, np.nan)
        row.update({"L2": r.get("l2", np.nan), "L2 lo": l2_ci[0], "L2 hi": l2_ci[1],
                    "L2 broken": r.get("l2_mean_broken_norm", r.get("l2", np.nan)),
                    "opt success": r.get("opt_success", np.nan), "opt success lo": opt_ci[0],
                    "opt success hi": opt_ci[1], "N": r["n_attacked"], "train s": r.get("train_seconds", np.nan)})
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
        for model in (ModelId.pretrained("sup"), ModelId.pretrained("amdim")):
            name, shown = model.name, model.label
            if name not in ours.index:
                continue
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


def stage_log(profile: str, dataset: str) -> dict[str, float] | None:
    """Each stage's wall time as `scripts/reference_run.sh` logged it (results/<profile>-<dataset>.stages.tsv,
    summed over the stage's rows by `stagelog.totals`); None when there is no log or it holds no row."""
    try:
        path = results_dir() / f"{profile}-{dataset}.stages.tsv"
    except FileNotFoundError:
        return None
    return stagelog.totals(stagelog.load(path)) or None


def run_times(res: dict, from_log: bool = False) -> pd.DataFrame:
    """Wall time of each stage and each model's training or fine-tuning.

    `from_log`: the stage times from the run's stage log (a run made stage by stage and collected from the
    cache records only the read-back in `stage_seconds`), when one is committed.
    """
    ids = model_ids(res)
    logged = stage_log(res["profile"], res["dataset"]["dataset"]) if from_log else None
    rows = ([{"what": f"stage: {k} (stage log)", "seconds": v} for k, v in logged.items()] if logged else
            [{"what": f"stage: {k}", "seconds": v} for k, v in res.get("stage_seconds", {}).items()])
    rows += [{"what": f"train {label(m, ids)} ({t['epochs']} epochs, {t['encoder']})", "seconds": t["seconds"]}
             for m, t in res.get("training", {}).items()]
    rows += [{"what": f"fine-tune {label(r['name'], ids)} ({r.get('n_updates', '?')} updates)",
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


def zoo_table(records: Mapping[str, dict], encoders: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per model, eps setting and attack (from `Studies.robustness`): DSR and robust accuracy, intervals.

    `encoders` (model -> encoder name, e.g. from the evaluation records) adds an "encoder" column.
    """
    rows = []
    for name, rec in records.items():
        enc = {"encoder": encoders.get(name, MISSING)} if encoders is not None else {}
        for setting, block in rec["settings"].items():
            for attack, r in block["attacks"].items():
                rows.append({"model": label(name), **enc, "setting": setting, "attack": attack, "DSR": r["dsr"],
                             "DSR lo": r["dsr_ci"][0], "DSR hi": r["dsr_ci"][1], "robust": r["robust"],
                             "robust lo": r["robust_ci"][0], "robust hi": r["robust_ci"][1],
                             "s / image": r.get("seconds_per_image")})
    return pd.DataFrame(rows)


def strongest_attack_table(records: Mapping[str, dict], encoders: Mapping[str, str] | None = None,
                           attacks: tuple[str, ...] = ("gradient (paper)", "worst case")) -> pd.DataFrame:
    """Robust accuracy per model under the paper's attack and the zoo's per-image worst case, "x% [lo, hi]"."""
    table = zoo_table(records, encoders)
    if table.empty:
        return table
    table = table[table["attack"].isin(attacks)]
    index = ["model", "encoder"] if encoders is not None else ["model"]
    shown = table.assign(robust=[text(v, "{:.1%}", lo, hi) for v, lo, hi in
                                 zip(table["robust"], table["robust lo"], table["robust hi"])])
    wide = shown.pivot_table(index=index, columns=["setting", "attack"], values="robust", aggfunc="first", sort=False)
    order = [label(n) for n in records]
    return wide.reindex(order, level="model").reindex(columns=[(s, a) for s in dict.fromkeys(table["setting"])
                                                               for a in attacks if (s, a) in wide.columns])


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


def recipe_comparison(profile: str = "quick", dataset: str = "cifar10") -> pd.DataFrame | None:
    """Each method's recipes measured side by side (`scripts/compare_recipes.py`): final kNN accuracy, 95% interval.

    One block per committed comparison of the profile (`results/recipes/<profile>-<dataset>*.json`): on the
    profile's own encoder, on the cpu profile's (`--encoder cpu`), for fewer epochs (`--epochs N`). "chosen"
    marks the profile's recipe today. None when none is committed.
    """
    try:
        folder = results_dir() / "recipes"
    except FileNotFoundError:
        return None
    rows = []
    for path in sorted(folder.glob(f"{profile}-{dataset}*.json")):
        rest = path.stem[len(f"{profile}-{dataset}"):]
        if rest and not rest.startswith("-"):  # another dataset whose name starts with this one's
            continue
        for r in json.loads(path.read_text())["runs"]:
            st = r["settings"]
            enc = settings_encoder_name(st["encoder"], st.get("encoder_kwargs") or {})
            rows.append({"encoder": enc, "method": ModelId.pretrained(r["method"]).label, "recipe": r["recipe"],
                         "chosen": "yes" if r.get("chosen") else "", "epochs": st["epochs"],
                         "kNN accuracy": r["knn_acc"], "kNN accuracy lo": r["knn_acc_ci"][0],
                         "kNN accuracy hi": r["knn_acc_ci"][1]})
    return pd.DataFrame(rows).set_index(["encoder", "method", "recipe"]) if rows else None
