"""The pretrained models of each run side by side: encoder, epochs, minutes, final kNN accuracy, kNN curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from satnb.core import stats
from satnb.report.cells import by_model
from satnb.report.record import encoder_name, label, model_ids


def training_records(res: dict, acc: Mapping[str, float] | None = None, space: str = "pixel") -> dict[str, dict]:
    """Per pretrained model of a results record: encoder, epochs, training minutes, final kNN accuracy (95% interval).

    The final accuracy is `acc[model]` when given, else the evaluation's, else the last point of the
    kNN-accuracy curve; its interval is Wilson's over the run's test images.
    """
    ev = ((res.get("evaluation") or {}).get(space)) or {}
    n_test = (res.get("dataset") or {}).get("n_test")
    ids = model_ids(res)
    out = {}
    for m, t in (res.get("training") or {}).items():
        curve = [row for row in t.get("curve") or [] if row.get("knn_acc") is not None]
        value = (acc or {}).get(m)
        if value is None:
            value = (ev.get(m) or {}).get("acc", curve[-1]["knn_acc"] if curve else None)
        ci = stats.wilson(round(value * n_test), n_test) if value is not None and n_test else None
        out[m] = {"encoder": encoder_name(res, m, space, ids), "epochs": t.get("epochs"),
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
    return by_model(pd.DataFrame(rows))


def curve_frame(runs: Mapping[str, Mapping[str, Sequence[dict]]]) -> pd.DataFrame:
    """kNN accuracy against epoch and training minutes, long form (run, model, epoch, minutes, kNN accuracy).

    `runs` maps a run heading to each model's per-epoch history (`pipe.entry(m).history` or a results
    file's curve, `record.result_curves`); minutes are the training seconds up to and including that
    epoch. Epochs without a kNN accuracy are left out; an empty frame means no run recorded a curve.
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
