"""Cache keys follow the code a stage runs: comments, docstrings and the report never recompute a model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import satnb.store as store_mod
from satnb import fingerprint
from satnb.config import TrainSettings
from satnb.data import load_digits
from satnb.fingerprint import PACKAGE_DIR, closure, source_fingerprint, stage_fingerprints
from satnb.pretrain import train
from satnb.results import staleness
from satnb.store import Store

STAGES = ("satnb.pretrain", "satnb.adversarial", "satnb.evaluate", "satnb.features", "satnb.studies")
TOP = ("tables.py", "plots.py", "claims.py", "paper.py", "widgets.py", "notebook.py", "__main__.py", "results.py",
       "pipeline.py", "registry.py", "libraries.py")


@pytest.fixture
def pkg(tmp_path) -> Path:
    """A copy of satnb's source to edit."""
    root = tmp_path / "satnb"
    shutil.copytree(PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def prints(root: Path) -> dict[str, str]:
    return {m: source_fingerprint(m, root) for m in STAGES}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_comments_and_docstrings_never_change_a_key(pkg):
    before = prints(pkg)
    for path in sorted(pkg.glob("*.py")):
        text = path.read_text()
        text = "# a new comment at the top\n" + text
        # every docstring opening gets new words; a comment at the end of every def line
        text = re.sub(r'("""|\'\'\')(?=\S)', r'\1Reworded. ', text)
        text = re.sub(r"^(\s*def .*:)$", r"\1  # why this is so", text, flags=re.M)
        path.write_text(text)
    assert prints(pkg) == before


def test_report_level_code_never_changes_a_model_key(pkg):
    before = prints(pkg)
    for name in TOP:
        path = pkg / name
        path.write_text(path.read_text() + "\n\ndef _added_by_a_test():\n    return 42\n")
    after = prints(pkg)
    assert after["satnb.pretrain"] == before["satnb.pretrain"]
    assert after["satnb.adversarial"] == before["satnb.adversarial"]
    assert after["satnb.evaluate"] == before["satnb.evaluate"]


@pytest.mark.parametrize("module, changed, kept", [
    ("pretrain.py", {"satnb.pretrain"}, {"satnb.adversarial", "satnb.evaluate", "satnb.features"}),
    ("adversarial.py", {"satnb.adversarial"}, {"satnb.pretrain", "satnb.evaluate", "satnb.features"}),
    ("losses.py", {"satnb.pretrain", "satnb.adversarial"}, {"satnb.evaluate", "satnb.features"}),
    ("knn.py", {"satnb.adversarial", "satnb.evaluate", "satnb.features", "satnb.studies"}, {"satnb.pretrain"}),
    ("data.py", set(STAGES), set()),
])
def test_code_edits_change_exactly_the_stages_that_run_it(pkg, module, changed, kept):
    before = prints(pkg)
    path = pkg / module
    path.write_text(path.read_text() + "\n\n_CHANGED_BY_A_TEST = 1\n")
    after = prints(pkg)
    assert {m for m in STAGES if after[m] != before[m]} >= changed
    assert all(after[m] == before[m] for m in kept)


def test_imports_inside_functions_count(pkg):
    assert "satnb.mi" in closure("satnb.adversarial", pkg)
    assert not {"satnb.tables", "satnb.plots", "satnb.widgets", "satnb.notebook"} & set(closure("satnb.studies", pkg))


def test_a_docstring_edit_keeps_a_trained_model_and_a_loop_edit_retrains(pkg, tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "source_fingerprint", lambda m: fingerprint.source_fingerprint(m, pkg))
    data = load_digits().subset(60, 20, seed=0)
    settings = TrainSettings("convnet", epochs=1, batch_size=20, lr=1e-3, encoder_kwargs={"widths": (8, 16)})
    store = Store(tmp_path / "cache")
    first = train("sup", data, settings, store, progress=False)
    assert not first.cached
    edit(pkg / "pretrain.py", '"""Representation learning:', '"""Reworded. Representation learning:')
    edit(pkg / "tables.py", "import", "import math\nimport")
    assert train("sup", data, settings, store, progress=False).cached
    edit(pkg / "pretrain.py", "total += loss.detach().float()", "total += loss.detach().float() * 1")
    again = train("sup", data, settings, store, progress=False)
    assert not again.cached and again.artifact.key != first.artifact.key


def test_results_made_before_a_training_change_are_stale(pkg):
    res = {"provenance": {"stage_code": stage_fingerprints(pkg)}}
    assert staleness(res, root=pkg) == {}
    edit(pkg / "plots.py", "import", "import math\nimport")
    assert staleness(res, root=pkg) == {}
    edit(pkg / "pretrain.py", "total += loss.detach().float()", "total += loss.detach().float() * 1")
    stale = staleness(res, root=pkg)
    assert list(stale) == ["train"] and "satnb.pretrain" in stale["train"]
    assert "all" in staleness({"provenance": {}})  # a file from before stage fingerprints: nothing shows it current


def test_an_edit_during_a_run_does_not_change_the_running_code_keys(pkg, monkeypatch):
    """The installed package's sources are read once per process: the code in memory keeps its keys."""
    monkeypatch.setattr(fingerprint, "PACKAGE_DIR", pkg)
    monkeypatch.setattr(fingerprint, "_SNAPSHOT", None)
    before = source_fingerprint("satnb.pretrain", pkg)
    edit(pkg / "pretrain.py", "total += loss.detach().float()", "total += loss.detach().float() * 1")
    assert source_fingerprint("satnb.pretrain", pkg) == before  # this process still runs the old code
    monkeypatch.setattr(fingerprint, "_SNAPSHOT", None)  # a new process reads the new code
    assert source_fingerprint("satnb.pretrain", pkg) != before
