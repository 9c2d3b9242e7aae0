"""Mixed precision (bf16 autocast, decided once per process) and the learning-rate schedules of the recipes."""

import math

import numpy as np
import pytest
import torch

from satnb.core import precision as core_precision
from satnb.core import stats
from satnb.core.config import ConfigError, TrainSettings, get_profile, scheduled_lr
from satnb.core.dataset import profile_subset
from satnb.core.datasets import load_dataset
from satnb.core.precision import get_precision, set_precision
from satnb.core.store import Store
from satnb.experiment.session import start
from satnb.knn.features import build_library, extract_features
from satnb.nets.amdim import AMDIMEncoder
from satnb.nets.convnets import ResNet18, SmallConvNet
from satnb.nets.models import Classifier
from satnb.nets.pretrain import train
from satnb.protocol.evaluate import evaluate


@pytest.fixture(autouse=True)
def _bf16(monkeypatch):
    """Each test starts at the default precision, on a CPU with bf16 kernels; the process's own comes back afterwards.

    (On an AVX2-only CPU `effective_precision` runs fp32; these tests exercise the bf16 path itself.)
    """
    monkeypatch.setattr(core_precision, "_PRECISION", ["bf16"])
    monkeypatch.setattr(core_precision, "cpu_has_bf16", lambda: True)


@pytest.fixture
def new_process(monkeypatch):
    """A process whose precision is not decided yet (the first `get_precision` reads SATNB_PRECISION)."""
    monkeypatch.setattr(core_precision, "_PRECISION", [])
    monkeypatch.delenv("SATNB_PRECISION", raising=False)
    return monkeypatch


def _conv_dtypes(encoder: torch.nn.Module) -> list[torch.dtype]:
    """The dtypes the encoder's first convolution computes in, one per forward pass from now on."""
    seen: list[torch.dtype] = []
    conv = next(m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    return seen


def test_default_is_bf16_and_the_environment_is_read_once(new_process):
    assert get_precision() == "bf16"
    new_process.setenv("SATNB_PRECISION", "fp32")
    assert get_precision() == "bf16"  # decided already: a running process keeps its precision
    new_process.setattr(core_precision, "_PRECISION", [])
    new_process.setenv("SATNB_PRECISION", " FP32 ")
    assert get_precision() == "fp32"
    assert set_precision("bf16") == "bf16" and get_precision() == "bf16"


@pytest.mark.parametrize("bad", ["fp16", "half", ""])
def test_unknown_precision_names_the_fix(new_process, bad):
    new_process.setenv("SATNB_PRECISION", bad)
    with pytest.raises(ConfigError, match="bf16 or fp32"):
        get_precision()
    with pytest.raises(ConfigError, match="fp32 turns mixed precision off"):
        set_precision(bad)


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_the_session_sets_the_precision_the_forward_pass_uses(new_process, tmp_path, precision, dtype):
    other = "bf16" if precision == "fp32" else "fp32"
    new_process.setenv("SATNB_PRECISION", other)  # the argument wins over the environment
    assert start("smoke", precision=precision, store=Store(tmp_path)).precision == precision
    encoder = SmallConvNet((8, 16)).eval()
    seen = _conv_dtypes(encoder)
    with torch.no_grad():
        encoder.features(torch.rand(2, 3, 32, 32))
        new_process.setenv("SATNB_PRECISION", other)  # after start-up the environment changes nothing
        encoder.features(torch.rand(2, 3, 32, 32))
    assert seen == [dtype, dtype]


def test_the_session_takes_the_environment_at_start_up(new_process, tmp_path):
    new_process.setenv("SATNB_PRECISION", "fp32")
    assert start("smoke", store=Store(tmp_path)).precision == "fp32" == get_precision()
    new_process.setenv("SATNB_PRECISION", "bf16")
    assert start("smoke", store=Store(tmp_path)).precision == "fp32"


@pytest.mark.parametrize("has_bf16", [False, True])
def test_a_cuda_device_without_bf16_computes_in_float32(monkeypatch, has_bf16):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: has_bf16)
    assert core_precision.effective_precision("cuda") == ("bf16" if has_bf16 else "fp32")
    assert core_precision.effective_precision("cuda:0") == ("bf16" if has_bf16 else "fp32")
    assert core_precision.effective_precision("cpu") == ("bf16" if core_precision.cpu_has_bf16() else "fp32")
    assert core_precision.effective_precision("mps") == "fp32"
    monkeypatch.setattr(core_precision, "cpu_has_bf16", lambda: False)  # an AVX2-only CPU emulates bf16 10-20x slower
    assert core_precision.effective_precision("cpu") == "fp32"
    set_precision("fp32")
    assert core_precision.effective_precision("cuda") == core_precision.effective_precision("cpu") == "fp32"


