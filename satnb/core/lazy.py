"""Sub-modules imported on first use, so `import satnb.report` stays light until a module is needed."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from types import ModuleType


def submodules(path: Iterable[str]) -> tuple[str, ...]:
    """The names of the modules and sub-packages in a package's folder (its `__path__`), sorted."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(list(path))))


def lazy_modules(package: str, names: tuple[str, ...]) -> Callable[[str], ModuleType]:
    """A module-level `__getattr__` for `package` that imports `package.<name>` for each of `names` on first use."""

    def __getattr__(name: str) -> ModuleType:
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
