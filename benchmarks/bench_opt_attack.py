"""The optimisation kNN attack's time per image at the paper's settings, and against its own compute floor.

``KNNOptimizationAttack`` (paper eq. 1, Carlini-Wagner style) runs a binary search over the constant c
(10 steps in the paper) and, for each c, 100 Adam steps; every step is a forward + backward pass of
the encoder plus a kNN prediction (is the image already misclassified?). Its floor is
binary_steps x steps forward + backward passes of the same encoder on the same batch; the rest is
the kNN check per step, one scoring pass per binary step, the guide groups and the bookkeeping.
The paper's settings are slow on a CPU, so the benchmark attacks a small batch with them and
reports the time per image; the attack also runs with satnb.knn.classifier's search as it was before the
kernel fix (faiss' per-query kernel for a batch of this size) to show before/after.

No target (informational): the time per image tells how long a profile's n_attack_opt images take.
"""

from __future__ import annotations

import time

from _attack_common import batch, encoder, faiss_default_kernel, floor_passes, library, profile
from _common import figure, interleave, log, main, ratio, record


def run(args) -> dict:
    from satnb.attacks import KNNOptimizationAttack

    t_start = time.perf_counter()
    quick = args.quick
    n_lib, n_batch, m = (2000, 20, 100) if quick else (5000, 20, 300)
    binary_steps, steps = (2, 20) if quick else (10, 100)
    repeats = args.repeats or (2 if quick else 3)
    name = "convnet"
    model = encoder(name)
    knn = library(model, n_lib)
    x, y = batch(n_batch)

    def attack(b=binary_steps, s=steps):
        return KNNOptimizationAttack(model, knn, m=m, binary_search_steps=b, steps=s).run(x, y)

    def attack_before(b=binary_steps, s=steps):
        with faiss_default_kernel():
            return attack(b, s)

    attack(1, 2)  # warm up (allocations, faiss class indices); the timed runs are long, so no full warm-up
    floor_passes(model, x, 2)
    results = {}
    times = interleave({"floor": lambda: floor_passes(model, x, binary_steps * steps), "attack": attack},
                       repeats, warmup=False, after=lambda n, r: results.__setitem__(n, r))
    # before/after the kNN kernel fix on one binary step (the full search would double the run time)
    fix = interleave({"now": lambda: attack(1, steps), "before": lambda: attack_before(1, steps)}, repeats,
                     warmup=False, after=lambda n, r: results.__setitem__(n, r))
    log("[opt_attack] " + ", ".join(f"{n} {t.value:.1f} s" for n, t in {**times, **fix}.items()))
    case = f"{name}, batch {n_batch}, {binary_steps}x{steps} steps"
    per_image = times["attack"].scaled(1 / n_batch)
    figures = [figure(f"KNNOptimizationAttack per image, {case}", per_image,
                      note=f"1000 images (the paper's N) ~ {1000 * per_image.value / 3600:.2f} h on this machine"),
               figure(f"KNNOptimizationAttack per batch, {case}", times["attack"]),
               figure(f"floor: {binary_steps * steps} forward+backward, {case}", times["floor"]),
               figure(f"one binary step ({steps} Adam steps), batch {n_batch}", fix["now"]),
               figure("same, before the kNN kernel fix", fix["before"])]
    floor = times["floor"].value
    ratios = [ratio(f"opt attack / floor, {name}", times["attack"].value / floor,
                    note="informational: kNN check per step, scoring passes, bookkeeping"),
              ratio(f"before / now, one binary step, {name}", fix["before"].value / fix["now"].value,
                    note="faiss' default kernel for the per-step kNN check (before) vs now")]
    top, text = profile(lambda: attack(1, steps))
    log(text)
    res, now, before = results["attack"], results["now"], results["before"]
    checks = {"profile_top_one_binary_step": top, "success": res.n_success, "mean_l2": res.mean_l2,
              "before_after_same_success": bool((now.success == before.success).all())}
    settings = {"encoder": name, "library": n_lib, "batch": n_batch, "m": m, "binary_search_steps": binary_steps,
                "steps": steps, "lr": 1e-2, "initial_const": 1e-2, "repeats": repeats, "threads": args.threads}
    return record("opt_attack", "Optimisation kNN attack: time per image and vs its floor", settings, figures,
                  ratios, time.perf_counter() - t_start, checks)


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
