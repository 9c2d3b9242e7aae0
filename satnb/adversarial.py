"""Self-supervised adversarial training (SAT, paper Algorithm 1) and the supervised baselines AT, MAT and ALP.

SAT fine-tunes a self-supervised encoder f without labels in the update: each iteration builds
x_adv with the kNN gradient attack against the current library, then minimises L_contrast
(eq. 11) between z = f(x) and z_hat = f(x_adv). Library labels only pick the attack's guide
groups (and, with ``keep_only_successful``, which pairs are kept), exactly as in the attack.

The baselines (paper eq. 2-4) fine-tune a supervised ``Classifier`` on PGD examples with the
same eps / step / iterations. Every run is cached in the artifact store, checkpoints at each
evaluation point, and a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from satnb.attacks import gradient_attack, pgd_attack
from satnb.config import AttackSettings, BaselineSettings, ConfigError, SATSettings, scheduled_lr
from satnb.features import as_images, build_library, extract_features
from satnb.knn import GUIDE_MODES, KNN
from satnb.losses import AMDIMLoss
from satnb.mi import SeparableCritic, contrast_loss
from satnb.models import AMDIMEncoder, Classifier
from satnb.store import Artifact, Store, provenance, restoring

SAT_OBJECTIVES = ("heads", "amdim")
BASELINES = ("at", "mat", "alp")
PAPER_BETAS = (0.9, 0.999)  # the paper says plain Adam: torch's default betas, no weight decay
AUTHORS_BETAS = (0.8, 0.999)  # the authors' SAT code (with weight_decay=1e-5)
EvalFn = Callable[[nn.Module, int], dict]
Images = np.ndarray | Tensor


# ----------------------------------------------------------------------------- results


@dataclass
class AdvTrainResult:
    """A fine-tuned model with its evaluation trajectory, per-unit history and timings (SAT and baselines)."""

    method: str  # "sat-heads", "sat-amdim", "at", "mat" or "alp"
    model: nn.Module
    trajectory: list[dict]  # one row per evaluation point: iteration, loss, mi_estimate, eval_fn's dict
    history: list[dict]  # one row per SAT iteration / baseline epoch, with its phase timings
    train_seconds: float  # wall time of training only (attacks, library refreshes, updates)
    eval_seconds: float  # wall time spent in eval_fn
    n_updates: int  # optimiser steps taken (SAT: iterations minus skipped ones)
    settings: dict
    artifact: Artifact
    cached: bool
    objective: nn.Module | None = field(default=None, repr=False)

    @property
    def seconds_per_update(self) -> float:
        """Mean training wall time per optimiser step."""
        return self.train_seconds / self.n_updates if self.n_updates else float("nan")


SATResult = AdvTrainResult


# ----------------------------------------------------------------------------- SAT objective


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
        if kind not in SAT_OBJECTIVES:
            raise ConfigError(f"unknown SAT objective {kind!r}; use one of {', '.join(SAT_OBJECTIVES)}")
        self.kind = kind
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


# ----------------------------------------------------------------------------- baseline losses


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


# ----------------------------------------------------------------------------- shared helpers


def _step_seed(seed: int, t: int) -> int:
    return seed * 100_003 + t


def _fingerprint(x: Images, y: Images) -> str:
    """Short hash of the training images and labels (a subset or relabelling changes the cache key)."""
    h = hashlib.blake2b(digest_size=8)
    for a in (x, y):
        arr = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
        h.update(str((arr.dtype, arr.shape)).encode())
        h.update(np.ascontiguousarray(arr).data)
    return h.hexdigest()


def _plain(obj: Any) -> Any:
    """JSON- and weights_only-safe copy of an eval record (numpy/torch scalars to Python; '_' keys dropped)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (Tensor, np.ndarray)):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ConfigError(f"eval_fn returned a {type(obj).__name__}; return numbers, strings, lists and dicts")


def _labels(y: Images, n: int, name: str) -> Tensor:
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y).long().cpu()
    if y.shape != (n,):
        raise ConfigError(f"{name} must hold one label per training image ({n}), got shape {tuple(y.shape)}")
    return y


