"""The supervised baselines AT, MAT and ALP (paper eq. 2-4): their losses and the resumable fine-tuning run.

They fine-tune a supervised ``Classifier`` on PGD examples with the same eps / step / iterations
as the kNN gradient attack.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satnb.attacks import pgd_attack
from satnb.core.checks import integer, one_of
from satnb.core.config import AttackSettings, BaselineSettings, ConfigError
from satnb.core.runs import Run, unit_seed
from satnb.core.store import Store
from satnb.defences.finetune import (
    AdvTrainResult,
    EvalFn,
    FineTuning,
    Images,
    arrays_fingerprint,
    batch,
    batch_size,
    fine_tune,
    labels_of,
)
from satnb.nets.models import Classifier
from satnb.nets.optim import build_optimizer, schedule

BASELINES = ("at", "mat", "alp")


# Weightings. MAT: the paper's eq. 3 is a plain sum of the clean and adversarial losses (adv_weight=1);
# Kurakin et al.'s MAT is the weighted mean (sum_clean + lam * sum_adv) / (n_clean + lam * n_adv), lam=0.3,
# which for equal halves is proportional to adv_weight=0.3. ALP: eq. 4's L is the squared L2 distance
# between the two logit vectors, summed over classes and averaged over the batch (1/m sum_i); an
# implementation that also averages over the classes (an element-wise MSE) equals weight/n_classes here.


def alp_pairing(logits_clean: Tensor, logits_adv: Tensor) -> Tensor:
    """Logit pairing term: mean over the batch of ||logits(x_i) - logits(x_adv_i)||_2^2 (eq. 4 with squared L2)."""
    return (logits_clean - logits_adv).pow(2).sum(1).mean()


def _clean_adv_logits(model: nn.Module, x: Tensor, x_adv: Tensor) -> tuple[Tensor, Tensor]:
    logits = model(torch.cat([x, x_adv]))
    return logits[:len(x)], logits[len(x):]


def at_loss(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
    """Madry's AT (eq. 2): mean cross-entropy on the adversarial examples only."""
    return F.cross_entropy(model(x_adv), y)


def mat_loss(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, adv_weight: float = 1.0) -> Tensor:
    """Mixed-minibatch AT (eq. 3): CE(clean) + adv_weight * CE(adversarial); the paper's plain sum at 1."""
    clean, adv = _clean_adv_logits(model, x, x_adv)
    return F.cross_entropy(clean, y) + adv_weight * F.cross_entropy(adv, y)


def alp_loss(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, weight: float = 0.5,
             adv_weight: float = 1.0) -> Tensor:
    """ALP (eq. 4): the MAT loss plus weight * alp_pairing(clean logits, adversarial logits)."""
    clean, adv = _clean_adv_logits(model, x, x_adv)
    mat = F.cross_entropy(clean, y) + adv_weight * F.cross_entropy(adv, y)
    return mat + weight * alp_pairing(clean, adv)


def baseline_loss(method: str, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, alp_weight: float = 0.5,
                  adv_weight: float = 1.0) -> Tensor:
    """The loss of one supervised adversarial-training method ("at", "mat" or "alp")."""
    if method == "at":
        return at_loss(model, x, x_adv, y)
    if method == "mat":
        return mat_loss(model, x, x_adv, y, adv_weight)
    if method == "alp":
        return alp_loss(model, x, x_adv, y, alp_weight, adv_weight)
    raise ConfigError(f"unknown adversarial-training method {method!r}; use one of {', '.join(BASELINES)}")


def adversarial_train(model: Classifier, method: str, x_train: Images, y_train: Images, attack: AttackSettings,
                      settings: BaselineSettings, *, eps_space: str = "pixel", store: Store | None = None,
                      data_fingerprint: str = "", base_key: str = "", seed: int = 0,
                      device: torch.device | str = "cpu", progress: bool = True, eval_fn: EvalFn | None = None,
                      eval_key: str = "", profile: str | None = None) -> AdvTrainResult:
    """Fine-tune a copy of a (pretrained SUP) Classifier with AT, MAT or ALP on PGD examples; cached and resumable.

    PGD uses the gradient attack's eps / step / iterations, seeded per step. Each epoch visits a
    seeded permutation of x_train in full batches (the last partial batch is dropped). Every
    setting (epochs, batch size, optimiser (Adam or SGD-Nesterov), lr and schedule, weight decay, loss
    weights) comes from `settings` (the profile's `BaselineSettings`). eval_fn(model, epoch) runs at epoch 0, every
    settings.eval_every_epochs and at the end, each after a checkpoint; trajectory rows carry `iteration` =
    optimiser steps so far and `epoch`.
    """
    if not isinstance(model, Classifier):
        raise ConfigError(f"adversarial_train needs a Classifier (logits for PGD and the loss), got "
                          f"{type(model).__name__}; wrap the encoder: Classifier(encoder, n_classes)")
    one_of(method, "adversarial-training method", BASELINES)
    store, device = store or Store(), torch.device(device)
    n = len(x_train)
    y_all = labels_of(y_train, n, "y_train")
    epochs = integer(settings.epochs, "settings.epochs", "train for at least one epoch")
    bs = batch_size(settings.batch_size, n, "batch norm needs at least 2 images")
    every = integer(settings.eval_every_epochs, "settings.eval_every_epochs", "evaluate e.g. every epoch")
    alp_weight, adv_weight = settings.alp_weight, settings.adv_weight
    n_batches = n // bs
    model = copy.deepcopy(model).to(device)
    fields = asdict(settings)
    fields.update(alp_weight=alp_weight if method == "alp" else None, adv_weight=adv_weight if method != "at" else None)
    key = {"method": method, "attack": asdict(attack), "settings": fields, "eps_space": eps_space,
           "base": base_key, "seed": seed, "eval": eval_key, "arrays": arrays_fingerprint(x_train, y_all)}
    optimizer = build_optimizer(settings, model.parameters())
    run = Run(store, f"adv-{method}", key, data_fingerprint, code=adversarial_train, keep={"model": model},
              resume={"optimizer": optimizer})

    def epoch_of(epoch: int) -> dict:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(unit_seed(seed, epoch)))
        total, attack_s, update_s = torch.zeros((), device=device), 0.0, 0.0  # summed on the device: no sync
        for b in range(n_batches):
            step = epoch * n_batches + b
            torch.manual_seed(unit_seed(seed, step))
            schedule(optimizer, settings, step, n_batches)
            idx = perm[b * bs:(b + 1) * bs]
            x, y = batch(x_train, idx, device), y_all[idx].to(device)
            t0 = time.perf_counter()
            x_adv = pgd_attack(model, attack, eps_space=eps_space, seed=unit_seed(seed, step), batch_size=bs)(x, y)
            t1 = time.perf_counter()
            model.train()
            loss = baseline_loss(method, model, x, x_adv, y, alp_weight, adv_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().float()
            attack_s += t1 - t0
            update_s += time.perf_counter() - t1
        mean_loss = float(total) / n_batches
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"{method} loss became {mean_loss} in epoch {epoch + 1}; lower lr ({settings.lr})")
        return {"iteration": (epoch + 1) * n_batches, "loss": mean_loss,
                "mi_estimate": None, "updates": n_batches, "attack_seconds": attack_s, "update_seconds": update_s}

    how = FineTuning(method, key, epochs, every, "epoch", lambda r: int(r["updates"]),
                     point_fields=lambda epoch: {"iteration": epoch * n_batches})
    return fine_tune(run, how, epoch_of, eval_fn, desc=f"adversarial training ({method})", progress=progress,
                     seed=seed, device=device, profile=profile)
