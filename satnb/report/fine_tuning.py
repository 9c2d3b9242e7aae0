"""SAT and the supervised defences across runs: fine-tuning cost, clean-accuracy trends, the refresh check, SAT's MI."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from satnb.core import stats
from satnb.core.identity import ModelId
from satnb.report.cells import by_model, count, interval_text, run_encoder, text
from satnb.report.record import label

TREND_RULE = ("clean accuracy has stopped falling when the last epoch changes it by less than the half-width of the "
              "95% interval of the last epoch's accuracy (Wilson, over the test images); it is still falling when "
              "it drops by at least that much")


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
    rows = [{"model": label(m), "run": run, "encoder": run_encoder(evaluations, run, m),
             **accuracy_trend(traj, n_test.get(run, 0), unit)}
            for run, trajs in runs.items() for m, traj in trajs.items()]
    return by_model(pd.DataFrame(rows)) if rows else pd.DataFrame()


def trajectory_frame(runs: Mapping[str, Mapping[str, Sequence[dict]]], unit: str = "epoch") -> pd.DataFrame:
    """Clean accuracy along each fine-tuning trajectory, long form (run, model, <unit>, ACC)."""
    rows = [{"run": run, "model": label(m), unit: r[unit], "ACC": r["acc"]}
            for run, trajs in runs.items() for m, traj in trajs.items() for r in traj
            if r.get("acc") is not None and unit in r]
    return pd.DataFrame(rows, columns=["run", "model", unit, "ACC"])


def refresh_table(checks: Mapping[str, dict | None],
                  evaluations: Mapping[str, Mapping[str, dict]] | None = None) -> pd.DataFrame:
    """SAT's library refresh check per run (run heading -> `Studies.refresh_check` or a file's "sat_refresh").

    `evaluations` (run heading -> evaluation records) names the encoder of the seed model SAT fine-tunes.
    """
    rows = []
    for run, check in checks.items():
        if not check:
            continue
        seed = check.get("seed", "amdim")
        for every, r in sorted(check["runs"].items(), key=lambda kv: int(kv[0])):
            rows.append({"run": run, "library refreshed every": f"{every} iteration(s)",
                         "model": ModelId.sat(seed).label, "encoder": run_encoder(evaluations, run, seed),
                         "iterations": check["iterations"], "fine-tuning s": r.get("train_seconds", np.nan),
                         "ACC": text(r.get("acc")), "DSR small": interval_text(r, "dsr_small"),
                         "robust small": interval_text(r, "robust_small"), "N": count(r.get("n_attacked"))})
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


def fine_tuning_table(runs: Mapping[str, Mapping[str, dict]],
                      evaluations: Mapping[str, Mapping[str, dict]] | None = None) -> pd.DataFrame:
    """Fine-tuning cost per model and run (run heading -> name -> fine-tuning record), with each model's encoder.

    The encoder is the record's own ("encoder", as `record.fine_tuning_records` adds it), else `evaluations`'.
    """
    rows = [{"model": label(name), "run": run, "encoder": r.get("encoder") or run_encoder(evaluations, run, name),
             "updates": r.get("n_updates"),
             "fine-tuning s": r.get("train_seconds", np.nan), "s / update": r.get("seconds_per_update", np.nan)}
            for run, recs in runs.items() for name, r in recs.items()]
    return by_model(pd.DataFrame(rows)) if rows else pd.DataFrame()


def mi_along_sat(trajectories: Mapping[str, Sequence[dict]], batch: Mapping[str, int],
                 evaluations: Mapping[str, Mapping[str, dict]] | None = None,
                 name: str = ModelId.sat("amdim").name) -> pd.DataFrame:
    """SAT's InfoNCE estimate on its training batches (run heading -> trajectory) against its ceiling log(batch).

    `evaluations` (run heading -> evaluation records) names the encoder of `name` (the SAT model) in each run.
    """
    rows = []
    for run, traj in trajectories.items():
        points = [r for r in traj if r.get("mi_estimate") is not None]
        b = batch.get(run)
        ceiling = math.log(b) if b else np.nan
        last = points[-1]["mi_estimate"] if points else np.nan
        rows.append({"run": run, "encoder": run_encoder(evaluations, run, name), "SAT batch": b,
                     "ceiling log(batch) (nats)": ceiling,
                     "iterations": points[-1].get("iteration") if points else None,
                     "MI estimate, first point (nats)": points[0]["mi_estimate"] if points else np.nan,
                     "MI estimate, last point (nats)": last,
                     "last / ceiling": last / ceiling if points and b else np.nan})
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()
