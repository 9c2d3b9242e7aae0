"""Reliability and security: clear errors for bad input, interrupted runs, unsafe or corrupt artifacts, determinism."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
from pathlib import Path

import pytest
import torch

from satnb.attacks import PGD, KNNGradientAttack
from satnb.core.config import AttackSettings, BaselineSettings, ConfigError, SATSettings, TrainSettings, get_profile
from satnb.core.dataset import DataError
from satnb.core.datasets import load_dataset, load_digits
from satnb.core.store import ArtifactError, Store
from satnb.defences import adversarial_train, sat
from satnb.knn.classifier import KNN
from satnb.knn.features import build_library
from satnb.nets import mi
from satnb.nets.convnets import SmallConvNet
from satnb.nets.models import Classifier
from satnb.nets.pretrain import build_model, train
from satnb.protocol.evaluate import evaluate, first_correct

REPO = Path(__file__).resolve().parents[1]
TINY = {"convnet": {"widths": (8, 16)}, "amdim": {"ndf": 8, "n_rkhs": 32, "n_depth": 1}}
ATTACK = AttackSettings(eps=0.03, step=0.005, steps=2)


@pytest.fixture(scope="module")
def data():
    return load_digits().subset(96, 60, seed=0)


@pytest.fixture(scope="module")
def sat_data():
    """48 library images, 4-5 per class (m=3 guide samples fit every class)."""
    small = load_digits().subset(48, 10, seed=0)
    return small.x_train, small.y_train


def settings(method: str = "sup", epochs: int = 1) -> TrainSettings:
    enc = "amdim" if method == "amdim" else "convnet"
    return TrainSettings(enc, epochs=epochs, batch_size=32, lr=5e-3, encoder_kwargs=TINY[enc])


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def tiny_sat(x, y, store, iterations=2, **kw):
    torch.manual_seed(0)
    s = SATSettings(iterations=iterations, batch_size=16, lr=1e-3, refresh_every=1, eval_every=1)
    return sat(SmallConvNet(widths=(8, 16)), x, y, s, ATTACK, k=3, m=3, store=store, progress=False, seed=3, **kw)


# ----------------------------------------------------------------------------- bad input


def test_unknown_profile_and_dataset_name_the_valid_ones():
    with pytest.raises(ConfigError, match="valid profiles are smoke, quick, cpu, gpu, paper"):
        get_profile("nope")
    with pytest.raises(ConfigError, match="valid datasets are cifar10, stl10, mnist, digits"):
        load_dataset("imagenet")


def test_data_path_that_does_not_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("SATNB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="does not exist; set it to a data directory or an .npz file"):
        load_dataset("cifar10")


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": 0.0}, "eps must be a positive number"),
    ({"eps": -0.1}, "eps must be a positive number"),
    ({"eps": 1.5}, r"eps=1.5 is larger than 1.0; eps is an L-inf radius in \(0, 1\]"),
    ({"step": 0.0}, "step must be a positive number"),
    ({"steps": 0}, "steps must be an integer >= 1"),
])
def test_attack_settings_out_of_range(kwargs, match):
    model = SmallConvNet(widths=(8, 16))
    knn = KNN(k=3).fit(torch.randn(12, 16), torch.arange(3).repeat(4))
    args = {"eps": 0.03, "step": 0.005, "steps": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        KNNGradientAttack(model, knn, m=2, **args)
    with pytest.raises(ConfigError, match=match):
        PGD(Classifier(model, 3), **args)


def test_k_m_and_n_too_large():
    feats, labels = torch.randn(12, 16), torch.tensor([0] * 8 + [1] * 2 + [2] * 2)
    with pytest.raises(ConfigError, match="k=20 is larger than the library \\(12 samples\\); lower k"):
        KNN(k=20).fit(feats, labels)
    knn = KNN(k=3).fit(feats, labels)
    with pytest.raises(ConfigError, match="m=5 guide samples per group, but library class 1 has only 2 samples; "
                                          "lower m to at most 2"):
        KNNGradientAttack(SmallConvNet(widths=(8, 16)), knn, m=5)
    y = torch.tensor([0, 1, 2])
    with pytest.raises(ConfigError, match="N=4 is larger than the test set \\(3 images\\); lower n_attack"):
        first_correct(y, y, 4)


def _first_train(data, store, method="sup"):
    return train(method, data, settings(method), store, seed=0, progress=False)


def test_cached_checkpoint_of_another_architecture(tmp_path, data):
    store = Store(tmp_path)
    first = _first_train(data, store)
    other = build_model("sup", TrainSettings("convnet", 1, 32, 5e-3, encoder_kwargs={"widths": (4, 8)}), data)
    store.save_checkpoint(first.artifact, {"model": other.state_dict()}, final=True)
    with pytest.raises(ArtifactError, match="final.pt does not fit this model .*size mismatch.* Delete it to "
                                            "recompute the stage"):
        _first_train(data, store)
    store.save_checkpoint(first.artifact, {"weights": {}}, final=True)  # a layout satnb never wrote
    with pytest.raises(ArtifactError, match="KeyError: 'model'"):
        _first_train(data, store)
    first.artifact.final.unlink()  # the fix the message names
    again = _first_train(data, store)
    assert not again.cached and same_weights(first.model, again.model)


def test_progress_checkpoint_that_does_not_fit(tmp_path, data):
    store = Store(tmp_path)
    art = _first_train(data, store).artifact
    art.final.unlink()
    other = build_model("sup", TrainSettings("convnet", 1, 32, 5e-3, encoder_kwargs={"widths": (4, 8)}), data)
    store.save_checkpoint(art, {"model": other.state_dict(), "epoch": 1})
    with pytest.raises(ArtifactError, match="progress.pt does not fit this model .* Delete it to restart the stage"):
        _first_train(data, store)
    art.progress.unlink()
    assert not _first_train(data, store).cached


def test_sat_checkpoint_of_another_architecture(tmp_path, sat_data):
    x, y = sat_data
    store = Store(tmp_path)
    art = tiny_sat(x, y, store, iterations=1).artifact
    state = store.load_checkpoint(art)
    store.save_checkpoint(art, {**state, "model": SmallConvNet(widths=(4, 8)).state_dict()}, final=True)
    with pytest.raises(ArtifactError, match="final.pt does not fit this model .* Delete it to recompute the stage"):
        tiny_sat(x, y, store, iterations=1)
    art.final.unlink()
    store.save_checkpoint(art, {**state, "t": 1})  # a progress checkpoint without its history fields
    with pytest.raises(ArtifactError, match="progress.pt does not fit this model \\(KeyError: 'optimizer'\\)"):
        tiny_sat(x, y, store, iterations=1)


def test_final_checkpoint_without_a_valid_result_is_refused(tmp_path, data):
    store = Store(tmp_path)
    first = _first_train(data, store)
    art = first.artifact
    result = art.result.read_text()
    art.result.write_text(result.replace('"train_seconds"', '"train_s"'))
    with pytest.raises(ArtifactError, match="result.json is corrupt \\(it lacks train_seconds\\); delete"):
        _first_train(data, store)
    art.result.unlink()
    with pytest.raises(ArtifactError, match="final.pt has no result beside it; delete .* to recompute it"):
        _first_train(data, store)
    art.final.unlink()
    again = _first_train(data, store)
    assert not again.cached and same_weights(first.model, again.model)


@pytest.mark.parametrize("which, fix", [("final", "recompute"), ("progress", "restart")])
def test_truncated_checkpoint_is_never_read_back(tmp_path, data, which, fix):
    store = Store(tmp_path)
    res = _first_train(data, store)
    path = res.artifact.final
    if which == "progress":  # as if killed mid-stage, then the progress file damaged (atomic writes never do that)
        path.rename(res.artifact.progress)
        path = res.artifact.progress
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=f"{which}.pt could not be loaded safely .*corrupt.* Delete it to {fix} "
                                            "the stage"):
        _first_train(data, store)
    path.unlink()
    assert same_weights(_first_train(data, store).model, res.model)


def test_leftover_temporary_files_are_ignored(tmp_path, data):
    store = Store(tmp_path)
    first = _first_train(data, store)
    for name in ("final.pt", "result.json"):
        (first.artifact.path / name).unlink()
    # what a process killed inside atomic_write_bytes leaves behind
    (first.artifact.path / ".final.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    (first.artifact.path / ".progress.pt.k1ll3d.tmp").write_bytes(b"")
    again = _first_train(data, store)
    assert not again.cached and same_weights(first.model, again.model)
    assert _first_train(data, store).cached


class _Touch:
    """A pickle payload that creates a file when unpickled (what an attacker would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("fmt", ["torch", "pickle"])
def test_malicious_cached_checkpoint_is_refused(tmp_path, data, fmt):
    proof = tmp_path / "payload-works"
    pickle.loads(pickle.dumps(_Touch(proof)))  # the payload is real: an unsafe load runs it
    assert proof.exists()
    store = Store(tmp_path / "store")
    art = _first_train(data, store).artifact
    marker = tmp_path / "pwned"
    for path in (art.final, art.progress):
        if fmt == "torch":
            torch.save({"model": _Touch(marker)}, path)
        else:
            path.write_bytes(pickle.dumps({"model": _Touch(marker)}))
    with pytest.raises(ArtifactError, match="final.pt could not be loaded safely"):
        _first_train(data, store)
    art.final.unlink()
    with pytest.raises(ArtifactError, match="progress.pt could not be loaded safely.*restart the stage"):
        _first_train(data, store)
    assert not marker.exists()


def _fail_downloads(monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    for name in ("CIFAR10", "MNIST", "STL10"):
        monkeypatch.setattr(tvd, name, offline)


def test_no_network_falls_back_or_says_what_to_set(monkeypatch):
    _fail_downloads(monkeypatch)
    with pytest.warns(UserWarning, match="falling back to sklearn digits. Set SATNB_DATA"):
        ds = load_dataset("cifar10", fallback=True)
    assert ds.fallback and ds.name == "digits" and ds.describe()["fallback"] is True
    with pytest.raises(DataError, match="cifar10 not found .*torchvision download.* Set SATNB_DATA"):
        load_dataset("cifar10", fallback=False)
    assert get_profile("paper").fallback_to_digits is False


# ----------------------------------------------------------------------------- interrupted runs

_RUNNER = """
import sys, time
import torch
torch.set_num_threads(1)
from satnb.defences import sat
from satnb.core.config import AttackSettings, SATSettings, TrainSettings
from satnb.core.datasets import load_digits
from satnb.nets.pretrain import train
from satnb.core.store import Store
slow = lambda *args: time.sleep(0.15)  # widens the window for the kill; changes no number
data = load_digits().subset(64, 30, seed=0)
store = Store(sys.argv[1])
model = train("sup", data, TrainSettings("convnet", epochs=6, batch_size=16, lr=5e-3,
              encoder_kwargs={"widths": (8, 16)}), store, seed=4, progress=False, on_epoch_end=slow).model
sat(model.encoder, data.x_train, data.y_train, SATSettings(iterations=6, batch_size=16, lr=1e-3, refresh_every=2,
    eval_every=1), AttackSettings(0.03, 0.005, 2), k=3, m=3, store=store, seed=4, progress=False,
    eval_fn=lambda model, t: slow() or {})
"""


def _reference(root: Path):
    """The runner's two stages, uninterrupted, in this process."""
    data = load_digits().subset(64, 30, seed=0)
    store = Store(root)
    trained = train("sup", data, TrainSettings("convnet", epochs=6, batch_size=16, lr=5e-3,
                                               encoder_kwargs={"widths": (8, 16)}), store, seed=4, progress=False)
    tuned = sat(trained.model.encoder, data.x_train, data.y_train, SATSettings(iterations=6, batch_size=16, lr=1e-3,
                refresh_every=2, eval_every=1), ATTACK, k=3, m=3, store=store, seed=4, progress=False,
                eval_fn=lambda model, t: {})
    return trained, tuned


def _kill_when(proc: subprocess.Popen, pattern: str, root: Path, delay: float) -> None:
    """SIGKILL the runner `delay` seconds after a file matching pattern appears (fail if it ends first)."""
    try:
        deadline = time.monotonic() + 120
        while not list(root.glob(pattern)):
            assert proc.poll() is None, f"runner ended before {pattern} appeared: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, f"no {pattern} within 120 s"
            time.sleep(0.01)
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def test_killed_runs_resume_to_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(textwrap.dedent(_RUNNER))
    root = tmp_path / "killed"
    cmd = [sys.executable, str(script), str(root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    delays = [random.uniform(0.0, 0.4) for _ in range(2)]
    # killed during training (after its first checkpoint), then during SAT, then run to the end
    for stage, delay in zip(("train-sup", "sat"), delays):
        _kill_when(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
                   f"{stage}/*/progress.pt", root, delay)
        assert not list(root.glob(f"{stage}/*/final.pt")), f"{stage} finished before the kill (delays {delays})"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ref_train, ref_sat = _reference(tmp_path / "reference")
    got_train, got_sat = _reference(root)  # cache hits: the killed-and-resumed run's weights
    assert got_train.cached and got_sat.cached and got_sat.artifact.key == ref_sat.artifact.key
    assert [h["epoch"] for h in got_train.history] == [1, 2, 3, 4, 5, 6]
    assert same_weights(ref_train.model, got_train.model), f"training differs after SIGKILLs (delays {delays})"
    assert same_weights(ref_sat.model, got_sat.model), f"SAT differs after SIGKILLs (delays {delays})"
    assert same_weights(ref_sat.objective, got_sat.objective)
    assert [h["loss"] for h in got_sat.history] == [h["loss"] for h in ref_sat.history]


# ----------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("method", ["sup", "simclr", "npid", "amdim"])
def test_training_is_deterministic(tmp_path, data, method):
    a = train(method, data, settings(method), Store(tmp_path / "a"), seed=7, progress=False)
    b = train(method, data, settings(method), Store(tmp_path / "b"), seed=7, progress=False)
    assert not a.cached and not b.cached
    assert same_weights(a.model, b.model) and [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def test_evaluation_sat_baseline_and_mi_are_deterministic(tmp_path, data, sat_data):
    model = train("sup", data, settings(), Store(tmp_path / "m"), seed=0, progress=False).model
    profile = get_profile("smoke").replace(k=3, m=3, n_attack=6, n_attack_opt=2, opt_binary_steps=2, opt_steps=3,
                                           small=ATTACK, large=AttackSettings(0.06, 0.005, 2))
    x, y = sat_data
    runs = []
    for name in ("a", "b"):
        knn = build_library(model, data.x_train, data.y_train, k=3)
        ev = evaluate(model, knn, data.x_test, data.y_test, profile.protocol, seed=1, progress=False)
        s = tiny_sat(x, y, Store(tmp_path / name), iterations=2)
        base = adversarial_train(model, "at", x, y, ATTACK, BaselineSettings(batch_size=16),
                                 store=Store(tmp_path / name), seed=2, progress=False)
        feats = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
        est = mi.estimate_mi(feats, feats + 0.5 * torch.randn(256, 4, generator=torch.Generator().manual_seed(1)),
                             steps=5, batch_size=32, seed=3, progress=False)
        runs.append((ev, s, base, est))
    (ev_a, sat_a, base_a, mi_a), (ev_b, sat_b, base_b, mi_b) = runs
    for key in ("acc", "dsr_small", "dsr_large", "noise_dsr_small", "noise_dsr_large", "l2_all_px", "opt_unbroken"):
        assert ev_a[key] == ev_b[key], key
    assert not sat_b.cached and same_weights(sat_a.model, sat_b.model)
    assert [h["loss"] for h in sat_a.history] == [h["loss"] for h in sat_b.history]
    assert not base_b.cached and same_weights(base_a.model, base_b.model)
    assert mi_a.value == mi_b.value and mi_a.history == mi_b.history


# ----------------------------------------------------------------------------- the book fails loudly


def _notebook(source: str) -> str:
    title = {"cell_type": "markdown", "id": "cell-0", "metadata": {}, "source": "# Page"}
    cell = {"cell_type": "code", "execution_count": None, "id": "cell-1", "metadata": {}, "outputs": [],
            "source": source}
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return json.dumps({"cells": [title, cell], "metadata": {"kernelspec": kernel}, "nbformat": 4,
                       "nbformat_minor": 5})


def _book_config() -> Path:
    return next(p for p in (REPO / "book" / "_config.yml", REPO / "_config.yml") if p.is_file())


def _build_book(root: Path, source: str, *flags: str) -> subprocess.CompletedProcess:
    """Build a one-notebook book wired like the repository's (its execute settings)."""
    import yaml

    config = yaml.safe_load(_book_config().read_text())
    root.mkdir()
    (root / "_config.yml").write_text(yaml.safe_dump({"title": "reliability", "only_build_toc_files": True,
                                                      "execute": config["execute"]}))
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: page\n")
    (root / "intro.md").write_text("# Intro\n")
    (root / "page.ipynb").write_text(_notebook(source))
    jb = Path(sys.executable).with_name("jupyter-book")
    return subprocess.run([str(jb), "build", str(root), *flags], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PATH": f"{jb.parent}:{os.environ['PATH']}"})


@pytest.mark.slow
def test_the_book_build_fails_when_a_notebook_raises(tmp_path):
    execute = _book_config().read_text()
    assert "execute_notebooks: force" in execute and "raise_on_error: true" in execute
    # the config alone fails the build (no --warningiserror needed), naming the notebook and the error
    bad = _build_book(tmp_path / "bad", "raise ValueError('satnb-book-failure-marker')")
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0, out[-3000:]
    assert "page.ipynb" in out and "ValueError" in out and "satnb-book-failure-marker" in out, out[-3000:]
    # a clean notebook passes even with scripts/book.sh's strict flags
    good = _build_book(tmp_path / "good", "print(1 + 1)", "--warningiserror", "--keep-going")
    assert good.returncode == 0, (good.stdout + good.stderr)[-3000:]
    assert (tmp_path / "good" / "_build" / "html" / "page.html").is_file()
