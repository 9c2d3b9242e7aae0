"""pandas tables for the book and the CLI: profiles, data, evaluations, Table 1 beside ours, run times, environment.

Also the committed reference run beside this build (`reference_run`, `beside`, `table1`): every
number names the run, profile, N and encoder it comes from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from satnb import stats
from satnb.config import PROFILES
from satnb.data import DATASETS, Dataset, short_source
from satnb.paper import PAPER_ENCODERS, PAPER_EPOCHS, PAPER_TABLE1
from satnb.results import check_entries, load_results, results_dir, staleness

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


def _measures(r: dict, measures: Sequence[tuple[str, str]] = MEASURES) -> dict:
    """The proportions of an evaluation record as table columns, each with "<column> lo" / "<column> hi"."""
    row = {}
    for col, key in measures:
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


MISSING = "not recorded"


def _missing(value) -> bool:
    """True for None and nan (a number a record does not hold)."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _text(value, fmt: str = "{:.1%}", lo=None, hi=None) -> str:
    """A number as text, "value [lo, hi]" when its interval is known, "not recorded" when it is missing."""
    if _missing(value):
        return MISSING
    if _missing(lo) or _missing(hi):
        return fmt.format(value)
    return f"{fmt.format(value)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def with_intervals(table: pd.DataFrame, columns: list[str], fmt: str = "{:.1%}") -> pd.DataFrame:
    """The columns as text "value [lo, hi]" from a table with "<column> lo" / "<column> hi" (for display).

    A missing number reads "not recorded"; a number without its interval is shown alone.
    """
    out = pd.DataFrame(index=table.index)
    for col in columns:
        if f"{col} lo" in table:
            out[col] = [_text(v, fmt, lo, hi) for v, lo, hi in zip(table[col], table[f"{col} lo"], table[f"{col} hi"])]
        else:
            out[col] = [_text(v, fmt) for v in table[col]]
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


