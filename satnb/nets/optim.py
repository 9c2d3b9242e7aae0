"""The one optimiser builder and learning-rate schedule of pretraining and the fine-tuning runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import torch

from satnb.core.checks import one_of
from satnb.core.config import OPTIMIZERS, scheduled_lr

TORCH_BETAS = (0.9, 0.999)  # Adam's default: settings without betas (pretraining) get these


class Recipe(Protocol):
    """Settings an optimiser is built from (`TrainSettings`, `BaselineSettings`, `SATSettings`).

    They may also name an `optimizer` (else Adam: SAT's) and Adam's `betas` (else torch's default).
    """

    lr: float
    weight_decay: float


class Scheduled(Recipe, Protocol):
    """Settings with a learning-rate schedule over their epochs (`TrainSettings`, `BaselineSettings`)."""

    schedule: str
    warmup_epochs: float
    epochs: int


def build_optimizer(settings: Recipe, params: Iterable) -> torch.optim.Optimizer:
    """The settings' optimiser at their peak lr: Adam or AdamW with their betas, or SGD (momentum 0.9, Nesterov)."""
    kind = one_of(getattr(settings, "optimizer", "adam"), "optimizer", OPTIMIZERS)
    lr, wd, betas = settings.lr, settings.weight_decay, tuple(getattr(settings, "betas", TORCH_BETAS))
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)


def schedule(optimizer: torch.optim.Optimizer, settings: Scheduled, step: int, steps_per_epoch: int) -> float:
    """Set the lr of optimiser step `step` (0-based) under the settings' warm-up and schedule; return it."""
    lr = scheduled_lr(settings.lr, settings.schedule, settings.warmup_epochs * steps_per_epoch,
                      settings.epochs * steps_per_epoch, step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