@pytest.mark.parametrize("encoder", [SmallConvNet((8, 16)), ResNet18(widths=(8, 8, 16, 16)),
                                     AMDIMEncoder(ndf=8, n_rkhs=16, n_depth=1)])
def test_encoders_compute_in_bf16_and_return_float32(encoder):
    x = torch.rand(4, 3, 32, 32)
    encoder.eval()
    seen = _conv_dtypes(encoder)
    with torch.no_grad():
        f_bf16 = encoder.features(x)
        set_precision("fp32")
        f_fp32 = encoder.features(x)
    assert seen == [torch.bfloat16, torch.float32]
    assert f_bf16.dtype == f_fp32.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: the features agree to a few per cent, not exactly
    rel = (f_bf16 - f_fp32).norm() / f_fp32.norm()
    assert 0 < rel < 0.05


def test_gradients_reach_the_input_in_float32():
    model = Classifier(SmallConvNet((8, 16)), 10).eval()
    x = torch.rand(3, 3, 32, 32, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2]))
    assert loss.dtype == torch.float32
    (g,) = torch.autograd.grad(loss, x)
    assert g.dtype == torch.float32 and torch.isfinite(g).all() and g.abs().sum() > 0


def test_precision_is_part_of_every_cache_key(tmp_path):
    store = Store(tmp_path)
    a = store.artifact("train-sup", {"x": 1}, "data", code="satnb.nets.pretrain:train")
    set_precision("fp32")
    b = store.artifact("train-sup", {"x": 1}, "data", code="satnb.nets.pretrain:train")
    set_precision("bf16")
    assert a.key != b.key
    assert store.artifact("train-sup", {"x": 1}, "data", code="satnb.nets.pretrain:train").key == a.key


@pytest.mark.slow
def test_bf16_and_fp32_agree_on_a_trained_smoke_model(shared_data, tmp_path, monkeypatch):
    """kNN predictions from bf16 and fp32 features agree on >= 99% of test images; DSR within its interval."""
    monkeypatch.setenv("SATNB_DATA", str(shared_data))
    profile = get_profile("smoke")
    data = profile_subset(load_dataset("cifar10", fallback=False, download=False), profile)
    settings = TrainSettings("amdim", epochs=6, batch_size=100, lr=0.1, optimizer="sgd", schedule="onecycle",
                             warmup_epochs=1, label_smoothing=0.1,
                             encoder_kwargs={"ndf": 16, "n_rkhs": 64, "n_depth": 1, "use_bn": True})
    model = train("sup", data, settings, Store(tmp_path), seed=0, progress=False).model
    out = {}
    for precision in ("fp32", "bf16"):
        set_precision(precision)
        knn = build_library(model, data.x_train, data.y_train, k=profile.protocol.k, n_classes=10)
        pred = knn.predict(extract_features(model, data.x_test)).numpy()
        out[precision] = (pred, evaluate(model, knn, data.x_test, data.y_test, profile.protocol, optimization=False,
                                         progress=False))
    (p32, e32), (p16, e16) = out["fp32"], out["bf16"]
    assert (p32 == data.y_test).mean() > 0.2  # a model that learned something (chance: 0.1)
    assert (p32 == p16).mean() >= 0.99
    for st in ("small", "large"):
        lo, hi = e16[f"dsr_{st}_ci"]
        assert lo <= e32[f"dsr_{st}"] <= hi, (st, e32[f"dsr_{st}"], e16[f"dsr_{st}_ci"])
        diff = stats.unpaired_difference(round(e32[f"dsr_{st}"] * e32["n_attacked"]), e32["n_attacked"],
                                         round(e16[f"dsr_{st}"] * e16["n_attacked"]), e16["n_attacked"])
        assert diff.lo <= 0 <= diff.hi


