"""Adversarial fine-tuning: self-supervised adversarial training (SAT) and the supervised AT, MAT and ALP."""

from satnb.core.lazy import lazy_modules, submodules
from satnb.defences.baselines import (
    BASELINES,
    adversarial_train,
    alp_loss,
    alp_pairing,
    at_loss,
    baseline_loss,
    mat_loss,
)
from satnb.defences.finetune import AdvTrainResult, EvalFn
from satnb.defences.selfsupervised import SAT_OBJECTIVES, SATObjective, sat, sat_step

MODULES = submodules(__path__)
__all__ = ["BASELINES", "SAT_OBJECTIVES", "AdvTrainResult", "EvalFn", "SATObjective", "adversarial_train", "alp_loss",
           "alp_pairing", "at_loss", "baseline_loss", "mat_loss", "sat", "sat_step", *MODULES]
__getattr__ = lazy_modules(__name__, MODULES)
