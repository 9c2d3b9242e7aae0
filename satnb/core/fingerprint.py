"""Fingerprints of the code a stage runs: the definitions it reaches, wherever they live, blind to comments and docs.

A cached stage is keyed by the code of the definitions (functions, classes, module-level
constants) that its entry point reaches: every satnb name its body uses, followed through
imports, at any depth (imports inside functions included). Each definition counts as its syntax
tree printed back (``ast.unparse``) with docstrings removed and with every satnb name written
as the definition it resolves to, whatever alias or module path reached it; the fingerprint
hashes these texts sorted, never a module's name or a file's path. So comments, docstrings,
formatting, moving a definition to another module, splitting a module and renaming a file never
recompute a stage, while any change to code that a stage runs does. Definitions in the artifact
store and in this module are left out on purpose: they decide where results are kept, not what
they are (every setting a stage depends on is part of its cache key already).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "satnb"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # satnb/
NOT_CODE = frozenset({"satnb.core.store", "satnb.core.fingerprint"})  # modules whose definitions never count

Code = object  # a satnb function or class, a "module:name" string, or a tuple of them
Target = tuple[str, str]  # a binding's target: ("module", name) or ("def", "module:name") or ("attr", "module.attr")


@dataclass(frozen=True)
class Module:
    """One parsed satnb module: its top-level definitions and what each imported name is bound to."""

    name: str
    defs: dict[str, ast.AST]
    bindings: dict[str, str]  # local name -> dotted target ("satnb.a.b" a module, or "satnb.a.b.attr")


Sources = dict[str, Module]


def code_id(obj: object) -> str:
    """The "module:name" of a satnb function or class, "module:Class.method" of a method."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or not module.startswith(PACKAGE) or "<locals>" in qualname:
        raise TypeError(f"{obj!r} is not a function, class or method defined at the top of a satnb module; pass one "
                        "(e.g. satnb.nets.pretrain.train)")
    return f"{module}:{qualname}"


def code_ids(code: Code) -> list[str]:
    """Entry points as "module:name" strings, from functions, classes, such strings or a tuple of them."""
    if isinstance(code, str):
        return [code]
    if isinstance(code, (list, tuple, set, frozenset)):
        return [i for c in code for i in code_ids(c)]
    return [code_id(code)]


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _bindings(tree: ast.AST, module: str, is_package: bool) -> dict[str, str]:
    """Every satnb name an import anywhere in the module binds, to its dotted target."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == PACKAGE:
                    if a.asname:
                        out[a.asname] = a.name
                    else:
                        out[PACKAGE] = PACKAGE
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, *([base] if base else [])])
            if base.split(".")[0] != PACKAGE:
                continue
            for a in node.names:
                out[a.asname or a.name] = f"{base}.{a.name}"
    return out


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    """The module's top-level functions, classes and assigned names."""
    defs = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name) and not n.id.startswith("__"):
                        defs[n.id] = node
    return defs


def _texts(root: Path) -> dict[Path, str]:
    """Every source file of the package at `root`, as text (reading is cheap; parsing is not)."""
    return {path: path.read_text(encoding="utf-8") for path in sorted(root.rglob("*.py"))
            if "__pycache__" not in path.parts}


def _parse(texts: dict[Path, str], root: Path) -> Sources:
    out = {}
    for path, text in texts.items():
        name = _module_name(path, root)
        tree = _strip_docstrings(ast.parse(text, filename=str(path)))
        out[name] = Module(name, _definitions(tree), _bindings(tree, name, path.name == "__init__.py"))
    return out


def _read(root: Path) -> Sources:
    return _parse(_texts(root), root)