# ----------------------------------------------------------------------------- schedules


def test_warmup_then_cosine_matches_torch_cosine_annealing():
    lr, warm, total = 0.4, 10, 110
    ours = [scheduled_lr(lr, "cosine", warm, total, s) for s in range(total)]
    assert ours[:warm] == pytest.approx([lr * (s + 1) / warm for s in range(warm)])
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm, eta_min=0.0)
    ref = []
    for _ in range(total - warm):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert ours[warm:] == pytest.approx(ref, abs=1e-12)


def test_onecycle_is_a_triangle_and_constant_is_flat():
    lr = 1.0
    tri = [scheduled_lr(lr, "onecycle", 4, 12, s) for s in range(12)]
    assert tri[3] == pytest.approx(1.0) and tri[4] == pytest.approx(1.0)
    assert tri[8] == pytest.approx(0.5) and tri[-1] == pytest.approx(1 / 8)
    assert all(a >= b for a, b in zip(tri[4:], tri[5:]))
    assert [scheduled_lr(lr, "constant", 0, 12, s) for s in range(12)] == [1.0] * 12


def test_train_settings_lr_follows_epochs_and_rejects_bad_recipes():
    s = TrainSettings("convnet", epochs=4, batch_size=10, lr=0.2, optimizer="sgd", schedule="cosine",
                      warmup_epochs=1)
    assert s.lr_at(9, 10) == pytest.approx(0.2)
    assert s.lr_at(25, 10) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 15 / 30)))
    with pytest.raises(ConfigError, match="schedule"):
        TrainSettings("convnet", 4, 10, 0.1, schedule="step")
    with pytest.raises(ConfigError, match="optimizer"):
        TrainSettings("convnet", 4, 10, 0.1, optimizer="lamb")
    with pytest.raises(ConfigError, match="warmup_epochs"):
        TrainSettings("convnet", 4, 10, 0.1, warmup_epochs=5)
    with pytest.raises(ConfigError, match="label_smoothing"):
        TrainSettings("convnet", 4, 10, 0.1, label_smoothing=1.0)


def test_training_follows_the_schedule_and_label_smoothing_matters(tmp_path):
    data = load_dataset("digits").subset(200, 50, seed=0)
    base = dict(encoder="convnet", epochs=3, batch_size=50, lr=0.05, optimizer="sgd", weight_decay=5e-4,
                encoder_kwargs={"widths": (8, 16)})
    a = train("sup", data, TrainSettings(**base, schedule="onecycle", warmup_epochs=1), Store(tmp_path),
              progress=False)
    b = train("sup", data, TrainSettings(**base, schedule="onecycle", warmup_epochs=1, label_smoothing=0.2),
              Store(tmp_path), progress=False)
    steps = 200 // 50
    # the history records the learning rate of each epoch's last step
    expected = [TrainSettings(**base, schedule="onecycle", warmup_epochs=1).lr_at((e + 1) * steps - 1, steps)
                for e in range(3)]
    assert [h["lr"] for h in a.history] == pytest.approx(expected)
    assert expected[0] == pytest.approx(0.05) and expected[-1] < expected[1] < expected[0]
    wa = torch.cat([p.flatten() for p in a.model.parameters()])
    wb = torch.cat([p.flatten() for p in b.model.parameters()])
    assert not torch.allclose(wa, wb)
    assert np.isfinite([h["loss"] for h in a.history]).all()


def test_batches_from_device_resident_uint8_match_to_tensor():
    from satnb.core.images import to_tensor
    from satnb.nets.pretrain import batch_images

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    idx = torch.tensor([3, 0, 19, 7])
    x = batch_images(torch.from_numpy(images), idx)
    assert torch.equal(x, to_tensor(images[idx.numpy()]))
    assert x.is_contiguous(memory_format=torch.channels_last) and x.dtype == torch.float32


def test_features_of_uint8_arrays_equal_those_of_float_tensors():
    """The device path (uint8 to the device, float there) changes no number on the CPU."""
    from satnb.core.images import to_tensor

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    model = AMDIMEncoder(ndf=8, n_rkhs=16, n_depth=1, use_bn=True).eval()
    assert torch.equal(extract_features(model, images, batch_size=16),
                       extract_features(model, to_tensor(images), batch_size=16))
