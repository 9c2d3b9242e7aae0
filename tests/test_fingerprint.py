"""Cache keys follow the code a stage runs, not where it lives: comments, docs, moves and renames never retrain."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from satnb.core.fingerprint import PACKAGE_DIR, closure, code_id, source_fingerprint
from satnb.experiment.run import stage_fingerprints
from satnb.nets.pretrain import train
from satnb.report.record import staleness

STAGES = {"train": "satnb.nets.pretrain:train", "sat": "satnb.defences.selfsupervised:sat",
          "baselines": "satnb.defences.baselines:adversarial_train", "evaluate": "satnb.protocol.evaluate:evaluate",
          "features": "satnb.knn.features:extract_features"}
LOOP_EDIT = ("total += loss.detach().float()", "total += loss.detach().float() * 1")


@pytest.fixture
def pkg(tmp_path) -> Path:
    """A copy of satnb's source to edit, importable from tmp_path/src."""
    root = tmp_path / "src" / "satnb"
    shutil.copytree(PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def prints(root: Path, stages: dict[str, str] = STAGES) -> dict[str, str]:
    return {s: source_fingerprint(e, root) for s, e in stages.items()}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def take(path: Path, name: str) -> str:
    """Cut the top-level definition `name` out of a file; return its source."""
    text = path.read_text()
    m = re.search(rf"^(?:class|def) {name}\b.*?(?=^\S|\Z)", text, flags=re.M | re.S)
    assert m, f"{name} not in {path}"
    path.write_text(text[:m.start()] + text[m.end():])
    return m.group(0)


# ------------------------------------------------------------------------------------------------- the three moves
def move_a_function(pkg: Path) -> None:
    """batch_images moves from nets/pretrain.py to nets/augment.py; pretrain imports it from there."""
    code = take(pkg / "nets" / "pretrain.py", "batch_images")
    aug = pkg / "nets" / "augment.py"
    aug.write_text(aug.read_text() + "\n\n" + code)
    edit(pkg / "nets" / "pretrain.py", "from satnb.nets.augment import ",
         "from satnb.nets.augment import batch_images, ")


def split_a_module(pkg: Path) -> None:
    """NPIDMemoryBank leaves nets/losses.py for a new nets/memory_bank.py."""
    code = take(pkg / "nets" / "losses.py", "NPIDMemoryBank")
    head = ("from __future__ import annotations\n\nimport math\n\nimport torch\nimport torch.nn.functional as F\n"
            "from torch import Tensor, nn\n")
    (pkg / "nets" / "memory_bank.py").write_text(f'"""NPID\'s memory bank."""\n\n{head}\n\n{code}')
    edit(pkg / "nets" / "pretrain.py", "NPIDMemoryBank, ", "")
    edit(pkg / "nets" / "pretrain.py", "from satnb.nets.losses import",
         "from satnb.nets.memory_bank import NPIDMemoryBank\nfrom satnb.nets.losses import")


def rename_a_file(pkg: Path) -> None:
    """nets/augment.py becomes nets/augmentation.py; every import follows."""
    (pkg / "nets" / "augment.py").rename(pkg / "nets" / "augmentation.py")
    for path in pkg.rglob("*.py"):
        text = path.read_text()
        new = re.sub(r"\bsatnb\.nets\.augment\b", "satnb.nets.augmentation", text)
        new = new.replace("'augment',", "'augmentation',").replace('"augment",', '"augmentation",')
        if new != text:
            path.write_text(new)


MOVES = {"move a function": move_a_function, "split a module": split_a_module, "rename a file": rename_a_file}


# ------------------------------------------------------------------------------------------------- fingerprints
def test_an_entry_is_named_by_its_definition():
    assert code_id(train) == "satnb.nets.pretrain:train"
    assert "satnb.nets.losses:AMDIMLoss" in closure(train)
    assert "satnb.core.store:Store" not in closure(train)  # where results are kept is not code that makes them
    with pytest.raises(ValueError, match="not a definition of satnb"):
        source_fingerprint("satnb.nets.pretrain:no_such_thing")


def test_comments_and_docstrings_never_change_a_key(pkg):
    before = prints(pkg)
    for path in sorted(pkg.rglob("*.py")):
        text = "# a new comment at the top\n" + path.read_text()
        text = re.sub(r'("""|\'\'\')(?=\S)', r"\1Reworded. ", text)
        text = re.sub(r"^(\s*def .*:)$", r"\1  # why this is so", text, flags=re.M)
        path.write_text(text)
    assert prints(pkg) == before


def test_report_and_unrelated_code_never_change_a_model_key(pkg):
    before = prints(pkg)
    for rel in ("report/tables.py", "report/plots.py", "report/claims.py", "notebook/display.py", "__main__.py",
                "experiment/pipeline.py", "nets/pretrain.py", "defences/selfsupervised.py",
                "defences/baselines.py", "core/runs.py"):
        path = pkg / rel
        path.write_text(path.read_text() + "\n\ndef _added_by_a_test():\n    return 42\n")
    assert prints(pkg) == before


@pytest.mark.parametrize("rel, old, new, changed", [
    ("nets/pretrain.py", *LOOP_EDIT, {"train"}),
    ("nets/losses.py", "clip * torch.tanh(x / clip)", "clip * torch.tanh(x / clip) * 1", {"train", "sat"}),
    ("knn/classifier.py", "class KNN:", "class KNN:\n    _edited = 1", {"sat", "evaluate"}),
    ("core/dataset.py", "class Dataset:", "class Dataset:\n    _edited = 1", {"train"}),  # the others get arrays
])
def test_a_code_edit_changes_exactly_the_stages_that_run_it(pkg, rel, old, new, changed):
    before = prints(pkg)
    edit(pkg / rel, old, new)
    after = prints(pkg)
    assert {s for s in STAGES if after[s] != before[s]} == changed


@pytest.mark.parametrize("move", MOVES)
def test_moving_splitting_and_renaming_keep_every_key(pkg, move):
    before = prints(pkg)
    MOVES[move](pkg)
    assert prints(pkg) == before


def test_a_stage_entry_may_be_a_method():
    from satnb.experiment.studies import Studies

    assert code_id(Studies.evaluate) == "satnb.experiment.studies:Studies.evaluate"
    assert "satnb.protocol.evaluate:evaluate" in closure(Studies.evaluate)


# ------------------------------------------------------------------------------------------------- a real train()
TRAIN = """
import json, sys
from satnb.core.config import TrainSettings
from satnb.core.datasets import load_digits
from satnb.core.store import Store
from satnb.nets.pretrain import train
import satnb.nets.pretrain
data = load_digits().subset(60, 20, seed=0)
settings = TrainSettings("convnet", epochs=1, batch_size=20, lr=1e-3, encoder_kwargs={"widths": (8, 16)})
r = train("npid", data, settings, Store(sys.argv[1]), progress=False)
print(json.dumps({"cached": r.cached, "key": r.artifact.key, "from": satnb.nets.pretrain.__file__}))
"""


def run_train(src: Path, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "SATNB_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", TRAIN, str(cache)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=src)  # not the checkout: `-c` puts the working folder first on sys.path
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(out["from"]).is_relative_to(src)  # the edited copy ran, not the installed package
    return out


@pytest.mark.slow
def test_a_trained_model_survives_moves_and_a_loop_edit_retrains(pkg, tmp_path):
    cache = tmp_path / "cache"
    first = run_train(pkg.parent, cache)
    assert not first["cached"]
    for move in MOVES.values():  # applied one after another: NPID's training runs every moved definition
        move(pkg)
        again = run_train(pkg.parent, cache)
        assert again == {**first, "cached": True}
    edit(pkg / "nets" / "pretrain.py", *LOOP_EDIT)
    edited = run_train(pkg.parent, cache)
    assert not edited["cached"] and edited["key"] != first["key"]


def test_results_made_before_a_training_change_are_stale(pkg):
    res = {"provenance": {"stage_code": stage_fingerprints(pkg)}}
    assert staleness(res, root=pkg) == {}
    edit(pkg / "report" / "plots.py", "import", "import math\nimport")
    move_a_function(pkg)
    assert staleness(res, root=pkg) == {}
    edit(pkg / "nets" / "pretrain.py", *LOOP_EDIT)
    stale = staleness(res, root=pkg)
    assert list(stale) == ["train"] and "satnb.nets.pretrain:train" in stale["train"]
    assert "all" in staleness({"provenance": {}})  # a file from before stage fingerprints: nothing shows it current


def test_an_edit_during_a_run_does_not_change_the_running_code_keys(pkg, monkeypatch):
    """The installed package's sources are read once per process: the code in memory keeps its keys."""
    from satnb.core import fingerprint

    monkeypatch.setattr(fingerprint, "PACKAGE_DIR", pkg)
    monkeypatch.setattr(fingerprint, "_SNAPSHOT", None)
    before = source_fingerprint(STAGES["train"], pkg)
    edit(pkg / "nets" / "pretrain.py", *LOOP_EDIT)
    assert source_fingerprint(STAGES["train"], pkg) == before  # this process still runs the old code
    monkeypatch.setattr(fingerprint, "_SNAPSHOT", None)  # a new process reads the new code
    assert source_fingerprint(STAGES["train"], pkg) != before


def test_the_snapshot_s_fingerprints_are_computed_once_per_process(pkg, monkeypatch, tmp_path):
    """A report asks for the same stage fingerprints ~100 times: the second ask walks no code; a new snapshot of
    code never fingerprinted before does."""
    from satnb.core import fingerprint

    monkeypatch.setenv("SATNB_CACHE", str(tmp_path / "cache"))  # no other test's fingerprints of the edited code
    monkeypatch.setattr(fingerprint, "PACKAGE_DIR", pkg)
    monkeypatch.setattr(fingerprint, "_SNAPSHOT", None)
    before = source_fingerprint(STAGES["train"], pkg)
    walks = []
    real_walk = fingerprint._walk
    monkeypatch.setattr(fingerprint, "_walk", lambda *a: walks.append(a) or real_walk(*a))
    assert source_fingerprint(STAGES["train"], pkg) == before and not walks
    edit(pkg / "nets" / "pretrain.py", *LOOP_EDIT)
    monkeypatch.setattr(fingerprint, "_SNAPSHOT", None)  # a new process: the memo belongs to the old snapshot
    assert source_fingerprint(STAGES["train"], pkg) != before and len(walks) == 1


def test_a_new_process_of_the_same_code_takes_the_fingerprints_from_disk(pkg, monkeypatch, tmp_path):
    """Each notebook is a new process: unchanged sources are neither parsed nor walked again; a damaged file is
    recomputed, never trusted; an edit is another file (keyed by the hash of every source text)."""
    from satnb.core import fingerprint

    monkeypatch.setenv("SATNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fingerprint, "PACKAGE_DIR", pkg)
    monkeypatch.setattr(fingerprint, "_SNAPSHOT", None)
    first = prints(pkg)
    walks, parses = [], []
    real_walk, real_parse = fingerprint._walk, fingerprint._parse
    monkeypatch.setattr(fingerprint, "_walk", lambda *a: walks.append(a) or real_walk(*a))
    monkeypatch.setattr(fingerprint, "_parse", lambda *a: parses.append(a) or real_parse(*a))
    monkeypatch.setattr(fingerprint, "_SNAPSHOT", None)  # a new process
    assert prints(pkg) == first and not walks and not parses

    memo = next((tmp_path / "cache" / "fingerprints").glob("*.json"))
    memo.write_text("{half")  # a killed writer's leftover, or any damage
    monkeypatch.setattr(fingerprint, "_SNAPSHOT", None)
    assert prints(pkg) == first and len(walks) == len(STAGES)
    assert json.loads(memo.read_text())  # rewritten whole

    edit(pkg / "nets" / "pretrain.py", *LOOP_EDIT)
    monkeypatch.setattr(fingerprint, "_SNAPSHOT", None)
    assert prints(pkg)["train"] != first["train"]
    assert len(list((tmp_path / "cache" / "fingerprints").glob("*.json"))) == 2
