"""The paper's optimisation-based kNN attack (Carlini-Wagner style): the smallest L2 change that fools the kNN."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from satnb.attacks.base import Attack, check_guide_size, eval_mode, guide_targets
from satnb.core.checks import integer, one_of, positive
from satnb.core.variants import GUIDE_RULES
from satnb.knn import KNN


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
        self.guide = one_of(guide, "guide mode", GUIDE_RULES)
        self.knn = knn
        self.m = check_guide_size(knn, m)
        self.binary_search_steps = integer(binary_search_steps, "binary_search_steps", "the authors used 10")
        self.lr = positive(lr, "lr", "the paper's Adam learning rate is 1e-2")
        self.initial_const = positive(initial_const, "initial_const", "start small, e.g. 1e-2")
        self.max_const = positive(max_const, "max_const", "e.g. 1e6: how far c may grow for an image never fooled")

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
        return {"target": guide_targets(self.model, self.knn, x, y, self.m, self.guide)}

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
