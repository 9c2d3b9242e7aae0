"""Bad or unusual input from a hostile user (issue 18): no silent wrong result, and one clear error for each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import image_tree
from torch import nn

from satnb.__main__ import main
from satnb.attacks import KNNGradientAttack, KNNOptimizationAttack
from satnb.core.config import ConfigError
from satnb.core.dataset import DataError
from satnb.core.datasets import CIFAR10_CLASSES, load_dataset
from satnb.core.environment import cache_dir
from satnb.core.image_folder import decoded_file
from satnb.core.npz import load_npz
from satnb.core.store import ArtifactError, Store, atomic_write_bytes
from satnb.knn.classifier import KNN
from satnb.knn.features import build_library, extract_features, predict
from satnb.protocol.evaluate import EVALUATION_NUMBERS, first_correct

ROOT = Path(__file__).resolve().parents[1]


def fails(capsys, argv: list[str], *fragments: str) -> str:
    """Run main(argv); assert exit code 2 and one `satnb: error:` line holding every fragment."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("satnb: warning:")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("satnb: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _npz(path: Path, n_classes: int = 3, n_train: int = 30, n_test: int = 12, **extra) -> Path:
    rng = np.random.default_rng(0)
    u = lambda n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # noqa: E731
    np.savez(path, x_train=u(n_train), y_train=np.arange(n_train) % n_classes, x_test=u(n_test),
             y_test=np.arange(n_test) % n_classes, **extra)
    return path



# ------------------------------------------------------------------ 1. a user's own data is not CIFAR-10

def test_own_npz_keeps_its_name_classes_and_statistics(monkeypatch, tmp_path):
    from satnb.nets.pretrain import channel_stats
    from satnb.report.tables import paper_table

    monkeypatch.setenv("SATNB_DATA", str(_npz(tmp_path / "3cls.npz")))
    ds = load_dataset("cifar10")
    assert ds.name == "3cls" and ds.classes == ("0", "1", "2")
    assert channel_stats(ds)[0] != channel_stats(_as_named_cifar10(ds))[0]  # its own statistics
    res = {"dataset": ds.describe(), "evaluation": {"pixel": {"sup": {"acc": 0.5, "dsr_small": 0.1,
                                                                      "dsr_large": 0.0, "n_attacked": 3}}}}
    assert paper_table(res).empty  # never set against the paper's Table 1


def _as_named_cifar10(ds):
    from dataclasses import replace

    return replace(ds, name="cifar10")


