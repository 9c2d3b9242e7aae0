"""The GPU path on a CUDA device: training, the kNN's torch backend, bf16 against fp32, the attacks, the protocol.

Every test is marked `cuda` and skips without a CUDA device; on a GPU box run them with
`pytest -m cuda tests/` (scripts/gpu_check.sh does). They use the bundled digits dataset, so they need
no data download and no faiss.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from satnb.attacks import gradient_attack
from satnb.core import precision as core_precision
from satnb.core.config import METHODS, AttackSettings, TrainSettings, get_profile
from satnb.core.datasets import load_digits
from satnb.core.precision import effective_precision, set_precision
from satnb.core.store import Store
from satnb.knn.classifier import KNN, guide_groups
from satnb.knn.features import as_images, build_library, extract_features
from satnb.nets.amdim import AMDIMEncoder
from satnb.nets.pretrain import train
from satnb.protocol.evaluate import evaluate

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

DEVICE = "cuda"
KIND = torch.device(DEVICE).type
TINY_AMDIM = {"ndf": 16, "n_rkhs": 32, "n_depth": 1, "use_bn": True}
SMALL, LARGE = AttackSettings(0.03, 0.005, 10), AttackSettings(0.06, 0.005, 20)


@pytest.fixture(autouse=True)
def _bf16(monkeypatch):
    """Each test starts at the default precision; the process's own comes back afterwards."""
    monkeypatch.setattr(core_precision, "_PRECISION", ["bf16"])


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def encoder():
    """An untrained tiny AMDIM encoder on the device (the attacks' timing and bounds do not need training)."""
    torch.manual_seed(0)
    return AMDIMEncoder(**TINY_AMDIM).to(DEVICE).eval()


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("method", METHODS)
def test_one_epoch_of_tiny_training_on_cuda(method, digits, tmp_path):
    settings = TrainSettings("amdim", epochs=1, batch_size=128, lr=1e-3, encoder_kwargs=TINY_AMDIM)
    res = train(method, digits, settings, Store(tmp_path), seed=0, device=DEVICE, progress=False)
    assert len(res.history) == 1 and math.isfinite(res.history[0]["loss"])
    tensors = list(res.model.parameters()) + list(res.model.buffers())
    assert tensors and all(t.device.type == KIND for t in tensors)
    assert all(torch.isfinite(p).all() for p in res.model.parameters())


# ----------------------------------------------------------------------------- the kNN's torch backend


