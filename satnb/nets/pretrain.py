"""Representation learning: AMDIM, NPID, SimCLR-style and supervised training loops that checkpoint and resume."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satnb.core.config import METHODS, ConfigError, TrainSettings
from satnb.core.dataset import Dataset
from satnb.core.datasets import CIFAR10_MEAN, CIFAR10_STD
from satnb.core.precision import effective_precision
from satnb.core.runs import Run, unit_seed
from satnb.core.store import Artifact, Store, provenance
from satnb.nets.augment import amdim_augment, npid_augment, simclr_augment, supervised_augment
from satnb.nets.distributed import ALONE, World, current
from satnb.nets.encoders import build_encoder
from satnb.nets.losses import AMDIMLoss, NPIDMemoryBank, NTXentLoss
from satnb.nets.models import Classifier, MLPHead, ProjectionModel
from satnb.nets.optim import build_optimizer, schedule

NPID_DIM = 128


def channel_stats(data: Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the training images in [0,1] (CIFAR-10: the usual constants)."""
    if data.name == "cifar10":
        return CIFAR10_MEAN, CIFAR10_STD
    x = data.x_train.reshape(-1, data.x_train.shape[-1]).astype(np.float64) / 255.0
    return tuple(x.mean(0).tolist()), tuple(np.maximum(x.std(0), 1e-3).tolist())


def build_model(method: str, settings: TrainSettings, data: Dataset) -> nn.Module:
    """The network a method trains, with the data's normalisation inside."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; valid methods are {', '.join(METHODS)}")
    mean, std = channel_stats(data)
    kwargs = dict(settings.encoder_kwargs, mean=mean, std=std)
    if settings.encoder == "amdim":
        kwargs.setdefault("image_size", data.image_shape[0])
    encoder = build_encoder(settings.encoder, **kwargs)
    if method == "sup":
        return Classifier(encoder, data.n_classes)
    if method == "simclr":
        return ProjectionModel(encoder, MLPHead(encoder.feature_dim, 512, 128), feature_source="encoder")
    if method == "npid":
        return ProjectionModel(encoder, nn.Linear(encoder.feature_dim, NPID_DIM), feature_source="head",
                               normalize_head=True)
    if settings.encoder != "amdim":
        raise ConfigError(f"method 'amdim' needs the AMDIM encoder, not {settings.encoder!r}")
    return encoder


def batch_images(x_uint8: Tensor, idx: Tensor) -> Tensor:
    """Float NCHW images in [0, 1] (channels_last) of a batch of uint8 NHWC images, on their device."""
    return x_uint8[idx].permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


class _Objective(nn.Module):
    """One method's loss on a batch (its own state, e.g. NPID's memory bank, is checkpointed with it)."""

    def __init__(self, method: str, model: nn.Module, n_samples: int, image_size: int, label_smoothing: float = 0.0):
        super().__init__()
        self.method = method
        self.label_smoothing = float(label_smoothing)
        if method == "amdim":
            self.loss = AMDIMLoss(model.n_rkhs)
            self.augment = amdim_augment(image_size)
        elif method == "simclr":
            self.loss = NTXentLoss(0.5)
            self.augment = simclr_augment(image_size)
        elif method == "npid":
            self.bank = NPIDMemoryBank(n_samples, NPID_DIM, temperature=0.1, momentum=0.5)
            self.augment = npid_augment(image_size)
        else:
            self.augment = supervised_augment(image_size)

    def forward(self, model: nn.Module, x: Tensor, y: Tensor, idx: Tensor, world: World = ALONE) -> Tensor:
        """The loss of the global batch (labels y, indices idx) of which x is this rank's slice."""
        def view():
            with world.local_random():
                v = self.augment(x)
            return world.gather(model(v))

        if self.method == "sup":
            return F.cross_entropy(view(), y, label_smoothing=self.label_smoothing)
        if self.method == "npid":
            return self.bank.loss(view(), idx)
        return self.loss(view(), view())


@dataclass
class TrainResult:
    """A trained model, its per-epoch history and where it is cached."""

    method: str
    model: nn.Module
    history: list[dict]
    artifact: Artifact
    wall_time_s: float
    cached: bool

    @property
    def epoch_time_s(self) -> float:
        """Mean seconds per epoch over the epochs that ran."""
        times = [h["seconds"] for h in self.history]
        return float(np.mean(times)) if times else float("nan")