def _resolve_dotted(dotted: str, sources: Sources, seen: frozenset = frozenset()) -> Target | None:
    """What a dotted satnb path names: a module, or a definition (followed through re-exports)."""
    if dotted in sources:
        return ("module", dotted)
    mod, _, attr = dotted.rpartition(".")
    if mod not in sources or dotted in seen:
        return None
    m = sources[mod]
    if attr in m.defs:
        return ("def", f"{mod}:{attr}")
    if attr in m.bindings:
        return _resolve_dotted(m.bindings[attr], sources, seen | {dotted})
    return None


class _Canonical(ast.NodeTransformer):
    """Rewrites each satnb reference as the name of the definition it resolves to, collecting those definitions."""

    def __init__(self, module: Module, sources: Sources):
        self.module, self.sources, self.refs = module, sources, set()

    def _target(self, name: str) -> Target | None:
        if name in self.module.defs:
            return ("def", f"{self.module.name}:{name}")
        if name in self.module.bindings:
            return _resolve_dotted(self.module.bindings[name], self.sources)
        return None

    def visit_Name(self, node: ast.Name) -> ast.AST:
        target = self._target(node.id)
        if target and target[0] == "def":
            self.refs.add(target[1])
            return ast.copy_location(ast.Name(id=target[1].split(":")[1], ctx=node.ctx), node)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        chain, base = [node.attr], node.value
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name):
            target = self._target(base.id)
            if target and target[0] == "module":
                dotted = target[1]
                for i, attr in enumerate(reversed(chain)):  # the longest prefix that names a definition
                    dotted = f"{dotted}.{attr}"
                    found = _resolve_dotted(dotted, self.sources)
                    if found is None:
                        break
                    if found[0] == "def":
                        self.refs.add(found[1])
                        rest = list(reversed(chain))[i + 1:]
                        new: ast.AST = ast.Name(id=found[1].split(":")[1], ctx=ast.Load())
                        for a in rest:
                            new = ast.Attribute(value=new, attr=a, ctx=ast.Load())
                        new.ctx = node.ctx
                        return ast.copy_location(new, node)
        self.generic_visit(node)
        return node


def _canonical(def_id: str, sources: Sources, cache: dict) -> tuple[str, frozenset[str]]:
    """A definition's normalised code and the satnb definitions it references."""
    if def_id not in cache:
        mod, _, name = def_id.partition(":")
        node = _node(sources, mod, name)
        tool = _Canonical(sources[mod], sources)
        text = ast.unparse(tool.visit(_copy(node)))
        cache[def_id] = (text, frozenset(tool.refs))
    return cache[def_id]


def _node(sources: Sources, module: str, name: str) -> ast.AST | None:
    """A top-level definition, or a method of a top-level class ("Class.method")."""
    top, _, method = name.partition(".")
    node = sources[module].defs.get(top) if module in sources else None
    if method and isinstance(node, ast.ClassDef):
        return next((n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and n.name == method), None)
    return None if method else node


def _copy(node: ast.AST) -> ast.AST:
    return ast.parse(ast.unparse(node)).body[0]


def _walk(entries: list[str], sources: Sources) -> dict[str, str]:
    """Every definition the entries reach, with its normalised code (store and fingerprint left out)."""
    # the package's snapshot never changes within a process: its normalised definitions are kept (a report
    # asks for the stage fingerprints about a hundred times; each walk re-parsed the same code, ~0.25 s)
    cache: dict = _SNAPSHOT.definitions if _SNAPSHOT is not None and sources is _SNAPSHOT.sources else {}
    for e in entries:
        mod, _, name = e.partition(":")
        if _node(sources, mod, name) is None:
            raise ValueError(f"{e!r} is not a definition of satnb (expected 'satnb.module:name' or "
                             "'satnb.module:Class.method')")
    seen, todo = {}, list(entries)
    while todo:
        d = todo.pop()
        if d in seen or d.split(":")[0] in NOT_CODE:
            continue
        text, refs = _canonical(d, sources, cache)
        seen[d] = text
        todo.extend(refs - set(seen))
    return seen


