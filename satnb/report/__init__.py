"""Reading results: the results record, the claims' verdicts, the paper's numbers, tables, plots, benchmarks."""

from satnb.core.lazy import lazy_modules, submodules

MODULES = submodules(__path__)
__all__ = list(MODULES)
__getattr__ = lazy_modules(__name__, MODULES)
