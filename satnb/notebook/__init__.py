"""What the notebooks call: the setup cell, the method's source shown from the running code, widgets."""

from satnb.core.lazy import lazy_modules, submodules

MODULES = submodules(__path__)
__all__ = list(MODULES)
__getattr__ = lazy_modules(__name__, MODULES)
