"""Encoders by name (small convnet, CIFAR ResNet-18, AMDIM): build one, describe one, count its parameters.

Conventions shared by every encoder:

* images enter as float tensors (B, C, H, W) with values in [0, 1];
* mean/std normalisation happens inside the model, in the submodule ``model.normalize``
  (so attacks can work in pixel units and read ``model.normalize.std`` when they need
  normalised units);
* ``model.features(x)`` returns the (B, ``model.feature_dim``) representation the kNN
  classifier uses (the penultimate layer; AMDIM: the global feature r1);
* each encoder's trunk runs under `autocast` (bfloat16 unless the process precision is fp32:
  `satnb.core.precision.set_precision`) and returns float32, so losses, kNN distances and attack
  steps downstream stay in float32.
"""

from __future__ import annotations

from torch import nn

from satnb.nets.amdim import AMDIMEncoder
from satnb.nets.convnets import ResNet18, SmallConvNet

ENCODER_NAMES: tuple[str, ...] = ("convnet", "resnet18", "amdim")
_ENCODERS: dict[str, type[nn.Module]] = {"convnet": SmallConvNet, "resnet18": ResNet18, "amdim": AMDIMEncoder}


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with requires_grad) in a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def describe_encoder(model: nn.Module) -> str:
    """A short name of the encoder inside a model ("AMDIM ndf 32 depth 1 BN", "ResNet-18", "convnet 32-64-128-256")."""
    enc = getattr(model, "encoder", model)
    if isinstance(enc, AMDIMEncoder):
        return f"AMDIM ndf {enc.ndf} rkhs {enc.n_rkhs} depth {enc.n_depth}" + (" BN" if enc.use_bn else "")
    if isinstance(enc, ResNet18):
        widths = [int(s[0].conv1.out_channels) for s in enc.layers]
        return "ResNet-18" + ("" if widths == [64, 128, 256, 512] else " " + "-".join(map(str, widths)))
    if isinstance(enc, SmallConvNet):
        widths = [m.out_channels for m in enc.body if isinstance(m, nn.Conv2d)]
        return "convnet " + "-".join(map(str, widths))
    return type(enc).__name__


def build_encoder(name: str, **kwargs) -> nn.Module:
    """Build an encoder by name ("convnet", "resnet18", "amdim"); kwargs go to its constructor."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid names are {', '.join(ENCODER_NAMES)}")
    return _ENCODERS[key](**kwargs)
