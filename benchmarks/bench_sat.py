"""SAT vs the supervised baselines MAT and ALP: time per update and for a fixed number of updates.

Same encoder (the quick profile's SmallConvNet (32, 64, 128, 256); wrapped in satnb.nets.models.Classifier
for MAT and ALP, bare for SAT with the paper's critic heads), same data (scikit-learn's digits,
upscaled to 32x32x3), batch size 100, the paper's small attack (eps 0.03, step 0.005, 10 steps), same
machine and process. One run = U optimiser updates: one baseline epoch over the training images
(U = images // 100) and U SAT iterations whose kNN library is the same images, rebuilt every
iteration (refresh_every=1, the authors' setting) or every 10 (the CPU profiles). Every run gets a
fresh artifact store in a temporary folder, so nothing is cached between runs.

Per update, SAT does a library refresh (a forward pass over the library, every refresh_every
iterations), the kNN gradient attack (a clean pass, the guide search and 10 forward+backward passes)
and one update on the clean + adversarial batch; MAT and ALP do PGD (10 forward+backward passes) and
one update on the clean + adversarial batch. No target (informational): the ratios say what SAT costs
relative to the supervised methods it is compared with.

Time to the reported points: the paper compares training budgets, not single updates (a few hundred
SAT iterations against full supervised adversarial training). From the measured per-update costs the
benchmark projects each method's time to the point the book reports under each profile's schedule
(SAT iterations and refresh period, library size, baseline epochs): see `to_reported_points`.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import figure, interleave, log, main, ratio, record

BATCH = 100


def to_reported_points(per: dict[str, float], bench_library: int) -> tuple[dict, dict]:
    """Each method's time to the point the book reports, per profile schedule, from the measured per-update costs.

    A SAT update costs a (attack + update) plus, every refresh_every iterations, a library refresh r that
    grows with the library: with refresh 1, t1 = a + r; with refresh 10, t10 = a + r / 10. A baseline
    update costs what MAT / ALP measured. Each profile's schedule: SAT `sat.iterations` updates; the
    baselines `baselines.epochs` epochs over the profile's training images in batches of `baselines.batch_size`.
    """
    from satnb.core.config import PROFILES

    refresh = (per["SAT (refresh 1)"] - per["SAT (refresh 10)"]) / 0.9
    attack = per["SAT (refresh 1)"] - refresh
    figures, ratios, out = [], [], {"refresh_s_per_library_image": refresh / bench_library,
                                    "sat_attack_and_update_s": attack}
    for name in ("quick", "cpu", "paper"):
        p = PROFILES[name]
        n_train = p.n_train or 50_000
        n_lib = p.n_library or n_train
        sat_s = p.sat.iterations * attack + math.ceil(p.sat.iterations / p.sat.refresh_every) * refresh * (
            n_lib / bench_library)
        base_updates = p.baselines.epochs * (n_train // p.baselines.batch_size)
        row = {"sat_updates": p.sat.iterations, "refresh_every": p.sat.refresh_every, "library": n_lib,
               "baseline_updates": base_updates, "SAT_s": sat_s}
        figures.append(figure(f"{name} schedule: SAT ({p.sat.iterations} iterations, refresh every "
                              f"{p.sat.refresh_every}, {n_lib} library images), projected", sat_s,
                              note="measured per-update costs x the profile's schedule"))
        for b in ("MAT", "ALP"):
            base_s = base_updates * per[b]
            row[f"{b}_s"] = base_s
            ratios.append(ratio(f"{name} schedule: SAT / {b} time to the reported point (projected)", sat_s / base_s,
                                note=f"{b}: {p.baselines.epochs} epoch(s) = {base_updates} updates; same encoder "
                                     "and machine (informational)"))
        out[name] = row
    return {"figures": figures, "ratios": ratios}, out


def run(args) -> dict:
    from satnb.core.config import AttackSettings, BaselineSettings, SATSettings
    from satnb.core.datasets import load_digits
    from satnb.core.store import Store
    from satnb.defences import adversarial_train, sat
    from satnb.nets.convnets import SmallConvNet
    from satnb.nets.models import Classifier

    t_start = time.perf_counter()
    quick = args.quick
    data = load_digits()
    n = 500 if quick else (len(data.x_train) // BATCH) * BATCH
    x, y = data.x_train[:n], data.y_train[:n]
    updates = n // BATCH
    k, m = (25, 30) if quick else (75, 100)
    repeats = args.repeats or (2 if quick else 3)
    attack = AttackSettings(0.03, 0.005, 10)
    tmp_root = Path(tempfile.mkdtemp(prefix="satnb-bench-sat-"))
    counter = [0]

    def store() -> Store:
        counter[0] += 1
        return Store(tmp_root / f"run{counter[0]}")

    def encoder() -> torch.nn.Module:
        torch.manual_seed(0)
        return SmallConvNet((32, 64, 128, 256))

    def classifier() -> Classifier:
        torch.manual_seed(0)
        return Classifier(SmallConvNet((32, 64, 128, 256)), 10)

    def run_sat(refresh: int, iterations: int = updates):
        settings = SATSettings(iterations=iterations, batch_size=BATCH, refresh_every=refresh, eval_every=iterations)
        return sat(encoder(), x, y, settings, attack, k=k, m=m, store=store(), progress=False, n_classes=10)

    def run_baseline(method: str, images=x, labels=y):
        return adversarial_train(classifier(), method, images, labels, attack,
                                 BaselineSettings(epochs=1, batch_size=BATCH), store=store(), progress=False)

    variants = {"SAT (refresh 1)": lambda: run_sat(1), "SAT (refresh 10)": lambda: run_sat(10),
                "MAT": lambda: run_baseline("mat"), "ALP": lambda: run_baseline("alp")}
    # warm-up: one update of each (allocations, first-call costs), untimed
    run_sat(1, 1)
    run_baseline("mat", x[:BATCH], y[:BATCH])
    results: dict[str, list] = {name: [] for name in variants}
    try:
        times = interleave(variants, repeats, warmup=False, after=lambda name, r: results[name].append(r))
    finally:
        import shutil

        shutil.rmtree(tmp_root, ignore_errors=True)
    log("[sat] " + ", ".join(f"{name} {t.value:.1f} s" for name, t in times.items()))
    figures, checks = [], {}
    for name, t in times.items():
        n_updates = results[name][-1].n_updates
        assert n_updates == updates, (name, n_updates, updates)
        figures.append(figure(f"{name}: {updates} updates, total", t))
        figures.append(figure(f"{name}: per update", t.scaled(1 / updates)))
        phases = {}
        for key in ("refresh_seconds", "attack_seconds", "update_seconds"):
            vals = [sum(row.get(key) or 0.0 for row in r.history) / updates for r in results[name]]
            if any(vals):
                phases[key.replace("_seconds", "")] = round(float(np.median(vals)), 4)
        checks[name] = {"phase_seconds_per_update_wall": phases, "n_updates": n_updates}
    per = {name: t.value for name, t in times.items()}
    ratios = []
    for s in ("SAT (refresh 1)", "SAT (refresh 10)"):
        for b in ("MAT", "ALP"):
            ratios.append(ratio(f"{s} / {b} time per update", per[s] / per[b],
                                note="informational: SAT's cost relative to the supervised baseline"))
    projected, checks["projection"] = to_reported_points({k: v / updates for k, v in per.items()}, n)
    figures += projected["figures"]
    ratios += projected["ratios"]
    settings = {"encoder": "SmallConvNet(32, 64, 128, 256)", "data": f"digits train[:{n}] (32x32x3)",
                "batch": BATCH, "updates": updates, "k": k, "m": m, "attack": [attack.eps, attack.step, attack.steps],
                "sat_objective": "heads", "repeats": repeats, "threads": args.threads}
    return record("sat", "SAT vs MAT vs ALP: time per update", settings, figures, ratios,
                  time.perf_counter() - t_start, checks,
                  notes="total = the whole sat()/adversarial_train() call (model copy, store writes included); "
                        "phase split from the runs' own history (wall clock)")


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