def zoo_table(records: Mapping[str, dict], encoders: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per model, eps setting and attack (from `Pipeline.robustness`): DSR and robust accuracy, intervals.

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


# ----------------------------------------------------------------------------- the reference run beside this build

REFERENCE_PROFILE = "cpu"  # the committed reference run: the cpu profile on all of CIFAR-10
# the encoder behind the paper's Table 1, SUP and SSL alike (paper Sec. 4.2: AMDIM's encoder and its supervised version)
PAPER_N = 1000
L2_MEASURES = (("median L2 (norm)", "l2_median_norm"), ("mean L2 (norm)", "l2_mean_norm"), ("broken", "opt_success"))


def _count(n) -> str:
    """An image count as text ("1,000"), "?" when unknown."""
    return f"{int(n):,}" if isinstance(n, (int, float, np.integer)) and not _missing(n) else "?"


def _first(records: Mapping[str, dict], key: str):
    """A number every record of a run shares (N attacked, test images): the first record's."""
    return next((r.get(key) for r in records.values() if isinstance(r, dict) and r.get(key) is not None), None)


def run_heading(what: str, profile: str, records: Mapping[str, dict], note: str = "",
                n_test: int | None = None) -> str:
    """A heading naming a run, its profile, test images and N: "this build (quick, 1,000 test images, N = 200)".

    Test images and N come from the run's evaluation records; `n_test` stands in when there are none.
    """
    n_test, n = _first(records, "n_test") or n_test, _first(records, "n_attacked")
    parts = [profile] + ([f"{_count(n_test)} test images"] if n_test is not None else []) + \
        ([f"N = {_count(n)}"] if n is not None else []) + ([note] if note else [])
    return f"{what} ({', '.join(parts)})"


@dataclass(frozen=True)
class ReferenceRun:
    """The committed reference run (results/cpu-<dataset>.json): its record when readable, and whether it is current."""

    file: str  # the file name inside results/
    res: dict | None  # None when the file is absent or unreadable
    stale: dict[str, str] = field(default_factory=dict)  # `results.staleness`: {stage: why}; empty when current
    problem: str = ""  # why res is None

    @property
    def available(self) -> bool:
        """True when the file was read."""
        return self.res is not None

    @property
    def current(self) -> bool:
        """True when the file was read and every stage was made by the code at HEAD."""
        return self.available and not self.stale

    @property
    def state(self) -> str:
        """"current", "stale", or "absent" / "unreadable"."""
        if self.res is None:
            return "absent" if self.problem.startswith("absent") else "unreadable"
        return "stale" if self.stale else "current"

    def evaluation(self, space: str = "pixel") -> dict[str, dict]:
        """The evaluation records of one eps convention, each naming its encoder ({} when the run is not available)."""
        return evaluation_records(self.res, space) if self.res is not None else {}

    def robustness(self, space: str = "pixel") -> dict[str, dict]:
        """The attack zoo's records by model ({} when the run is not available or predates the zoo)."""
        return (((self.res or {}).get("robustness") or {}).get(space)) or {}

    @property
    def heading(self) -> str:
        """The run's column or row heading: profile, test images and N, and "stale" when it is."""
        if self.res is None:
            return f"reference run ({self.state})"
        return run_heading("reference run", self.res["profile"], self.evaluation(),
                           "stale" if self.stale else "")

    def sentence(self) -> str:
        """One sentence for the reader: which file the reference numbers come from and whether it is current."""
        where = f"`results/{self.file}`"
        if self.res is None:
            if self.state == "absent":
                return (f"No reference run is available here ({where} is not in this copy of the repository), so "
                        "only this build's numbers are shown.")
            return f"The reference run {where} cannot be read ({self.problem}), so only this build's numbers are shown."
        ds = self.res.get("dataset") or {}
        what = (f"{where}: profile {self.res['profile']}, {_count(ds.get('n_train'))} training / "
                f"{_count(ds.get('n_test'))} test images of {ds.get('dataset', '?')}, "
                f"N = {_count(_first(self.evaluation(), 'n_attacked'))}")
        if not self.stale:
            return f"The reference run ({what}) is current: every stage was made by the code at HEAD."
        why = "; ".join(f"{stage}: {reason}" for stage, reason in self.stale.items())
        return (f"The reference run ({what}) is stale ({why}): its numbers come from older code and show the scale "
                f"only, until it is regenerated with `python -m satnb run --profile {self.res['profile']}`.")


def reference_run(dataset: str = "cifar10", directory: Path | str | None = None,
                  runs: Mapping[str, dict] | None = None) -> ReferenceRun:
    """The committed reference run of a dataset (`results/cpu-<dataset>.json`), never raising when it is absent or old.

    `runs` (e.g. `results.committed_results()`) supplies records already read; otherwise the file is
    read from `directory` (default: the repository's results/). Error messages never carry a machine path.
    """
    name = f"{REFERENCE_PROFILE}-{dataset}.json"
    if runs is not None:
        res = runs.get(name)
        if res is None:
            return ReferenceRun(name, None, problem="absent")
    else:
        try:
            folder = Path(directory) if directory is not None else results_dir()
        except FileNotFoundError:
            return ReferenceRun(name, None, problem="absent: no results/ folder (satnb installed, not a checkout)")
        path = folder / name
        if not path.is_file():
            return ReferenceRun(name, None, problem="absent")
        try:
            res = load_results(path)
        except (ValueError, OSError) as err:
            why = str(err).replace(str(path), f"results/{name}").replace(str(path.resolve()), f"results/{name}")
            return ReferenceRun(name, None, problem=why)
    return ReferenceRun(name, res, stale=staleness(res))


def committed_runs(reference: ReferenceRun) -> dict[str, dict]:
    """The other committed runs in results/ (not the reference), by file name; unreadable files are left out."""
    try:
        folder = results_dir()
    except FileNotFoundError:
        return {}
    out = {}
    for path in sorted(folder.glob("*.json")):
        if path.name == reference.file:
            continue
        try:
            out[path.name] = load_results(path)
        except (ValueError, OSError):
            continue
    return out


def encoder_of(res: dict, name: str, space: str = "pixel") -> str:
    """The encoder behind a model of a results record: its evaluation's, its training's, else its settings'."""
    r = ((res.get("evaluation") or {}).get(space) or {}).get(name) or {}
    if r.get("encoder"):
        return r["encoder"]
    base = name[4:] if name.startswith("sat-") else "sup" if name in ("at", "mat", "alp") else name
    base = base.split("-")[0] if base not in (res.get("training") or {}) else base
    t = (res.get("training") or {}).get(base) or {}
    if t.get("encoder_name"):
        return t["encoder_name"]
    s = ((res.get("settings") or {}).get("train") or {}).get(base) or {}
    enc = s.get("encoder") or t.get("encoder")
    if not enc:
        return MISSING
    return _settings_encoder(enc, s.get("encoder_kwargs") or {})


def _settings_encoder(enc: str, kwargs: Mapping) -> str:
    """An encoder named from a run's settings, close to `models.describe_encoder`'s names ("... (from settings)")."""
    return settings_encoder_name(enc, kwargs) + " (from settings)"


def settings_encoder_name(enc: str, kwargs: Mapping) -> str:
    """An encoder's name from its settings (builder name and kwargs), as `models.describe_encoder` names it."""
    if enc == "amdim":
        words = ["AMDIM"] + [f"{short} {kwargs[k]}" for k, short in (("ndf", "ndf"), ("n_rkhs", "rkhs"),
                                                                     ("n_depth", "depth")) if k in kwargs]
        words += ["BN"] if kwargs.get("use_bn") else []
    else:
        words = ["ResNet-18" if enc == "resnet18" else enc] + [
            f"{k} {'-'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in sorted(kwargs.items())]
    return " ".join(words)


def evaluation_records(res: dict, space: str = "pixel") -> dict[str, dict]:
    """A results record's evaluation records of one eps convention, by model, each with its "encoder" (`encoder_of`)."""
    ev = ((res.get("evaluation") or {}).get(space)) or {}
    return {n: {**r, "encoder": encoder_of(res, n, space)} for n, r in ev.items() if isinstance(r, dict)}


def beside(runs: Mapping[str, Mapping[str, dict]], names: Sequence[str],
           measures: Sequence[tuple[str, str]] = MEASURES) -> pd.DataFrame:
    """One row per model and run (run heading -> evaluation records): the measures with intervals, encoder and N.

    A model a run did not evaluate has no row for it; a number a record lacks is nan.
    """
    rows = []
    for name in names:
        for run, records in runs.items():
            r = records.get(name)
            if not isinstance(r, dict):
                continue
            rows.append({"model": label(name), "run": run, "encoder": r.get("encoder") or MISSING,
                         **_measures(r, measures), "test images": r.get("n_test", np.nan),
                         "N": r.get("n_attacked", np.nan), "N (opt)": r.get("opt_n", np.nan)})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).set_index(["model", "run"])


def show_beside(table: pd.DataFrame, measures: Sequence[tuple[str, str]] = MEASURES) -> pd.DataFrame:
    """`beside`'s table as text: each measure "value [95% interval]", then encoder, test images and N."""
    if table.empty:
        return table
    cols = [c for c, _ in measures]
    l2 = [c for c in cols if "L2" in c]
    out = with_intervals(table, [c for c in cols if c not in l2]).join(
        with_intervals(table, l2, "{:.3f}") if l2 else pd.DataFrame(index=table.index))[cols]
    counts = ["test images", "N"] + (["N (opt)"] if any(k.startswith(("l2", "opt")) for _, k in measures) else [])
    for c in counts:
        out[c] = [_count(v) for v in table[c]]
    out.insert(0, "encoder", table["encoder"])
    return out


def _encoder(evaluations: Mapping[str, Mapping[str, dict]] | None, run: str, name: str) -> str:
    """The encoder a run's evaluation record of a model names ("not recorded" when none does)."""
    return (((evaluations or {}).get(run) or {}).get(name) or {}).get("encoder") or MISSING


def zoo_beside(runs: Mapping[str, Mapping[str, dict]], names: Sequence[str], attack: str = "worst case",
               evaluations: Mapping[str, Mapping[str, dict]] | None = None) -> pd.DataFrame:
    """One row per model and run (run heading -> attack-zoo records): one attack's robust accuracy and DSR, as text.

    `evaluations` (run heading -> evaluation records) names each model's encoder.
    """
    rows = []
    for name in names:
        for run, zoo in runs.items():
            if name not in zoo:
                continue
            t = zoo_table({name: zoo[name]})
            t = t[t["attack"] == attack]
            row = {"model": label(name), "run": run, "encoder": _encoder(evaluations, run, name)}
            for _, r in t.iterrows():
                for measure in ("robust", "DSR"):
                    row[f"{measure} {r['setting']}"] = _text(r[measure], lo=r[f"{measure} lo"], hi=r[f"{measure} hi"])
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "run"]).fillna(MISSING) if rows else pd.DataFrame()


