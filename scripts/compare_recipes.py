"""Measure each method's training recipe against the previous one (Adam, constant learning rate) at one profile's scale.

    python scripts/compare_recipes.py --profile quick [--encoder cpu] [--methods amdim,npid,simclr,sup] [--threads 2]
    python scripts/compare_recipes.py --profile cpu --methods amdim --epochs 6 --recipes "adam 2e-3 cosine"

Both recipes train the same encoder for the profile's epochs on the profile's data and seed; the
kNN test accuracy (k and library of the profile) is recorded after each epoch. Writes
results/recipes/<profile>-<dataset>.json (beside, not among, the run files). Every run is cached and resumable.
`--encoder cpu` trains the cpu profile's encoder instead of the profile's own, at the profile's data and epochs
(the measurement behind the cpu profile's recipes): it writes <profile>-<dataset>-cpu-encoder.json.
`--epochs N` trains every recipe for N epochs instead of the profile's (each schedule stretched to N: a short
comparison at the profile's scale); `--recipes` keeps only the named candidates (the previous recipe always runs).
The file is rewritten after every run, so an interrupted comparison keeps what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from satnb.core.checks import parse_threads
from satnb.core.config import CPU_ENCODER, METHODS, TrainSettings, get_profile
from satnb.core.dataset import profile_subset
from satnb.core.datasets import load_dataset
from satnb.core.stats import wilson
from satnb.core.store import Store, provenance
from satnb.experiment.pipeline import Pipeline

PREVIOUS = {"lr": 1e-3, "optimizer": "adam", "schedule": "constant", "warmup_epochs": 0.0, "weight_decay": 0.0,
            "label_smoothing": 0.0}  # the recipe every CPU profile used before (Adam 1e-3, no schedule)


def _r(lr: float, optimizer: str, schedule: str, weight_decay: float = 0.0, label_smoothing: float = 0.0) -> dict:
    return {"lr": lr, "optimizer": optimizer, "schedule": schedule, "warmup_epochs": 1.0,
            "weight_decay": weight_decay, "label_smoothing": label_smoothing}


# the candidates measured against the previous recipe (each with a one-epoch warm-up)
CANDIDATES = {
    "amdim": {"adam 2e-3 cosine": _r(2e-3, "adam", "cosine"), "adam 1e-3 cosine": _r(1e-3, "adam", "cosine")},
    "simclr": {"adam 2e-3 cosine": _r(2e-3, "adam", "cosine"), "adam 1e-3 cosine": _r(1e-3, "adam", "cosine")},
    "npid": {"sgd 0.06 cosine (NPID's own)": _r(0.06, "sgd", "cosine", 5e-4),
             "sgd 0.3 cosine": _r(0.3, "sgd", "cosine", 5e-4), "adam 2e-3 cosine": _r(2e-3, "adam", "cosine"),
             "adam 1e-3 cosine": _r(1e-3, "adam", "cosine")},
    "sup": {"sgd 0.2 one-cycle, label smoothing 0.1": _r(0.2, "sgd", "onecycle", 5e-4, 0.1)},
}


def previous_recipe(settings: TrainSettings) -> TrainSettings:
    """The same encoder, epochs and batch with the previous recipe."""
    return dataclasses.replace(settings, **PREVIOUS)


def main(argv: list[str] | None = None) -> int:
    """Train each method with both recipes and write the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", default=None)
    ap.add_argument("--encoder", default="profile", choices=("profile", "cpu"),
                    help="train the profile's own encoder (default) or the cpu profile's")
    ap.add_argument("--epochs", type=int, default=None, help="train every recipe this many epochs (default: the "
                    "profile's)")
    ap.add_argument("--recipes", default=None, help="comma-separated candidate names to run (default: all)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        ap.error(f"--epochs {args.epochs}: give at least 1 epoch")
    if args.threads:
        torch.set_num_threads(parse_threads(args.threads))
    profile = get_profile(args.profile).replace(curve_every=1)
    suffix = ""
    if args.encoder == "cpu":
        profile = profile.replace(train={m: dataclasses.replace(t, encoder="amdim", encoder_kwargs=dict(CPU_ENCODER))
                                         for m, t in profile.train.items()})
        suffix = "-cpu-encoder"
    if args.epochs is not None:
        profile = profile.replace(train={m: dataclasses.replace(t, epochs=args.epochs)
                                         for m, t in profile.train.items()})
        suffix += f"-{args.epochs}-epochs"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in profile.train]
    if unknown:
        ap.error(f"--methods: unknown {', '.join(unknown)}; use some of {', '.join(profile.train)}")
    wanted = None if args.recipes is None else [r.strip() for r in args.recipes.split(",") if r.strip()]
    known = {name for m in methods for name in CANDIDATES.get(m, {})}
    if wanted is not None and not set(wanted) <= known:
        ap.error(f"--recipes: unknown {', '.join(sorted(set(wanted) - known))} for {', '.join(methods)}; "
                 f"candidates: {'; '.join(sorted(known))}")
    data = profile_subset(load_dataset(profile.dataset, fallback=profile.fallback_to_digits), profile)
    store = Store()
    rows = []
    out = Path(args.out or f"results/recipes/{profile.name}-{data.name}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    for method in methods:
        chosen = profile.train[method]
        runs = {"previous (Adam 1e-3, constant)": previous_recipe(chosen)}
        runs.update({name: dataclasses.replace(chosen, **r) for name, r in CANDIDATES.get(method, {}).items()
                     if wanted is None or name in wanted})
        for name, settings in runs.items():
            t0 = time.perf_counter()
            models = Pipeline(profile.replace(train={**profile.train, method: settings}), data, store, progress=False)
            entry = models.train(method)
            last = entry.history[-1]
            n_test = len(data.y_test)
            ci = wilson(round(last["knn_acc"] * n_test), n_test)
            rows.append({"method": method, "recipe": name, "chosen": settings == chosen,
                         "settings": dataclasses.asdict(settings),
                         "knn_acc": last["knn_acc"], "knn_acc_ci": [ci.lo, ci.hi], "n_test": n_test,
                         "train_seconds": entry.train_seconds,
                         "curve": [{k: h.get(k) for k in ("epoch", "seconds", "knn_acc", "loss")}
                                   for h in entry.history]})
            print(f"{method:7s} {name:40s} kNN acc {last['knn_acc']:.3f} [{ci.lo:.3f}, {ci.hi:.3f}] "
                  f"train {entry.train_seconds:.0f} s ({time.perf_counter() - t0:.0f} s)", flush=True)
            record = {"profile": profile.name, "encoder": args.encoder, "epochs": args.epochs,
                      "dataset": data.describe(), "previous": PREVIOUS, "runs": rows,
                      "rule": "the recipe with the highest final kNN accuracy, the previous one when no candidate's "
                              "interval lies above it",
                      "provenance": provenance(profile=profile.name, dataset=data.describe(), seed=profile.seed,
                                               code_module="satnb.nets.pretrain")}
            out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
