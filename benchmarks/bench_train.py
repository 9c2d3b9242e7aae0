"""Training throughput per method, fp32 against bf16, and how much of the machine's matrix-multiply peak it uses.

For each method of the `cpu` profile (AMDIM, NPID, SimCLR, SUP, all on the profile's AMDIM encoder) and
for SUP on the small convnet (the `cpu` SUP recipe with `TrainSettings.encoder = "convnet"`), the
benchmark times real training steps as `satnb.nets.pretrain.train` takes them: the uint8 batch made float
(`pretrain.batch_images`), the method's objective including its augmentation, the backward pass and
the optimiser step, the model in channels_last, a batch of the profile's size (256) of random uint8
CIFAR-shaped images (NPID's memory bank has 50 000 rows, CIFAR-10's training set). Each configuration
is trained in fp32 and in bf16 (`satnb.core.precision.set_precision`), one model
and optimiser per precision, interleaved side by side after a warm-up step; the figure is the median
over the repetitions.

**Targets: bf16 at least 1.6x the images/s of fp32** for SUP on the convnet and for SUP on the AMDIM
encoder; the other methods' ratios are informational. The peak is the best GFLOP/s of large square
`torch.matmul` in bfloat16 (and float32) on the same threads; a training step's FLOPs (forward and
backward, counted once with `torch.utils.flop_counter.FlopCounterMode`) over its median time give the
GFLOP/s it achieves, reported as a share of that peak. Time to accuracy is `bench_tta.py`'s (measured).
The figures are meant at 2 threads (`--threads 2`).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from _common import (
    CLOCK,
    NotMeasurableHere,
    Samples,
    figure,
    flops_of,
    interleave,
    log,
    main,
    median,
    ratio,
    record,
    spread,
)

BATCH = 256
BANK = 50_000  # NPID's memory bank: one row per CIFAR-10 training image
TARGET = 1.6
PRECISIONS = ("fp32", "bf16")
NAMES = {"amdim": "AMDIM", "npid": "NPID", "simclr": "SimCLR", "sup": "SUP"}


def configurations() -> list[tuple[str, str, object]]:
    """(key, method, settings): the `cpu` profile's four methods and SUP on the convnet."""
    from satnb.core.config import PROFILES

    train = PROFILES["cpu"].train
    out = [(m, m, train[m]) for m in ("amdim", "npid", "simclr", "sup")]
    out.append(("sup-convnet", "sup", dataclasses.replace(train["sup"], encoder="convnet", encoder_kwargs={})))
    return out


def random_data(seed: int = 0, n: int = BATCH):
    """A CIFAR-shaped satnb Dataset of n random uint8 images (channel statistics: CIFAR-10's)."""
    from satnb.core.dataset import Dataset

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.int64)
    return Dataset("cifar10", x, y, x[:10], y[:10], tuple(str(c) for c in range(10)), "random uint8 images")


class Trainer:
    """One method's model, objective and optimiser, stepping on a fixed batch at one precision."""

    def __init__(self, method: str, settings, data, precision: str, seed: int = 0) -> None:
        from satnb.nets.optim import build_optimizer
        from satnb.nets.pretrain import _Objective, build_model

        torch.manual_seed(seed)
        self.precision = precision
        self.model = build_model(method, settings, data).to(memory_format=torch.channels_last)
        self.objective = _Objective(method, self.model, BANK, 32, settings.label_smoothing)
        self.opt = build_optimizer(settings, self.model.parameters())
        self.x_uint8 = torch.from_numpy(np.ascontiguousarray(data.x_train))  # NHWC, as train() keeps them
        self.rows = torch.arange(len(self.x_uint8))
        self.y = torch.as_tensor(data.y_train)
        self.idx = torch.randperm(BANK)[:len(self.rows)]  # the batch's rows of NPID's memory bank
        self.losses: list[float] = []
        self.model.train()

    def step(self) -> None:
        from satnb.core.precision import set_precision
        from satnb.nets.pretrain import batch_images

        set_precision(self.precision)
        x = batch_images(self.x_uint8, self.rows)  # float NCHW channels_last, made per batch as in train()
        loss = self.objective(self.model, x, self.y, self.idx)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.losses.append(float(loss.detach()))

    def flops(self) -> int:
        """FLOPs of one step's forward and backward passes (matrix products and convolutions)."""
        return flops_of(self.step)


def matmul_peak(sizes: tuple[int, ...], repeats: int) -> tuple[dict[str, float], dict]:
    """Best GFLOP/s over sizes of square torch.matmul per dtype (median over interleaved repetitions per size)."""
    best: dict[str, float] = {}
    rows = {}
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        a32, b32 = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        mats = {"fp32": (a32, b32), "bf16": (a32.bfloat16(), b32.bfloat16())}
        times = interleave({p: (lambda ab=mats[p]: torch.matmul(*ab)) for p in PRECISIONS}, repeats)
        rows[n] = {}
        for p, t in times.items():
            g = 2 * n ** 3 / t.value / 1e9
            rows[n][p] = round(g, 1)
            best[p] = max(best.get(p, 0.0), g)
    return best, {"gflops_by_size": rows, "sizes": list(sizes), "repeats": repeats}


