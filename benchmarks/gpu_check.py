"""GPU check: throughput of every stage of the `paper` profile on this device, and the wall time it projects.

    PYTHONPATH=. python3 benchmarks/gpu_check.py [--tiny] [--out results] [--data auto|synthetic|cifar10]
                                                 [--budget-s S]

Every stage is timed at the `paper` profile's real architectures (AMDIM ndf 128 / n_rkhs 128 / depth 3,
ResNet-18) and batch sizes, as satnb's own code runs it, on the device `satnb.core.environment.get_device()` picks
(SATNB_DEVICE, else CUDA when there is one) at the precision `satnb.core.precision.effective_precision` gives it:

- pretraining: real training steps of each method of the `paper` and `gpu` profiles (amdim, npid, simclr,
  sup and the supervised twin sup-resnet18) with `pretrain.build_model`, `_Objective`, `optim.build_optimizer`
  and `batch_images` on uint8 images resident on the device, after warm-up steps -> images/s;
- the kNN library refresh: `extract_features` of the 45 000 library images + `KNN.fit` (and, for
  comparison, the same features from uint8 images resident on the device) -> images/s;
- the clean prediction of the test split -> images/s;
- the gradient attacks (small, large) and their uniform-noise controls on a subset, projected to N;
- the optimisation attack: a subset for a few binary-search rounds, projected to N and the paper's rounds;
- one SAT iteration with the library refreshed every iteration (`adversarial.sat` for a few iterations
  with a temporary store; the first one is a warm-up) -> s/iteration;
- the baselines' PGD steps: a few batches of `adversarial_train` (AT, MAT, ALP) -> s/batch;
- the attack zoo (`robustness.attack_zoo`) on a subset, with fewer black-box queries and min-norm rounds,
  projected to N, the profile's query budget and rounds.

The images the attacks and the zoo attack are labelled with the kNN's own predictions, so each counts as
correctly classified (the time of a fixed-step attack does not depend on the labels). From these figures
the benchmark projects the wall time of every stage of `python -m satnb run --profile paper` (and
`--profile gpu`): each term of the projection states its formula and its inputs, and every input is a
figure measured here or computed from measured figures. The same projections for a Colab T4 scale the
total by published peak throughputs (T4: 8.1 TFLOP/s fp32, which satnb runs there since a T4 has no bf16);
that is an estimate, stated as such in the record.

--tiny shrinks the architectures, library, N and step counts so the whole benchmark runs in seconds on a
CPU (SATNB_DEVICE=cpu); it writes the same JSON structure with "tiny": true (its projections mean
nothing but have the same form). The record goes to <out>/gpu-check.json after every stage (so a run cut
short keeps what it measured) and, when the environment variable OUT names a folder, to $OUT as well.
Exit status 1 when a stage raised (the others still run).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, figure, log, machine, print_table, ratio, table_rows  # noqa: E402

# Published peak throughputs (vendor data sheets): the only constants of the projections.
T4_FP32_TFLOPS = 8.1  # NVIDIA T4, single precision
T4_FP16_TENSOR_TFLOPS = 65.0  # NVIDIA T4, fp16 tensor cores (mixed precision)
T4_MEMORY_BYTES = 16 * 10**9  # NVIDIA T4: 16 GB GDDR6
H200_BF16_DENSE_TFLOPS = 989.0  # NVIDIA H200 SXM, bf16 tensor cores, dense (1979 with 2:4 sparsity)

PROJECTED = ("paper", "gpu")  # the profiles whose wall time is projected
CIFAR10_TRAIN, CIFAR10_TEST = 50_000, 10_000  # a profile's n_train / n_test of None means the whole split
SSL_SEEDS = ("amdim", "npid", "simclr")  # the models SAT fine-tunes (satnb.core.identity.SSL)
BASELINES = ("at", "mat", "alp")
OPT_BATCH = 100  # KNNOptimizationAttack's batch size (satnb.attacks.optimisation)
MIN_NORM_BATCH = 50  # KNNMinNormAttack's batch size (satnb.attacks.adaptive)
ZOO_ATTACKS = ("gradient (paper)", "gradient, more steps + restarts", "linear-probe transfer", "black-box")
RECORD = "gpu-check.json"


@dataclass(frozen=True)
class Plan:
    """How much of each stage is measured (the projections scale the measurements to the profiles' sizes)."""

    tiny: bool
    n_train: int  # images pretraining draws batches from (NPID's memory bank has one row per image)
    n_library: int  # kNN library images (the paper's 45 000)
    n_test: int  # test images predicted
    warmup_steps: int  # untimed training steps before the timed ones
    train_steps: int  # timed training steps per configuration
    batch_divisor: int  # the measured batch sizes are the profiles' divided by this (tiny only)
    sat_iterations: int  # timed SAT iterations (after one warm-up iteration)
    sat_batch: int
    baseline_batches: int  # timed batches per baseline (after a one-batch warm-up run)
    baseline_batch: int
    n_grad: int  # images the gradient attacks attack (one attack batch of 256 at full size)
    n_opt: int  # images the optimisation attack attacks (one batch of 100 at full size)
    opt_rounds: int  # binary-search rounds timed (the paper: 10)
    opt_steps: int  # Adam steps per round timed (the paper: 100)
    n_zoo: int  # images the attack zoo attacks
    n_zoo_opt: int  # images its minimum-norm attack attacks (one batch of 50 at full size)
    zoo_queries: int  # black-box queries per image timed (the profiles: 1000)
    zoo_rounds: int
    zoo_steps: int
    zoo_restarts: int  # restarts of the stronger gradient attack timed (the profiles: 3)
    zoo_steps_factor: int  # ... and its factor on the paper's steps (the profiles: 5)
    matmul_n: int
    matmul_reps: int  # timed bf16 products (fp32: a fifth as many, at least 2)
    encoders: dict = field(default_factory=dict)  # encoder -> kwargs replacing the profile's (tiny only)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FULL = Plan(tiny=False, n_train=CIFAR10_TRAIN, n_library=45_000, n_test=CIFAR10_TEST, warmup_steps=3,
            train_steps=10, batch_divisor=1, sat_iterations=3, sat_batch=100, baseline_batches=4,
            baseline_batch=100, n_grad=256, n_opt=100, opt_rounds=1, opt_steps=100, n_zoo=256, n_zoo_opt=50,
            zoo_queries=100, zoo_rounds=1, zoo_steps=100, zoo_restarts=3, zoo_steps_factor=5, matmul_n=8192,
            matmul_reps=50)
