"""Encoders and model wrappers: shapes, gradients, normalisation inside the model, AMDIM structure."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

from satnb.core.datasets import CIFAR10_MEAN, CIFAR10_STD
from satnb.nets.amdim import AMDIMEncoder
from satnb.nets.convnets import ResNet18, SmallConvNet
from satnb.nets.encoders import build_encoder, count_parameters
from satnb.nets.models import Classifier, MLPHead, ProjectionModel
from satnb.nets.normalize import Normalize

SMALL_AMDIM = {"ndf": 16, "n_rkhs": 64, "n_depth": 1}

ENCODERS = {
    "convnet32": (lambda: SmallConvNet(widths=(8, 16, 16, 32)), 32),
    "convnet64": (lambda: SmallConvNet(widths=(8, 16, 16, 32)), 64),
    "resnet18_32": (lambda: ResNet18(widths=(8, 16, 16, 32)), 32),
    "resnet18_64": (lambda: ResNet18(widths=(8, 16, 16, 32)), 64),
    "amdim32": (lambda: AMDIMEncoder(image_size=32, **SMALL_AMDIM), 32),
    "amdim64": (lambda: AMDIMEncoder(image_size=64, **SMALL_AMDIM), 64),
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_normalize_buffers_and_values():
    norm = Normalize(CIFAR10_MEAN, CIFAR10_STD)
    assert set(dict(norm.named_buffers())) == {"mean", "std"}
    assert set(norm.state_dict()) == {"mean", "std"}
    assert norm.std.shape == (1, 3, 1, 1)
    x = torch.rand(2, 3, 4, 4)
    expected = (x - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), expected)
    with pytest.raises(ValueError):
        Normalize((0.5, 0.5), (0.2,))
    with pytest.raises(ValueError):
        Normalize((0.5,), (0.0,))


@pytest.mark.parametrize("name", ["convnet32", "resnet18_32", "amdim32"])
def test_rgb_encoders_and_cifar10_training_normalise_with_cifar10s_statistics(name):
    """One set of CIFAR-10 statistics: the encoders' default and what training on CIFAR-10 uses."""
    from satnb.core.datasets import load_digits
    from satnb.nets.pretrain import channel_stats

    published = ((0.4914, 0.4824, 0.4467), (0.2471, 0.2435, 0.2616))  # (125.3, 123.0, 113.9) / 255 and std
    norm = ENCODERS[name][0]().normalize
    for ours, ref in zip((norm.mean, norm.std), published):
        torch.testing.assert_close(ours.flatten(), torch.tensor(ref), atol=1e-4, rtol=0)
    cifar10 = dataclasses.replace(load_digits().subset(40, 10), name="cifar10")
    assert channel_stats(cifar10) == (CIFAR10_MEAN, CIFAR10_STD)


def test_normalize_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="one value per input channel"):
        SmallConvNet(in_channels=1, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    # grayscale input gets a one-channel default
    m = SmallConvNet(widths=(4, 8), in_channels=1)
    assert m.normalize.mean.shape == (1, 1, 1, 1)
    assert m.features(torch.rand(2, 1, 28, 28)).shape == (2, 8)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_features_shape_and_input_gradient(name):
    make, size = ENCODERS[name]
    model = make()
    assert isinstance(model.feature_dim, int)
    assert isinstance(model.normalize, Normalize)
    x = torch.rand(3, 3, size, size, requires_grad=True)
    feats = model.features(x)
    assert feats.shape == (3, model.feature_dim)
    assert torch.isfinite(feats).all()
    feats.pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # each image's features depend on that image (eval mode: no batch-statistics coupling)
    model.eval()
    x = torch.rand(3, 3, size, size, requires_grad=True)
    model.features(x)[0].sum().backward()
    assert x.grad[0].abs().sum() > 0
    assert x.grad[1:].abs().sum() == 0


@pytest.mark.parametrize("name", ["convnet32", "resnet18_64", "amdim32"])
def test_normalisation_happens_inside_the_model(name):
    make, size = ENCODERS[name]
    model = make().eval()
    x = torch.rand(4, 3, size, size)
    plain = copy.deepcopy(model)
    plain.normalize.mean.zero_()
    plain.normalize.std.fill_(1.0)
    x_norm = (x - model.normalize.mean) / model.normalize.std
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), plain.features(x_norm), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(model.features(x), plain.features(x), atol=1e-3)


@pytest.mark.parametrize("size", [32, 64])
def test_amdim_multiscale_outputs(size):
    model = AMDIMEncoder(image_size=size, **SMALL_AMDIM)
    x = torch.rand(4, 3, size, size)
    r1, r5, r7 = model(x)
    assert r1.shape == (4, 64, 1, 1)
    assert r5.shape == (4, 64, 5, 5)
    assert r7.shape == (4, 64, 7, 7)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), model(x)[0].flatten(1))