def run(args) -> dict:
    from satnb.core.precision import cpu_has_bf16, get_precision, set_precision
    from satnb.nets.encoders import describe_encoder

    if not cpu_has_bf16():
        # satnb then trains in fp32 whatever the setting: "bf16 / fp32" would time fp32 twice, and the bf16
        # matmul peak (emulated, ~1 GFLOP/s) would give shares of thousands of percent
        raise NotMeasurableHere("this CPU has no bfloat16 kernels (AVX-512 BF16 or AMX): satnb computes in fp32 "
                                "here, so bf16 against fp32 cannot be measured; run it on a CPU that has them")
    t_start = time.perf_counter()
    quick = args.quick
    repeats = args.repeats or (2 if quick else 5)
    steps = 1 if quick else 2  # training steps per timed run

    saved = get_precision()
    data = random_data()
    figures, ratios, throughput, losses = [], [], {}, {}
    try:
        peak, peak_info = matmul_peak((1024, 2048) if quick else (1024, 2048, 3072), 2 if quick else 3)
        log("[train] matmul peak " + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in peak.items()))
        for key, method, settings in configurations():
            trainers = {p: Trainer(method, settings, data, p) for p in PRECISIONS}
            encoder = describe_encoder(trainers["bf16"].model)
            flops = trainers["bf16"].flops()  # one untimed step; FLOPs do not depend on the precision

            def timed(trainer: Trainer) -> None:
                for _ in range(steps):
                    trainer.step()

            times = interleave({p: (lambda tr=trainers[p]: timed(tr)) for p in PRECISIONS}, repeats)
            losses[key] = {p: trainers[p].losses[-1] for p in PRECISIONS}
            label = f"{NAMES[method]} on {encoder}"
            row = {"method": method, "encoder": encoder, "gflop_per_step": round(flops / 1e9, 2)}
            for p in PRECISIONS:
                per_step = times[p].scaled(1 / steps)
                ips = BATCH / per_step.value
                achieved = flops / per_step.value / 1e9
                row.update({f"{p}_images_per_s": round(ips, 1), f"{p}_step_s": round(per_step.value, 4),
                            f"{p}_gflops": round(achieved, 1),
                            f"{p}_fraction_of_{p}_peak": round(achieved / peak[p], 4),
                            f"{p}_spread": round(spread(per_step.primary), 3)})
                figures.append(_throughput(f"{label}: {p} images/s", ips, per_step))
            speedup = times["fp32"].value / times["bf16"].value
            row["bf16_over_fp32"] = round(speedup, 3)
            row["bf16_fraction_of_fp32_peak"] = round(row["bf16_gflops"] / peak["fp32"], 4)
            targeted = method == "sup"
            ratios.append(ratio(f"{label}: bf16 / fp32 images/s", speedup, ">=" if targeted else None,
                                TARGET if targeted else None,
                                note=("target" if targeted else "informational") + f"; batch {BATCH}, median of "
                                     f"{repeats} x {steps} step(s) per precision, side by side"))
            figures.append(figure(f"{label}: bf16 achieved GFLOP/s", row["bf16_gflops"], "GFLOP/s",
                                  note=f"{flops / 1e9:.1f} GFLOP per step (forward + backward, FlopCounterMode)"))
            share = 100 * flops / times["bf16"].scaled(1 / steps).value / 1e9 / peak["bf16"]
            figures.append(figure(f"{label}: bf16 share of the bf16 matmul peak", share, "%",
                                  note=f"peak {peak['bf16']:.0f} GFLOP/s"))
            throughput[key] = row
            log(f"[train] {label}: fp32 {row['fp32_images_per_s']:.0f}, bf16 {row['bf16_images_per_s']:.0f} images/s "
                f"({speedup:.2f}x), {row['bf16_gflops']:.0f} GFLOP/s")
            del trainers
    finally:
        set_precision(saved)
    for p in PRECISIONS:
        figures.append(figure(f"{p} matmul peak (square torch.matmul, best of {len(peak_info['sizes'])} sizes)",
                              peak[p], "GFLOP/s", note=f"sizes {', '.join(map(str, peak_info['sizes']))}"))
    finite = all(np.isfinite(v) for d in losses.values() for v in d.values())
    checks = {"throughput": throughput, "peak": {**peak_info, "fp32_gflops": round(peak["fp32"], 1),
                                                  "bf16_gflops": round(peak["bf16"], 1)},
              "last_losses": losses, "losses_finite": bool(finite),
              "precision_after": get_precision()}
    settings = {"profile": "cpu", "batch": BATCH, "data": "random uint8 images, 32x32x3", "npid_bank": BANK,
                "repeats": repeats, "steps_per_run": steps, "threads": args.threads,
                "encoders": {k: r["encoder"] for k, r in throughput.items()}}
    return record("train", "Training throughput: fp32 vs bf16, and share of the matmul peak", settings, figures,
                  ratios, time.perf_counter() - t_start, checks,
                  notes="images/s = batch / median step time (objective with augmentation, backward, optimiser "
                        "step); time to accuracy: bench_tta.py")


def _throughput(name: str, images_per_s: float, per_step: Samples) -> dict:
    """A figure in images/s that keeps the step times it comes from."""
    out = figure(name, images_per_s, "images/s")
    out.update({"clock": CLOCK["name"], "step_s_median": per_step.value, "step_s_cpu_median": median(per_step.cpu),
                "step_s_wall_median": median(per_step.wall), "step_s_samples": [round(v, 5) for v in per_step.primary],
                "spread": round(spread(per_step.primary), 3)})
    return out


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