def fine_tuning_records(res: dict, space: str = "pixel") -> dict[str, dict]:
    """A results record's SAT and baseline runs by model name, each with its encoder (`encoder_of`)."""
    runs = [*((res.get("sat") or {}).values()), *((res.get("baselines") or {}).values())]
    return {r["name"]: {**r, "encoder": encoder_of(res, r["name"], space)} for r in runs
            if isinstance(r, dict) and "name" in r}


def fine_tuning_table(runs: Mapping[str, Mapping[str, dict]],
                      evaluations: Mapping[str, Mapping[str, dict]] | None = None) -> pd.DataFrame:
    """Fine-tuning cost per model and run (run heading -> name -> fine-tuning record), with each model's encoder.

    The encoder is the record's own ("encoder", as `fine_tuning_records` adds it), else `evaluations`'.
    """
    rows = [{"model": label(name), "run": run, "encoder": r.get("encoder") or _encoder(evaluations, run, name),
             "updates": r.get("n_updates"),
             "fine-tuning s": r.get("train_seconds", np.nan), "s / update": r.get("seconds_per_update", np.nan)}
            for run, recs in runs.items() for name, r in recs.items()]
    return _by_model(pd.DataFrame(rows)) if rows else pd.DataFrame()


def mi_along_sat(trajectories: Mapping[str, Sequence[dict]], batch: Mapping[str, int],
                 evaluations: Mapping[str, Mapping[str, dict]] | None = None, name: str = "sat-amdim") -> pd.DataFrame:
    """SAT's InfoNCE estimate on its training batches (run heading -> trajectory) against its ceiling log(batch).

    `evaluations` (run heading -> evaluation records) names the encoder of `name` (the SAT model) in each run.
    """
    rows = []
    for run, traj in trajectories.items():
        points = [r for r in traj if r.get("mi_estimate") is not None]
        b = batch.get(run)
        ceiling = math.log(b) if b else np.nan
        last = points[-1]["mi_estimate"] if points else np.nan
        rows.append({"run": run, "encoder": _encoder(evaluations, run, name), "SAT batch": b,
                     "ceiling log(batch) (nats)": ceiling,
                     "iterations": points[-1].get("iteration") if points else None,
                     "MI estimate, first point (nats)": points[0]["mi_estimate"] if points else np.nan,
                     "MI estimate, last point (nats)": last,
                     "last / ceiling": last / ceiling if points and b else np.nan})
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


