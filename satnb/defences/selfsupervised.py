"""Self-supervised adversarial training (SAT, paper Algorithm 1): the objective, one update, the resumable run.

SAT fine-tunes a self-supervised encoder f without labels in the update: each iteration builds
x_adv with the kNN gradient attack against the current library, then minimises L_contrast
(eq. 11) between z = f(x) and z_hat = f(x_adv). Library labels only pick the attack's guide
groups (and, with ``keep_only_successful``, which pairs are kept), exactly as in the attack.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict

import torch
from torch import Tensor, nn

from satnb.attacks import gradient_attack
from satnb.core.checks import integer, one_of
from satnb.core.config import AttackSettings, ConfigError, SATSettings
from satnb.core.runs import Run, unit_seed
from satnb.core.store import Store
from satnb.core.variants import GUIDE_RULES
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
from satnb.knn import KNN
from satnb.knn.features import build_library, extract_features
from satnb.nets.amdim import AMDIMEncoder
from satnb.nets.losses import AMDIMLoss
from satnb.nets.mi import SeparableCritic, contrast_loss
from satnb.nets.optim import build_optimizer

SAT_OBJECTIVES = ("heads", "amdim")


class SATObjective(nn.Module):
    """L_contrast between clean and adversarial representations: the paper's critic heads or AMDIM's own NCE.

    "heads": z = f(x), z_hat = f(x_adv), scores phi1(z_i)^T phi2(z_hat_j) (eq. 10) from a
    ``SeparableCritic`` trained jointly with the encoder, loss = ``contrast_loss`` (eq. 11).
    "amdim" (the authors' code): AMDIM's multiscale NCE (``AMDIMLoss``) between the (r1, r5, r7)
    outputs of the clean and the adversarial view; needs an ``AMDIMEncoder``.
    Both views go through one forward pass, as AMDIM does with its two views, so train-mode
    batch norm normalises them with shared statistics.
    """

    def __init__(self, kind: str, model: nn.Module, critic_hidden: int = 256, critic_embed: int = 64,
                 seed: int = 0) -> None:
        super().__init__()
        self.kind = one_of(kind, "SAT objective", SAT_OBJECTIVES)
        if kind == "amdim":
            if not isinstance(model, AMDIMEncoder):
                raise ConfigError(f'objective="amdim" needs an AMDIMEncoder (it uses its r1/r5/r7 maps), got '
                                  f'{type(model).__name__}; use objective="heads" for other models')
            self.nce = AMDIMLoss(model.n_rkhs)
        else:
            dim = int(model.feature_dim)
            with torch.random.fork_rng(devices=[]):  # seeded heads without touching the caller's RNG
                torch.manual_seed(seed)
                self.critic = SeparableCritic(dim, dim, hidden=critic_hidden, embed=critic_embed)

    def forward(self, model: nn.Module, x: Tensor, x_adv: Tensor) -> tuple[Tensor, float | None]:
        """(loss, MI estimate log B - loss in nats; None for "amdim", whose loss is no single InfoNCE bound)."""
        b = len(x)
        both = torch.cat([x, x_adv])
        if self.kind == "amdim":
            outs = model(both)
            clean, adv = tuple(o[:b] for o in outs), tuple(o[b:] for o in outs)
            return self.nce(clean, adv), None
        feats = model.features(both)
        loss = contrast_loss(self.critic(feats[:b], feats[b:]))
        return loss, math.log(b) - float(loss.detach())


def sat_step(model: nn.Module, objective: SATObjective, optimizer: torch.optim.Optimizer, x: Tensor,
             x_adv: Tensor) -> dict:
    """One SAT update (Algorithm 1 lines 14-18) on clean/adversarial pairs; takes no labels by design."""
    model.train()
    objective.train()
    loss, mi = objective(model, x, x_adv)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"SAT loss became {float(loss)}; lower the learning rate")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach()), "mi_estimate": mi}


class _Library:
    """The kNN library under the current model, rebuilt every `every` iterations (its features are checkpointed)."""

    def __init__(self, model: nn.Module, images: Images, labels: Tensor, k: int, n_classes: int, every: int):
        self.model, self.images, self.labels = model, images, labels
        self.k, self.n_classes, self.every = k, n_classes, every
        self.knn: KNN | None = None

    def at(self, t: int) -> tuple[KNN, bool]:
        """The library for iteration t, and whether it was rebuilt now."""
        if self.knn is None or t % self.every == 0:
            self.knn = build_library(self.model, self.images, self.labels, self.k, self.n_classes)
            return self.knn, True
        return self.knn, False

    def state_dict(self) -> dict:
        """The library features, for the progress checkpoint."""
        return {"features": None if self.knn is None else self.knn.features}

    def load_state_dict(self, state: dict) -> None:
        """Refit the library saved by state_dict() (the labels are the run's own)."""
        feats = state["features"]
        device = next(self.model.parameters()).device
        self.knn = None if feats is None else KNN(self.k, n_classes=self.n_classes, device=device).fit(feats,
                                                                                                       self.labels)


def sat(model: nn.Module, x_train: Images, y_library: Images, settings: SATSettings, attack: AttackSettings,
        k: int, m: int, *, eps_space: str = "pixel", store: Store | None = None, data_fingerprint: str = "",
        base_key: str = "", seed: int = 0, device: torch.device | str = "cpu", progress: bool = True,
        eval_fn: EvalFn | None = None, n_classes: int | None = None, eval_key: str = "",
        track_success: bool = False, profile: str | None = None) -> AdvTrainResult:
    """Self-supervised adversarial training (Algorithm 1) of a copy of `model`, cached and resumable.

    Each iteration samples `settings.batch_size` images of x_train, attacks them with the kNN
    gradient attack (random start seeded per iteration) against the library of x_train's
    features under the current model (rebuilt every `settings.refresh_every` iterations), and
    takes one Adam step (lr, betas, weight decay from `settings`) on L_contrast(f(x), f(x_adv))
    with `settings.objective` via `sat_step`, which sees no labels. Every setting of the run comes
    from `settings` (one source: the profile's `SATSettings`).
    y_library are the library labels; they only choose guide groups (`settings.guide`) and, with
    settings.keep_only_successful, which pairs the kNN misclassifies and so are kept; a step with fewer
    than 2 kept pairs is skipped; track_success records the kNN's error rate on x_adv without
    filtering, at the cost of one more feature pass). eval_fn(model, iteration) runs at iteration 0, every
    `settings.eval_every` and at the end; `eval_key` names it in the cache key. The run is checkpointed
    at each evaluation point.
    """
    store, device = store or Store(), torch.device(device)
    n = len(x_train)
    y_lib = labels_of(y_library, n, "y_library")
    iterations = integer(settings.iterations, "settings.iterations", "SAT needs at least one iteration")
    bs = batch_size(settings.batch_size, n, "L_contrast needs negatives in the batch")
    refresh = integer(settings.refresh_every, "settings.refresh_every", "1 rebuilds it every iteration")
    every = integer(settings.eval_every, "settings.eval_every", "evaluate e.g. every 10 iterations")
    guide = one_of(settings.guide, "guide mode", GUIDE_RULES)
    objective, keep_only_successful = settings.objective, settings.keep_only_successful
    n_classes = n_classes if n_classes is not None else int(y_lib.max()) + 1
    model = copy.deepcopy(model).to(device)
    obj = SATObjective(objective, model, settings.critic_hidden, settings.critic_embed, seed).to(device)
    fields = asdict(settings)
    if objective != "heads":  # the critic's size does not change an AMDIM-NCE run
        fields.update(critic_hidden=None, critic_embed=None)
    key = {"settings": fields, "attack": asdict(attack), "k": k, "m": m, "track_success": track_success,
           "eps_space": eps_space, "base": base_key, "seed": seed, "n_classes": n_classes, "eval": eval_key,
           "arrays": arrays_fingerprint(x_train, y_lib)}
    optimizer = build_optimizer(settings, [*model.parameters(), *obj.parameters()])
    library = _Library(model, x_train, y_lib, k, n_classes, refresh)
    run = Run(store, "sat", key, data_fingerprint, code=sat, keep={"model": model, "objective": obj},
              resume={"optimizer": optimizer, "library": library})

    def iteration(t: int) -> dict:
        step_seed = unit_seed(seed, t)
        torch.manual_seed(step_seed)  # per-iteration seed: a resumed run replays the same iteration
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(step_seed))[:bs]
        t0 = time.perf_counter()
        knn, refreshed = library.at(t)
        t1 = time.perf_counter()
        x, y = batch(x_train, idx, device), y_lib[idx]
        x_adv = gradient_attack(model, knn, attack, m, eps_space=eps_space, seed=step_seed, guide=guide,
                                batch_size=bs)(x, y)
        success = None
        if keep_only_successful or track_success:
            fooled = (knn.predict(extract_features(model, x_adv)) != y).to(x.device)
            success = float(fooled.float().mean())
            if keep_only_successful:
                x, x_adv = x[fooled], x_adv[fooled]
        t2 = time.perf_counter()
        row = {"refreshed": refreshed, "attack_success": success, "n_pairs": len(x),
               "refresh_seconds": t1 - t0, "attack_seconds": t2 - t1}
        if len(x) < 2:
            return {**row, "loss": None, "mi_estimate": None, "update_seconds": 0.0}
        out = sat_step(model, obj, optimizer, x, x_adv)
        return {**row, **out, "update_seconds": time.perf_counter() - t2}

    how = FineTuning(f"sat-{objective}", key, iterations, every, "iteration", lambda r: int(r["loss"] is not None))
    return fine_tune(run, how, iteration, eval_fn, desc=f"SAT ({objective})", progress=progress, seed=seed,
                     device=device, profile=profile)