def _batch(images: Images, idx: Tensor, device: torch.device) -> Tensor:
    """Float NCHW [0,1] images at idx, on the device."""
    part = images[idx.numpy()] if isinstance(images, np.ndarray) else images[idx]
    return as_images(part).to(device)


def _check_count(value: int, name: str, minimum: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}; {fix}")
    return int(value)


def _eval_points(total: int, every: int) -> set[int]:
    return set(range(0, total, every)) | {total}


def _summary(records: list[dict]) -> dict:
    """Mean loss and MI estimate over the history rows since the previous evaluation point."""
    out = {}
    for key in ("loss", "mi_estimate"):
        vals = [r[key] for r in records if r.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out


@dataclass
class _Run:
    """The shared train/eval/checkpoint loop over units (SAT iterations or baseline epochs)."""

    store: Store
    art: Artifact
    model: nn.Module
    objective: nn.Module
    optimizer: torch.optim.Optimizer
    total: int
    eval_every: int
    eval_fn: EvalFn | None
    desc: str
    progress: bool
    unit_updates: Callable[[dict], int]  # optimiser steps a history row stands for
    unit_name: str = "iteration"  # what one unit is: a SAT iteration or a baseline epoch
    point_fields: Callable[[int], dict] = lambda t: {}  # extra fields of the trajectory row at t
    extra_state: Callable[[], dict] = dict
    load_extra: Callable[[dict], None] = lambda state: None

    def _save(self, t: int, history: list, trajectory: list, train_s: float, eval_s: float) -> None:
        self.store.save_checkpoint(self.art, {
            "model": self.model.state_dict(), "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(), "t": t, "history": history, "trajectory": trajectory,
            "train_seconds": train_s, "eval_seconds": eval_s, **self.extra_state()})

    def _evaluate(self, t: int, history: list, trajectory: list) -> float:
        u = self.unit_name
        since = trajectory[-1][u] if trajectory else -1
        row = {u: t, **self.point_fields(t), **_summary([r for r in history if r[u] > since])}
        t0 = time.perf_counter()
        if self.eval_fn is not None:
            self.model.eval()
            row.update(_plain(self.eval_fn(self.model, t)))
            self.model.train()
        trajectory.append(row)
        return time.perf_counter() - t0

    def run(self, unit: Callable[[int], dict]) -> tuple[list, list, float, float]:
        """Run units start..total-1 (resuming from the progress checkpoint), evaluating at each eval point."""
        t, history, trajectory, train_s, eval_s = 0, [], [], 0.0, 0.0
        state = self.store.load_checkpoint(self.art, final=False)
        if state is not None:
            with restoring(self.art.progress):
                self.model.load_state_dict(state["model"])
                self.objective.load_state_dict(state["objective"])
                self.optimizer.load_state_dict(state["optimizer"])
                self.load_extra(state)
                t, history, trajectory = int(state["t"]), list(state["history"]), list(state["trajectory"])
                train_s, eval_s = float(state["train_seconds"]), float(state["eval_seconds"])
        points = _eval_points(self.total, self.eval_every)
        bar = tqdm(total=self.total, initial=t, desc=self.desc, disable=not self.progress)
        while True:
            # a checkpoint is saved before each evaluation, so an interrupted evaluation reruns on resume
            if t in points and (not trajectory or trajectory[-1][self.unit_name] != t):
                eval_s += self._evaluate(t, history, trajectory)
                self._save(t, history, trajectory, train_s, eval_s)
            if t >= self.total:
                break
            t0 = time.perf_counter()
            record = {self.unit_name: t + 1, **unit(t)}
            record["seconds"] = time.perf_counter() - t0
            train_s += record["seconds"]
            history.append(record)
            t += 1
            bar.update()
            if record.get("loss") is not None:
                bar.set_postfix(loss=f"{record['loss']:.3f}")
            if t in points:
                self._save(t, history, trajectory, train_s, eval_s)
        bar.close()
        return trajectory, history, train_s, eval_s


def _finish(run: _Run, method: str, settings: dict, trajectory: list, history: list, train_s: float,
            eval_s: float, seed: int, device: torch.device, profile: str | None) -> AdvTrainResult:
    n_updates = sum(run.unit_updates(r) for r in history)
    run.model.eval()
    run.store.save_result(run.art, {
        "method": method, "settings": settings, "trajectory": trajectory, "history": history,
        "train_seconds": train_s, "eval_seconds": eval_s, "n_updates": n_updates,
        "provenance": provenance(profile=profile, seed=seed, wall_time_s=train_s, device=str(device),
                                 method=method, eval_seconds=round(eval_s, 3))})
    run.store.save_checkpoint(run.art, {"model": run.model.state_dict(), "objective": run.objective.state_dict()},
                              final=True)
    return AdvTrainResult(method, run.model, trajectory, history, train_s, eval_s, n_updates, settings, run.art,
                          False, run.objective)


def _from_cache(store: Store, art: Artifact, method: str, model: nn.Module, objective: nn.Module,
                settings: dict) -> AdvTrainResult | None:
    final = store.load_checkpoint(art)
    if final is None:
        return None
    with restoring(art.final):
        model.load_state_dict(final["model"])
        objective.load_state_dict(final["objective"])
    res = store.load_result(art) or {}
    return AdvTrainResult(method, model.eval(), res.get("trajectory", []), res.get("history", []),
                          res.get("train_seconds", 0.0), res.get("eval_seconds", 0.0), res.get("n_updates", 0),
                          settings, art, True, objective)


def _adam(params: list, lr: float, betas: tuple[float, float], weight_decay: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


# ----------------------------------------------------------------------------- SAT


class _Library:
    """The kNN library under the current model, rebuilt every `every` iterations (state saved for resuming)."""

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

    def state(self) -> dict:
        """The library features, for the progress checkpoint."""
        return {"library": None if self.knn is None else self.knn.features}

    def load(self, state: dict) -> None:
        """Refit the library saved by state() (labels are the run's own)."""
        feats = state.get("library")
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
    `settings.eval_every` and at the end; `eval_key` names it in the cache key.
    """
    store, device = store or Store(), torch.device(device)
    n = len(x_train)
    y_lib = _labels(y_library, n, "y_library")
    iterations = _check_count(settings.iterations, "settings.iterations", 1, "SAT needs at least one iteration")
    bs = _check_count(settings.batch_size, "settings.batch_size", 2, "L_contrast needs negatives in the batch")
    if bs > n:
        raise ConfigError(f"settings.batch_size={bs} is larger than the {n} training images; lower it")
    refresh = _check_count(settings.refresh_every, "settings.refresh_every", 1, "1 rebuilds it every iteration")
    every = _check_count(settings.eval_every, "settings.eval_every", 1, "evaluate e.g. every 10 iterations")
    guide, objective, keep_only_successful = settings.guide, settings.objective, settings.keep_only_successful
    if guide not in GUIDE_MODES:
        raise ConfigError(f"unknown guide mode {guide!r}; use one of {', '.join(GUIDE_MODES)}")
    n_classes = n_classes if n_classes is not None else int(y_lib.max()) + 1
    model = copy.deepcopy(model).to(device)
    obj = SATObjective(objective, model, settings.critic_hidden, settings.critic_embed, seed).to(device)
    method = f"sat-{objective}"
    fields = asdict(settings)
    if objective != "heads":  # the critic's size does not change an AMDIM-NCE run
        fields.update(critic_hidden=None, critic_embed=None)
    key = {"settings": fields, "attack": asdict(attack), "k": k, "m": m, "track_success": track_success,
           "eps_space": eps_space, "base": base_key, "seed": seed, "n_classes": n_classes, "eval": eval_key,
           "arrays": _fingerprint(x_train, y_lib)}
    art = store.artifact("sat", key, data_fingerprint, code=__name__)
    hit = _from_cache(store, art, method, model, obj, key)
    if hit is not None:
        return hit

    optimizer = _adam(list(model.parameters()) + list(obj.parameters()), settings.lr, settings.betas,
                      settings.weight_decay)
    library = _Library(model, x_train, y_lib, k, n_classes, refresh)

    def unit(t: int) -> dict:
        step_seed = _step_seed(seed, t)
        torch.manual_seed(step_seed)  # per-iteration seed: a resumed run replays the same iteration
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(step_seed))[:bs]
        t0 = time.perf_counter()
        knn, refreshed = library.at(t)
        t1 = time.perf_counter()
        x, y = _batch(x_train, idx, device), y_lib[idx]
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

    run = _Run(store, art, model, obj, optimizer, iterations, every, eval_fn, f"SAT ({objective})", progress,
               unit_updates=lambda r: int(r.get("loss") is not None), extra_state=library.state,
               load_extra=library.load)
    trajectory, history, train_s, eval_s = run.run(unit)
    return _finish(run, method, key, trajectory, history, train_s, eval_s, seed, device, profile)


# ----------------------------------------------------------------------------- supervised baselines


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
    settings.eval_every_epochs and at the end; trajectory rows carry `iteration` = optimiser steps
    so far and `epoch`.
    """
    if not isinstance(model, Classifier):
        raise ConfigError(f"adversarial_train needs a Classifier (logits for PGD and the loss), got "
                          f"{type(model).__name__}; wrap the encoder: Classifier(encoder, n_classes)")
    if method not in BASELINES:
        raise ConfigError(f"unknown adversarial-training method {method!r}; use one of {', '.join(BASELINES)}")
    store, device = store or Store(), torch.device(device)
    n = len(x_train)
    y_all = _labels(y_train, n, "y_train")
    epochs = _check_count(settings.epochs, "settings.epochs", 1, "train for at least one epoch")
    bs = _check_count(settings.batch_size, "settings.batch_size", 2, "batch norm needs at least 2 images")
    if bs > n:
        raise ConfigError(f"settings.batch_size={bs} is larger than the {n} training images; lower it")
    every = _check_count(settings.eval_every_epochs, "settings.eval_every_epochs", 1, "evaluate e.g. every epoch")
    lr, alp_weight, adv_weight = settings.lr, settings.alp_weight, settings.adv_weight
    n_batches = n // bs
    model = copy.deepcopy(model).to(device)
    no_state = nn.Module()  # the baselines have no loss parameters; keeps the checkpoint layout of SAT
    fields = asdict(settings)
    fields.update(alp_weight=alp_weight if method == "alp" else None, adv_weight=adv_weight if method != "at" else None)
    key = {"method": method, "attack": asdict(attack), "settings": fields, "eps_space": eps_space,
           "base": base_key, "seed": seed, "eval": eval_key, "arrays": _fingerprint(x_train, y_all)}
    art = store.artifact(f"adv-{method}", key, data_fingerprint, code=__name__)
    hit = _from_cache(store, art, method, model, no_state, key)
    if hit is not None:
        return hit
    if settings.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                                    weight_decay=settings.weight_decay)
    else:
        optimizer = _adam(list(model.parameters()), lr, settings.betas, settings.weight_decay)

    def unit(epoch: int) -> dict:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(_step_seed(seed, epoch)))
        total, attack_s, update_s = torch.zeros((), device=device), 0.0, 0.0  # summed on the device: no sync
        for b in range(n_batches):
            step = epoch * n_batches + b
            torch.manual_seed(_step_seed(seed, step))
            for group in optimizer.param_groups:
                group["lr"] = scheduled_lr(lr, settings.schedule, settings.warmup_epochs * n_batches,
                                           epochs * n_batches, step)
            idx = perm[b * bs:(b + 1) * bs]
            x, y = _batch(x_train, idx, device), y_all[idx].to(device)
            t0 = time.perf_counter()
            x_adv = pgd_attack(model, attack, eps_space=eps_space, seed=_step_seed(seed, step), batch_size=bs)(x, y)
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
            raise FloatingPointError(f"{method} loss became {mean_loss} in epoch {epoch + 1}; lower lr ({lr})")
        return {"iteration": (epoch + 1) * n_batches, "loss": mean_loss,
                "mi_estimate": None, "updates": n_batches, "attack_seconds": attack_s, "update_seconds": update_s}

    run = _Run(store, art, model, no_state, optimizer, epochs, every, eval_fn, f"adversarial training ({method})",
               progress, unit_updates=lambda r: int(r["updates"]), unit_name="epoch",
               point_fields=lambda epoch: {"iteration": epoch * n_batches})
    trajectory, history, train_s, eval_s = run.run(unit)
    return _finish(run, method, key, trajectory, history, train_s, eval_s, seed, device, profile)