def training_records(res: dict, acc: Mapping[str, float] | None = None, space: str = "pixel") -> dict[str, dict]:
    """Per pretrained model of a results record: encoder, epochs, training minutes, final kNN accuracy (95% interval).

    The final accuracy is `acc[model]` when given, else the evaluation's, else the last point of the
    kNN-accuracy curve; its interval is Wilson's over the run's test images.
    """
    ev = ((res.get("evaluation") or {}).get(space)) or {}
    n_test = (res.get("dataset") or {}).get("n_test")
    out = {}
    for m, t in (res.get("training") or {}).items():
        curve = [row for row in t.get("curve") or [] if row.get("knn_acc") is not None]
        value = (acc or {}).get(m)
        if value is None:
            value = (ev.get(m) or {}).get("acc", curve[-1]["knn_acc"] if curve else None)
        ci = stats.wilson(round(value * n_test), n_test) if value is not None and n_test else None
        out[m] = {"encoder": encoder_of(res, m, space), "epochs": t.get("epochs"),
                  "minutes": t["seconds"] / 60 if t.get("seconds") is not None else np.nan,
                  "kNN accuracy": np.nan if value is None else value,
                  "kNN accuracy lo": ci.lo if ci else np.nan, "kNN accuracy hi": ci.hi if ci else np.nan,
                  "test images": n_test, "curve points": len(curve)}
    return out


