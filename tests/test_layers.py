"""Data flows one way: no satnb module imports one above it (the order the README's architecture section draws)."""

from satnb.fingerprint import PACKAGE_DIR, _imports, _parse

# rank of each module: a module may import only modules of a lower rank (imports inside functions count)
LAYERS = [
    ("config", "fingerprint", "stats"),
    ("store", "data"),
    ("models", "augment", "losses", "knn", "mi"),
    ("pretrain", "features", "attacks"),
    ("adversarial", "evaluate", "adaptive"),
    ("robustness",),
    ("registry", "libraries", "studies"),
    ("pipeline",),
    ("results", "paper"),
    ("tables", "plots", "performance"),
    ("claims",),
    ("widgets", "notebook", "__main__"),
]
RANK = {f"satnb.{m}": i for i, layer in enumerate(LAYERS) for m in layer}


def test_every_module_has_a_layer():
    modules = {f"satnb.{p.stem}" for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"}
    assert modules == set(RANK), f"unplaced: {modules - set(RANK)}; gone: {set(RANK) - modules}"


def test_no_module_imports_one_above_it():
    wrong = []
    for mod, rank in RANK.items():
        path = PACKAGE_DIR / f"{mod.split('.')[1]}.py"
        for dep in _imports(_parse(path), PACKAGE_DIR) - {"satnb", mod}:
            if RANK[dep] >= rank:
                wrong.append(f"{mod} (layer {rank}) imports {dep} (layer {RANK[dep]})")
    assert not wrong, "\n".join(wrong)


def test_every_module_is_reachable_as_an_attribute_of_satnb():
    import satnb

    for mod in RANK:
        if mod != "satnb.__main__":
            assert getattr(satnb, mod.split(".")[1]).__name__ == mod
