"""Paper Table 1 beside each run: SUP and SSL (AMDIM) and their difference on one encoder, every cell naming it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from satnb.core.identity import ModelId
from satnb.report.cells import MEASURES, count, interval_text, missing, points, text
from satnb.report.claims import seeds
from satnb.report.paper import PAPER_ENCODERS, PAPER_EPOCHS, PAPER_TABLE1
from satnb.report.record import MISSING, encoder_name, evaluation_records, label, model_ids, same_encoder_supervised

PAPER_N = 1000  # the images the paper attacked
TABLE1_ROWS = ("encoder", "epochs", "ACC", "DSR small", "DSR large", "robust small", "robust large",
               "L2 (norm, mean over broken)", "share broken by the L2 attack", "N attacked")
UNREPORTED = ("robust small", "robust large", "share broken by the L2 attack")  # rows the paper has no number for
SUP, AMDIM = ModelId.pretrained("sup"), ModelId.pretrained("amdim")
DIFF = f"{AMDIM.label} - {SUP.label}"  # the rows of their difference


def _cells(res: dict, name: str, space: str, models: Mapping[str, ModelId]) -> dict[str, str]:
    """Table 1's cells of one model of one run (text, 95% intervals in brackets)."""
    r = res["evaluation"][space][name]
    epochs = ((res.get("training") or {}).get(name) or {}).get("epochs")
    cells = {"encoder": encoder_name(res, name, space, models), "epochs": MISSING if epochs is None else str(epochs)}
    cells.update({col: interval_text(r, key) for col, key in MEASURES})
    cells["L2 (norm, mean over broken)"] = text(r.get("l2_mean_broken_norm", r.get("l2")), "{:.3f}")
    cells["share broken by the L2 attack"] = interval_text(r, "opt_success")
    cells["N attacked"] = count(r.get("n_attacked"))
    return cells


def _paper_column(dataset: str) -> dict:
    """The paper's column: its numbers of SUP and SSL (AMDIM) and their differences."""
    paper = PAPER_TABLE1[PAPER_TABLE1.dataset == dataset].set_index("model")
    col = {}
    for model in (SUP, AMDIM):
        row, m = paper.loc[model.label], model.label
        col.update({(m, "encoder"): PAPER_ENCODERS.get(dataset, MISSING), (m, "epochs"): str(PAPER_EPOCHS[model.name]),
                    (m, "ACC"): text(row["ACC"], "{:.2%}"),
                    **{(m, q): text(row[q]) for q in ("DSR small", "DSR large")},
                    **{(m, q): "not reported" for q in UNREPORTED},
                    (m, "L2 (norm, mean over broken)"): text(row["L2"], "{:.3f}"), (m, "N attacked"): count(PAPER_N)})
    col[(DIFF, "same encoder?")] = f"yes ({PAPER_ENCODERS.get(dataset, MISSING)})"
    for q, _ in MEASURES:
        a, b = (paper.loc[m.label, q] if q in paper else np.nan for m in (AMDIM, SUP))
        col[(DIFF, q)] = points(a, b) if q in paper else "not reported"
    return col


def _run_column(res: dict, space: str) -> dict:
    """One run's column: SSL (AMDIM), the supervised model on its encoder (else SUP), and their difference."""
    ids = model_ids(res)
    records = evaluation_records(res, space)
    a = AMDIM.name
    col = {}
    if a in records:
        col.update({(AMDIM.label, q): v for q, v in _cells(res, a, space, ids).items()})
    sup = same_encoder_supervised({n: r["encoder"] for n, r in records.items()}, a, ids)
    shown = sup or (SUP.name if SUP.name in records else None)
    if shown is not None:
        col.update({(SUP.label, q): v for q, v in _cells(res, shown, space, ids).items()})
        if shown != SUP.name:
            col[(SUP.label, "encoder")] += f" ({label(shown, ids)})"
    if a in records and sup is not None:
        col[(DIFF, "same encoder?")] = f"yes ({records[a]['encoder']})"
        for q, key in MEASURES:
            col[(DIFF, q)] = points(records[a].get(key, np.nan), records[sup].get(key, np.nan))
    elif a in records and SUP.name in records:
        col[(DIFF, "same encoder?")] = (f"no: SUP runs on {records[SUP.name]['encoder']}, "
                                        f"AMDIM on {records[a]['encoder']}")
        for q, _ in MEASURES:
            col[(DIFF, q)] = "not compared (encoders differ)"
    return col


