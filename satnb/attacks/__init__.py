"""Attacks on a kNN over learned features, torchattacks-style (`atk = KNNGradientAttack(model, knn); atk(x, y)`).

The paper's gradient attack and PGD for the supervised baselines (`gradient`), its optimisation attack
(`optimisation`), the adaptive ones beyond the paper: minimum-norm, black-box, probes (`adaptive`), and
the machinery they share with the uniform-noise control (`base`).
"""

from satnb.attacks.adaptive import BlackBoxResult, KNNBlackBoxAttack, KNNMinNormAttack, probe_attack
from satnb.attacks.base import Attack, UniformNoise, eval_mode
from satnb.attacks.gradient import PGD, KNNGradientAttack, gradient_attack, pgd_attack
from satnb.attacks.optimisation import KNNOptimizationAttack, OptimizationResult, binary_search_step

__all__ = ["PGD", "Attack", "BlackBoxResult", "KNNBlackBoxAttack", "KNNGradientAttack", "KNNMinNormAttack",
           "KNNOptimizationAttack", "OptimizationResult", "UniformNoise", "binary_search_step", "eval_mode",
           "gradient_attack", "pgd_attack", "probe_attack"]
