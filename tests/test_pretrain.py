import math

import numpy as np
import pytest
import torch

from satnb.core.config import BaselineSettings, ConfigError, SATSettings, TrainSettings
from satnb.core.datasets import load_digits
from satnb.core.store import Store
from satnb.nets.optim import build_optimizer, schedule
from satnb.nets.pretrain import build_model, train

TINY = {"convnet": {"widths": (8, 16)}, "amdim": {"ndf": 8, "n_rkhs": 32, "n_depth": 1}}


@pytest.fixture(scope="module")
def data():
    return load_digits().subset(192, 60, seed=0)


def _settings(method, epochs=3):
    enc = "amdim" if method == "amdim" else "convnet"
    return TrainSettings(enc, epochs=epochs, batch_size=64, lr=2e-3, encoder_kwargs=TINY[enc])


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["sup", "simclr", "npid", "amdim"])
def test_resumed_run_equals_uninterrupted(tmp_path, data, method):
    full = train(method, data, _settings(method), Store(tmp_path / "a"), seed=1, progress=False)

    def stop_after_first(epoch, record):
        if epoch == 1:
            raise Interrupt

    store = Store(tmp_path / "b")
    with pytest.raises(Interrupt):
        train(method, data, _settings(method), store, seed=1, progress=False, on_epoch_end=stop_after_first)
    resumed = train(method, data, _settings(method), store, seed=1, progress=False)
    assert not resumed.cached and [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), f"{method}: {k} differs after resume"
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]


def test_cache_hit_and_miss(tmp_path, data):
    store = Store(tmp_path)
    first = train("sup", data, _settings("sup", 1), store, seed=0, progress=False)
    again = train("sup", data, _settings("sup", 1), store, seed=0, progress=False)
    assert again.cached and not first.cached
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(first.model.features(x), again.model.features(x))
    other = train("sup", data, _settings("sup", 1), store, seed=5, progress=False)
    assert not other.cached


def test_supervised_training_learns(tmp_path, data):
    settings = TrainSettings("convnet", epochs=8, batch_size=32, lr=5e-3, encoder_kwargs={"widths": (16, 32, 64)})
    res = train("sup", data, settings, Store(tmp_path), seed=0, progress=False)
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < losses[0]
    logits = res.model(torch.from_numpy(data.x_test).permute(0, 3, 1, 2).float() / 255)
    acc = (logits.argmax(1).numpy() == data.y_test).mean()
    assert acc > 0.25, acc  # 10 classes: chance is 0.1


def test_build_model_features(data):
    for method, dim in (("sup", 16), ("simclr", 16), ("npid", 128), ("amdim", 32)):
        model = build_model(method, _settings(method), data)
        assert model.features(torch.rand(2, 3, 32, 32)).shape == (2, dim)
    with pytest.raises(ConfigError, match="valid methods are amdim, npid, simclr, sup"):
        build_model("byol", _settings("sup"), data)
    with pytest.raises(ConfigError, match="needs the AMDIM encoder"):
        build_model("amdim", _settings("sup"), data)


def test_unlabelled_methods_never_read_labels(tmp_path, data):
    shuffled = type(data)(**{**data.__dict__, "y_train": np.roll(data.y_train, 7), "_fingerprint": None})
    a = train("simclr", data, _settings("simclr", 1), Store(tmp_path / "a"), seed=0, progress=False)
    b = train("simclr", shuffled, _settings("simclr", 1), Store(tmp_path / "b"), seed=0, progress=False)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x, y)


def test_one_optimiser_builder_for_pretraining_and_fine_tuning():
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(TrainSettings("convnet", 1, 8, 0.1, optimizer="sgd", weight_decay=1e-4), params)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    assert sgd.defaults["lr"] == 0.1 and sgd.defaults["weight_decay"] == 1e-4
    adamw = build_optimizer(TrainSettings("convnet", 1, 8, 1e-3, optimizer="adamw"), params)
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["betas"] == (0.9, 0.999)
    assert adamw.defaults["weight_decay"] == 0.0  # the settings', not AdamW's own default of 0.01
    sat = build_optimizer(SATSettings(iterations=1, lr=1e-4, betas=(0.8, 0.999), weight_decay=1e-5), params)
    assert type(sat) is torch.optim.Adam and sat.defaults["betas"] == (0.8, 0.999)
    assert sat.defaults["weight_decay"] == 1e-5
    assert isinstance(build_optimizer(BaselineSettings(optimizer="sgd"), params), torch.optim.SGD)


def test_schedule_sets_every_group_to_the_warm_up_then_cosine_rate():
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))]},
                           {"params": [torch.nn.Parameter(torch.zeros(1))]}], lr=1.0)
    settings = BaselineSettings(epochs=2, lr=1.0, schedule="cosine", warmup_epochs=0.5)
    # 4 steps per epoch: 2 warm-up steps, then a cosine from 1 to 0 over the other 6
    expected = [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * i / 6)) for i in range(6)]
    for step, lr in enumerate(expected):
        assert schedule(opt, settings, step, 4) == pytest.approx(lr)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr, lr])