def training_beside(runs: Mapping[str, Mapping[str, dict]]) -> pd.DataFrame:
    """One row per model and run (run heading -> `training_records`): encoder, epochs, minutes, final kNN accuracy."""
    rows = [{"model": label(m), "run": run, **rec} for run, recs in runs.items() for m, rec in recs.items()]
    if not rows:
        return pd.DataFrame()
    return _by_model(pd.DataFrame(rows))


def _by_model(table: pd.DataFrame) -> pd.DataFrame:
    """A long table indexed by (model, run), each model's runs together, models in order of first appearance."""
    order = {m: i for i, m in enumerate(dict.fromkeys(table["model"]))}
    return table.sort_values("model", key=lambda s: s.map(order), kind="stable").set_index(["model", "run"])


def result_curves(res: dict) -> dict[str, list[dict]]:
    """The kNN-accuracy curve of each pretrained model of a results record ({} in files older than curves)."""
    return {m: list(t.get("curve") or []) for m, t in (res.get("training") or {}).items() if t.get("curve")}


def curve_frame(runs: Mapping[str, Mapping[str, Sequence[dict]]]) -> pd.DataFrame:
    """kNN accuracy against epoch and training minutes, long form (run, model, epoch, minutes, kNN accuracy).

    `runs` maps a run heading to each model's per-epoch history (`pipe.entry(m).history` or a results
    file's curve); minutes are the training seconds up to and including that epoch. Epochs without
    a kNN accuracy are left out; an empty frame means no run recorded a curve.
    """
    rows = []
    for run, histories in runs.items():
        for m, hist in histories.items():
            spent = 0.0
            for h in hist:
                spent += float(h.get("seconds") or 0.0)
                if h.get("knn_acc") is not None:
                    rows.append({"run": run, "model": label(m), "epoch": int(h["epoch"]), "minutes": spent / 60,
                                 "kNN accuracy": float(h["knn_acc"])})
    return pd.DataFrame(rows, columns=["run", "model", "epoch", "minutes", "kNN accuracy"])


def curve_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model and run of `curve_frame`: the last epoch, its kNN accuracy and the change since the previous point."""
    rows = []
    for (model, run), g in frame.groupby(["model", "run"], sort=False):
        last = g.iloc[-1]
        prev = g.iloc[-2] if len(g) > 1 else None
        rows.append({"model": model, "run": run, "epochs": int(last["epoch"]), "minutes": last["minutes"],
                     "final kNN accuracy": last["kNN accuracy"],
                     "last change": np.nan if prev is None else last["kNN accuracy"] - prev["kNN accuracy"],
                     "epochs between them": np.nan if prev is None else int(last["epoch"] - prev["epoch"])})
    return pd.DataFrame(rows).set_index(["model", "run"]) if rows else pd.DataFrame()


def gaps(table: pd.DataFrame, a: str, b: str, measures: Sequence[str]) -> pd.DataFrame:
    """Per run of a `beside` table: model a minus model b in each measure, only where both share one encoder.

    Where the encoders differ (or are not recorded) the differences are nan and "encoder" says why.
    Point differences only: the claims give paired 95% intervals.
    """
    rows = []
    if table.empty:
        return pd.DataFrame()
    for run in dict.fromkeys(table.index.get_level_values("run")):
        t = table.xs(run, level="run")
        if a not in t.index or b not in t.index:
            continue
        ea, eb = t.loc[a, "encoder"], t.loc[b, "encoder"]
        same = ea == eb and ea != MISSING
        row = {"run": run, "encoder": ea if same else f"not compared: {a} on {ea}, {b} on {eb}"}
        for m in measures:
            row[f"{m}: {a} - {b}"] = t.loc[a, m] - t.loc[b, m] if same else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


# ----------------------------------------------------------------------------- fine-tuning beside the reference run

TREND_RULE = ("clean accuracy has stopped falling when the last epoch changes it by less than the half-width of the "
              "95% interval of the last epoch's accuracy (Wilson, over the test images); it is still falling when "
              "it drops by at least that much")


def fine_tuning_trajectories(res: dict, kind: str = "baselines") -> dict[str, list[dict]]:
    """The trajectories of a results record's fine-tuning runs ("baselines" or "sat"), by method or seed."""
    return {m: list(r.get("trajectory") or []) for m, r in (res.get(kind) or {}).items() if isinstance(r, dict)}


