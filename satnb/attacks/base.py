"""What every attack shares: the `Attack` base class, its input and guide-group checks, and the uniform-noise control.

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
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from satnb.core.checks import integer, one_of, positive
from satnb.core.config import ConfigError
from satnb.core.images import check_images
from satnb.core.variants import EPS_SPACES
from satnb.knn import KNN
from satnb.knn.classifier import guide_groups, guide_means


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


def check_guide_size(knn: KNN, m: object) -> int:
    """m as an int, or a ConfigError when m is not a count or a library class cannot supply m guide samples."""
    if m == 0 and isinstance(knn, KNN) and knn.fitted and bool((knn.class_counts == 0).any()):
        # m=0 comes from a library class without samples (the protocol caps m by the smallest class): say so
        empty = (knn.class_counts == 0).nonzero().flatten().tolist()
        raise ConfigError(f"m=0 guide samples: library class(es) {', '.join(map(str, empty[:5]))} hold no sample, "
                          "so no guide group can be drawn from them; give every class library images (more "
                          "training images, or drop the empty class)")
    m = integer(m, "m", "the paper uses m=300 guide samples")
    if knn.fitted:
        counts = knn.class_counts
        present = (counts > 0).nonzero().flatten()
        smallest = int(present[counts[present].argmin()])
        if m > int(counts[smallest]):
            raise ConfigError(
                f"m={m} guide samples per group, but library class {smallest} has only {int(counts[smallest])} "
                f"samples; lower m to at most {int(counts[smallest])} or use a larger library"
            )
    return m


def guide_targets(model: nn.Module, knn: KNN, x: Tensor, y: Tensor, m: int, guide: str) -> Tensor:
    """The mean guide-group feature (B, D) of each clean image, on the images' device (see knn.guide_groups)."""
    with torch.no_grad():
        clean = model.features(x)
    idx = guide_groups(knn, clean, y.cpu(), m=m, mode=guide)
    return guide_means(knn, idx).to(clean.device, clean.dtype)


class Attack:
    """Shared machinery: input checks, batching, eval mode, seeding and the eps-ball projection."""

    needs_labels = True

    def __init__(self, model: nn.Module | None, *, eps: float | None = None, step: float | None = None,
                 steps: int | None = None, eps_space: str = "pixel", random_start: bool = False,
                 seed: int | None = None, batch_size: int = 256, progress: bool = False) -> None:
        """Validate and store the settings every attack shares."""
        self.model = model
        if eps is not None:
            eps = positive(eps, "eps", "eps is an L-inf radius in (0, 1], e.g. 0.03 (small) or 0.06 (large)", 1.0)
        if step is not None:
            step = positive(step, "step", "the paper's step size is 0.005")
        if steps is not None:
            steps = integer(steps, "steps", "the paper uses 10 (small) or 20 (large) iterations")
        eps_space = one_of(eps_space, "eps_space", EPS_SPACES)
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
        self.batch_size = integer(batch_size, "batch_size", "use e.g. 256 (lower it if memory runs out)")
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
