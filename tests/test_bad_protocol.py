"""A protocol its data cannot meet: cuts of m and N are warned about and recorded, a library below k is refused."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from satnb.core.config import AttackSettings, ConfigError, ProtocolSettings, TrainSettings, ZooSettings, get_profile
from satnb.core.precision import set_precision
from satnb.core.store import Store
from satnb.experiment.pipeline import Pipeline
from satnb.knn.classifier import KNN, guide_size
from satnb.nets.normalize import Normalize
from satnb.nets.pretrain import train
from satnb.protocol.evaluate import evaluate
from satnb.protocol.zoo import attack_zoo

M_CUT = "m=5 cut to 1 for every class: class 2 of the kNN library has only 1 image(s)"
N_CUT = "N=25 cut to 20 attacked images: only 20 of the 30 test images are classified correctly"


class Pixels(torch.nn.Module):
    """The normalised pixels of 1x2x2 images as features."""

    def __init__(self) -> None:
        super().__init__()
        self.normalize = Normalize((0.5,), (0.25,))
        self.unused = torch.nn.Parameter(torch.zeros(1))  # a parameter, so the model has a device

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x).flatten(1)


def tiny_class_problem():
    """A library whose class 2 has one image, and 30 test images of which the kNN gets exactly 20 right."""
    g = torch.Generator().manual_seed(0)
    x_lib, x_test = torch.rand(21, 1, 2, 2, generator=g), torch.rand(30, 1, 2, 2, generator=g)
    model = Pixels()
    knn = KNN(k=3, n_classes=3).fit(model.features(x_lib), torch.tensor([0] * 10 + [1] * 10 + [2]))
    y = knn.predict(model.features(x_test))
    y[20:] = (y[20:] + 1) % 3  # the last 10 are misclassified
    protocol = ProtocolSettings(k=3, m=5, n_attack=25, n_attack_opt=2, opt_binary_steps=1, opt_steps=2,
                                small=AttackSettings(0.05, 0.02, 2), large=AttackSettings(0.1, 0.02, 2))
    return model, knn, x_test, y, protocol


def test_a_tiny_class_cut_of_m_is_warned_once():
    _, knn, *_ = tiny_class_problem()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        assert guide_size(knn, 5) == guide_size(knn, 5) == 1
    assert [str(w.message) for w in caught] == [
        M_CUT + "; give the library more images of that class (a larger n_library or labelled_per_class) or lower m"]
    assert guide_size(knn, 1) == 1  # nothing cut, nothing said


def test_evaluation_says_and_records_its_cuts():
    model, knn, x, y, protocol = tiny_class_problem()
    with pytest.warns(UserWarning) as caught:
        r = evaluate(model, knn, x, y, protocol, optimization=False, progress=False)
    said = " | ".join(str(w.message) for w in caught)
    assert M_CUT in said and N_CUT in said
    assert r["m"] == 1 and r["n_attacked"] == 20


def test_the_zoo_says_and_records_its_cuts():
    model, knn, x, y, protocol = tiny_class_problem()
    with pytest.warns(UserWarning) as caught:
        r = attack_zoo(model, knn, x, y, protocol, ZooSettings(queries=5, restarts=1, steps_factor=1), progress=False)
    said = " | ".join(str(w.message) for w in caught)
    assert M_CUT in said and N_CUT in said and "candidates=3 cut to 1 for every class" in said
    assert r["m"] == 1 and r["n_attacked"] == 20


def test_a_library_smaller_than_k_is_refused_before_training(tiny_data, tmp_path):
    profile = get_profile("smoke").replace(labelled_per_class=1)  # 10 labelled images, k=15
    with pytest.raises(ConfigError, match=r"the kNN library would hold 10 images, fewer than k=15 neighbours per "
                                          r"vote; use --labelled-per-class 2 or more \(1 labelled images per class"):
        Pipeline(profile, tiny_data, Store(tmp_path), progress=False)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_diverged_loss_gets_advice_that_fits_the_precision_and_the_images(tiny_data, tmp_path, precision,
                                                                           monkeypatch):
    from satnb.core import precision as core_precision

    set_precision(precision)
    monkeypatch.setattr(core_precision, "cpu_has_bf16", lambda: True)  # bf16 runs as bf16 even on an AVX2-only CPU
    recipe = TrainSettings("convnet", epochs=1, batch_size=16, lr=1e30, encoder_kwargs={"widths": (4,)})
    constant = dataclasses.replace(tiny_data, x_train=np.full_like(tiny_data.x_train[:32], 128),
                                   y_train=tiny_data.y_train[:32], _fingerprint=None)
    with pytest.raises(FloatingPointError) as err:
        train("sup", constant, recipe, Store(tmp_path), progress=False)
    said = str(err.value)
    assert "the training images are (nearly) constant in some channel" in said
    if precision == "fp32":
        assert "SATNB_PRECISION=fp32" not in said and "already in fp32, so precision is not the cause" in said
    else:
        assert "or use SATNB_PRECISION=fp32 (--precision fp32)" in said