def test_amdim_rejects_other_sizes():
    with pytest.raises(ValueError, match="image_size"):
        AMDIMEncoder(image_size=48, **SMALL_AMDIM)
    model = AMDIMEncoder(image_size=32, **SMALL_AMDIM)
    with pytest.raises(ValueError, match="32x32"):
        model.features(torch.rand(2, 3, 64, 64))


def test_amdim_cifar_config_parameter_count():
    # SPEC section 2: the CIFAR encoder (ndf=128, n_rkhs=128, n_depth=3) has about 11.6M parameters
    model = AMDIMEncoder(ndf=128, n_rkhs=128, n_depth=3, image_size=32)
    n = count_parameters(model)
    assert abs(n - 11.6e6) / 11.6e6 < 0.05, n
    assert model.feature_dim == 128


def test_amdim_stl_depth_and_width_run():
    # the STL-10 setting's depth and embedding size (n_rkhs=1024, n_depth=8) at 64x64, with a narrow trunk
    model = AMDIMEncoder(ndf=16, n_rkhs=1024, n_depth=8, image_size=64).eval()
    with torch.no_grad():
        r1, r5, r7 = model(torch.rand(2, 3, 64, 64))
    assert (r1.shape, r5.shape, r7.shape) == ((2, 1024, 1, 1), (2, 1024, 5, 5), (2, 1024, 7, 7))


def test_amdim_fixup_init_zeroes_residual_branches():
    model = AMDIMEncoder(fixup_init=True, **SMALL_AMDIM)
    assert model.rkhs_block_5.conv2.weight.abs().sum() == 0
    assert model.layer_list[1].conv2.weight.abs().sum() == 0
    # the shortcut of the embedding heads starts near the identity
    w = model.rkhs_block_7.shortcut.weight[:, :, 0, 0]
    assert torch.allclose(torch.diagonal(w), torch.ones(64))


def test_resnet18_has_cifar_stem_and_expected_size():
    model = ResNet18()
    assert model.stem[0].stride == (1, 1) and model.stem[0].kernel_size == (3, 3)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.feature_dim == 512
    assert abs(count_parameters(model) - 11.17e6) / 11.17e6 < 0.01


def test_build_encoder():
    assert isinstance(build_encoder("convnet", widths=(4, 8)), SmallConvNet)
    assert isinstance(build_encoder("ResNet18", widths=(4, 4, 8, 8)), ResNet18)
    enc = build_encoder("amdim", **SMALL_AMDIM)
    assert isinstance(enc, AMDIMEncoder) and enc.feature_dim == 64
    with pytest.raises(ValueError, match="convnet, resnet18, amdim"):
        build_encoder("vgg")


def test_count_parameters():
    lin = nn.Linear(3, 2)
    assert count_parameters(lin) == 8
    lin.bias.requires_grad_(False)
    assert count_parameters(lin, trainable_only=True) == 6
    assert count_parameters(lin) == 8


def test_classifier_wrapper():
    enc = SmallConvNet(widths=(4, 8, 8, 16))
    clf = Classifier(enc, n_classes=10)
    x = torch.rand(5, 3, 32, 32, requires_grad=True)
    assert clf(x).shape == (5, 10)
    assert clf.feature_dim == 16 and clf.normalize is enc.normalize
    clf.eval()
    with torch.no_grad():
        torch.testing.assert_close(clf.features(x), enc.features(x))
        torch.testing.assert_close(clf(x), clf.fc(enc.features(x)))
    torch.nn.functional.cross_entropy(clf(x), torch.arange(5)).backward()
    assert x.grad.abs().sum() > 0


def test_projection_model_feature_sources():
    enc = SmallConvNet(widths=(4, 8, 8, 16))
    x = torch.rand(6, 3, 32, 32)
    simclr = ProjectionModel(enc, MLPHead(16, 32, 8), feature_source="encoder")
    assert simclr.feature_dim == 16 and simclr.head_dim == 8
    assert simclr.normalize is enc.normalize
    assert simclr(x).shape == (6, 8)
    npid = ProjectionModel(enc, nn.Linear(16, 12), feature_source="head", normalize_head=True)
    assert npid.feature_dim == 12
    npid.eval()
    with torch.no_grad():
        f = npid.features(x)
        assert f.shape == (6, 12)
        torch.testing.assert_close(f.norm(dim=1), torch.ones(6))
        torch.testing.assert_close(f, npid(x))
        simclr.eval()
        torch.testing.assert_close(simclr.features(x), enc.features(x))
    with pytest.raises(ValueError, match="feature_source"):
        ProjectionModel(enc, nn.Linear(16, 4), feature_source="logits")
    with pytest.raises(ValueError, match="head_dim"):
        ProjectionModel(enc, nn.ReLU())
    assert ProjectionModel(enc, nn.ReLU(), feature_source="head", head_dim=16).feature_dim == 16