def train(method: str, data: Dataset, settings: TrainSettings, store: Store | None = None, seed: int = 0,
          device: torch.device | str = "cpu", progress: bool = True, profile: str | None = None,
          on_epoch_end: Callable[[int, dict], None] | None = None,
          curve: Callable[[nn.Module, int], dict] | None = None, curve_key: str = "") -> TrainResult:
    """Train (or load from the cache) one method's network on the training split; resumes after interruption.

    Labels are read only by `sup`. Every epoch is checkpointed, so calling this again after an
    interruption continues from the last finished epoch and ends with the same weights. The learning
    rate follows the settings' schedule per optimiser step. `curve(model, epoch)` (e.g. kNN accuracy), when
    given, runs after every epoch in eval mode and its numbers join that epoch's history row;
    `curve_key` names it in the cache key (it does not change the weights).
    """
    store = store or Store()
    device = torch.device(device)
    world = current()  # under torchrun: this rank trains a slice of every batch (satnb.nets.distributed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the initial weights depend on the seed alone
        model = world.synchronise_batch_norm(build_model(method, settings, data), device)
    images = data.x_train if method == "sup" or data.x_unlabeled is None else \
        np.concatenate([data.x_train, data.x_unlabeled])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        objective = _Objective(method, model, len(images), data.image_shape[0], settings.label_smoothing)
    model.to(device, memory_format=torch.channels_last)
    objective.to(device)
    opt = build_optimizer(settings, model.parameters())
    run = Run(store, f"train-{method}", {"method": method, "settings": dataclasses.asdict(settings), "seed": seed,
                                         "classes": data.n_classes, "curve": curve_key},
              data.fingerprint(), code=train, keep={"model": model}, resume={"objective": objective, "optimizer": opt},
              writes=world.primary)
    done = run.cached()
    if done is not None:
        return TrainResult(method, model.eval(), done["history"], run.art, done["train_seconds"], True)

    # the images stay uint8 NHWC on the device (CIFAR-10: 150 MB); each batch becomes float NCHW there
    x_all = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    y_all = torch.as_tensor(data.y_train if method == "sup" else np.zeros(len(images), dtype=np.int64)).to(device)
    n = len(x_all)
    bs = min(settings.batch_size, n)
    steps = n // bs  # the last partial batch is dropped (contrastive losses need full ones)

    def epoch_of(epoch: int) -> dict:
        t0 = time.perf_counter()
        torch.manual_seed(unit_seed(seed, epoch))
        perm = torch.randperm(n).to(device)
        model.train()
        total = torch.zeros((), device=device)  # summed on the device: no host sync per step
        for b in range(steps):
            lr = schedule(opt, settings, epoch * steps + b, steps)
            idx = perm[b * bs:(b + 1) * bs]
            x = batch_images(x_all, world.shard(idx))
            loss = objective(model, x, y_all[idx], idx, world)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            world.sum_gradients(model)
            opt.step()
            total += loss.detach().float()
        mean_loss = float(total) / max(1, steps)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"{method} loss became {mean_loss} in epoch {epoch + 1}; "
                                     f"{_divergence_fix(images, settings.lr, device)}; the checkpoint of "
                                     f"epoch {epoch} is kept")
        record = {"loss": mean_loss, "seconds": time.perf_counter() - t0, "lr": lr}
        if curve is not None and world.primary:
            t1 = time.perf_counter()
            model.eval()
            record.update(curve(model, epoch + 1))
            record["curve_seconds"] = time.perf_counter() - t1
        return record

    p = run.run(settings.epochs, epoch_of, desc=f"train {method}", progress=progress and world.primary,
                after_unit=on_epoch_end)
    model.eval()
    run.finish(p, provenance=provenance(profile=profile, dataset=data.describe(), seed=seed,
                                        wall_time_s=p.train_seconds, device=str(device), method=method))
    return TrainResult(method, model, p.history, run.art, p.train_seconds, False)


def _divergence_fix(images: np.ndarray, lr: float, device: torch.device) -> str:
    """What to do about a loss that stopped being finite, as fits this run's images and precision."""
    if effective_precision(device) == "bf16":
        fix = f"lower the learning rate (now {lr}) or use SATNB_PRECISION=fp32 (--precision fp32)"
    else:
        fix = f"lower the learning rate (now {lr}); this run is already in fp32, so precision is not the cause"
    sample = images[:1024].reshape(-1, images.shape[-1]) / 255.0
    if float(sample.std(0).min()) < 1e-3:  # below channel_stats' floor: normalising divides by almost nothing
        fix = (f"the training images are (nearly) constant in some channel (std below 1e-3), so there is nothing "
               f"to learn; check the dataset, else {fix}")
    return fix
