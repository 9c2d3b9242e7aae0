"""The gradient kNN attack's cost against its compute floor: K forward + backward passes of the same encoder.

``KNNGradientAttack(steps=K, m=300)`` on a batch of 32x32 images must do, at the least, K forward and
backward passes of the encoder (gradient with respect to the images). Everything else is overhead:
the clean forward pass that picks the guide groups, the per-class guide search in the kNN library,
the guide means, the random start and the projections. The benchmark times the attack and that floor
side by side (interleaved, medians) for the quick profile's SmallConvNet (32, 64, 128, 256) and a
small AMDIM encoder (ndf=32, n_rkhs=128, n_depth=1), against a kNN library of the model's features
of a few thousand images, and also runs the attack with satnb.knn.classifier's search as it was before the
kernel fix (faiss' per-query kernel for mid-size query batches) to show before/after. A cProfile of
one attack shows where the time goes.

Target: attack time <= 1.2x the floor, for every encoder.
"""

from __future__ import annotations

import time

import torch
from _attack_common import batch, encoder, faiss_default_kernel, floor_passes, library, profile
from _common import figure, interleave, log, main, ratio, record, timer

TARGET = 1.2


def components(model, knn, x, y, m: int, reps: int = 3) -> dict[str, float]:
    """Median seconds of the attack's pieces besides the K passes: clean pass, guide groups, guide means."""
    from satnb.knn.classifier import guide_groups, guide_means

    with torch.no_grad():
        clean = model.features(x)
    idx = guide_groups(knn, clean, y, m=m)
    out = {}
    pieces = {
        "clean forward pass": lambda: model.features(x),
        "guide groups (kNN search)": lambda: guide_groups(knn, clean, y, m=m),
        "guide means": lambda: guide_means(knn, idx),
    }
    with torch.no_grad():
        for name, fn in pieces.items():
            fn()
            samples = []
            for _ in range(reps):
                with timer() as s:
                    fn()
                samples.append(s.value)
            out[name] = sorted(samples)[len(samples) // 2]
    return out


def one_encoder(name: str, n_lib: int, n_batch: int, steps: int, m: int, repeats: int,
                figures: list, ratios: list, checks: dict) -> None:
    """Attack vs floor (and before/after) for one encoder; cProfile of one attack."""
    from satnb.attacks import KNNGradientAttack

    model = encoder(name)
    knn = library(model, n_lib)
    x, y = batch(n_batch)
    atk = KNNGradientAttack(model, knn, eps=0.03, step=0.005, steps=steps, m=m, seed=0)

    def attack_before():
        with faiss_default_kernel():
            return atk(x, y)

    variants = {"floor": lambda: floor_passes(model, x, steps), "attack": lambda: atk(x, y),
                "attack_before": attack_before}
    times = interleave(variants, repeats)
    log(f"[attack] {name}: " + ", ".join(f"{n} {t.value:.2f} s" for n, t in times.items()))
    floor = times["floor"].value
    case = f"{name}, batch {n_batch}, K={steps}"
    figures += [figure(f"floor: {steps} forward+backward, {case}", times["floor"]),
                figure(f"KNNGradientAttack, {case}", times["attack"]),
                figure(f"KNNGradientAttack before the kNN kernel fix, {case}", times["attack_before"])]
    ratios.append(ratio(f"attack / floor, {name}", times["attack"].value / floor, "<=", TARGET,
                        "the attack costs at most 20% more than its K forward+backward passes"))
    ratios.append(ratio(f"attack before fix / floor, {name}", times["attack_before"].value / floor,
                        note="the same attack with faiss' default kernel choice (before)"))
    parts = components(model, knn, x, y, m)
    for part, sec in parts.items():
        figures.append(figure(f"  of which {part}, {name}", sec, "s", note=f"{100 * sec / floor:.1f}% of the floor"))
    top, text = profile(lambda: atk(x, y))
    log(text)
    checks[name] = {"profile_top": top, "overhead_share_of_floor": {p: round(s / floor, 4) for p, s in parts.items()},
                    "before_after_identical_images": bool(torch.equal(atk(x, y), attack_before()))}


def run(args) -> dict:
    t_start = time.perf_counter()
    quick = args.quick
    names = ("convnet",) if quick else ("convnet", "amdim")
    n_lib, n_batch, steps, m = (2000, 64, 5, 100) if quick else (5000, 128, 10, 300)
    repeats = args.repeats or (2 if quick else 5)  # the attack and its floor differ by ~10%: more samples
    figures, ratios, checks = [], [], {}
    for name in names:
        one_encoder(name, n_lib, n_batch, steps, m, repeats, figures, ratios, checks)
    settings = {"encoders": list(names), "library": n_lib, "batch": n_batch, "steps": steps, "m": m,
                "eps": 0.03, "step": 0.005, "k": 75, "repeats": repeats, "threads": args.threads}
    return record("attack", "Gradient kNN attack vs its floor (K forward+backward passes)", settings, figures,
                  ratios, time.perf_counter() - t_start, checks,
                  notes="floor = K forward+backward passes of model.features w.r.t. the images, eval mode")


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