TINY = Plan(tiny=True, n_train=400, n_library=300, n_test=100, warmup_steps=1, train_steps=1, batch_divisor=8,
            sat_iterations=1, sat_batch=20, baseline_batches=1, baseline_batch=20, n_grad=8, n_opt=4,
            opt_rounds=1, opt_steps=3, n_zoo=4, n_zoo_opt=2, zoo_queries=5, zoo_rounds=1, zoo_steps=3,
            zoo_restarts=1, zoo_steps_factor=1, matmul_n=256, matmul_reps=3,
            encoders={"amdim": {"ndf": 8, "n_rkhs": 16, "n_depth": 1}, "resnet18": {"widths": [16, 16, 32, 32]}})
# (widths 8 -> 16 are avoided: torch 2.14's CPU 1x1 stride-2 convolution 8 -> 16 in channels_last corrupts memory at
# batch 25, measured on this repository's CPU machine)


# ----------------------------------------------------------------------------- timing helpers


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def measured(device: torch.device, out: dict, key: str = "seconds") -> Iterator[None]:
    """Time a block on the wall clock, synchronised with the device, and record its peak device memory."""
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    yield
    sync(device)
    out[key] = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    prev = out.get("memory_peak_bytes")
    out["memory_peak_bytes"] = peak if prev is None or peak is None else max(prev, peak)


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    """Measured TFLOP/s of a square n x n matrix product in `dtype` (2 n^3 FLOPs each)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    for _ in range(2):
        a @ b
    out: dict = {}
    with measured(device, out):
        for _ in range(reps):
            a @ b
    return 2 * n**3 * reps / out["seconds"] / 1e12


# ----------------------------------------------------------------------------- data and models


def load_data(kind: str, plan: Plan):
    """(Dataset, description): CIFAR-10 (SATNB_DATA) or random uint8 images of CIFAR-10's shapes."""
    from satnb.core.dataset import DataError, Dataset
    from satnb.core.datasets import load_dataset

    want = kind
    if kind == "auto":
        want = "cifar10" if os.environ.get("SATNB_DATA") and not plan.tiny else "synthetic"
    note = ""
    if want == "cifar10":
        try:
            ds = load_dataset("cifar10", fallback=False, download=False)
            if plan.tiny:
                ds = ds.subset(plan.n_train, plan.n_test, seed=0)
            return ds, {"kind": "cifar10", "source": ds.source.split(":", 1)[0], "n_train": len(ds.y_train),
                        "n_test": len(ds.y_test)}
        except (DataError, OSError) as err:
            if kind == "cifar10":
                raise
            note = f"CIFAR-10 could not be read ({err}); synthetic images instead"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (plan.n_train, 32, 32, 3), dtype=np.uint8)
    y = rng.permutation(np.arange(plan.n_train) % 10).astype(np.int64)
    xt = rng.integers(0, 256, (plan.n_test, 32, 32, 3), dtype=np.uint8)
    yt = (np.arange(plan.n_test) % 10).astype(np.int64)
    # named cifar10 so that build_model normalises with CIFAR-10's channel statistics, as the real runs do
    ds = Dataset("cifar10", x, y, xt, yt, tuple(str(c) for c in range(10)), "synthetic: uniform random uint8")
    return ds, {"kind": "synthetic", "source": "uniform random uint8 images of CIFAR-10's shapes, balanced labels",
                "n_train": plan.n_train, "n_test": plan.n_test, **({"note": note} if note else {})}


