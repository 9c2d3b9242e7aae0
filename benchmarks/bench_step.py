"""The training loop as it runs: each method's real step against its variants, and the machine's peaks.

For each method (AMDIM, NPID, SimCLR, SUP) on the `quick` and the `cpu` profile's encoder, at the profile's batch
size, the benchmark times one training step exactly as `satnb.nets.pretrain.train` takes it (the uint8 batch made
float and channels_last by `pretrain.batch_images`, the method's objective with its augmentation, the backward pass,
the optimiser step) side by side with two variants of it, interleaved:

- **NCHW augmentation (before)**: the same step with every augmented batch turned back to contiguous NCHW, which is
  what the augmentations returned before they kept their input's memory format (the model is channels_last, so
  every such batch was converted on its way in and its gradient on its way out);
- **no augmentation**: the same step with the augmentation replaced by the identity (the floor the loop can reach
  without making its augmentation free);
- **other optimiser kernel**: the same step with the optimiser's fused implementation switched (fused where the
  loop's is not, unfused where it is), to show whether the choice is worth it.

A step's FLOPs (forward and backward, `torch.utils.flop_counter.FlopCounterMode`) over its median time give the
GFLOP/s it achieves, reported as a share of the machine's measured peaks at the precision the run uses (the best
GFLOP/s of large square `torch.matmul` and of a large 3x3 convolution, channels_last, forward and backward).
The step is also timed inside the real loop (`pretrain.train`, one epoch of 12 batches: the loop's own overhead
beside the step), and split into its phases (augmentation, forward with the loss, backward, optimiser), each timed
on its own in the real step, so the table shows where the time goes.

**Target: the real step at least 1.5x the NCHW-augmentation step's images/s for every method** on both
encoders. The figures are meant at 2 threads (`--threads 2`), the machine the profiles are sized for.
"""

from __future__ import annotations

import time

import torch
from _common import figure, interleave, log, main, median, ratio, record, spread
from bench_train import Trainer, random_data

TARGET = 1.5
METHODS = ("amdim", "npid", "simclr", "sup")
NAMES = {"amdim": "AMDIM", "npid": "NPID", "simclr": "SimCLR", "sup": "SUP"}
PROFILES_MEASURED = ("quick", "cpu")
VARIANTS = ("real", "nchw", "noaug", "fused")
LOOP_STEPS = 12  # batches of the one-epoch run of the real training loop