def _seeded_names(res: dict, space: str) -> list[tuple[int, str, str]]:
    """(seed, AMDIM's name, SUP's name) of every training seed whose AMDIM and SUP were both evaluated."""
    records = evaluation_records(res, space)
    pairs = [(s, ModelId.pretrained("amdim", seed=s).name, ModelId.pretrained("sup", seed=s).name) for s in seeds(res)]
    return [(s, a, b) for s, a, b in pairs if a in records and b in records]


def _spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """The mean of the seeds' values and their range ("41.2% (40.1% to 42.0%, 3 seeds)")."""
    values = [v for v in values if not missing(v)]
    if not values:
        return MISSING
    return f"{fmt(float(np.mean(values)))} ({fmt(min(values))} to {fmt(max(values))}, {len(values)} seeds)"


def _seeds_column(res: dict, space: str, named: list[tuple[int, str, str]]) -> dict:
    """A run of several seeds' column: each number the mean over the seeds with their range; encoders of seed 0."""
    records = evaluation_records(res, space)
    col = _run_column(res, space)  # seed 0's encoders and epochs; its numbers are replaced below
    pct, pts = "{:.1%}".format, (lambda v: points(v, 0.0))
    for model, at in ((AMDIM, 1), (SUP, 2)):
        names = [row[at] for row in named]
        for q, key in MEASURES:
            col[(model.label, q)] = _spread([records[n].get(key, np.nan) for n in names], pct)
        col[(model.label, "L2 (norm, mean over broken)")] = _spread(
            [records[n].get("l2_mean_broken_norm", records[n].get("l2", np.nan)) for n in names], "{:.3f}".format)
        col[(model.label, "share broken by the L2 attack")] = _spread(
            [records[n].get("opt_success", np.nan) for n in names], pct)
        col[(model.label, "N attacked")] = " / ".join(count(records[n].get("n_attacked")) for n in names) + \
            " (per seed)"
    same = all(records[a].get("encoder") == records[b].get("encoder") for _, a, b in named)
    if same:
        for q, key in MEASURES:
            col[(DIFF, q)] = _spread([records[a].get(key, np.nan) - records[b].get(key, np.nan)
                                      for _, a, b in named], pts)
    col[(DIFF, "seeds")] = ", ".join(str(s) for s, _, _ in named) + " (differences taken within each seed)"
    return col


def table1(runs: Mapping[str, dict | None], space: str = "pixel", dataset: str | None = None) -> pd.DataFrame:
    """Paper Table 1 beside each run, one column each (the paper first), every number naming its encoder.

    Rows: SUP and SSL (AMDIM) (encoder, epochs, ACC, DSR, robust accuracy, L2, N) and their
    difference, SSL (AMDIM) minus the supervised model *on the same encoder* (`record.same_encoder_supervised`:
    a run whose SUP runs on another encoder, and has no supervised twin of AMDIM's, gets "not compared").
    Runs of other datasets are left out (the dataset: the first run's of CIFAR-10 or STL-10, unless
    given). A run of several training seeds shows each number as the mean over its seeds with their range
    (its column named "..., mean over seeds", a row naming the seeds). Cells are text; paired intervals of the
    differences are in `satnb.report.claims`.
    """
    if dataset is None:
        found = [(r.get("dataset") or {}).get("dataset") for r in runs.values() if r is not None]
        dataset = next((d for d in found if d in PAPER_ENCODERS), "cifar10")
    index = [(SUP.label, q) for q in TABLE1_ROWS] + [(AMDIM.label, q) for q in TABLE1_ROWS] + \
        [(DIFF, q) for q in ("same encoder?", *(c for c, _ in MEASURES))]
    name = "CIFAR-10" if dataset == "cifar10" else "STL-10"
    cols = {f"paper ({name}, N = {count(PAPER_N)})": _paper_column(dataset)}
    for heading, res in runs.items():
        if res is not None and (res.get("dataset") or {}).get("dataset") == dataset:
            named = _seeded_names(res, space)
            if len(named) > 1:
                cols[f"{heading}, mean over seeds"] = _seeds_column(res, space, named)
                if (DIFF, "seeds") not in index:
                    index.append((DIFF, "seeds"))
            else:
                cols[heading] = _run_column(res, space)
    return pd.DataFrame({h: [c.get(i, MISSING) for i in index] for h, c in cols.items()},
                        index=pd.MultiIndex.from_tuples(index, names=["model", "row"]))