def _clustered(n: int, dim: int, n_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping Gaussian classes: votes are not unanimous, so the search order matters."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g) * 1.5
    y = torch.arange(n) % n_classes
    return centres[y] + torch.randn(n, dim, generator=g), y


def _reference(lib: torch.Tensor, labels: torch.Tensor, q: torch.Tensor, k: int) -> tuple[list, list]:
    """Brute force in float64: the k nearest (closest first) and the majority vote, ties to the closest member."""
    d2 = ((q.double()[:, None, :] - lib.double()[None]) ** 2).sum(-1)
    order = d2.argsort(dim=1)[:, :k]
    preds = []
    for row in order.tolist():
        votes = Counter(labels[row].tolist())
        best = max(votes.values())
        preds.append(next(int(labels[i]) for i in row if votes[int(labels[i])] == best))
    return order.tolist(), preds


def test_knn_torch_backend_on_cuda_matches_the_cpu_paths_and_brute_force():
    lib, labels = _clustered(3000, 32, 10, seed=0)
    q, _ = _clustered(400, 32, 10, seed=1)
    k = 15
    gpu = KNN(k=k, n_classes=10, backend="torch", device=DEVICE).fit(lib, labels)
    assert gpu.backend == "torch" and KNN(k=k, device=DEVICE).backend == "torch"  # auto is torch on CUDA
    cpu = KNN(k=k, n_classes=10, backend="torch").fit(lib, labels)
    ref_idx, ref_pred = _reference(lib, labels, q, k)

    pred_gpu = gpu.predict(q.to(DEVICE))
    assert pred_gpu.device.type == KIND  # predictions come back on the queries' device
    pred_gpu = pred_gpu.cpu()
    assert torch.equal(pred_gpu, cpu.predict(q))
    assert pred_gpu.tolist() == ref_pred
    dist, idx = gpu.search(q.to(DEVICE))
    same = [set(a) == set(b) for a, b in zip(idx.cpu().tolist(), ref_idx)]
    assert sum(same) / len(same) >= 0.99  # float32 against float64: a boundary pair may swap, rarely
    ref_d = ((q[:, None, :].double() - lib[idx.cpu()].double()) ** 2).sum(-1)
    torch.testing.assert_close(dist.cpu().double(), ref_d, rtol=1e-4, atol=1e-3)
    try:
        import faiss  # noqa: F401
    except ImportError:  # a GPU box without faiss: the CPU torch path and brute force stand in for it
        pass
    else:
        assert torch.equal(pred_gpu, KNN(k=k, n_classes=10, backend="faiss").fit(lib, labels).predict(q))
    # the attacks' guide groups (per-class searches) agree too
    g_gpu = guide_groups(gpu, q[:64].to(DEVICE), labels[:64], m=50)
    g_cpu = guide_groups(cpu, q[:64], labels[:64], m=50)
    rows = [set(a) == set(b) for a, b in zip(g_gpu.tolist(), g_cpu.tolist())]
    assert sum(rows) / len(rows) >= 0.95


# ----------------------------------------------------------------------------- precision


def test_cuda_computes_in_bf16_where_the_device_has_it(monkeypatch, encoder):
    if not torch.cuda.is_bf16_supported(including_emulation=False):  # e.g. a T4: satnb computes in fp32
        assert effective_precision(DEVICE) == "fp32"
        return
    assert effective_precision(DEVICE) == "bf16"
    seen = []
    conv = next(m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    try:
        with torch.no_grad():
            f = encoder.features(torch.rand(4, 3, 32, 32, device=DEVICE))
            monkeypatch.setenv("SATNB_PRECISION", "fp32")  # a running process keeps its precision
            encoder.features(torch.rand(4, 3, 32, 32, device=DEVICE))
            set_precision("fp32")
            assert effective_precision(DEVICE) == "fp32"
            encoder.features(torch.rand(4, 3, 32, 32, device=DEVICE))
    finally:
        handle.remove()
    assert seen == [torch.bfloat16, torch.bfloat16, torch.float32] and f.dtype == torch.float32


def test_bf16_and_fp32_features_give_the_same_knn_predictions(digits, tmp_path):
    """A model trained a little on digits: kNN predictions from bf16 and fp32 features agree on >= 99%."""
    settings = TrainSettings("amdim", epochs=3, batch_size=64, lr=0.05, optimizer="sgd", schedule="onecycle",
                             warmup_epochs=0.5, label_smoothing=0.1, encoder_kwargs=TINY_AMDIM)
    model = train("sup", digits, settings, Store(tmp_path), seed=0, device=DEVICE, progress=False).model
    preds = {}
    for precision in ("fp32", "bf16"):
        set_precision(precision)
        knn = build_library(model, digits.x_train, digits.y_train, k=15, n_classes=10)
        preds[precision] = knn.predict(extract_features(model, digits.x_test)).numpy()
    assert (preds["fp32"] == digits.y_test).mean() > 0.7  # a model that learned something
    assert (preds["fp32"] == preds["bf16"]).mean() >= 0.99


# ----------------------------------------------------------------------------- attacks and the protocol


@pytest.mark.parametrize("eps_space", ["pixel", "normalized"])
def test_gradient_attack_on_cuda_stays_in_its_eps_ball_and_the_valid_range(digits, encoder, eps_space):
    knn = build_library(encoder, digits.x_train, digits.y_train, k=15, n_classes=10)
    x, y = as_images(digits.x_test[:64]).to(DEVICE), torch.as_tensor(digits.y_test[:64])
    std = encoder.normalize.std.to(DEVICE) if eps_space == "normalized" else torch.ones(1, 1, 1, 1, device=DEVICE)
    for setting in (SMALL, LARGE):
        adv = gradient_attack(encoder, knn, setting, m=30, eps_space=eps_space, seed=0)(x, y)
        assert adv.device.type == KIND and adv.shape == x.shape and adv.dtype == x.dtype
        assert bool(((adv - x).abs() <= setting.eps * std + 1e-6).all())
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
        assert bool((adv != x).any())


def test_evaluate_runs_a_cuda_model_on_the_numpy_test_split(digits, encoder):
    """The pipeline's path: the model on the device, the test split a uint8 array (as `Studies.evaluate` passes it)."""
    profile = get_profile("smoke").replace(k=15, m=30, n_attack=20, n_attack_opt=4, opt_binary_steps=2, opt_steps=5)
    knn = build_library(encoder, digits.x_train, digits.y_train, k=profile.protocol.k, n_classes=10)
    r = evaluate(encoder, knn, digits.x_test, digits.y_test, profile.protocol, optimization=True, progress=False)
    assert r["n_attacked"] == 20 and r["opt_n"] == 4
    for key in ("acc", "dsr_small", "dsr_large", "noise_dsr_small", "noise_dsr_large", "opt_success"):
        assert 0 <= r[key] <= 1, key
