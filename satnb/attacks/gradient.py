"""The paper's gradient-based kNN attack, PGD for the supervised baselines, and the one place both are built."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satnb.attacks.base import Attack, check_guide_size, guide_targets
from satnb.core.checks import one_of
from satnb.core.config import AttackSettings
from satnb.core.variants import GUIDE_RULES
from satnb.knn import KNN


class KNNGradientAttack(Attack):
    """Gradient-based kNN attack (paper eq. 5-6, Algorithm 1 lines 4-13): signed steps towards a guide group."""

    def __init__(self, model: nn.Module, knn: KNN, eps: float = 0.03, step: float = 0.005, steps: int = 10,
                 m: int = 300, guide: str = "authors", eps_space: str = "pixel", random_start: bool = True,
                 seed: int | None = None, batch_size: int = 256, progress: bool = False) -> None:
        """Set the eps-ball, step size, iterations, guide-group size m and guide rule (see knn.guide_groups)."""
        super().__init__(model, eps=eps, step=step, steps=steps, eps_space=eps_space, random_start=random_start,
                         seed=seed, batch_size=batch_size, progress=progress)
        self.guide = one_of(guide, "guide mode", GUIDE_RULES)
        self.knn = knn
        self.m = check_guide_size(knn, m)

    @classmethod
    def small(cls, model: nn.Module, knn: KNN, **kwargs) -> KNNGradientAttack:
        """The paper's small perturbation: eps=0.03, step=0.005, 10 iterations."""
        return cls(model, knn, **{"eps": 0.03, "step": 0.005, "steps": 10, **kwargs})

    @classmethod
    def large(cls, model: nn.Module, knn: KNN, **kwargs) -> KNNGradientAttack:
        """The paper's large perturbation: eps=0.06, step=0.005, 20 iterations."""
        return cls(model, knn, **{"eps": 0.06, "step": 0.005, "steps": 20, **kwargs})

    def _attack_batch(self, x: Tensor, y: Tensor | None, gen: torch.Generator | None) -> Tensor:
        target = guide_targets(self.model, self.knn, x, y, self.m, self.guide)

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