def accuracy_trend(trajectory: Sequence[dict], n_test: int, unit: str = "epoch") -> dict:
    """Whether clean accuracy stopped falling at the end of a trajectory (the rule in `TREND_RULE`)."""
    rows = [r for r in trajectory if r.get("acc") is not None]
    out = {unit + "s": rows[-1][unit] if rows and unit in rows[-1] else np.nan,
           "first ACC": rows[0]["acc"] if rows else np.nan, "last ACC": rows[-1]["acc"] if rows else np.nan,
           "last change": np.nan, "half-width": np.nan}
    if len(rows) < 2 or not n_test:
        return {**out, "trend": "not measured (fewer than two points)"}
    last = rows[-1]["acc"]
    change = last - rows[-2]["acc"]
    half = stats.wilson(round(last * n_test), n_test).half_width
    trend = ("still falling" if change <= -half else "stopped falling" if abs(change) < half else "still rising")
    return {**out, "last change": change, "half-width": half, "trend": trend}


def accuracy_trends(runs: Mapping[str, Mapping[str, Sequence[dict]]], n_test: Mapping[str, int],
                    unit: str = "epoch", evaluations: Mapping[str, Mapping[str, dict]] | None = None) -> pd.DataFrame:
    """`accuracy_trend` per method and run (runs: heading -> trajectories; n_test: heading -> test images).

    `evaluations` (run heading -> evaluation records) names each model's encoder.
    """
    rows = [{"model": label(m), "run": run, "encoder": _encoder(evaluations, run, m),
             **accuracy_trend(traj, n_test.get(run, 0), unit)}
            for run, trajs in runs.items() for m, traj in trajs.items()]
    return _by_model(pd.DataFrame(rows)) if rows else pd.DataFrame()


def trajectory_frame(runs: Mapping[str, Mapping[str, Sequence[dict]]], unit: str = "epoch") -> pd.DataFrame:
    """Clean accuracy along each fine-tuning trajectory, long form (run, model, <unit>, ACC)."""
    rows = [{"run": run, "model": label(m), unit: r[unit], "ACC": r["acc"]}
            for run, trajs in runs.items() for m, traj in trajs.items() for r in traj
            if r.get("acc") is not None and unit in r]
    return pd.DataFrame(rows, columns=["run", "model", unit, "ACC"])


def refresh_table(checks: Mapping[str, dict | None],
                  evaluations: Mapping[str, Mapping[str, dict]] | None = None) -> pd.DataFrame:
    """SAT's library refresh check per run (run heading -> `pipe.refresh_check` or a file's "sat_refresh").

    `evaluations` (run heading -> evaluation records) names the encoder of the seed model SAT fine-tunes.
    """
    rows = []
    for run, check in checks.items():
        if not check:
            continue
        seed = check.get("seed", "amdim")
        for every, r in sorted(check["runs"].items(), key=lambda kv: int(kv[0])):
            rows.append({"run": run, "library refreshed every": f"{every} iteration(s)",
                         "model": label(f"sat-{seed}"), "encoder": _encoder(evaluations, run, seed),
                         "iterations": check["iterations"], "fine-tuning s": r.get("train_seconds", np.nan),
                         "ACC": _text(r.get("acc")),
                         "DSR small": _text(r.get("dsr_small"), lo=(r.get("dsr_small_ci") or [None])[0],
                                            hi=(r.get("dsr_small_ci") or [None, None])[1]),
                         "robust small": _text(r.get("robust_small"), lo=(r.get("robust_small_ci") or [None])[0],
                                               hi=(r.get("robust_small_ci") or [None, None])[1]),
                         "N": _count(r.get("n_attacked"))})
    return pd.DataFrame(rows).set_index(["run", "library refreshed every"]) if rows else pd.DataFrame()


