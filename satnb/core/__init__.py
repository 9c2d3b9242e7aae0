"""The ground floor: settings and profiles, datasets, the artifact store, code fingerprints, statistics."""

from satnb.core.lazy import lazy_modules, submodules

MODULES = submodules(__path__)
__all__ = list(MODULES)
__getattr__ = lazy_modules(__name__, MODULES)