class Step(Trainer):
    """`bench_train.Trainer`'s real step at the precision that runs, with one variant of augmentation or optimiser."""

    def __init__(self, method: str, settings, data, variant: str, seed: int = 0) -> None:
        from satnb.core.precision import get_precision

        super().__init__(method, settings, data, get_precision(), seed)
        augment = self.objective.augment
        if variant == "nchw":
            self.objective.augment = lambda x, _a=augment: _a(x).contiguous()
        elif variant == "noaug":
            self.objective.augment = lambda x: x
        self.augment = augment
        if variant == "fused":  # the optimiser's other implementation: fused if the loop's is not, else unfused
            d = self.opt.defaults
            self.opt = type(self.opt)(self.model.parameters(), **{**d, "fused": not d.get("fused"), "foreach": None})

    def __call__(self) -> None:
        self.step()

    def phases(self, repeats: int) -> dict[str, float]:
        """Median seconds of each phase of the real step: batch, augmentation, forward + loss, backward, optimiser."""
        from satnb.nets.pretrain import batch_images

        obj, times = self.objective, {k: [] for k in ("batch", "augmentation", "forward", "backward", "optimiser")}
        views = 1 if obj.method in ("sup", "npid") else 2
        for _ in range(repeats):
            t = time.perf_counter()
            x = batch_images(self.x_uint8, self.rows)
            t1 = time.perf_counter()
            xs = [self.augment(x) for _ in range(views)]
            t2 = time.perf_counter()
            outs = [self.model(v) for v in xs]
            if obj.method == "sup":
                loss = torch.nn.functional.cross_entropy(outs[0], self.y, label_smoothing=obj.label_smoothing)
            elif obj.method == "npid":
                loss = obj.bank.loss(outs[0], self.idx)
            else:
                loss = obj.loss(*outs)
            t3 = time.perf_counter()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            t4 = time.perf_counter()
            self.opt.step()
            t5 = time.perf_counter()
            for k, v in zip(times, (t1 - t, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                times[k].append(v)
        return {k: median(v) for k, v in times.items()}


def loop_step_seconds(method: str, settings, steps: int) -> float:
    """Seconds per step of `pretrain.train` itself: one epoch of `steps` batches of random images, a fresh cache.

    The whole loop as a user runs it (index permutation, schedule, batch gather, checkpoint at the epoch's end);
    NPID's memory bank then holds steps x batch rows instead of 50 000.
    """
    import dataclasses
    import tempfile

    from satnb.core.store import Store
    from satnb.nets.pretrain import train

    data = random_data(seed=1, n=settings.batch_size * steps)
    one = dataclasses.replace(settings, epochs=1, warmup_epochs=min(settings.warmup_epochs, 0.5))
    with tempfile.TemporaryDirectory() as d:
        res = train(method, data, one, store=Store(d), progress=False)
    return res.history[0]["seconds"] / steps


def _best_of(fn, flops: float, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def peaks(repeats: int, precision: str) -> dict[str, float]:
    """The machine's GFLOP/s at a precision: large square matmul, and a large 3x3 convolution (forward and backward)."""
    from satnb.nets.precision import autocast

    g = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    out = {}
    best = 0.0
    for n in (1024, 2048):
        a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
        best = max(best, _best_of(lambda a=a, b=b: torch.matmul(a, b), 2 * n ** 3, repeats))
    out["matmul"] = best
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(64, 256, 16, 16, generator=g).contiguous(memory_format=torch.channels_last).requires_grad_()
    fwd = 2 * 64 * 256 * 256 * 9 * 16 * 16

    def conv_step() -> None:
        with autocast("cpu"):  # bf16 autocast where the run uses it, as the encoders' trunks do
            y = conv(x)
        y.float().sum().backward()

    out["conv"] = _best_of(conv_step, 3 * fwd, repeats)  # forward + the two backward convolutions
    return out


def run(args) -> dict:
    from satnb.core.config import PROFILES
    from satnb.core.precision import effective_precision, get_precision
    from satnb.nets.encoders import describe_encoder

    t_start = time.perf_counter()
    repeats = args.repeats or (3 if args.quick else 5)
    precision = effective_precision(torch.device("cpu"))
    peak = peaks(2 if args.quick else 4, precision)
    log(f"[step] precision {precision} (asked {get_precision()}); peaks: matmul {peak['matmul']:.0f}, "
        f"conv {peak['conv']:.0f} GFLOP/s")
    figures, ratios, rows = [], [], {}
    profiles = ("quick",) if args.quick else PROFILES_MEASURED
    for pname in profiles:
        train = PROFILES[pname].train
        for method in METHODS:
            settings = train[method]
            data = random_data(n=settings.batch_size)
            steps = {v: Step(method, settings, data, v) for v in VARIANTS}
            encoder = describe_encoder(steps["real"].model)
            flops = steps["real"].flops()
            times = interleave(dict(steps), repeats)
            phases = steps["real"].phases(repeats)
            bs = settings.batch_size
            label = f"{NAMES[method]} on {encoder} (batch {bs}, {pname})"
            row = {"profile": pname, "method": method, "encoder": encoder, "batch": bs,
                   "gflop_per_step": round(flops / 1e9, 3), "precision": precision,
                   "phases_s": {k: round(v, 5) for k, v in phases.items()}}
            for v in VARIANTS:
                t = times[v].value
                row[f"{v}_step_s"] = round(t, 5)
                row[f"{v}_images_per_s"] = round(bs / t, 1)
                row[f"{v}_spread"] = round(spread(times[v].primary), 3)
            loop_s = loop_step_seconds(method, settings, LOOP_STEPS)
            row["loop_step_s"] = round(loop_s, 5)
            row["loop_images_per_s"] = round(bs / loop_s, 1)
            row["loop_over_real_time"] = round(loop_s / times["real"].value, 3)
            achieved = flops / times["real"].value / 1e9
            row["real_gflops"] = round(achieved, 1)
            row["fraction_of_conv_peak"] = round(achieved / peak["conv"], 4)
            row["fraction_of_matmul_peak"] = round(achieved / peak["matmul"], 4)
            speed = times["nchw"].value / times["real"].value
            row["real_over_nchw"] = round(speed, 3)
            row["noaug_over_real"] = round(times["real"].value / times["noaug"].value, 3)
            row["real_fused"] = bool(steps["real"].opt.defaults.get("fused"))
            row["fused_switched_over_real"] = round(times["real"].value / times["fused"].value, 3)
            ratios.append(ratio(f"{label}: real step / NCHW-augmentation step, images/s", speed, ">=", TARGET,
                                note=f"median of {repeats} interleaved steps per variant, side by side"))
            figures.append(figure(f"{label}: real step images/s", bs / times["real"].value, "images/s",
                                       note=f"{achieved:.0f} GFLOP/s, {100 * achieved / peak['conv']:.0f}% of the "
                                            f"conv peak; without augmentation {bs / times['noaug'].value:.0f}"))
            rows[f"{pname}:{method}"] = row
            log(f"[step] {label}: loop {row['loop_images_per_s']:.0f}, real {row['real_images_per_s']:.0f}, "
                f"NCHW {row['nchw_images_per_s']:.0f}, "
                f"no aug {row['noaug_images_per_s']:.0f}, other optimiser {row['fused_images_per_s']:.0f} images/s "
                f"({speed:.2f}x); phases "
                + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in phases.items()))
            del steps
    for k in ("matmul", "conv"):
        figures.append(figure(f"{precision} {k} peak", peak[k], "GFLOP/s",
                                   note="square matmul 1024-2048" if k == "matmul" else
                                   "3x3 conv 256->256 on 64x16x16, channels_last, forward + backward"))
    settings = {"profiles": list(profiles), "repeats": repeats, "threads": args.threads, "precision": precision,
                "data": "random uint8 images, 32x32x3, the profile's batch size", "npid_bank": 50_000}
    return record("step", "The training loop as it runs: real step, NCHW augmentation, no augmentation, peaks",
                  settings, figures, ratios, time.perf_counter() - t_start,
                  {"rows": rows, "peaks_gflops": {k: round(v, 1) for k, v in peak.items()}},
                  notes="images/s = batch / median step time; the phases are timed separately in the real step")


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
