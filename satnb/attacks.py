"""White-box attacks on a kNN over learned features, PGD for the supervised baselines, a noise control.

Every attack is an object built with its settings and called on a batch, returning adversarial
images in [0, 1] of the same shape and dtype::

    atk = KNNGradientAttack(model, knn, eps=0.03)
    x_adv = atk(images, labels)

A model takes float NCHW images in [0, 1] (normalisation is inside it, in ``model.normalize``
with buffers ``mean`` and ``std``) and exposes ``model.features(x) -> (B, D)``, the
representation the kNN searches; PGD needs ``model(x) -> logits`` instead. During an attack the
model is in eval mode (each submodule's mode is restored afterwards) and gradients are taken
with respect to the images only, so no ``.grad`` is left on the parameters.

eps units (``eps_space``): "pixel" (default, the paper's x + delta in [0,1]^d) measures eps and
the step in [0, 1] pixel units; "normalized" (the authors' code) measures them on the
normalised tensor, i.e. a pixel-space radius of eps * std per channel.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from satnb.config import AttackSettings, ConfigError
from satnb.data import check_images
from satnb.knn import GUIDE_MODES, KNN, guide_groups, guide_means

EPS_SPACES = ("pixel", "normalized")


@contextlib.contextmanager
def eval_mode(model: nn.Module | None) -> Iterator[None]:
    """Put every submodule in eval mode for the duration, then restore each one's own mode."""
    if model is None:
        yield
        return
    modes = [(mod, mod.training) for mod in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for mod, training in modes:
            mod.training = training


def _positive(value: object, name: str, fix: str, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}; {fix}")
    if upper is not None and value > upper:
        raise ConfigError(f"{name}={value} is larger than {upper}; {fix}")
    return float(value)


def _count(value: object, name: str, fix: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}; {fix}")
    return value


def _check_empty_class(knn: KNN, m: object) -> None:
    """m=0 comes from a library class without samples (m is capped by the smallest class): say so."""
    if m == 0 and isinstance(knn, KNN) and knn.fitted and bool((knn.class_counts == 0).any()):
        empty = (knn.class_counts == 0).nonzero().flatten().tolist()
        raise ConfigError(f"m=0 guide samples: library class(es) {', '.join(map(str, empty[:5]))} hold no sample, "
                          "so no guide group can be drawn from them; give every class library images (more "
                          "training images, or drop the empty class)")


def _check_guide_size(knn: KNN, m: int) -> None:
    """Raise if a fitted library has a class too small to supply m guide samples."""
    if not knn.fitted:
        return
    counts = knn.class_counts
    present = (counts > 0).nonzero().flatten()
    smallest = int(present[counts[present].argmin()])
    if m > int(counts[smallest]):
        raise ConfigError(
            f"m={m} guide samples per group, but library class {smallest} has only {int(counts[smallest])} samples; "
            f"lower m to at most {int(counts[smallest])} or use a larger library"
        )


class Attack:
    """Shared machinery: input checks, batching, eval mode, seeding and the eps-ball projection."""

    needs_labels = True

    def __init__(self, model: nn.Module | None, *, eps: float | None = None, step: float | None = None,
                 steps: int | None = None, eps_space: str = "pixel", random_start: bool = False,
                 seed: int | None = None, batch_size: int = 256, progress: bool = False) -> None:
        """Validate and store the settings every attack shares."""
        self.model = model
        if eps is not None:
            eps = _positive(eps, "eps", "eps is an L-inf radius in (0, 1], e.g. 0.03 (small) or 0.06 (large)", 1.0)
        if step is not None:
            step = _positive(step, "step", "the paper's step size is 0.005")
        if steps is not None:
            steps = _count(steps, "steps", "the paper uses 10 (small) or 20 (large) iterations")
        if eps_space not in EPS_SPACES:
            raise ConfigError(f"unknown eps_space {eps_space!r}; use one of {', '.join(EPS_SPACES)}")
        if eps_space == "normalized" and getattr(getattr(model, "normalize", None), "std", None) is None:
            raise ConfigError(
                'eps_space="normalized" needs the model\'s normalisation (model.normalize.std); '
                'pass such a model or use eps_space="pixel"'
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"seed must be an int or None, got {seed!r}")
        self.eps, self.step, self.steps = eps, step, steps
        self.eps_space = eps_space
        self.random_start = bool(random_start)
        self.seed = seed
        self.batch_size = _count(batch_size, "batch_size", "use e.g. 256 (lower it if memory runs out)")
        self.progress = progress

    def __repr__(self) -> str:
        keys = ("eps", "step", "steps", "eps_space", "random_start", "seed")
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in keys if hasattr(self, k))})"

    def __call__(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Return adversarial versions of images (same shape and dtype, in [0, 1])."""
        return self.perturb(images, labels)

    def perturb(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Return adversarial versions of images, attacked batch by batch."""
        images, labels = self._check_inputs(images, labels)
        gen = self._generator()
        out = torch.empty_like(images)
        work, dev = self._work_dtype(images), self._work_device(images)
        starts = range(0, len(images), self.batch_size)
        with eval_mode(self.model):
            for s in tqdm(starts, desc=type(self).__name__, disable=not self.progress, leave=False):
                sl = slice(s, s + self.batch_size)
                y = None if labels is None else labels[sl].to(dev)
                out[sl] = self._attack_batch(images[sl].to(dev, work), y, gen).to(images.device, images.dtype)
        return out

    def _work_dtype(self, images: Tensor) -> torch.dtype:
        """The model's floating dtype (images are attacked in it and returned in their own)."""
        params = () if self.model is None else self.model.parameters()
        return next((p.dtype for p in params if p.is_floating_point()), images.dtype)

    def _work_device(self, images: Tensor) -> torch.device:
        """The model's device (images are attacked there and returned on their own)."""
        params = () if self.model is None else self.model.parameters()
        return next((p.device for p in params), images.device)

    def _attack_batch(self, x: Tensor, y: Tensor | None, gen: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def _check_inputs(self, images: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        check_images(images, arrays=False)  # float NCHW in [0, 1], else a message naming what it got
        images = images.detach()
        if labels is None:
            if self.needs_labels:
                raise ConfigError(f"{type(self).__name__} needs the true labels: call atk(images, labels)")
            return images, None
        labels = torch.as_tensor(labels, device=images.device)
        if labels.shape != (len(images),) or labels.is_floating_point():
            raise ConfigError(
                f"labels must be integer class indices of shape ({len(images)},), got {labels.dtype} "
                f"{tuple(labels.shape)}; pass one label per image"
            )
        return images, labels.long()

    def _generator(self) -> torch.Generator | None:
        """A fresh CPU generator from the seed (identical results on every call), else the global RNG."""
        if self.seed is None:
            return None
        return torch.Generator().manual_seed(self.seed)

    def _radius(self, value: float, x: Tensor) -> Tensor:
        """A pixel-space radius for `value` in eps units, broadcastable to x."""
        if self.eps_space == "pixel":
            return torch.tensor(value, dtype=x.dtype, device=x.device)
        std = self.model.normalize.std.detach().to(x.device, x.dtype)
        return value * (std.reshape(1, -1, 1, 1) if std.numel() > 1 else std.reshape(()))

    def ball(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Lower and upper pixel bounds: the eps-ball around x intersected with [0, 1]."""
        r = self._radius(self.eps, x)
        return (x - r).clamp(min=0), (x + r).clamp(max=1)

    @staticmethod
    def project(x_adv: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        """Clip x_adv into [lo, hi] elementwise."""
        return torch.maximum(torch.minimum(x_adv, hi), lo)

    def _uniform_start(self, x: Tensor, lo: Tensor, hi: Tensor, gen: torch.Generator | None) -> Tensor:
        """x + U(-eps, eps), clipped to the valid range (drawn on the CPU so a seed is device-independent)."""
        u = torch.rand(x.shape, generator=gen, dtype=torch.float32).to(x.device, x.dtype)
        return self.project(x + (2 * u - 1) * self._radius(self.eps, x), lo, hi)

    def _sign_descent(self, x: Tensor, objective: Callable[[Tensor], Tensor], gen: torch.Generator | None) -> Tensor:
        """Iterated signed-gradient descent on objective(x_adv) (summed over the batch) inside the eps-ball."""
        lo, hi = self.ball(x)
        step = self._radius(self.step, x)
        x_adv = self._uniform_start(x, lo, hi, gen) if self.random_start else x.clone()
        with torch.enable_grad():
            for _ in range(self.steps):
                x_adv.requires_grad_(True)
                # autograd.grad w.r.t. the images only: nothing accumulates in the parameters' .grad
                (g,) = torch.autograd.grad(objective(x_adv), x_adv)
                x_adv = self.project(x_adv.detach() - step * g.sign(), lo, hi)
        return x_adv.detach()


class UniformNoise(Attack):
    """The control an attack must beat: x + U(-eps, eps) per pixel, clipped to [0, 1]."""

    needs_labels = False

    def __init__(self, eps: float = 0.03, seed: int | None = None, *, model: nn.Module | None = None,
                 eps_space: str = "pixel", batch_size: int = 1024, progress: bool = False) -> None:
        """Set the radius (model needed only for eps_space="normalized")."""
        super().__init__(model, eps=eps, eps_space=eps_space, random_start=True, seed=seed,
                         batch_size=batch_size, progress=progress)

    def _attack_batch(self, x: Tensor, y: Tensor | None, gen: torch.Generator | None) -> Tensor:
        lo, hi = self.ball(x)
        return self._uniform_start(x, lo, hi, gen)


class KNNGradientAttack(Attack):
    """Gradient-based kNN attack (paper eq. 5-6, Algorithm 1 lines 4-13): signed steps towards a guide group."""

    def __init__(self, model: nn.Module, knn: KNN, eps: float = 0.03, step: float = 0.005, steps: int = 10,
                 m: int = 300, guide: str = "authors", eps_space: str = "pixel", random_start: bool = True,
                 seed: int | None = None, batch_size: int = 256, progress: bool = False) -> None:
        """Set the eps-ball, step size, iterations, guide-group size m and guide rule (see knn.guide_groups)."""
        super().__init__(model, eps=eps, step=step, steps=steps, eps_space=eps_space, random_start=random_start,
                         seed=seed, batch_size=batch_size, progress=progress)
        if guide not in GUIDE_MODES:
            raise ConfigError(f"unknown guide mode {guide!r}; use one of {', '.join(GUIDE_MODES)}")
        self.knn = knn
        _check_empty_class(knn, m)
        self.m = _count(m, "m", "the paper uses m=300 guide samples")
        self.guide = guide
        _check_guide_size(knn, self.m)

    @classmethod
    def small(cls, model: nn.Module, knn: KNN, **kwargs) -> KNNGradientAttack:
        """The paper's small perturbation: eps=0.03, step=0.005, 10 iterations."""
        return cls(model, knn, **{"eps": 0.03, "step": 0.005, "steps": 10, **kwargs})

    @classmethod
    def large(cls, model: nn.Module, knn: KNN, **kwargs) -> KNNGradientAttack:
        """The paper's large perturbation: eps=0.06, step=0.005, 20 iterations."""
        return cls(model, knn, **{"eps": 0.06, "step": 0.005, "steps": 20, **kwargs})

    def guide_means(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean guide-group feature (B, D) of each clean image, on the images' device."""
        with torch.no_grad():
            clean = self.model.features(x)
        idx = guide_groups(self.knn, clean, y.cpu(), m=self.m, mode=self.guide)
        return guide_means(self.knn, idx).to(clean.device, clean.dtype)

    def _attack_batch(self, x: Tensor, y: Tensor | None, gen: torch.Generator | None) -> Tensor:
        target = self.guide_means(x, y)

        def objective(x_adv: Tensor) -> Tensor:
            # sum_i ||f(x_g^i) - f(x_adv)||^2 = m ||f(x_adv) - mean||^2 + const
            return self.m * (self.model.features(x_adv) - target).pow(2).sum()

        return self._sign_descent(x, objective, gen)


class PGD(Attack):
    """Madry et al.'s PGD: signed-gradient ascent on the cross-entropy of a logits model, inside the eps-ball."""

    def __init__(self, model: nn.Module, eps: float = 0.03, step: float = 0.005, steps: int = 10,
                 random_start: bool = True, seed: int | None = None, eps_space: str = "pixel",
                 batch_size: int = 256, progress: bool = False) -> None:
        """Set the eps-ball, step size and iterations (the gradient attack's conventions)."""
        super().__init__(model, eps=eps, step=step, steps=steps, eps_space=eps_space, random_start=random_start,
                         seed=seed, batch_size=batch_size, progress=progress)

    def _attack_batch(self, x: Tensor, y: Tensor | None, gen: torch.Generator | None) -> Tensor:
        return self._sign_descent(x, lambda x_adv: -F.cross_entropy(self.model(x_adv), y, reduction="sum"), gen)


def binary_search_step(c: Tensor, lo: Tensor, hi: Tensor, success: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Next constants (c, lo, hi) per image: x10 until the first success, then bisect between lo and hi."""
    hi = torch.where(success, torch.minimum(hi, c), hi)
    lo = torch.where(success, lo, torch.maximum(lo, c))
    c = torch.where(torch.isfinite(hi), (lo + hi) / 2, c * 10)
    return c, lo, hi


@dataclass
class OptimizationResult:
    """Outcome of the optimisation attack: the images, their L2 perturbation and which were broken."""

    adv: Tensor  # (B, C, H, W) on the images' device: smallest successful example, else the clean image
    l2: Tensor  # (B,) CPU: ||adv - x||_2 in pixel units; inf where the kNN was never fooled
    success: Tensor  # (B,) CPU bool: the kNN misclassifies adv
    const: Tensor  # (B,) CPU float64: the constant c that produced adv; nan where never fooled

    @property
    def n_success(self) -> int:
        """Number of images broken."""
        return int(self.success.sum())

    @property
    def mean_l2(self) -> float:
        """Mean L2 over the broken images (nan if none)."""
        return float(self.l2[self.success].mean()) if self.n_success else float("nan")


class KNNOptimizationAttack(Attack):
    """Optimisation-based kNN attack (paper eq. 1, Carlini-Wagner style): the smallest L2 change that fools the kNN.

    Minimises ||delta||_2^2 + c * sum_i ||f(x_g^i) - f(x + delta)||^2 with Adam over w, where
    x + delta = (tanh(w) + 1) / 2 stays in [0, 1]; a per-image binary search on c starts at
    initial_const, multiplies it by 10 until the first success, then bisects, for
    `binary_search_steps` rounds (the authors: 10). An image still never fooled after them keeps
    multiplying c by 10 until it is fooled or c passes `max_const`, so an image is left unbroken
    only when even a feature term a million times the L2 term cannot move its vote. Until its
    first success an image starts each round where the last one ended (Adam's steps have a
    fixed size, so a larger c alone would not move it further); after it, each bisection round
    starts again from the clean image. Success means
    knn.predict differs from the true label. The attack is deterministic (no random start).
    """

    def __init__(self, model: nn.Module, knn: KNN, m: int = 300, binary_search_steps: int = 10, steps: int = 100,
                 lr: float = 1e-2, initial_const: float = 1e-2, max_const: float = 1e6, guide: str = "authors",
                 seed: int | None = None, batch_size: int = 100, progress: bool = False) -> None:
        """Set the guide group, search and Adam settings; seed is accepted for a uniform signature (unused)."""
        super().__init__(model, steps=steps, seed=seed, batch_size=batch_size, progress=progress)
        if guide not in GUIDE_MODES:
            raise ConfigError(f"unknown guide mode {guide!r}; use one of {', '.join(GUIDE_MODES)}")
        self.knn = knn
        _check_empty_class(knn, m)
        self.m = _count(m, "m", "the paper uses m=300 guide samples")
        self.guide = guide
        self.binary_search_steps = _count(binary_search_steps, "binary_search_steps", "the authors used 10")
        self.lr = _positive(lr, "lr", "the paper's Adam learning rate is 1e-2")
        self.initial_const = _positive(initial_const, "initial_const", "start small, e.g. 1e-2")
        self.max_const = _positive(max_const, "max_const", "e.g. 1e6: how far c may grow for an image never fooled")
        _check_guide_size(knn, self.m)

    def __repr__(self) -> str:
        return (f"KNNOptimizationAttack(m={self.m}, binary_search_steps={self.binary_search_steps}, "
                f"steps={self.steps}, lr={self.lr}, initial_const={self.initial_const}, max_const={self.max_const}, "
                f"guide={self.guide!r})")

    def run(self, images: Tensor, labels: Tensor) -> OptimizationResult:
        """Attack images and return the adversarial images with their L2, success mask and constant."""
        images, labels = self._check_inputs(images, labels)
        if len(images) == 0:  # nothing to attack: an empty result of the right shapes
            return OptimizationResult(adv=images.clone(), l2=torch.empty(0), success=torch.empty(0, dtype=torch.bool),
                                      const=torch.empty(0, dtype=torch.float64))
        parts = []
        work, dev = self._work_dtype(images), self._work_device(images)
        starts = range(0, len(images), self.batch_size)
        with eval_mode(self.model):
            for s in tqdm(starts, desc="KNNOptimizationAttack", disable=not self.progress, leave=False):
                sl = slice(s, s + self.batch_size)
                parts.append(self._optimize(images[sl].to(dev, work), labels[sl].to(dev)))
        adv, l2, success, const = (torch.cat(p) for p in zip(*parts))
        return OptimizationResult(adv=adv.to(images.device, images.dtype), l2=l2.cpu(), success=success.cpu(),
                                  const=const.cpu())

    def _attack_batch(self, x: Tensor, y: Tensor | None, gen: torch.Generator | None) -> Tensor:
        return self._optimize(x, y)[0]

    def _fooled(self, feats: Tensor, y: Tensor) -> Tensor:
        return self.knn.predict(feats.detach()).to(y.device) != y

    def _prepare(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """What the objective needs per image (batch-first tensors): here the guide group's mean feature."""
        with torch.no_grad():
            clean = self.model.features(x)
        idx = guide_groups(self.knn, clean, y.cpu(), m=self.m, mode=self.guide)
        return {"target": guide_means(self.knn, idx).to(clean.device, clean.dtype)}

    def _objective(self, feats: Tensor, y: Tensor, state: dict[str, Tensor]) -> Tensor:
        """The term c multiplies, per image: m ||f - mean||^2, the paper's sum over the group up to a constant."""
        return self.m * (feats - state["target"]).pow(2).sum(1)

    def _optimize(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        b = len(x)
        state = self._prepare(x, y)
        w0 = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        w_start = w0.clone()  # an image not fooled yet continues from where its last round ended
        c = torch.full((b,), self.initial_const, dtype=torch.float64)
        c_lo = torch.zeros(b, dtype=torch.float64)
        c_hi = torch.full((b,), math.inf, dtype=torch.float64)
        best_adv, best_l2 = x.clone(), torch.full((b,), math.inf, device=x.device, dtype=x.dtype)
        best_c = torch.full((b,), math.nan, dtype=torch.float64)
        rounds = 0
        bar = tqdm(desc="binary search", disable=not self.progress, leave=False)
        while True:
            # the authors' budget of search steps for every image; beyond it an image never fooled yet keeps
            # raising c (x10 a round) up to max_const, so a hard image is not left unbroken for want of c
            active = (rounds < self.binary_search_steps) | (~torch.isfinite(c_hi) & (c <= self.max_const))
            if not bool(active.any()):
                break
            act = active.nonzero().flatten()
            dev = act.to(x.device)
            part = {k: v[dev] for k, v in state.items()}
            fooled, w_end = self._round(x[dev], y[act.to(y.device)], w_start[dev], part, c[act], act,
                                        best_adv, best_l2, best_c)
            done = torch.zeros(b, dtype=torch.bool)
            done[act] = fooled.cpu()
            c_new, lo_new, hi_new = binary_search_step(c, c_lo, c_hi, done)
            c, c_lo, c_hi = (torch.where(active, new, old) for new, old in ((c_new, c), (lo_new, c_lo), (hi_new, c_hi)))
            # never fooled: keep the ground gained; fooled at least once: bisect from the clean image
            never = ~torch.isfinite(c_hi[act]).to(x.device)
            w_start[dev] = torch.where(never.view(-1, 1, 1, 1), w_end, w0[dev])
            rounds += 1
            bar.update()
        bar.close()
        # report what the returned images really do: recompute features and norms from them
        with torch.no_grad():
            success = self._fooled(self.model.features(best_adv), y) & torch.isfinite(best_l2)
        best_adv = torch.where(success.view(-1, 1, 1, 1), best_adv, x)
        l2 = (best_adv - x).flatten(1).norm(dim=1)
        l2 = torch.where(success, l2, torch.full_like(l2, math.inf))
        best_c = torch.where(success.cpu(), best_c, torch.full_like(best_c, math.nan))
        return best_adv, l2, success, best_c

    def _round(self, x: Tensor, y: Tensor, w0: Tensor, state: dict[str, Tensor], c: Tensor, act: Tensor,
               best_adv: Tensor, best_l2: Tensor, best_c: Tensor) -> tuple[Tensor, Tensor]:
        """One constant per image: `steps` Adam steps on ||delta||^2 + c * objective from w0; keeps the smallest
        fooling example (in place).

        Returns which images were fooled at some step and the final w.
        """
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.lr)
        coeff = c.to(x.device, x.dtype)
        fooled_now = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        dev_act = act.to(x.device)
        with torch.enable_grad():
            for it in range(self.steps + 1):  # the extra pass scores the last update
                x_adv = (torch.tanh(w) + 1) / 2
                feats = self.model.features(x_adv)
                l2sq = (x_adv - x).flatten(1).pow(2).sum(1)
                fooled = self._fooled(feats, y)
                l2 = l2sq.detach().sqrt()
                better = fooled & (l2 < best_l2[dev_act])
                rows = dev_act[better]
                best_adv[rows], best_l2[rows] = x_adv.detach()[better], l2[better]
                best_c[rows.cpu()] = c[better.cpu()]
                fooled_now |= fooled
                if it == self.steps:
                    break
                loss = (l2sq + coeff * self._objective(feats, y, state)).sum()
                (w.grad,) = torch.autograd.grad(loss, w)
                opt.step()
        return fooled_now, w.detach()


# ----------------------------------------------------------------------------- the one place attacks are built


def gradient_attack(model: nn.Module, knn: KNN, setting: AttackSettings, m: int, *, eps_space: str = "pixel",
                    seed: int | None = 0, guide: str = "authors", batch_size: int = 256,
                    progress: bool = False) -> KNNGradientAttack:
    """The paper's kNN gradient attack with one of its settings (evaluation, SAT, studies and widgets use this)."""
    return KNNGradientAttack(model, knn, eps=setting.eps, step=setting.step, steps=setting.steps, m=m, guide=guide,
                             eps_space=eps_space, seed=seed, batch_size=batch_size, progress=progress)


def pgd_attack(model: nn.Module, setting: AttackSettings, *, eps_space: str = "pixel", seed: int | None = 0,
               batch_size: int = 256, progress: bool = False) -> PGD:
    """PGD on a classifier's cross-entropy with the gradient attack's setting (the supervised baselines use this)."""
    return PGD(model, eps=setting.eps, step=setting.step, steps=setting.steps, eps_space=eps_space, seed=seed,
               batch_size=batch_size, progress=progress)
