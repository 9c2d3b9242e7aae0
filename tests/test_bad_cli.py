"""Bad input at the command line, in results files and devices: one `satnb: error:` line, never a traceback."""

from __future__ import annotations

import copy
import errno
import json
from pathlib import Path

import pytest
import test_cli

import satnb.__main__
import satnb.core.store
import satnb.experiment.run
from satnb.__main__ import main

fails, no_run, _no_env = test_cli.fails, test_cli.no_run, test_cli._no_env  # the CLI tests' helper and fixtures

RESULTS = Path(__file__).resolve().parents[1] / "results" / "quick-cifar10.json"
SMOKE = ["run", "--profile", "smoke", "--dataset", "digits", "--quiet", "--threads", "1"]


# ------------------------------------------------------------------ 1, 2. the results file at --out

def _results_file(path: Path, profile: str = "smoke") -> str:
    text = json.dumps({"profile": profile, "dataset": {"dataset": "digits"}, "evaluation": {}})
    path.write_text(text)
    return text


def test_a_full_disk_leaves_the_previous_results_file_whole(capsys, monkeypatch, tmp_path, no_run):
    out = tmp_path / "r.json"
    before = _results_file(out)

    def full_disk(fh):
        fh.write(b'{"half')
        raise OSError(errno.ENOSPC, "No space left on device")

    real_atomic, real_write_text = satnb.core.store.atomic_write_bytes, Path.write_text
    monkeypatch.setattr(satnb.core.store, "atomic_write_bytes",
                        lambda path, write: real_atomic(path, full_disk if path == out else write))
    monkeypatch.setattr(Path, "write_text", lambda self, text, *a, **k: (
        real_write_text(self, '{"half'), full_disk(None)) if self == out else real_write_text(self, text, *a, **k))
    fails(capsys, [*SMOKE, "--out", str(out)], "cannot write the results file", "No space left on device",
          "it is unchanged", "another --out")
    assert out.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("name, content", [("data.npz", b"PK\x03\x04 a dataset"), ("notes.md", b"# my notes\n"),
                                           ("other.json", b'{"hello": 1}'), ("deep.json", b"[" * 100_000)])
def test_an_explicit_out_never_replaces_a_file_that_is_not_a_results_file(capsys, tmp_path, no_run, name, content):
    victim = tmp_path / name
    victim.write_bytes(content)
    fails(capsys, [*SMOKE, "--out", str(victim)], f"{victim} exists and is not a satnb results file", "--force")
    assert victim.read_bytes() == content and not no_run


def test_an_explicit_out_replaces_results_and_needs_force_for_a_larger_committed_run(capsys, monkeypatch, tmp_path,
                                                                                      no_run):
    mine = tmp_path / "mine.json"
    _results_file(mine)
    assert main([*SMOKE, "--out", str(mine)]) == 0  # an uncommitted results file of one's own: replaced
    reference = tmp_path / "quick-cifar10.json"
    before = _results_file(reference, profile="quick")
    monkeypatch.setattr(satnb.__main__, "_committed", lambda path: path == reference)
    fails(capsys, [*SMOKE, "--out", str(reference)], "committed reference run of the quick profile",
          "(smoke) is smaller", "--force")
    assert reference.read_text() == before
    assert main([*SMOKE, "--out", str(reference), "--force"]) == 0
    assert json.loads(reference.read_text())["profile"] == "smoke"


def test_an_empty_out_is_an_error(capsys, no_run):
    fails(capsys, [*SMOKE, "--out", ""], "--out is empty")
    fails(capsys, [*SMOKE, "--out", "  "], "--out is empty")
    assert not no_run


# ------------------------------------------------------------------ 3. hand-edited results files

def _edit(res: dict, where: str, value) -> None:
    *path, last = where.split(".")
    node = res
    for key in path:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value


@pytest.fixture(scope="module")
def reference() -> dict:
    if not RESULTS.is_file():
        pytest.skip(f"{RESULTS} not found")
    return json.loads(RESULTS.read_text())


