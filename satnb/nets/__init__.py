"""Networks and how they learn: encoders, augmentations, losses, mutual-information critics, pretraining."""

from satnb.core.lazy import lazy_modules, submodules

MODULES = submodules(__path__)
__all__ = list(MODULES)
__getattr__ = lazy_modules(__name__, MODULES)
