"""SAT vs the supervised baselines MAT and ALP: time per update and for a fixed number of updates.

Same encoder (the quick profile's SmallConvNet (32, 64, 128, 256); wrapped in satnb.models.Classifier
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
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import figure, interleave, log, main, ratio, record

BATCH = 100


def run(args) -> dict:
    from satnb.adversarial import adversarial_train, sat
    from satnb.config import AttackSettings, SATSettings
    from satnb.data import load_digits
    from satnb.models import Classifier, SmallConvNet
    from satnb.store import Store

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
        return adversarial_train(classifier(), method, images, labels, attack, epochs=1, batch_size=BATCH,
                                 store=store(), progress=False)

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
    settings = {"encoder": "SmallConvNet(32, 64, 128, 256)", "data": f"digits train[:{n}] (32x32x3)",
                "batch": BATCH, "updates": updates, "k": k, "m": m, "attack": [attack.eps, attack.step, attack.steps],
                "sat_objective": "heads", "repeats": repeats, "threads": args.threads}
    return record("sat", "SAT vs MAT vs ALP: time per update", settings, figures, ratios,
                  time.perf_counter() - t_start, checks,
                  notes="total = the whole sat()/adversarial_train() call (model copy, store writes included); "
                        "phase split from the runs' own history (wall clock)")


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