@pytest.mark.parametrize("where, value, fragment", [
    ("evaluation.pixel", "x", "evaluation.pixel is a str"),
    ("settings", "x", "'settings' is a str, not a dict"),
    ("training", [1, 2], "'training' is a list, not a dict"),
    ("robustness", 3, "'robustness' is a int, not a dict"),
    ("sat.amdim", "x", "sat.amdim is a str, not a dict"),
    ("robustness.pixel.sup", "x", "robustness.pixel.sup lacks the worst case"),
    ("robustness.pixel.sup.settings.small.attacks.worst case.survived", "zz", "not per-image bits"),
    ("dataset.dataset", KeyError, "dataset.dataset (the dataset's name) is missing"),
    ("dataset.dataset", 7, "dataset.dataset (the dataset's name) is missing or not a string"),
    ("evaluation.pixel.sup.per_image.correct", "1000:zz", "evaluation.pixel.sup.per_image.correct is '1000:zz'"),
    ("evaluation.pixel.sup.per_image.survived_small", "9:ffff", "holds 9 outcomes for n_attacked="),
    ("evaluation.pixel.sup.per_image", [1], "per_image is a list"),
    ("evaluation.pixel.sup.n_prefix", "many", "n_prefix is 'many'"),
    ("evaluation.pixel.sup.dsr_small_ci", "0.1-0.2", "dsr_small_ci is '0.1-0.2', not an interval"),
    ("evaluation.pixel.sup.acc_ci", [0.1], "acc_ci is '[0.1]', not an interval"),
    ("evaluation.pixel.sup.n_attacked", -5, "n_attacked is -5, not a whole number of images up to the 1000"),
    ("evaluation.pixel.sup.n_attacked", 10**9, "n_attacked is 1000000000"),
    ("evaluation.pixel.sup.n_attacked", 200.5, "n_attacked is 200.5"),
    ("evaluation.pixel.sup.n_attacked", 900, "outcomes for n_attacked=900"),
    ("evaluation.pixel.sup.per_image.correct", "1000:" + "00" * 125, "but per_image.correct holds fewer correct "
                                                                     "images"),
])
def test_report_on_a_hand_edited_results_file_is_one_line(capsys, tmp_path, reference, where, value, fragment):
    res = copy.deepcopy(reference)
    _edit(res, where, value)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(res))
    fails(capsys, ["report", str(path)], "edited.json", fragment)


@pytest.mark.parametrize("text, fragment", [('"results"', "holds a JSON str"), ("[1]", "holds a JSON list"),
                                            ("3", "holds a JSON int"), ("[" * 100_000, "nests JSON too deeply"),
                                            ('{"a":' * 100_000, "nests JSON too deeply")])
def test_report_on_a_file_that_is_no_record_is_one_line(capsys, tmp_path, text, fragment):
    path = tmp_path / "odd.json"
    path.write_text(text)
    fails(capsys, ["report", str(path)], fragment)


# ------------------------------------------------------------------ 7. a record evaluated in normalized units only

def test_report_judges_a_normalized_only_record_in_its_own_units(capsys, tmp_path, reference):
    res = copy.deepcopy(reference)
    res["evaluation"] = {"normalized": res["evaluation"]["normalized"]}
    del res["robustness"]
    path = tmp_path / "normalized.json"
    path.write_text(json.dumps(res))
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "claims judged with eps in normalized units" in out
    claim1 = next(line for line in out.splitlines() if "(the paper's attacks)" in line)
    assert "NOT EVALUATED" not in claim1.upper().replace("_", " ") and "sup" in out.lower()


# ------------------------------------------------------------------ 4. devices

@pytest.mark.parametrize("device", ["mps", "meta", "xla", "cuda:99"])
def test_a_device_that_cannot_compute_here_is_refused(capsys, monkeypatch, tmp_path, no_run, device):
    monkeypatch.setenv("SATNB_DEVICE", device)
    fails(capsys, [*SMOKE, "--out", str(tmp_path / "r.json")], repr(device), "cpu")
    assert not no_run


# ------------------------------------------------------------------ 6. stages the methods give nothing to do

@pytest.mark.parametrize("stages, methods, fragment", [
    ("baselines", "amdim", "--stages baselines fine-tunes the supervised model"),
    ("train,baselines", "npid,simclr", "add sup to --methods"),
    ("sat", "sup", "--stages sat fine-tunes the self-supervised models (amdim, npid, simclr)"),
])
def test_stages_that_would_do_nothing_are_refused(capsys, no_run, stages, methods, fragment):
    fails(capsys, [*SMOKE, "--stages", stages, "--methods", methods], fragment)
    assert not no_run


def test_provenance_lists_only_stages_that_ran(tiny_pipeline):
    res = satnb.experiment.run.collect(tiny_pipeline, stages=("train", "sat", "baselines"), methods=())
    assert set(res["provenance"]["stage_code"]) == {"train"}


# ------------------------------------------------------------------ 8. a GPU profile without a GPU

@pytest.mark.parametrize("profile", ["paper", "gpu"])
def test_a_gpu_profile_on_the_cpu_needs_yes(capsys, monkeypatch, tmp_path, no_run, profile):
    monkeypatch.setenv("SATNB_DEVICE", "cpu")
    fails(capsys, ["run", "--profile", profile, "--out", str(tmp_path / "r.json")],
          f"the {profile} profile is sized for a GPU", "epochs in all", "--yes", "--profile cpu")
    assert not no_run
