"""Data flows one way: no satnb module imports from a sub-package above its own (the README's architecture)."""

import ast
from pathlib import Path

import satnb
from satnb.core.fingerprint import PACKAGE_DIR

# one rank per sub-package, lowest first: a module may import from its own sub-package or one below it
RANKS = {name: i for i, name in enumerate(satnb.SUBPACKAGES)} | {"__main__": len(satnb.SUBPACKAGES)}
MAX_LINES = 450


def modules() -> dict[str, Path]:
    """Every module of satnb but the face, by dotted name."""
    out = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR).with_suffix("")
        if rel.parts != ("__init__",) and "__pycache__" not in rel.parts:
            out[".".join(("satnb", *[p for p in rel.parts if p != "__init__"]))] = path
    return out


def imported(path: Path) -> set[str]:
    """The satnb modules or names a file imports, anywhere in it (imports inside functions count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "satnb"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "satnb":
            found.add(node.module)
    return found


def rank(module: str) -> int:
    return RANKS[module.split(".")[1]]


def test_every_module_lives_in_a_ranked_sub_package():
    assert all(m.split(".")[1] in RANKS for m in modules()), [m for m in modules() if m.split(".")[1] not in RANKS]


def test_no_module_imports_from_a_sub_package_above_it_nor_the_face():
    wrong = []
    for mod, path in modules().items():
        for dep in imported(path):
            if dep == "satnb":
                wrong.append(f"{mod} imports the package face")
            elif rank(dep) > rank(mod):
                wrong.append(f"{mod} (rank {rank(mod)}) imports {dep} (rank {rank(dep)})")
    assert not wrong, "\n".join(wrong)


def test_no_module_is_over_the_line_budget():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def test_every_module_is_reachable_from_the_face():
    for mod in modules():
        if mod == "satnb.__main__":
            continue
        obj = satnb
        for part in mod.split(".")[1:]:
            obj = getattr(obj, part)
        assert obj.__name__ == mod
