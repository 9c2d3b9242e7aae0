"""One experiment: the session (start-up), the pipeline of models and libraries, the studies, a whole profile's run."""

from satnb.core.lazy import lazy_modules, submodules

MODULES = submodules(__path__)
__all__ = list(MODULES)
__getattr__ = lazy_modules(__name__, MODULES)
