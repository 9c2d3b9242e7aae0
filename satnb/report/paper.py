"""The paper's published numbers: Table 1 and the points read from its Figs. 2-4 (one place; notebooks read them)."""

from __future__ import annotations

import pandas as pd

# Table 1 of the paper: kNN (k = 75) on AMDIM features vs the supervised encoder, N = 1000 attacked images.
PAPER_TABLE1 = pd.DataFrame([
    {"dataset": "cifar10", "model": "SUP", "ACC": 0.9202, "DSR small": 0.187, "DSR large": 0.154, "L2": 0.378},
    {"dataset": "cifar10", "model": "SSL (AMDIM)", "ACC": 0.8464, "DSR small": 0.519, "DSR large": 0.277,
     "L2": 0.667},
    {"dataset": "stl10", "model": "SUP", "ACC": 0.7541, "DSR small": 0.242, "DSR large": 0.163, "L2": 0.970},
    {"dataset": "stl10", "model": "SSL (AMDIM)", "ACC": 0.8613, "DSR small": 0.549, "DSR large": 0.447,
     "L2": 1.591},
])

# (clean ACC, DSR) read from the paper's Figs. 2-4, CIFAR-10, AMDIM seed unless named; "start"/"end" are
# the first and last points of a SAT trajectory, whose seed model is "sat_seed".
PAPER_POINTS = pd.DataFrame([
    {"model": "SSL (AMDIM)", "setting": "small", "ACC": 0.846, "DSR": 0.52},
    {"model": "SSL (AMDIM)", "setting": "large", "ACC": 0.846, "DSR": 0.277},
    {"model": "SAT (AMDIM) start", "sat_seed": "amdim", "setting": "small", "ACC": 0.835, "DSR": 0.62},
    {"model": "SAT (AMDIM) end", "sat_seed": "amdim", "setting": "small", "ACC": 0.745, "DSR": 0.87},
    {"model": "SAT (AMDIM) start", "sat_seed": "amdim", "setting": "large", "ACC": 0.835, "DSR": 0.39},
    {"model": "SAT (AMDIM) end", "sat_seed": "amdim", "setting": "large", "ACC": 0.745, "DSR": 0.72},
    {"model": "SUP", "setting": "small", "ACC": 0.92, "DSR": 0.19},
    {"model": "MAT", "setting": "small", "ACC": 0.885, "DSR": 0.565},
    {"model": "MAT", "setting": "large", "ACC": 0.885, "DSR": 0.365},
    {"model": "AT", "setting": "small", "ACC": 0.70, "DSR": 0.92},
    {"model": "AT", "setting": "large", "ACC": 0.70, "DSR": 0.775},
    {"model": "ALP", "setting": "small", "ACC": 0.86, "DSR": 0.71},
    {"model": "ALP", "setting": "large", "ACC": 0.815, "DSR": 0.71},
    {"model": "SAT (NPID) start", "sat_seed": "npid", "setting": "small", "ACC": 0.787, "DSR": 0.12},
    {"model": "SAT (NPID) end", "sat_seed": "npid", "setting": "small", "ACC": 0.735, "DSR": 0.65},
])


def paper_value(model: str, column: str, dataset: str = "cifar10") -> float:
    """One number of Table 1, e.g. paper_value("SUP", "ACC") -> 0.9202 (models: "SUP", "SSL (AMDIM)")."""
    rows = PAPER_TABLE1[(PAPER_TABLE1.dataset == dataset) & (PAPER_TABLE1.model == model)]
    if rows.empty or column not in rows:
        raise KeyError(f"Table 1 has no {column!r} for {model!r} on {dataset}; models: SUP, SSL (AMDIM); "
                       "columns: ACC, DSR small, DSR large, L2")
    return float(rows[column].iloc[0])

# Table 1's encoders (Sec. 4.2) and epochs
PAPER_ENCODERS = {"cifar10": "AMDIM ndf 128 rkhs 128 depth 3", "stl10": "AMDIM ndf 128 rkhs 1024 depth 8"}
PAPER_EPOCHS = {"sup": 400, "amdim": 300}