def refresh_sentence(check: dict | None, run: str) -> str:
    """One sentence: does refreshing the library every R iterations do what refreshing every iteration does?"""
    if not check:
        return f"{run}: no refresh check was run (its profile has none, or it refreshes every iteration already)."
    period = check["refresh_every"]
    parts = []
    for key, name in (("dsr_small", "DSR small"), ("robust_small", "robust accuracy small")):
        lo, hi = check.get(f"{key}_difference_ci") or (np.nan, np.nan)
        inside = "inside" if check.get(f"{key}_within") else "outside"
        parts.append(f"{name} differs by {check[f'{key}_difference']:+.1%} [{lo:+.1%}, {hi:+.1%}] and lies {inside} "
                     "the every-iteration run's 95% interval")
    speed = check.get("speedup")
    faster = f"; it fine-tunes {speed:.1f}x as fast" if speed else ""
    return (f"{run}: refreshing every {period} iterations instead of every one ({check['iterations']} SAT "
            f"iterations each), " + "; ".join(parts) + faster + ".")


# ----------------------------------------------------------------------------- Table 1 beside both runs

TABLE1_ROWS = ("encoder", "epochs", "ACC", "DSR small", "DSR large", "robust small", "robust large",
               "L2 (norm, mean over broken)", "share broken by the L2 attack", "N attacked")


def _same_encoder_sup(res: dict, name: str, space: str) -> str | None:
    """The supervised model of a run on the same encoder as `name` (SUP or a twin "sup-<encoder>"), if any."""
    ev = res["evaluation"][space]
    enc = encoder_of(res, name, space)
    return next((sup for sup in ["sup", *sorted(n for n in ev if n.startswith("sup-"))]
                 if sup in ev and encoder_of(res, sup, space) == enc), None)


def _table1_cells(res: dict, name: str, space: str) -> dict[str, str]:
    """Table 1's cells of one model of one run (text, 95% intervals in brackets)."""
    r = res["evaluation"][space][name]
    epochs = ((res.get("training") or {}).get(name) or {}).get("epochs")
    cells = {"encoder": encoder_of(res, name, space), "epochs": MISSING if epochs is None else str(epochs)}
    for col, key in MEASURES:
        lo, hi = r.get(f"{key}_ci") or (None, None)
        cells[col] = _text(r.get(key), lo=lo, hi=hi)
    cells["L2 (norm, mean over broken)"] = _text(r.get("l2_mean_broken_norm", r.get("l2")), "{:.3f}")
    cells["share broken by the L2 attack"] = _text(r.get("opt_success"), lo=(r.get("opt_success_ci") or [None])[0],
                                                   hi=(r.get("opt_success_ci") or [None, None])[1])
    cells["N attacked"] = _count(r.get("n_attacked"))
    return cells


def _points(a, b) -> str:
    return MISSING if _missing(a) or _missing(b) else f"{(a - b) * 100:+.1f} points"