def closure(code: Code, root: Path = PACKAGE_DIR) -> list[str]:
    """Every satnb definition ("module:name") the entry points reach, themselves included, sorted."""
    return sorted(_walk(code_ids(code), _sources(root)))


def source_fingerprint(code: Code, root: Path = PACKAGE_DIR) -> str:
    """A short hash of the code the entry points reach (functions, classes, or "module:name" strings).

    For the installed package the sources are read once per process (`take_snapshot`, called when the
    store is imported), so an edit to satnb while a run is going never gives the old code in
    memory the new code's keys; for another root (a copy being edited) they are read each time.
    The package's fingerprints are also kept on disk by the hash of every source text, so a new
    process (each notebook, each CLI call) of unchanged code parses and walks nothing.
    """
    ids = code_ids(code)
    if Path(root) != PACKAGE_DIR:
        return _hash(_walk(ids, _read(Path(root))))
    snap = take_snapshot()
    key = "|".join(sorted(ids))
    if key not in snap.prints:
        found = snap.on_disk().get(key)
        snap.prints[key] = found if isinstance(found, str) else _hash(_walk(ids, snapshot()))
        if found != snap.prints[key]:
            snap.save()
    return snap.prints[key]


def _hash(definitions: dict[str, str]) -> str:
    h = hashlib.blake2b(digest_size=8)
    for text in sorted(definitions.values()):
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class Snapshot:
    """The package's source texts as this process first read them, parsed on first need, with what they give."""

    texts: dict[Path, str]
    digest: str  # a hash of every source file's path and text
    sources: Sources | None = None
    definitions: dict = field(default_factory=dict)  # normalised definitions, by "module:name"
    prints: dict[str, str] = field(default_factory=dict)  # fingerprints, by sorted entry ids
    _disk: dict | None = None

    def memo_file(self) -> Path | None:
        """Where the fingerprints of these exact sources are kept between processes (None: no writable cache)."""
        from satnb.core.config import ConfigError
        from satnb.core.environment import cache_dir

        try:
            return cache_dir() / "fingerprints" / f"{self.digest}.json"
        except ConfigError:  # no writable cache: fingerprints are computed in each process
            return None

    def on_disk(self) -> dict:
        """The fingerprints an earlier process of the same sources computed (empty when none or unreadable)."""
        if self._disk is None:
            path, found = self.memo_file(), None
            try:
                found = json.loads(path.read_text()) if path is not None else None
            except (OSError, ValueError):  # absent, half-written by a killed process, or not JSON
                pass
            self._disk = found if isinstance(found, dict) else {}
        return self._disk

    def save(self) -> None:
        """Add this process's fingerprints to the file (replaced whole: a reader never sees half of it; written
        here, not with `store.atomic_write_bytes`, because the store imports this module)."""
        path = self.memo_file()
        if path is None:
            return
        merged = {**self.on_disk(), **self.prints}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(merged, sort_keys=True))
            os.replace(tmp, path)
        except OSError:  # a full or read-only cache: the file is only a shortcut
            return
        self._disk = merged


def take_snapshot() -> Snapshot:
    """Read the package's source texts now, once per process (cheap: they are parsed only when needed)."""
    global _SNAPSHOT
    if _SNAPSHOT is None:
        texts = _texts(PACKAGE_DIR)
        h = hashlib.blake2b(digest_size=16)
        for path, text in texts.items():
            h.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + text.encode() + b"\0")
        _SNAPSHOT = Snapshot(texts, h.hexdigest())
    return _SNAPSHOT


def _sources(root: Path) -> Sources:
    return snapshot() if Path(root) == PACKAGE_DIR else _read(Path(root))


def snapshot() -> Sources:
    """The package's sources, parsed, as this process first read them."""
    snap = take_snapshot()
    if snap.sources is None:
        snap.sources = _parse(snap.texts, PACKAGE_DIR)
    return snap.sources


_SNAPSHOT: Snapshot | None = None
