"""The evaluation protocol: clean accuracy, DSR and robust accuracy under the paper's attacks, and the attack zoo."""

from satnb.core.lazy import lazy_modules, submodules

MODULES = submodules(__path__)
__all__ = list(MODULES)
__getattr__ = lazy_modules(__name__, MODULES)