def measured_settings(settings, plan: Plan):
    """The TrainSettings as measured: the profile's own, or (tiny) a smaller encoder and batch."""
    if not plan.tiny:
        return settings
    kwargs = plan.encoders.get(settings.encoder, settings.encoder_kwargs)
    return dataclasses.replace(settings, encoder_kwargs=dict(kwargs),
                               batch_size=max(4, settings.batch_size // plan.batch_divisor))


def pretrain_configs(plan: Plan) -> tuple[dict[str, dict], dict[tuple[str, str], str]]:
    """The distinct training configurations of the projected profiles (key -> config) and (profile, model) -> key."""
    from satnb.core.config import PROFILES

    configs: dict[str, dict] = {}
    uses: dict[tuple[str, str], str] = {}
    for pname in PROJECTED:
        p = PROFILES[pname]
        for name, s in {**p.train, **p.supervised_twins()}.items():
            kind = "sup" if name.startswith("sup") else name
            sig = [kind, s.encoder, sorted(s.encoder_kwargs.items()), s.batch_size, s.optimizer]
            key = f"{name}@{s.batch_size}"
            if key in configs and configs[key]["sig"] != sig:
                key += f"-{s.optimizer}"
            if key not in configs:
                configs[key] = {"sig": sig, "model": name, "method": kind, "settings": s,
                                "measured": measured_settings(s, plan), "profiles": []}
            configs[key]["profiles"].append(pname)
            uses[(pname, name)] = key
    return configs, uses


def time_training(kind: str, settings, data, x_all: torch.Tensor, y_all: torch.Tensor, plan: Plan,
                  device: torch.device, cudnn_benchmark: bool | None = None) -> tuple[dict, torch.nn.Module]:
    """Images/s of real training steps (pretrain.train's inner loop) after warm-up steps."""
    from satnb.nets.optim import build_optimizer
    from satnb.nets.pretrain import _Objective, batch_images, build_model

    before = torch.backends.cudnn.benchmark
    if cudnn_benchmark is not None:
        torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        torch.manual_seed(0)
        model = build_model(kind, settings, data)
        objective = _Objective(kind, model, len(x_all), data.image_shape[0], settings.label_smoothing)
        model.to(device, memory_format=torch.channels_last)
        objective.to(device)
        opt = build_optimizer(settings, model.parameters())
        n = len(x_all)
        bs = min(settings.batch_size, n)
        per_epoch = n // bs
        perm = torch.randperm(n).to(device)
        total = torch.zeros((), device=device)
        model.train()

        def step(b: int) -> None:
            nonlocal total
            for group in opt.param_groups:
                group["lr"] = settings.lr_at(b, per_epoch)
            i = b % per_epoch
            idx = perm[i * bs:(i + 1) * bs]
            loss = objective(model, batch_images(x_all, idx), y_all[idx], idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().float()  # on the device: no host sync per step, as train() does

        for b in range(plan.warmup_steps):
            step(b)
        out: dict = {"batch_size": bs, "steps_timed": plan.train_steps, "warmup_steps": plan.warmup_steps}
        with measured(device, out):
            for b in range(plan.warmup_steps, plan.warmup_steps + plan.train_steps):
                step(b)
        out["images_per_s"] = plan.train_steps * bs / out["seconds"]
        out["loss_finite"] = bool(math.isfinite(float(total)))
        return out, model.eval()
    finally:
        torch.backends.cudnn.benchmark = before


# ----------------------------------------------------------------------------- the benchmark


class Budget:
    """Wall-clock budget of the whole benchmark: a stage starts only while time is left."""

    def __init__(self, seconds: float | None) -> None:
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def exhausted(self) -> bool:
        return self.seconds is not None and self.elapsed() >= self.seconds


class Check:
    """The benchmark's state: device, data, models, measurements (the record) and where it is written."""

    def __init__(self, args: argparse.Namespace) -> None:
        from satnb.core.config import PROFILES
        from satnb.core.environment import get_device
        from satnb.core.precision import effective_precision

        self.plan = TINY if args.tiny else FULL
        self.device = get_device()
        self.precision = effective_precision(self.device)
        self.paper = PROFILES["paper"]
        self.out_files = [Path(args.out) / RECORD]
        if os.environ.get("OUT"):
            self.out_files.append(Path(os.environ["OUT"]) / RECORD)
        self.budget = Budget(args.budget_s)
        self.tmp = Path(tempfile.mkdtemp(prefix="satnb-gpu-check-"))
        self.models: dict[str, torch.nn.Module] = {}
        self.knns: dict = {}
        self.errors: list[str] = []
        self.data_kind = args.data
        self.rec: dict = {
            "benchmark": "gpu_check", "title": "the paper profile on this device: throughput per stage, projections",
            "tiny": self.plan.tiny, "complete": False, "settings": self.plan.to_dict(), "device": self.describe(),
            "data": None, "matmul": {}, "stages": {}, "projections": {}, "t4_estimate": {}, "figures": [],
            "ratios": [], "checks": {}, "errors": [], "memory_peak_bytes": None, "seconds": 0.0, "notes": NOTES,
            "passed": False, "provenance": None,
        }

    # -------------------------------------------------------------- bookkeeping

    def describe(self) -> dict:
        d = self.device
        out = {"type": d.type, "name": "cpu", "precision": self.precision, "torch": torch.__version__,
               "cuda": torch.version.cuda, "cpu_threads": torch.get_num_threads(), "machine": machine(),
               "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
               "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32)}
        if d.type == "cuda":
            props = torch.cuda.get_device_properties(d)
            out.update(name=props.name, capability=list(torch.cuda.get_device_capability(d)),
                       memory_bytes=int(props.total_memory),
                       bf16_supported=bool(torch.cuda.is_bf16_supported(including_emulation=False)))
        else:
            out["name"] = out["machine"]["cpu"]
        return out

    def stage(self, name: str, run: Callable[[], None]) -> None:
        """Run one stage; an exception is recorded (and fails the benchmark) but the next stages still run."""
        if self.budget.exhausted():
            log(f"[gpu-check] {name}: skipped, the budget of {self.budget.seconds:.0f} s is spent")
            self.rec["stages"].setdefault(name, {})["skipped"] = "time budget spent"
            self.write()
            return
        t0 = time.perf_counter()
        log(f"[gpu-check] {name} ...")
        try:
            run()
        except Exception as err:  # recorded and reported; the exit status says so
            traceback.print_exc()
            msg = f"{name}: {type(err).__name__}: {err}"
            self.errors.append(msg)
            self.rec["stages"].setdefault(name, {})["error"] = msg
        log(f"[gpu-check] {name}: {time.perf_counter() - t0:.1f} s")
        self.write()

    def write(self) -> None:
        """Recompute the projections from what is measured so far and write the record."""
        rec = self.rec
        rec["seconds"] = round(self.budget.elapsed(), 1)
        rec["errors"] = list(self.errors)
        peaks = [v for v in _walk(rec["stages"], "memory_peak_bytes") if v is not None]
        rec["memory_peak_bytes"] = max(peaks) if peaks else None
        rec["projections"] = {p: project(p, rec) for p in PROJECTED}
        rec["t4_estimate"] = t4_estimate(rec)
        rec["figures"], rec["ratios"] = summary_rows(rec)
        text = json.dumps(_plain(rec), indent=1) + "\n"
        for path in self.out_files:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)

    # -------------------------------------------------------------- stages

    def stage_matmul(self) -> None:
        p = self.plan
        out = {"n": p.matmul_n, "reps": p.matmul_reps,
               "bf16_tflops": matmul_tflops(self.device, torch.bfloat16, p.matmul_n, p.matmul_reps),
               "fp32_tflops": matmul_tflops(self.device, torch.float32, p.matmul_n, max(2, p.matmul_reps // 5)),
               "published_bf16_peak_tflops": H200_BF16_DENSE_TFLOPS if "H200" in self.rec["device"]["name"] else None}
        if out["published_bf16_peak_tflops"]:
            out["bf16_share_of_published_peak"] = out["bf16_tflops"] / out["published_bf16_peak_tflops"]
        self.rec["matmul"] = out

    def stage_data(self) -> None:
        from satnb.core.dataset import stratified_indices

        self.data, self.rec["data"] = load_data(self.data_kind, self.plan)
        d = self.data
        n_lib = min(self.plan.n_library, len(d.y_train))
        self.lib_idx = stratified_indices(d.y_train, n_lib, self.paper.seed) if n_lib < len(d.y_train) else \
            np.arange(len(d.y_train))
        self.x_lib, self.y_lib = d.x_train[self.lib_idx], d.y_train[self.lib_idx]
        self.x_test, self.y_test = d.x_test[:self.plan.n_test], d.y_test[:self.plan.n_test]
        self.rec["data"].update(n_library=len(self.y_lib), n_test_used=len(self.y_test))

    def stage_pretrain(self) -> None:
        d, dev = self.data, self.device
        x_all = torch.from_numpy(np.ascontiguousarray(d.x_train)).to(dev)  # uint8 NHWC on the device, as train()
        y_all = torch.as_tensor(d.y_train).to(dev)
        configs, self.uses = pretrain_configs(self.plan)
        keep = {self.uses[("paper", "amdim")]: "amdim", self.uses[("paper", "simclr")]: "resnet18",
                self.uses[("paper", "sup")]: "sup"}
        out = self.rec["stages"].setdefault("pretrain", {})
        for key, c in configs.items():
            s = c["measured"]
            res, model = time_training(c["method"], s, d, x_all, y_all, self.plan, dev)
            res.update(model=c["model"], method=c["method"], encoder=s.encoder, encoder_kwargs=s.encoder_kwargs,
                       optimizer=s.optimizer, profiles=c["profiles"], profile_batch_size=c["settings"].batch_size)
            if dev.type == "cuda" and key in keep and keep[key] in ("amdim", "resnet18"):
                # what-if: cuDNN's autotuner (satnb leaves torch.backends.cudnn.benchmark off)
                what_if, _ = time_training(c["method"], s, d, x_all, y_all, self.plan, dev, cudnn_benchmark=True)
                res["cudnn_benchmark_images_per_s"] = what_if["images_per_s"]
            out[key] = res
            log(f"[gpu-check]   {key}: {res['images_per_s']:.0f} images/s")
            if key in keep:
                self.models[keep[key]] = model
            del model
        del x_all, y_all
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    def _arch_models(self) -> list[tuple[str, torch.nn.Module]]:
        return [(arch, self.models[arch]) for arch in ("amdim", "resnet18") if arch in self.models]

    def stage_library(self) -> None:
        from satnb.knn.classifier import KNN
        from satnb.knn.features import extract_features, predict
        from satnb.nets.pretrain import batch_images

        dev, k = self.device, self.paper.protocol.k
        refresh = self.rec["stages"].setdefault("library_refresh", {})
        pred_out = self.rec["stages"].setdefault("predict_test", {})
        for arch, model in self._arch_models():
            extract_features(model, self.x_lib[:1024])  # warm-up
            r: dict = {"n_library": len(self.y_lib)}
            with measured(dev, r, "features_seconds"):
                feats = extract_features(model, self.x_lib)
            with measured(dev, r, "fit_seconds"):
                knn = KNN(k=k, n_classes=self.data.n_classes, device=dev).fit(feats, torch.as_tensor(self.y_lib))
            r["seconds"] = r["features_seconds"] + r["fit_seconds"]
            r["images_per_s"] = len(self.y_lib) / r["seconds"]
            r["features_images_per_s"] = len(self.y_lib) / r["features_seconds"]
            # what-if: the same features from uint8 images resident on the device (as pretraining feeds them)
            x_dev = torch.from_numpy(np.ascontiguousarray(self.x_lib)).to(dev)
            with torch.inference_mode(), measured(dev, r, "device_resident_features_seconds"):
                parts = [model.features(batch_images(x_dev, torch.arange(i, min(i + 512, len(x_dev)), device=dev)))
                         for i in range(0, len(x_dev), 512)]
                torch.cat(parts)
            del x_dev, parts
            r["device_resident_features_images_per_s"] = len(self.y_lib) / r["device_resident_features_seconds"]
            refresh[arch] = r
            p: dict = {"n_test": len(self.y_test)}
            with measured(dev, p):
                pred = predict(model, knn, self.x_test)
            p["images_per_s"] = len(self.y_test) / p["seconds"]
            pred_out[arch] = p
            self.knns[arch] = (knn, pred)
            log(f"[gpu-check]   {arch}: refresh {r['images_per_s']:.0f} images/s, predict {p['images_per_s']:.0f}")

    def _attacked(self, arch: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n test images on the device, labelled with the kNN's predictions (all 'correct')."""
        from satnb.knn.features import as_images

        _, pred = self.knns[arch]
        return as_images(self.x_test[:n]).to(self.device), pred[:n].clone()

    def _m(self, knn) -> int:
        from satnb.knn import guide_size

        return guide_size(knn, self.paper.protocol.m)

    def stage_attacks(self) -> None:
        from satnb.attacks import KNNOptimizationAttack, UniformNoise, gradient_attack
        from satnb.protocol.evaluate import run_attack

        dev, p, plan = self.device, self.paper, self.plan
        grad = self.rec["stages"].setdefault("gradient_attacks", {})
        opt = self.rec["stages"].setdefault("optimization_attack", {})
        for arch, model in self._arch_models():
            knn, _ = self.knns[arch]
            m = self._m(knn)
            x, y = self._attacked(arch, plan.n_grad)
            gradient_attack(model, knn, p.protocol.small, m, seed=0)(x[:8], y[:8])  # warm-up
            g: dict = {"n_images": len(y), "m": m, "k": knn.k}
            for name, setting in (("small", p.protocol.small), ("large", p.protocol.large)):
                for label, atk in ((name, gradient_attack(model, knn, setting, m, seed=0)),
                                   (f"noise_{name}", UniformNoise(setting.eps, seed=0, model=model))):
                    r: dict = {"eps": setting.eps, "steps": setting.steps if label == name else 0}
                    with measured(dev, r):
                        res = run_attack(label, atk, model, knn, x, y)  # the attack and the kNN on its images
                    r["seconds_per_image"] = r["seconds"] / len(y)
                    r["images_per_s"] = len(y) / r["seconds"]
                    r["dsr"] = res.dsr
                    g[label] = r
            grad[arch] = g
            xo, yo = x[:plan.n_opt], y[:plan.n_opt]
            # max_const = the initial constant: no escalation rounds past the timed ones
            atk = KNNOptimizationAttack(model, knn, m=m, binary_search_steps=plan.opt_rounds, steps=plan.opt_steps,
                                        max_const=1e-2)
            o: dict = {"n_images": len(yo), "binary_search_steps": plan.opt_rounds, "steps": plan.opt_steps,
                       "batch_size": atk.batch_size}
            with measured(dev, o):
                res = atk.run(xo, yo)
            o["images_per_s"] = len(yo) / o["seconds"]
            o["success"] = float(res.success.float().mean())
            opt[arch] = o
            log(f"[gpu-check]   {arch}: gradient small {g['small']['images_per_s']:.0f} images/s, "
                f"optimisation {o['seconds']:.2f} s for {len(yo)} images x {plan.opt_rounds} round(s)")

    def stage_sat(self) -> None:
        from satnb.core.store import Store
        from satnb.defences import sat

        plan, p = self.plan, self.paper
        out = self.rec["stages"].setdefault("sat", {})
        its = 1 + plan.sat_iterations  # the first iteration warms up
        settings = dataclasses.replace(p.sat, iterations=its, eval_every=its, batch_size=plan.sat_batch,
                                       refresh_every=1)
        for arch, model in self._arch_models():
            knn, _ = self.knns[arch]
            r: dict = {"iterations_timed": plan.sat_iterations, "batch_size": plan.sat_batch, "refresh_every": 1,
                       "n_library": len(self.y_lib), "objective": settings.objective}
            with measured(self.device, r, "call_seconds"):
                res = sat(model, self.x_lib, self.y_lib, settings, p.protocol.small, k=p.protocol.k, m=self._m(knn),
                          store=Store(self.tmp / f"sat-{arch}"), device=self.device, progress=False,
                          n_classes=self.data.n_classes, seed=0)
            rows = res.history[1:]
            r["seconds_per_iteration"] = median([h["seconds"] for h in rows])
            r["refresh_seconds"] = median([h["refresh_seconds"] for h in rows])
            r["attack_update_seconds"] = median([h["seconds"] - h["refresh_seconds"] for h in rows])
            r["images_per_s"] = plan.sat_batch / r["seconds_per_iteration"]
            r["loss_finite"] = all(h["loss"] is None or math.isfinite(h["loss"]) for h in res.history)
            out[arch] = r
            log(f"[gpu-check]   {arch}: {r['seconds_per_iteration']:.3f} s/iteration "
                f"(refresh {r['refresh_seconds']:.3f} s)")

    def stage_baselines(self) -> None:
        from satnb.core.store import Store
        from satnb.defences import adversarial_train

        plan, p = self.plan, self.paper
        out = self.rec["stages"].setdefault("baselines", {})
        model = self.models["sup"]
        bs = plan.baseline_batch
        x, y = self.data.x_train, self.data.y_train
        for method in BASELINES:
            def run(batches: int, tag: str, method: str = method):
                settings = dataclasses.replace(p.baselines, epochs=1, batch_size=bs, warmup_epochs=0.0)
                return adversarial_train(model, method, x[:bs * batches], y[:bs * batches], p.protocol.small, settings,
                                         store=Store(self.tmp / f"{method}-{tag}"), device=self.device,
                                         progress=False, seed=0)

            run(1, "warmup")
            r: dict = {"batches_timed": plan.baseline_batches, "batch_size": bs, "pgd_steps": p.protocol.small.steps}
            with measured(self.device, r, "call_seconds"):
                res = run(plan.baseline_batches, "timed")
            row = res.history[0]
            r["seconds_per_batch"] = row["seconds"] / plan.baseline_batches
            r["images_per_s"] = bs / r["seconds_per_batch"]
            r["loss_finite"] = bool(math.isfinite(row["loss"]))
            out[method] = r
            log(f"[gpu-check]   {method}: {r['seconds_per_batch']:.3f} s/batch")

    def stage_zoo(self) -> None:
        from satnb.attacks import probe_attack
        from satnb.protocol.zoo import attack_zoo

        plan, p = self.plan, self.paper
        out = self.rec["stages"].setdefault("attack_zoo", {})
        prof = p.replace(n_images=plan.n_zoo, n_attack_opt=plan.n_zoo_opt, opt_binary_steps=plan.zoo_rounds,
                         opt_steps=plan.zoo_steps, opt_max_const=0.1, queries=plan.zoo_queries,
                         restarts=plan.zoo_restarts, steps_factor=plan.zoo_steps_factor)
        for arch, model in self._arch_models():
            knn, _ = self.knns[arch]
            x, y = self._attacked(arch, plan.n_zoo)
            r: dict = {"n_images": len(y), "queries": plan.zoo_queries, "restarts": prof.zoo.restarts,
                       "steps_factor": prof.zoo.steps_factor, "min_norm_images": plan.n_zoo_opt,
                       "min_norm_binary_search_steps": plan.zoo_rounds, "min_norm_steps": plan.zoo_steps}
            with measured(self.device, r, "probe_fit_seconds"):
                # the linear probe's fit (twice in a zoo call, untimed there)
                probe_attack(model, knn, p.protocol.small)
            with measured(self.device, r):
                z = attack_zoo(model, knn, x, y, prof.protocol, prof.zoo, seed=0, progress=False)
            n = z["n_attacked"]
            r["n_attacked"] = n
            r["seconds_per_image"] = {s: {a: z["settings"][s]["attacks"][a]["seconds_per_image"] for a in ZOO_ATTACKS}
                                      for s in ("small", "large")}
            r["min_norm_seconds"] = z["min_norm"]["seconds"]
            timed = sum(v * n for s in r["seconds_per_image"].values() for v in s.values())
            r["fixed_seconds"] = max(0.0, r["seconds"] - timed - r["min_norm_seconds"])
            r["images_per_s"] = n / r["seconds"]
            out[arch] = r
            log(f"[gpu-check]   {arch}: {r['seconds']:.1f} s for {n} images")

    # -------------------------------------------------------------- the whole run

    def run(self) -> int:
        from satnb.core.store import provenance

        plan = self.plan
        log(f"[gpu-check] device {self.rec['device']['name']} ({self.device}), precision {self.precision}, "
            f"{'tiny' if plan.tiny else 'full'} sizes")
        self.stage("matmul", self.stage_matmul)
        self.stage("data", self.stage_data)
        if not hasattr(self, "data"):
            return self.finish(provenance)
        ready = {"library_refresh": lambda: bool(self._arch_models()), "gradient_attacks": lambda: bool(self.knns),
                 "sat": lambda: bool(self.knns), "baselines": lambda: "sup" in self.models,
                 "attack_zoo": lambda: bool(self.knns)}
        for name, fn in (("pretrain", self.stage_pretrain), ("library_refresh", self.stage_library),
                         ("gradient_attacks", self.stage_attacks), ("sat", self.stage_sat),
                         ("baselines", self.stage_baselines), ("attack_zoo", self.stage_zoo)):
            if name in ready and not ready[name]():
                self.rec["stages"].setdefault(name, {})["skipped"] = "an earlier stage it needs failed"
                continue
            self.stage(name, fn)
        return self.finish(provenance)

    def finish(self, provenance) -> int:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
        finite = [v for v in _walk(self.rec["stages"], "loss_finite")]
        self.rec["checks"] = {"losses_finite": all(finite) if finite else None, "errors": len(self.errors)}
        self.rec["passed"] = not self.errors and all(finite)
        self.rec["complete"] = True
        self.rec["provenance"] = provenance(device=str(self.device), machine=machine(), tiny=self.plan.tiny,
                                            wall_time_s=self.budget.elapsed())
        self.write()
        return 0 if self.rec["passed"] else 1


NOTES = [
    "every figure is measured on this device or computed from measured figures; the only constants are the "
    "published peak throughputs of the T4 and the H200 (t4_estimate.constants)",
    "projections cover `python -m satnb run --profile <p>` with its defaults (all stages, eps spaces pixel and "
    "normalized); data loading, checkpoint writes and the book's extra studies (MI, eps sweeps, restarts, "
    "transfer) are not included",
    "attack images are labelled with the kNN's own predictions, so every one counts as correctly classified; the "
    "time of a fixed-step attack does not depend on the labels, but the black-box attack stops an image at its "
    "first success and the optimisation/min-norm attacks add rounds for images never fooled, so with the barely "
    "trained benchmark models their projected times are estimates (the optimisation and min-norm projections "
    "leave out the escalation rounds: lower bounds)",
    "per-image and per-batch projections are linear in the number of images (the subsets fill one attack batch at "
    "full size), in the library size and in the black-box query budget",
    "the T4 estimate scales every projected time by the ratio of this device's peak (the published H200 bf16 peak "
    "on an H200, else the measured matmul TFLOP/s at the precision satnb runs) to the T4's published fp32 peak, "
    "since satnb computes in fp32 on a T4 (no bf16); it assumes compute-bound work and is an estimate",
]


# ----------------------------------------------------------------------------- projections


class Missing(Exception):
    """A projection needs a figure that was not measured (a stage failed or was skipped)."""


def _get(rec: dict, *path: str) -> float:
    node = rec["stages"]
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise Missing("stages." + ".".join(path))
        node = node[key]
    if node is None:
        raise Missing("stages." + ".".join(path))
    return node


def evaluate_formula(formula: str, inputs: dict) -> float:
    """The value of a projection's formula (a Python expression over its inputs and ceil)."""
    # the formulas are this module's own constants, never input
    return float(eval(formula, {"__builtins__": {}}, {"ceil": math.ceil, **inputs}))


def _eval_points(total: int, every: int) -> int:
    """Evaluation points of a fine-tuning run (satnb.core.runs.Run.run): 0, every, 2 every, ..., total."""
    return len(set(range(0, total, every)) | {total})


def _curve_points(epochs: int, every: int) -> int:
    """Pretraining-curve points (satnb.experiment.pipeline: every `every` epochs and the last one)."""
    return 0 if not every else len({e for e in range(1, epochs + 1) if e % every == 0} | {epochs})


def project(pname: str, rec: dict) -> dict:
    """The projected wall time of every stage of `satnb run --profile pname` from the measured figures."""
    from satnb.core.config import METHODS, PROFILES

    P = PROFILES[pname]
    measured_plan = rec["settings"]
    n_train = P.n_train or CIFAR10_TRAIN
    n_test = P.n_test or CIFAR10_TEST
    n_lib = P.n_library or n_train
    N_ATTACK = P.protocol.n_attack or n_test  # noqa: N806 (None: every correct test image; the test set bounds it)
    twins = P.supervised_twins()
    recipes = {**P.train, **twins}
    terms: dict[str, dict] = {}

    def term(name: str, stage: str | None, formula: str, inputs: Callable[[], dict]) -> float | None:
        try:
            values = inputs()
        except Missing as miss:
            terms[name] = {"stage": stage, "seconds": None, "formula": formula, "missing": str(miss)}
            return None
        if any(v is None for v in values.values()):
            terms[name] = {"stage": stage, "seconds": None, "formula": formula, "inputs": values,
                           "missing": "an input term"}
            return None
        seconds = evaluate_formula(formula, values)
        terms[name] = {"stage": stage, "seconds": seconds, "formula": formula, "inputs": values}
        return seconds

    # components (stage None: not summed; other terms take their seconds as inputs)
    for arch in sorted({s.encoder for s in recipes.values()}):
        term(f"library:{arch}", None, "refresh_s * n_library / n_library_measured", lambda a=arch: {
            "refresh_s": _get(rec, "library_refresh", a, "seconds"), "n_library": n_lib,
            "n_library_measured": _get(rec, "library_refresh", a, "n_library")})
        term(f"predict:{arch}", None, "predict_s * n_test / n_test_measured", lambda a=arch: {
            "predict_s": _get(rec, "predict_test", a, "seconds"), "n_test": n_test,
            "n_test_measured": _get(rec, "predict_test", a, "n_test")})
        term(f"gradient-attacks:{arch}", None,
             "n_attack * (small_s_per_image + large_s_per_image + noise_small_s_per_image + noise_large_s_per_image)",
             lambda a=arch: {"n_attack": N_ATTACK, **{
                 f"{k}_s_per_image": _get(rec, "gradient_attacks", a, k, "seconds_per_image")
                 for k in ("small", "large", "noise_small", "noise_large")}})
        term(f"trajectory-eval:{arch}", None, "library_s + predict_s + gradient_attacks_s", lambda a=arch: {
            "library_s": terms[f"library:{a}"]["seconds"], "predict_s": terms[f"predict:{a}"]["seconds"],
            "gradient_attacks_s": terms[f"gradient-attacks:{a}"]["seconds"]})
        n_opt = min(P.protocol.n_attack_opt, N_ATTACK)
        term(f"optimization-attack:{arch}", None,
             "measured_s * (binary_search_steps / rounds_measured) * ((steps + 1) / (steps_measured + 1))"
             " * ceil(n_opt / batch) / ceil(n_measured / batch)", lambda a=arch, n_opt=n_opt: {
                 "measured_s": _get(rec, "optimization_attack", a, "seconds"),
                 "binary_search_steps": P.protocol.opt_binary_steps, "rounds_measured": measured_plan["opt_rounds"],
                 "steps": P.protocol.opt_steps, "steps_measured": measured_plan["opt_steps"], "n_opt": n_opt,
                 "n_measured": _get(rec, "optimization_attack", a, "n_images"), "batch": OPT_BATCH})
        n_zoo = P.zoo.n_images or N_ATTACK
        per_image = " + ".join(f"{s}_{i} * {scale}" for s in ("small", "large")
                               for i, scale in zip(range(4), ("1", "strong_scale", "1", "queries_scale")))
        term(f"zoo-per-image:{arch}", None, per_image, lambda a=arch: {
            **{f"{s}_{i}": _get(rec, "attack_zoo", a, "seconds_per_image", s, name)
               for s in ("small", "large") for i, name in enumerate(ZOO_ATTACKS)},
            "strong_scale": (P.zoo.restarts * P.zoo.steps_factor) / (
                _get(rec, "attack_zoo", a, "restarts") * _get(rec, "attack_zoo", a, "steps_factor")),
            "queries_scale": P.zoo.queries / _get(rec, "attack_zoo", a, "queries")})
        term(f"zoo-min-norm:{arch}", None,
             "measured_s * (binary_search_steps / rounds_measured) * ((steps + 1) / (steps_measured + 1))"
             " * ceil(n_opt / batch) / ceil(n_measured / batch)", lambda a=arch, n_zoo=n_zoo: {
                 "measured_s": _get(rec, "attack_zoo", a, "min_norm_seconds"),
                 "binary_search_steps": P.protocol.opt_binary_steps, "rounds_measured": measured_plan["zoo_rounds"],
                 "steps": P.protocol.opt_steps, "steps_measured": measured_plan["zoo_steps"],
                 "n_opt": min(P.protocol.n_attack_opt, n_zoo),
                 "n_measured": _get(rec, "attack_zoo", a, "min_norm_images"),
                 "batch": MIN_NORM_BATCH})

    def comp(name: str) -> float | None:
        t = terms.get(name)
        return None if t is None else t["seconds"]

    # train: every method and twin, and its kNN-accuracy curve
    uses = dict(pretrain_configs(_plan_of(rec))[1])
    for name, s in recipes.items():
        key = uses[(pname, name)]
        term(f"pretrain:{name}", "train", "epochs * images_per_epoch / images_per_s", lambda s=s, key=key: {
            "epochs": s.epochs, "images_per_epoch": (n_train // s.batch_size) * s.batch_size,
            "images_per_s": _get(rec, "pretrain", key, "images_per_s")})
        term(f"curve:{name}", "train", "points * (library_s + predict_s)", lambda s=s: {
            "points": _curve_points(s.epochs, P.curve_every), "library_s": comp(f"library:{s.encoder}"),
            "predict_s": comp(f"predict:{s.encoder}")})

    # SAT of each self-supervised model, library refreshed every refresh_every iterations
    sat_arch = {seed: P.train[seed].encoder for seed in SSL_SEEDS if seed in P.train}
    for seed, arch in sat_arch.items():
        term(f"sat:{seed}", "sat",
             "iterations * (attack_update_s + refresh_s * n_library / n_library_measured / refresh_every)"
             " + eval_points * trajectory_eval_s", lambda arch=arch: {
                 "iterations": P.sat.iterations, "refresh_every": P.sat.refresh_every,
                 "attack_update_s": _get(rec, "sat", arch, "attack_update_seconds"),
                 "refresh_s": _get(rec, "sat", arch, "refresh_seconds"), "n_library": n_lib,
                 "n_library_measured": _get(rec, "sat", arch, "n_library"),
                 "eval_points": _eval_points(P.sat.iterations, P.sat.eval_every),
                 "trajectory_eval_s": comp(f"trajectory-eval:{arch}")})
    if P.refresh_check_iterations and P.sat.refresh_every != 1 and "amdim" in sat_arch:
        arch = sat_arch["amdim"]
        term("sat:refresh-check", "sat",
             "iterations * (2 * attack_update_s + refresh_s * n_library / n_library_measured * (1 + 1 / refresh_every))"
             " + 2 * eval_points * trajectory_eval_s + 2 * (predict_s + gradient_attacks_s)", lambda: {
                 "iterations": P.refresh_check_iterations, "refresh_every": P.sat.refresh_every,
                 "attack_update_s": _get(rec, "sat", arch, "attack_update_seconds"),
                 "refresh_s": _get(rec, "sat", arch, "refresh_seconds"), "n_library": n_lib,
                 "n_library_measured": _get(rec, "sat", arch, "n_library"),
                 "eval_points": _eval_points(P.refresh_check_iterations, P.sat.eval_every),
                 "trajectory_eval_s": comp(f"trajectory-eval:{arch}"), "predict_s": comp(f"predict:{arch}"),
                 "gradient_attacks_s": comp(f"gradient-attacks:{arch}")})

    # the supervised baselines, fine-tuned from SUP
    sup_arch = P.train["sup"].encoder
    for method in BASELINES:
        term(f"baselines:{method}", "baselines", "epochs * batches_per_epoch * s_per_batch + eval_points * "
             "trajectory_eval_s", lambda method=method: {
                 "epochs": P.baselines.epochs, "batches_per_epoch": n_train // P.baselines.batch_size,
                 "s_per_batch": _get(rec, "baselines", method, "seconds_per_batch"),
                 "eval_points": _eval_points(P.baselines.epochs, P.baselines.eval_every_epochs),
                 "trajectory_eval_s": comp(f"trajectory-eval:{sup_arch}")})

    # evaluation (pixel: every model; normalized: SUP and AMDIM, their features cached) and the attack zoo
    arch_of = {**{m: recipes[m].encoder for m in [*METHODS, *twins]},
               **{f"sat-{seed}": arch for seed, arch in sat_arch.items()}, **{b: sup_arch for b in BASELINES}}
    for model, arch in arch_of.items():
        term(f"evaluate:pixel:{model}", "evaluate", "library_s + predict_s + gradient_attacks_s + optimization_s",
             lambda arch=arch: {"library_s": comp(f"library:{arch}"), "predict_s": comp(f"predict:{arch}"),
                                "gradient_attacks_s": comp(f"gradient-attacks:{arch}"),
                                "optimization_s": comp(f"optimization-attack:{arch}")})
        term(f"robustness:{model}", "robustness", "fixed_s + predict_s + n_zoo * per_image_s + min_norm_s",
             lambda arch=arch: {"fixed_s": _get(rec, "attack_zoo", arch, "fixed_seconds"),
                                "predict_s": comp(f"predict:{arch}"), "n_zoo": P.zoo.n_images or N_ATTACK,
                                "per_image_s": comp(f"zoo-per-image:{arch}"),
                                "min_norm_s": comp(f"zoo-min-norm:{arch}")})
    for model in ("sup", "amdim"):
        arch = arch_of[model]
        term(f"evaluate:normalized:{model}", "evaluate", "predict_s + gradient_attacks_s + optimization_s",
             lambda arch=arch: {"predict_s": comp(f"predict:{arch}"),
                                "gradient_attacks_s": comp(f"gradient-attacks:{arch}"),
                                "optimization_s": comp(f"optimization-attack:{arch}")})

    by_stage: dict[str, float | None] = {}
    for t in terms.values():
        if t["stage"] is None:
            continue
        prev = by_stage.get(t["stage"], 0.0)
        by_stage[t["stage"]] = None if prev is None or t["seconds"] is None else prev + t["seconds"]
    total = None if any(v is None for v in by_stage.values()) else sum(by_stage.values())
    return {"profile": pname, "n_train": n_train, "n_test": n_test, "n_library": n_lib, "terms": terms,
            "by_stage": by_stage, "total_seconds": total,
            "total_hours": None if total is None else total / 3600}


def _plan_of(rec: dict) -> Plan:
    return Plan(**rec["settings"])


def t4_estimate(rec: dict) -> dict:
    """The projections scaled to a Colab T4 by published peak throughput ratios (an estimate)."""
    mm = rec.get("matmul") or {}
    precision = rec["device"]["precision"]
    published = mm.get("published_bf16_peak_tflops") if precision == "bf16" else None
    measured = mm.get(f"{precision}_tflops")
    reference = published or measured
    out = {"estimate": True,
           "basis": "projected seconds on this device x (this device's peak / T4 peak); satnb runs fp32 on a T4 "
                    "(no bf16), so the main estimate uses the T4's fp32 peak",
           "constants": {"T4_FP32_TFLOPS": T4_FP32_TFLOPS, "T4_FP16_TENSOR_TFLOPS": T4_FP16_TENSOR_TFLOPS,
                         "T4_MEMORY_BYTES": T4_MEMORY_BYTES, "H200_BF16_DENSE_TFLOPS": H200_BF16_DENSE_TFLOPS},
           "device_reference_tflops": reference,
           "device_reference": ("published H200 bf16 dense peak" if published else
                                f"measured {precision} matmul on this device" if measured else None),
           "scale": None, "alternatives": {}, "profiles": {}, "memory": {}}
    if not reference:
        return out
    out["scale"] = scale = reference / T4_FP32_TFLOPS
    out["alternatives"] = {
        "scale_from_measured_matmul": (measured / T4_FP32_TFLOPS) if measured else None,
        "scale_if_fp16_tensor_cores": reference / T4_FP16_TENSOR_TFLOPS,
    }
    for pname, proj in rec["projections"].items():
        total = proj["total_seconds"]
        out["profiles"][pname] = {
            "total_seconds": None if total is None else total * scale,
            "total_hours": None if total is None else total * scale / 3600,
            "by_stage": {k: None if v is None else v * scale for k, v in proj["by_stage"].items()},
            "total_hours_if_fp16_tensor_cores": None if total is None else total * reference / T4_FP16_TENSOR_TFLOPS
            / 3600}
    peak = rec.get("memory_peak_bytes")
    out["memory"] = {"peak_bytes_here": peak, "t4_memory_bytes": T4_MEMORY_BYTES,
                     "fits_if_fp32_doubles_it": None if peak is None else bool(2 * peak < T4_MEMORY_BYTES)}
    return out


def summary_rows(rec: dict) -> tuple[list[dict], list[dict]]:
    """Flat figures and informational ratios (the shape benchmarks/_common's records use)."""
    figs, rats = [], []
    st = rec["stages"]
    if rec.get("matmul"):
        figs.append(figure("matmul bf16", rec["matmul"]["bf16_tflops"], "TFLOP/s"))
        figs.append(figure("matmul fp32", rec["matmul"]["fp32_tflops"], "TFLOP/s"))
    for key, r in (st.get("pretrain") or {}).items():
        if isinstance(r, dict) and "images_per_s" in r:
            figs.append(figure(f"pretrain {key} ({', '.join(r['profiles'])})", r["images_per_s"], "img/s"))
            if "cudnn_benchmark_images_per_s" in r:
                rats.append(ratio(f"pretrain {key}: cudnn.benchmark on / off",
                                  r["cudnn_benchmark_images_per_s"] / r["images_per_s"], note="what-if"))
    for arch, r in (st.get("library_refresh") or {}).items():
        if isinstance(r, dict) and "images_per_s" in r:
            figs.append(figure(f"library refresh {arch} ({r['n_library']} images)", r["images_per_s"], "img/s"))
            rats.append(ratio(f"features {arch}: uint8 on the device / host-fed (satnb)",
                              r["device_resident_features_images_per_s"] / r["features_images_per_s"],
                              note="what-if"))
    for arch, r in (st.get("sat") or {}).items():
        if isinstance(r, dict) and "seconds_per_iteration" in r:
            figs.append(figure(f"SAT {arch} (refresh every iteration)", r["seconds_per_iteration"], "s/iteration"))
    for method, r in (st.get("baselines") or {}).items():
        if isinstance(r, dict) and "seconds_per_batch" in r:
            figs.append(figure(f"baseline {method} (PGD + update)", r["seconds_per_batch"], "s/batch"))
    for arch, r in (st.get("gradient_attacks") or {}).items():
        if isinstance(r, dict) and "small" in r:
            for s in ("small", "large"):
                figs.append(figure(f"gradient attack {s} {arch}", r[s]["images_per_s"], "img/s"))
    for arch, r in (st.get("optimization_attack") or {}).items():
        if isinstance(r, dict) and "images_per_s" in r:
            figs.append(figure(f"optimisation attack {arch} ({r['binary_search_steps']} round(s) x {r['steps']} steps)",
                               r["images_per_s"], "img/s"))
    for arch, r in (st.get("attack_zoo") or {}).items():
        if isinstance(r, dict) and "images_per_s" in r:
            figs.append(figure(f"attack zoo {arch} ({r['queries']} black-box queries)", r["images_per_s"], "img/s"))
    for pname, proj in rec.get("projections", {}).items():
        if proj.get("total_seconds") is not None:
            figs.append(figure(f"projected `{pname}` profile", proj["total_seconds"], "s"))
    t4 = rec.get("t4_estimate") or {}
    for pname, p in (t4.get("profiles") or {}).items():
        if p.get("total_seconds") is not None:
            figs.append(figure(f"T4 estimate `{pname}` profile (fp32)", p["total_seconds"], "s", note="estimate"))
    return figs, rats


def _walk(node, key: str) -> Iterator:
    """Every value stored under `key` anywhere in a nested dict."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            else:
                yield from _walk(v, key)


def _plain(obj):
    """JSON-safe copy (tuples to lists, numpy scalars to Python, non-finite floats to None)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny architectures and sizes: seconds on a CPU")
    ap.add_argument("--out", default=str(ROOT / "results"), help=f"folder for {RECORD} (default: results/)")
    ap.add_argument("--data", choices=("auto", "synthetic", "cifar10"), default="auto",
                    help="images to train and attack: CIFAR-10 from SATNB_DATA, random ones, or auto (CIFAR-10 when "
                         "SATNB_DATA is set, except with --tiny)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="start no stage after this many seconds (what is measured by then is still written)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice; 1 with --tiny, whose models gain nothing from "
                         "more and lose much to OpenMP spin-waits on a busy machine)")
    args = ap.parse_args(argv)
    threads = args.threads or (1 if args.tiny else None)
    if threads:
        torch.set_num_threads(threads)
    check = Check(args)
    code = check.run()
    rec = check.rec
    print()
    print_table(table_rows(rec))
    for pname, proj in rec["projections"].items():
        total = proj["total_seconds"]
        t4 = rec["t4_estimate"].get("profiles", {}).get(pname, {})
        line = "n/a (missing measurements)" if total is None else (
            f"{total / 3600:.2f} h here; T4 estimate (fp32) {t4.get('total_hours') or float('nan'):.1f} h")
        print(f"projected `{pname}` profile: {line}")
    print(f"\n{RECORD}: {', '.join(str(p) for p in check.out_files)}; {rec['seconds']:.0f} s"
          + ("" if code == 0 else f"; FAILED: {'; '.join(check.errors) or 'a loss was not finite'}"))
    return code


if __name__ == "__main__":
    sys.exit(main())
