"""The committed reference run beside this build: which run it is, whether it is current, its numbers beside ours.

Every number names the run, profile, N and encoder it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from satnb.report.cells import MEASURES, attacked, count, measure_columns, run_encoder, text, with_intervals
from satnb.report.record import MISSING, evaluation_records, label, load_results, results_dir, staleness
from satnb.report.tables import zoo_table

REFERENCE_PROFILE = "cpu"  # the committed reference run: the cpu profile on all of CIFAR-10


def _first(records: Mapping[str, dict], key: str):
    """A number every record of a run shares (test images): the first record's."""
    return next((r.get(key) for r in records.values() if isinstance(r, dict) and r.get(key) is not None), None)


def run_heading(what: str, profile: str, records: Mapping[str, dict], note: str = "",
                n_test: int | None = None) -> str:
    """A heading naming a run, its profile, test images and N: "this build (quick, 1,000 test images, N = 200)".

    Test images and N come from the run's evaluation records; `n_test` stands in when there are none.
    """
    n_test, n = _first(records, "n_test") or n_test, attacked(records)
    parts = [profile] + ([f"{count(n_test)} test images"] if n_test is not None else []) + \
        ([f"N = {n}"] if n != "?" else []) + ([note] if note else [])
    return f"{what} ({', '.join(parts)})"


@dataclass(frozen=True)
class ReferenceRun:
    """The committed reference run (results/cpu-<dataset>.json): its record when readable, and whether it is current."""

    file: str  # the file name inside results/
    res: dict | None  # None when the file is absent or unreadable
    stale: dict[str, str] = field(default_factory=dict)  # `record.staleness`: {stage: why}; empty when current
    problem: str = ""  # why res is None: "absent..." or what made it unreadable

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
        what = (f"{where}: profile {self.res['profile']}, {count(ds.get('n_train'))} training / "
                f"{count(ds.get('n_test'))} test images of {ds.get('dataset', '?')}, "
                f"N = {attacked(self.evaluation())}")
        if not self.stale:
            return f"The reference run ({what}) is current: every stage was made by the code at HEAD."
        why = "; ".join(f"{stage}: {reason}" for stage, reason in self.stale.items())
        return (f"The reference run ({what}) is stale ({why}): its numbers come from older code and show the scale "
                f"only, until it is regenerated with `python -m satnb run --profile {self.res['profile']}`.")


def reference_run(dataset: str = "cifar10", directory: Path | str | None = None,
                  runs: Mapping[str, dict] | None = None) -> ReferenceRun:
    """The committed reference run of a dataset (`results/cpu-<dataset>.json`), never raising when it is absent or old.

    `runs` (e.g. `record.committed_results()`) supplies records already read; otherwise the file is
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
                         **measure_columns(r, measures), "test images": r.get("n_test", np.nan),
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
        out[c] = [count(v) for v in table[c]]
    out.insert(0, "encoder", table["encoder"])
    return out


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
            row = {"model": label(name), "run": run, "encoder": run_encoder(evaluations, run, name)}
            for _, r in t.iterrows():
                for measure in ("robust", "DSR"):
                    row[f"{measure} {r['setting']}"] = text(r[measure], lo=r[f"{measure} lo"], hi=r[f"{measure} hi"])
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "run"]).fillna(MISSING) if rows else pd.DataFrame()
