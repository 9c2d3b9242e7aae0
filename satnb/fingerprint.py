"""Fingerprints of the code behind a stage: the import closure of one satnb module, blind to comments and docstrings.

A cached stage is keyed by the fingerprint of the module that computes it and of every satnb
module that module imports (at any depth, including imports inside functions). Source is
compared as its parsed syntax tree printed back (``ast.unparse``) with docstrings removed, so
comments, docstrings and formatting never recompute a stage, while any change to code that a
stage runs does. ``config`` and ``store`` are left out on purpose: every setting a stage depends
on is part of its cache key already, and the store only decides where results are kept.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import satnb

PACKAGE = "satnb"
PACKAGE_DIR = Path(satnb.__file__).resolve().parent
NOT_CODE = frozenset({"satnb.config", "satnb.store", "satnb.fingerprint"})

# The module that computes each stage of a results record (what `results.staleness` compares).
STAGE_MODULES = {
    "train": "satnb.pretrain",
    "sat": "satnb.adversarial",
    "baselines": "satnb.adversarial",
    "evaluate": "satnb.evaluate",
    "robustness": "satnb.robustness",
}


def _path(module: str, root: Path) -> Path | None:
    """The source file of a satnb module under root (None when it is not one)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    rel = Path(*parts[1:]) if len(parts) > 1 else Path("__init__")
    for cand in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _imports(tree: ast.AST, root: Path) -> set[str]:
    """The satnb modules a parsed module imports, anywhere in its body."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative: only one level deep exists in satnb
                mod = ".".join(p for p in (PACKAGE, node.module) if p)
            # `from satnb import attacks` names a module; `from satnb.x import y` names an object of x
            subs = [f"{mod}.{a.name}" for a in node.names if _path(f"{mod}.{a.name}", root)]
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(mod)
    return {m for m in found if _path(m, root) is not None}


def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def closure(module: str, root: Path = PACKAGE_DIR) -> list[str]:
    """Every satnb module the given one depends on, itself included, sorted (config and store left out)."""
    return sorted(_walk(module, snapshot() if Path(root) == PACKAGE_DIR else _read(Path(root))))


def source_fingerprint(module: str, root: Path = PACKAGE_DIR) -> str:
    """A short hash of the code of a module and its satnb import closure.

    For the installed package the sources are read once per process (`snapshot`, taken when the
    store is imported), so an edit to satnb while a run is going never gives the old code in
    memory the new code's keys; for another root (a copy being edited) they are read each time.
    """
    if Path(root) == PACKAGE_DIR:
        return _fingerprint(module, snapshot())
    return _fingerprint(module, _read(Path(root)))


def snapshot() -> dict[str, tuple[str, frozenset[str]]]:
    """The package's sources as this process first read them: {module: (normalised code, satnb imports)}."""
    global _SNAPSHOT
    if _SNAPSHOT is None:
        _SNAPSHOT = _read(PACKAGE_DIR)
    return _SNAPSHOT


_SNAPSHOT: dict[str, tuple[str, frozenset[str]]] | None = None


def _read(root: Path) -> dict[str, tuple[str, frozenset[str]]]:
    out = {}
    for path in sorted(root.glob("*.py")):
        mod = PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        tree = _parse(path)
        out[mod] = (ast.unparse(_strip_docstrings(tree)), frozenset(_imports(tree, root)))
    return out


def _walk(module: str, sources: dict[str, tuple[str, frozenset[str]]]) -> set[str]:
    """The module and every satnb module it imports, at any depth (config, store, fingerprint left out)."""
    if module not in sources:
        raise ValueError(f"{module!r} is not a module of satnb")
    seen, todo = set(), [module]
    while todo:
        mod = todo.pop()
        if mod in seen or mod in NOT_CODE:
            continue
        seen.add(mod)
        todo.extend(sources[mod][1] - seen)
    return seen


def _fingerprint(module: str, sources: dict[str, tuple[str, frozenset[str]]]) -> str:
    h = hashlib.blake2b(digest_size=8)
    for mod in sorted(_walk(module, sources)):
        h.update(mod.encode())
        h.update(sources[mod][0].encode())
    return h.hexdigest()


def stage_fingerprints(root: Path = PACKAGE_DIR) -> dict[str, str]:
    """The current fingerprint of the code behind each stage of a results record."""
    return {stage: source_fingerprint(mod, root) for stage, mod in STAGE_MODULES.items()}