def test_default_out_never_replaces_a_committed_results_file(monkeypatch, tmp_path, capsys):
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "results").mkdir()
    ref = tmp_path / "results" / "smoke-digits.json"
    ref.write_text('{"reference": true}\n')
    subprocess.run([*git, "add", "results"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "ref"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    fails(capsys, ["run", "--profile", "smoke", "--dataset", "digits", "--stages", "train", "--methods", "sup",
                   "--quiet"], "results/smoke-digits.json is a committed reference run", "--out", "--force")
    assert ref.read_text() == '{"reference": true}\n'


def test_default_out_never_replaces_results_of_other_data(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    other = tmp_path / "results" / "smoke-digits.json"
    text = json.dumps({"profile": "smoke", "dataset": {"dataset": "digits", "source": "npz:x.npz",
                                                       "fingerprint": "0123456789abcdef"}})
    other.write_text(text)
    fails(capsys, ["run", "--profile", "smoke", "--dataset", "digits", "--stages", "train", "--methods", "sup",
                   "--quiet"], "holds results made from other data", "fingerprint 0123456789abcdef", "--force")
    assert other.read_text() == text


# ------------------------------------------------------------------ 2. images in exactly the documented forms

@pytest.fixture(scope="module")
def encoder():
    from satnb.nets.encoders import build_encoder

    torch.manual_seed(0)
    return build_encoder("convnet").eval()


@pytest.mark.parametrize("make, fragments", [
    (lambda x: (x * 255).round().to(torch.uint8), ("torch.uint8 tensor of shape (4, 3, 32, 32)", "x.float() / 255")),
    (lambda x: x * 255, ("images must lie in [0, 1]", "look like 0..255: divide by 255")),
    (lambda x: x.permute(0, 2, 3, 1).numpy(), ("numpy float32 array of shape (4, 32, 32, 3)", "permute(0, 3, 1, 2)")),
    (lambda x: x.permute(0, 2, 3, 1), ("shape (4, 32, 32, 3), which looks NHWC", "x.permute(0, 3, 1, 2)")),
    (lambda x: x[0], ("not NCHW", "add a batch dimension")),
    (lambda x: (x * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()[0], ("uint8 array of shape (32, 32, 3)",)),
    (lambda x: x.tolist(), ("images are a list",)),
])
def test_feature_extraction_refuses_other_image_forms(encoder, make, fragments):
    x = torch.rand(4, 3, 32, 32)
    bad = make(x)
    for call in (lambda: extract_features(encoder, bad), lambda: build_library(encoder, bad, np.arange(4) % 2, k=1),
                 lambda: predict(encoder, KNN(k=1).fit(torch.randn(4, 8), torch.arange(4) % 2), bad)):
        with pytest.raises(ConfigError) as err:
            call()
        for fragment in fragments:
            assert fragment in str(err.value)
        assert "uint8 NHWC arrays" in str(err.value) and "float NCHW tensors in [0, 1]" in str(err.value)


def test_feature_extraction_accepts_the_documented_forms(encoder):
    x = torch.rand(4, 3, 32, 32)
    u8 = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    a = extract_features(encoder, u8)
    c = extract_features(encoder, torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255)
    assert torch.allclose(a, c, atol=1e-5)


# ------------------------------------------------------------------ 3. cached results are validated on load

@pytest.mark.parametrize("content, why", [
    ("{}", "it holds an empty object"),
    ("[1, 2]", "it holds a JSON list"),
    ('"acc"', "it holds a JSON str"),
    ('{"acc": 0.5}', "it lacks dsr_small"),
    ('{"acc": "high", "dsr_small": 0, "dsr_large": 0, "noise_dsr_small": 0, "noise_dsr_large": 0, "n_attacked": 1}',
     "acc is 'high', not a number"),
])
def test_cached_evaluation_that_is_valid_json_but_not_a_result_is_corrupt(tmp_path, content, why):
    store = Store(tmp_path)
    art = store.artifact("evaluate", {"model": "x"}, code="satnb.protocol.evaluate:evaluate")
    art.result.write_text(content)
    with pytest.raises(ArtifactError, match="is corrupt") as err:
        store.load_result(art, numbers=EVALUATION_NUMBERS)  # what Studies.evaluate asks of a cached evaluation
    assert why in str(err.value) and f"delete {art.path} to recompute it" in str(err.value)


def test_cached_memo_and_training_results_are_validated(tmp_path):
    store = Store(tmp_path)
    art = store.artifact("study", {"a": 1}, code="satnb.protocol.evaluate:evaluate")
    art.result.write_text('{"settings": {}}')
    with pytest.raises(ArtifactError, match="lacks value"):
        store.memo("study", {"a": 1}, lambda: 1, code="satnb.protocol.evaluate:evaluate")
    art = store.artifact("train-sup", {"a": 1}, code="satnb.nets.pretrain:train")
    art.result.write_text("{}")
    with pytest.raises(ArtifactError, match="empty object"):
        store.load_result(art)


# ------------------------------------------------------------------ unclear errors

def test_explicit_satnb_data_without_the_dataset_is_an_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SATNB_DATA", str(tmp_path))
    with pytest.raises(DataError, match="holds no cifar10; looked for cifar-10-batches-py"):
        load_dataset("cifar10")
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"it has train/ but no test/"):
        load_dataset("cifar10")
    fails(capsys, ["run", "--profile", "smoke", "--quiet"], f"SATNB_DATA={tmp_path} holds no cifar10",
          "unset it")


def test_other_class_counts_work_or_fail_at_load_time(monkeypatch, tmp_path, capsys):
    image_tree(tmp_path / "data" / "cifar10", ["a", "b", "c"])
    monkeypatch.setenv("SATNB_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError, match="found as CIFAR-10 but holds 3 classes"):
        load_dataset("cifar10")
    ten = image_tree(tmp_path / "ten" / "cifar10", [f"c{i}" for i in range(10)], n=1)
    monkeypatch.setenv("SATNB_DATA", str(ten.parent))
    assert load_dataset("cifar10").classes == CIFAR10_CLASSES
    monkeypatch.delenv("SATNB_DATA")
    with pytest.raises(DataError, match="found as CIFAR-10 but holds 3 classes"):  # by path: the same rule
        load_dataset(str(tmp_path / "data" / "cifar10"))
    with pytest.raises(DataError, match="class.es. d have no training image"):
        load_npz(_npz(tmp_path / "four.npz", classes=np.array(["a", "b", "c", "d"])))
    with pytest.raises(DataError, match="at least 2 classes"):
        load_npz(_npz(tmp_path / "one.npz", n_classes=1))


def test_no_correctly_classified_image_says_why():
    with pytest.raises(ConfigError, match="none of the 3 test images is classified correctly"):
        first_correct(torch.tensor([1, 1, 1]), torch.tensor([0, 0, 0]), 0)


def test_truncated_archive_is_one_error_and_leaves_no_tmp_folder(monkeypatch, tmp_path, capsys):
    tree = image_tree(tmp_path / "src", ["a", "b"], n=20)
    archive = tmp_path / "mine.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="mine")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    decoded = cache_dir() / "decoded"
    decoded.mkdir(parents=True, exist_ok=True)
    cached = decoded_file(archive)
    killed = cached.with_name(f".{cached.name}.424242.tmp")  # left by a kill -9
    killed.write_bytes(b"half")
    monkeypatch.setenv("SATNB_DATA", str(archive))
    with pytest.raises(DataError, match="is not a readable tar archive .it is truncated.; re-download"):
        load_dataset("cifar10")
    assert not list(decoded.glob(".mine-*.tmp"))
    fails(capsys, ["run", "--profile", "smoke", "--quiet"], "mine.tar.gz is not a readable tar archive")
    assert not list(decoded.glob(".mine-*.tmp")) and not list(decoded.glob("mine-*.npz"))


def test_satnb_cache_that_is_a_file_or_read_only(monkeypatch, tmp_path, capsys):
    target = tmp_path / "cache-file"
    target.write_text("x")
    monkeypatch.setenv("SATNB_CACHE", str(target))
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        cache_dir()
    fails(capsys, ["run", "--profile", "smoke", "--dataset", "digits", "--quiet", "--out", str(tmp_path / "o.json")],
          f"SATNB_CACHE={target} is a file")
    monkeypatch.setenv("SATNB_CACHE", str(tmp_path / "ro"))
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # root ignores a folder's read-only mode
    with pytest.raises(ConfigError, match="is not writable .permission denied."):
        cache_dir()


def _results(tmp_path: Path, change) -> Path:
    res = json.loads((ROOT / "results" / "quick-cifar10.json").read_text())
    change(res["evaluation"]["pixel"]["sup"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(res))
    return path


@pytest.mark.parametrize("change, fragment", [
    (lambda r: r.pop("acc"), "evaluation.pixel.sup.acc is missing"),
    (lambda r: r.pop("dsr_small"), "evaluation.pixel.sup.dsr_small is missing"),
    (lambda r: r.update(acc=None), "evaluation.pixel.sup.acc is None, not a number"),
    (lambda r: r.update(acc="0.5"), "evaluation.pixel.sup.acc is '0.5', not a number"),
])
def test_report_on_a_bad_entry_is_one_error(tmp_path, capsys, change, fragment):
    from satnb.report.claims import claims_table
    from satnb.report.tables import paper_table

    path = _results(tmp_path, change)
    fails(capsys, ["report", str(path)], fragment, "rerun `python -m satnb run`")
    res = json.loads(path.read_text())
    for table in (paper_table, claims_table):
        with pytest.raises(ValueError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
            table(res)


class _Flat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 4 * 4, 6)

    def features(self, x):
        return self.fc(x.flatten(1))


def test_attacks_name_what_they_got():
    model = _Flat()
    x = torch.rand(8, 3, 4, 4)
    y = torch.arange(8) % 2
    knn = KNN(k=3, n_classes=2).fit(model.features(x).detach(), y)
    atk = KNNGradientAttack(model, knn, m=2, steps=1)
    with pytest.raises(ConfigError, match=r"shape \(8, 4, 4, 3\), which looks NHWC.*permute\(0, 3, 1, 2\)"):
        atk(x.permute(0, 2, 3, 1), y)
    with pytest.raises(ConfigError, match=r"torch.uint8 tensor of shape \(8, 3, 4, 4\)") as err:
        atk((x * 255).to(torch.uint8), y)
    assert "batch dimension" not in str(err.value)
    r = KNNOptimizationAttack(model, knn, m=2, binary_search_steps=1, steps=1).run(x[:0], y[:0])
    assert r.adv.shape == (0, 3, 4, 4) and len(r.l2) == 0 and r.n_success == 0


def test_float_npz_advice_fits_its_range(tmp_path):
    for scale, advice in ((1.0, "(x * 255).round().astype(np.uint8)"), (255.0, "x.round().astype(np.uint8)")):
        path = tmp_path / f"f{int(scale)}.npz"
        rng = np.random.default_rng(0)
        x = (rng.random((6, 4, 4, 3)) * scale).astype(np.float32)
        np.savez(path, x_train=x, y_train=np.arange(6) % 2, x_test=x, y_test=np.arange(6) % 2)
        with pytest.raises(DataError) as err:
            load_npz(path)
        assert advice in str(err.value)
        if scale == 255.0:
            assert "x * 255" not in str(err.value)


def test_cache_files_follow_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        atomic_write_bytes(tmp_path / "f.json", lambda fh: fh.write(b"{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o664


def test_interrupt_message_starts_on_its_own_line(monkeypatch, capsys):
    import satnb.__main__ as cli

    def interrupted(args):
        sys.stderr.write("train sup:  40%|####      | 2/5")  # a progress bar's unfinished line
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert main(["run", "--profile", "smoke"]) == 130
    err = capsys.readouterr().err
    assert "\nsatnb: interrupted;" in err
    monkeypatch.setattr(cli, "_run", lambda args: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["run", "--profile", "smoke", "--quiet"]) == 130
    assert capsys.readouterr().err.startswith("satnb: interrupted;")


RUN = ["run", "--profile", "smoke", "--dataset", "digits", "--methods", "sup", "--eps-space", "pixel", "--quiet"]


def test_cli_refuses_a_cached_evaluation_that_is_empty(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SATNB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "o.json"
    assert main([*RUN, "--stages", "train,evaluate", "--out", str(out)]) == 0
    cached = list((tmp_path / "cache" / "artifacts" / "evaluate").glob("*/result.json"))
    assert cached
    for path in cached:
        path.write_text("{}")
    capsys.readouterr()
    fails(capsys, [*RUN, "--stages", "train,evaluate", "--out", str(out)], "result.json is corrupt (it holds an "
          "empty object); delete", "to recompute it")


def test_force_or_an_explicit_out_replaces_results_of_other_data(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    other = tmp_path / "results" / "smoke-digits.json"
    other.write_text(json.dumps({"dataset": {"dataset": "digits", "fingerprint": "0123456789abcdef"}}))
    assert main([*RUN, "--stages", "train", "--force"]) == 0
    made = json.loads(other.read_text())
    assert made["dataset"]["fingerprint"] != "0123456789abcdef"
    assert main([*RUN, "--stages", "train"]) == 0  # the same data again: a rerun may replace its own file
    assert main([*RUN, "--stages", "train", "--out", str(tmp_path / "elsewhere.json")]) == 0


def test_a_library_class_without_samples_is_named_not_m_equals_0():
    model = _Flat()
    x = torch.rand(6, 3, 4, 4)
    knn = KNN(k=1, n_classes=3).fit(model.features(x).detach(), torch.arange(6) % 2)  # class 2: no sample
    for make in (lambda m: KNNGradientAttack(model, knn, m=m), lambda m: KNNOptimizationAttack(model, knn, m=m)):
        with pytest.raises(ConfigError, match=r"m=0 guide samples: library class\(es\) 2 hold no sample"):
            make(min(30, int(knn.class_counts.min())))  # how evaluate caps m


def test_a_killed_decode_leaves_no_tmp_file(tmp_path):
    from satnb.core.image_folder import load_image_folder

    tree = image_tree(tmp_path / "mine", ["a", "b"])
    decoded = cache_dir() / "decoded"
    decoded.mkdir(parents=True, exist_ok=True)
    load_image_folder(tree)
    (cached,) = decoded.glob("mine-*.npz")
    stale = decoded / f".{cached.name}.424242.tmp"  # what a kill -9 during np.savez leaves
    stale.write_bytes(b"x" * 1000)
    cached.unlink()
    load_image_folder(tree)
    assert not stale.exists() and cached.is_file()


@pytest.mark.parametrize("text", ["not json", "[1]", '{"dataset": "cifar10"}'])
def test_default_out_never_replaces_a_file_that_is_not_a_results_file(monkeypatch, tmp_path, capsys, text):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "smoke-digits.json").write_text(text)
    fails(capsys, [*RUN, "--stages", "train"], "results/smoke-digits.json exists and is not a satnb results file",
          "--force")
    assert (tmp_path / "results" / "smoke-digits.json").read_text() == text