def table1(runs: Mapping[str, dict | None], space: str = "pixel", dataset: str | None = None) -> pd.DataFrame:
    """Paper Table 1 beside each run, one column each (the paper first), every number naming its encoder.

    Rows: SUP and SSL (AMDIM) (encoder, epochs, ACC, DSR, robust accuracy, L2, N) and their
    difference, SSL (AMDIM) minus the supervised model *on the same encoder* (a run whose SUP runs
    on another encoder, and has no supervised twin of AMDIM's, gets "not compared"). Runs of other
    datasets are left out (the dataset: the first run's of CIFAR-10 or STL-10, unless given). Cells
    are text; paired intervals of the differences are in `satnb.claims`.
    """
    if dataset is None:
        found = [(r.get("dataset") or {}).get("dataset") for r in runs.values() if r is not None]
        dataset = next((d for d in found if d in PAPER_ENCODERS), "cifar10")
    paper = PAPER_TABLE1[PAPER_TABLE1.dataset == dataset].set_index("model")
    diff_rows = ("same encoder?", "ACC", "DSR small", "DSR large", "robust small", "robust large")
    index = [("SUP", q) for q in TABLE1_ROWS] + [("SSL (AMDIM)", q) for q in TABLE1_ROWS] + \
        [("SSL (AMDIM) - SUP", q) for q in diff_rows]
    cols: dict[str, dict] = {}
    name = "CIFAR-10" if dataset == "cifar10" else "STL-10"
    col = {}
    for model, key in (("SUP", "sup"), ("SSL (AMDIM)", "amdim")):
        row = paper.loc[model]
        col.update({(model, "encoder"): PAPER_ENCODERS.get(dataset, MISSING),
                    (model, "epochs"): str(PAPER_EPOCHS[key]),
                    (model, "ACC"): _text(row["ACC"], "{:.2%}"), (model, "DSR small"): _text(row["DSR small"]),
                    (model, "DSR large"): _text(row["DSR large"]), (model, "robust small"): "not reported",
                    (model, "robust large"): "not reported",
                    (model, "L2 (norm, mean over broken)"): _text(row["L2"], "{:.3f}"),
                    (model, "share broken by the L2 attack"): "not reported",
                    (model, "N attacked"): _count(PAPER_N)})
    col[("SSL (AMDIM) - SUP", "same encoder?")] = f"yes ({PAPER_ENCODERS.get(dataset, MISSING)})"
    for q in diff_rows[1:]:
        a, b = (paper.loc[m, q] if q in paper else np.nan for m in ("SSL (AMDIM)", "SUP"))
        col[("SSL (AMDIM) - SUP", q)] = _points(a, b) if q in paper else "not reported"
    cols[f"paper ({name}, N = {_count(PAPER_N)})"] = col
    for heading, res in runs.items():
        if res is None or (res.get("dataset") or {}).get("dataset") != dataset:
            continue
        ev = ((res.get("evaluation") or {}).get(space)) or {}
        col = {}
        if "amdim" in ev:
            col.update({("SSL (AMDIM)", q): v for q, v in _table1_cells(res, "amdim", space).items()})
        sup = _same_encoder_sup(res, "amdim", space) if "amdim" in ev else None
        shown = sup or ("sup" if "sup" in ev else None)
        if shown is not None:
            col.update({("SUP", q): v for q, v in _table1_cells(res, shown, space).items()})
            if shown != "sup":
                col[("SUP", "encoder")] += f" ({label(shown)})"
        if "amdim" in ev and sup is not None:
            a, s = ev["amdim"], ev[sup]
            enc = encoder_of(res, "amdim", space)
            col[("SSL (AMDIM) - SUP", "same encoder?")] = f"yes ({enc})" if enc != MISSING else MISSING
            for q, key in MEASURES:
                col[("SSL (AMDIM) - SUP", q)] = _points(a.get(key, np.nan), s.get(key, np.nan))
        elif "amdim" in ev and "sup" in ev:
            col[("SSL (AMDIM) - SUP", "same encoder?")] = (
                f"no: SUP runs on {encoder_of(res, 'sup', space)}, AMDIM on {encoder_of(res, 'amdim', space)}")
            for q, _ in MEASURES:
                col[("SSL (AMDIM) - SUP", q)] = "not compared (encoders differ)"
        cols[heading] = col
    out = pd.DataFrame({h: [c.get(i, MISSING) for i in index] for h, c in cols.items()},
                       index=pd.MultiIndex.from_tuples(index, names=["model", "row"]))
    return out


def recipe_comparison(profile: str = "quick", dataset: str = "cifar10") -> pd.DataFrame | None:
    """Each method's recipes measured side by side (`scripts/compare_recipes.py`): final kNN accuracy, 95% interval.

    One block per encoder the comparison ran on: the profile's own, and the cpu profile's (`--encoder cpu`,
    the measurement behind the reference run's recipes) when committed. None when neither is committed.
    """
    import json

    try:
        folder = results_dir() / "recipes"
    except FileNotFoundError:
        return None
    rows = []
    for suffix in ("", "-cpu-encoder"):
        path = folder / f"{profile}-{dataset}{suffix}.json"
        if not path.is_file():
            continue
        for r in json.loads(path.read_text())["runs"]:
            st = r["settings"]
            enc = settings_encoder_name(st["encoder"], st.get("encoder_kwargs") or {})
            rows.append({"encoder": enc, "method": label(r["method"]), "recipe": r["recipe"],
                         "chosen": "yes" if r.get("chosen") else "", "epochs": st["epochs"],
                         "kNN accuracy": r["knn_acc"], "kNN accuracy lo": r["knn_acc_ci"][0],
                         "kNN accuracy hi": r["knn_acc_ci"][1]})
    return pd.DataFrame(rows).set_index(["encoder", "method", "recipe"]) if rows else None
