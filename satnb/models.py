"""Encoders (small convnet, CIFAR ResNet-18, AMDIM) and the wrappers that training and attacks use.

Conventions shared by every model here:

* images enter as float tensors (B, C, H, W) with values in [0, 1];
* mean/std normalisation happens inside the model, in the submodule ``model.normalize``
  (so attacks can work in pixel units and read ``model.normalize.std`` when they need
  normalised units);
* ``model.features(x)`` returns the (B, ``model.feature_dim``) representation the kNN
  classifier uses (the penultimate layer; AMDIM: the global feature r1);
* each encoder's trunk runs under `autocast` (bfloat16 unless ``SATNB_PRECISION=fp32``) and
  returns float32, so losses, kNN distances and attack steps downstream stay in float32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satnb.config import effective_precision

CIFAR10_MEAN: tuple[float, float, float] = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR10_STD: tuple[float, float, float] = (63.0 / 255, 62.1 / 255, 66.7 / 255)

ENCODER_NAMES: tuple[str, ...] = ("convnet", "resnet18", "amdim")


def _default_stats(
    in_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if mean is None:
        mean = CIFAR10_MEAN if in_channels == 3 else (0.5,) * in_channels
    if std is None:
        std = CIFAR10_STD if in_channels == 3 else (0.25,) * in_channels
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(
            f"mean and std need one value per input channel ({in_channels}); got {len(mean)} and {len(std)}"
        )
    return mean, std


class Normalize(nn.Module):
    """Per-channel (x - mean) / std; mean and std are (1, C, 1, 1) buffers saved in the state_dict."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std differ in length: {len(mean)} vs {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise a batch of [0, 1] images."""
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        """Show the statistics when the module is printed."""
        fmt = lambda t: "(" + ", ".join(f"{v:.4f}" for v in t.flatten().tolist()) + ")"  # noqa: E731
        return f"mean={fmt(self.mean)}, std={fmt(self.std)}"


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast when the precision is bf16 and the device runs it (`config.effective_precision`), else a no-op.

    A CUDA device without bf16 (e.g. Colab's T4) computes in float32.
    """
    if effective_precision(device) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with requires_grad) in a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------- small convnet


class SmallConvNet(nn.Module):
    """CPU-friendly encoder: 4 x (conv3x3-BN-ReLU), max-pool after the first 3, global average pool."""

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128, 256),
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if len(widths) < 1:
            raise ValueError("widths needs at least one entry")
        mean, std = _default_stats(in_channels, mean, std)
        self.normalize = Normalize(mean, std)
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(widths):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if i < min(3, len(widths) - 1):
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.feature_dim: int = int(widths[-1])

    def features(self, x: Tensor) -> Tensor:
        """(B, feature_dim) globally pooled features of [0, 1] images."""
        with autocast(x.device):
            h = self.body(self.normalize(x)).mean(dim=(2, 3))
        return h.float()

    def forward(self, x: Tensor) -> Tensor:
        """Same as features(x)."""
        return self.features(x)


# --------------------------------------------------------------------------- ResNet-18 (CIFAR stem)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BN and an identity / 1x1 projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        """Residual block output."""
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool); features are 512-d after global pooling."""

    def __init__(
        self,
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        mean, std = _default_stats(in_channels, mean, std)
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        c_in = widths[0]
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)))
            c_in = c_out
        self.layers = nn.Sequential(*stages)
        self.feature_dim: int = int(widths[-1])

    def features(self, x: Tensor) -> Tensor:
        """(B, 512) globally pooled features of [0, 1] images."""
        with autocast(x.device):
            h = self.layers(self.stem(self.normalize(x))).mean(dim=(2, 3))
        return h.float()

    def forward(self, x: Tensor) -> Tensor:
        """Same as features(x)."""
        return self.features(x)


# --------------------------------------------------------------------------- AMDIM encoder
# Layer structure follows Philip-Bachman/amdim-public (model.py): a ResNet-like trunk
# without padding whose spatial sizes run 32 -> 30 -> 14 -> 7 -> 5 -> 3 -> 1 (CIFAR) or
# 64 -> 62 -> 30 -> 14 -> 7 -> 5 -> 3 -> 1 (STL-10 at 64x64), plus 1x1-conv "fake RKHS"
# embedding heads on the 5x5 and 7x7 maps.


class MaybeBatchNorm2d(nn.Module):
    """BatchNorm2d that is only applied when use_bn is true (the parameters exist either way, as in AMDIM)."""

    def __init__(self, n_ftr: int, affine: bool, use_bn: bool) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(n_ftr, affine=affine)
        self.use_bn = use_bn

    def forward(self, x: Tensor) -> Tensor:
        """Batch-normalise x if enabled."""
        return self.bn(x) if self.use_bn else x


class Conv3x3(nn.Module):
    """Conv (optional padding) -> optional BN -> ReLU; the AMDIM stem."""

    def __init__(self, n_in: int, n_out: int, n_kern: int, n_stride: int, n_pad: int, use_bn: bool = True) -> None:
        super().__init__()
        self.n_pad = n_pad
        self.conv = nn.Conv2d(n_in, n_out, n_kern, n_stride, 0, bias=not use_bn)
        self.bn = MaybeBatchNorm2d(n_out, True, use_bn)

    def forward(self, x: Tensor) -> Tensor:
        """Stem output."""
        if self.n_pad > 0:
            x = F.pad(x, (self.n_pad,) * 4)
        return F.relu(self.bn(self.conv(x)))


def _fixup_init(conv1: nn.Conv2d, conv2: nn.Conv2d, init_scale: float) -> None:
    """Scaled default init for a residual branch's first conv, zeros for its last."""
    nn.init.kaiming_uniform_(conv1.weight, a=math.sqrt(5))
    conv1.weight.data.mul_(init_scale)
    nn.init.constant_(conv2.weight, 0.0)


class ConvResNxN(nn.Module):
    """AMDIM residual unit: NxN conv -> (BN) -> ReLU -> 1x1 conv, plus an avg-pool (zero-padded) shortcut."""

    def __init__(self, n_in: int, n_out: int, width: int, stride: int, pad: int, use_bn: bool = False) -> None:
        super().__init__()
        self.n_in, self.n_out, self.width, self.stride, self.pad = n_in, n_out, width, stride, pad
        self.conv1 = nn.Conv2d(n_in, n_out, width, stride, pad, bias=False)
        self.conv2 = nn.Conv2d(n_out, n_out, 1, 1, 0, bias=False)
        # the shortcut can only shrink the channel count with a learned conv
        self.conv3 = nn.Conv2d(n_in, n_out, width, stride, pad, bias=True) if n_out < n_in else None
        self.bn1 = MaybeBatchNorm2d(n_out, True, use_bn)

    def init_weights(self, init_scale: float = 1.0) -> None:
        """AMDIM's fixup-like init: scaled default init for conv1, zeros for conv2."""
        _fixup_init(self.conv1, self.conv2, init_scale)

    def forward(self, x: Tensor) -> Tensor:
        """Residual unit output."""
        h = self.conv2(F.relu(self.bn1(self.conv1(x))))
        if self.conv3 is not None:
            short = self.conv3(x)
        else:
            short = F.avg_pool2d(x, self.width, self.stride, self.pad)
            if self.n_out > self.n_in:
                short = F.pad(short, (0, 0, 0, 0, 0, self.n_out - self.n_in))
        return h + short


class ConvResBlock(nn.Module):
    """One strided ConvResNxN followed by depth-1 1x1 ConvResNxN units."""

    def __init__(self, n_in: int, n_out: int, width: int, stride: int, pad: int, depth: int, use_bn: bool) -> None:
        super().__init__()
        units = [ConvResNxN(n_in, n_out, width, stride, pad, use_bn)]
        units += [ConvResNxN(n_out, n_out, 1, 1, 0, use_bn) for _ in range(depth - 1)]
        self.layer_list = nn.Sequential(*units)

    def init_weights(self, init_scale: float = 1.0) -> None:
        """Fixup-like init of every unit."""
        for m in self.layer_list:
            m.init_weights(init_scale)

    def forward(self, x: Tensor) -> Tensor:
        """Block output."""
        return self.layer_list(x)


class FakeRKHSConvNet(nn.Module):
    """Per-location embedding head: 1x1 conv MLP plus a 1x1 shortcut (identity-initialised), then BN."""

    def __init__(self, n_input: int, n_output: int, use_bn: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(n_input, n_output, 1, bias=False)
        self.bn1 = MaybeBatchNorm2d(n_output, True, use_bn)
        self.conv2 = nn.Conv2d(n_output, n_output, 1, bias=False)
        self.bn_out = MaybeBatchNorm2d(n_output, True, True)
        self.shortcut = nn.Conv2d(n_input, n_output, 1, bias=True)
        if n_output >= n_input:
            with torch.no_grad():
                self.shortcut.weight.uniform_(-0.01, 0.01)
                idx = torch.arange(n_input)
                self.shortcut.weight[idx, idx, 0, 0] = 1.0

    def init_weights(self, init_scale: float = 1.0) -> None:
        """AMDIM's fixup-like init: scaled default init for conv1, zeros for conv2."""
        _fixup_init(self.conv1, self.conv2, init_scale)

    def forward(self, x: Tensor) -> Tensor:
        """Embedding map with the same spatial size as x."""
        h = self.conv2(F.relu(self.bn1(self.conv1(x))))
        return self.bn_out(h + self.shortcut(x))


class AMDIMEncoder(nn.Module):
    """AMDIM encoder (Bachman et al. 2019): forward gives (r1, r5, r7) maps, features gives r1 as (B, n_rkhs)."""

    # index (in the trunk's layer list) of the last activation with spatial size 1, 5 and 7
    _R1, _R5, _R7 = 8, 5, 4

    def __init__(
        self,
        ndf: int = 128,
        n_rkhs: int = 128,
        n_depth: int = 3,
        image_size: int = 32,
        use_bn: bool = False,
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        fixup_init: bool = False,
    ) -> None:
        super().__init__()
        if n_depth < 1:
            raise ValueError(f"n_depth must be >= 1, got {n_depth}")
        mean, std = _default_stats(in_channels, mean, std)
        self.normalize = Normalize(mean, std)
        self.ndf, self.n_rkhs, self.n_depth, self.image_size, self.use_bn = ndf, n_rkhs, n_depth, image_size, use_bn
        d = n_depth
        if image_size == 32:
            trunk = [
                Conv3x3(in_channels, ndf, 3, 1, 0, False),  # 30
                ConvResNxN(ndf, ndf, 1, 1, 0, use_bn),  # 30
                ConvResBlock(ndf, ndf * 2, 4, 2, 0, d, use_bn),  # 14
                ConvResBlock(ndf * 2, ndf * 4, 2, 2, 0, d, use_bn),  # 7
                MaybeBatchNorm2d(ndf * 4, True, use_bn),  # 7  -> r7
                ConvResBlock(ndf * 4, ndf * 4, 3, 1, 0, d, use_bn),  # 5  -> r5
                ConvResBlock(ndf * 4, ndf * 4, 3, 1, 0, d, use_bn),  # 3
                ConvResNxN(ndf * 4, n_rkhs, 3, 1, 0, use_bn),  # 1
                MaybeBatchNorm2d(n_rkhs, True, True),  # 1  -> r1
            ]
            c_57 = ndf * 4
        elif image_size == 64:
            trunk = [
                Conv3x3(in_channels, ndf, 3, 1, 0, False),  # 62
                ConvResBlock(ndf, ndf * 2, 4, 2, 0, d, use_bn),  # 30
                ConvResBlock(ndf * 2, ndf * 4, 4, 2, 0, d, use_bn),  # 14
                ConvResBlock(ndf * 4, ndf * 8, 2, 2, 0, d, use_bn),  # 7
                MaybeBatchNorm2d(ndf * 8, True, use_bn),  # 7  -> r7
                ConvResBlock(ndf * 8, ndf * 8, 3, 1, 0, d, use_bn),  # 5  -> r5
                ConvResBlock(ndf * 8, ndf * 8, 3, 1, 0, d, use_bn),  # 3
                ConvResNxN(ndf * 8, n_rkhs, 3, 1, 0, use_bn),  # 1
                MaybeBatchNorm2d(n_rkhs, True, True),  # 1  -> r1
            ]
            c_57 = ndf * 8
        else:
            raise ValueError(f"AMDIMEncoder supports image_size 32 or 64, got {image_size}")
        self.layer_list = nn.ModuleList(trunk)
        self.rkhs_block_5 = FakeRKHSConvNet(c_57, n_rkhs, use_bn)
        self.rkhs_block_7 = FakeRKHSConvNet(c_57, n_rkhs, use_bn)
        self.feature_dim: int = int(n_rkhs)
        if fixup_init:
            self.init_weights()

    def init_weights(self, init_scale: float = 1.0) -> None:
        """AMDIM's optional fixup-like init (its released training script does not call it)."""
        for m in self.modules():
            if isinstance(m, (ConvResNxN, FakeRKHSConvNet)):
                m.init_weights(init_scale)

    def _check_size(self, x: Tensor) -> None:
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(
                f"this AMDIMEncoder was built for {self.image_size}x{self.image_size} input, got {tuple(x.shape[-2:])}"
            )

    def _trunk(self, x: Tensor, upto: int) -> list[Tensor]:
        acts = []
        h = self.normalize(x)
        for layer in self.layer_list[: upto + 1]:
            h = layer(h)
            acts.append(h)
        return acts

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(r1, r5, r7): global (B, n_rkhs, 1, 1) and local (B, n_rkhs, 5, 5), (B, n_rkhs, 7, 7) embeddings."""
        self._check_size(x)
        with autocast(x.device):
            acts = self._trunk(x, self._R1)
            r1 = acts[self._R1]
            r5 = self.rkhs_block_5(acts[self._R5])
            r7 = self.rkhs_block_7(acts[self._R7])
        return r1.float(), r5.float(), r7.float()

    def features(self, x: Tensor) -> Tensor:
        """(B, n_rkhs) global feature r1 (the representation the paper's kNN uses)."""
        self._check_size(x)
        with autocast(x.device):
            r1 = self._trunk(x, self._R1)[self._R1]
        return r1.flatten(1).float()


# --------------------------------------------------------------------------- heads and wrappers


class MLPHead(nn.Module):
    """Projection head Linear-BN-ReLU-Linear (SimCLR style)."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )
        self.out_dim: int = int(out_dim)

    def forward(self, h: Tensor) -> Tensor:
        """Projected features."""
        return self.net(h)


def _output_dim(head: nn.Module) -> int:
    out_dim = getattr(head, "out_dim", None)
    if isinstance(out_dim, int):
        return out_dim
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("cannot infer the head's output size; pass head_dim=...")
    return int(linears[-1].out_features)


class Classifier(nn.Module):
    """Encoder + linear layer: forward gives logits, features gives the encoder's (penultimate) features."""

    def __init__(self, encoder: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.n_classes = int(n_classes)
        self.feature_dim: int = int(encoder.feature_dim)
        self.fc = nn.Linear(self.feature_dim, self.n_classes)

    @property
    def normalize(self) -> Normalize:
        """The encoder's input normalisation."""
        return self.encoder.normalize

    def features(self, x: Tensor) -> Tensor:
        """(B, feature_dim) encoder features of [0, 1] images."""
        return self.encoder.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """(B, n_classes) logits."""
        return self.fc(self.features(x))


class ProjectionModel(nn.Module):
    """Encoder + projection head: forward gives the (optionally L2-normalised) head output.

    ``feature_source`` chooses what ``features`` returns for the kNN: the encoder's features
    ("encoder", e.g. SimCLR) or the head output ("head", e.g. NPID's normalised 128-d embedding).
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        feature_source: str = "encoder",
        normalize_head: bool = False,
        head_dim: int | None = None,
    ) -> None:
        super().__init__()
        if feature_source not in ("encoder", "head"):
            raise ValueError(f"feature_source must be 'encoder' or 'head', got {feature_source!r}")
        self.encoder = encoder
        self.head = head
        self.feature_source = feature_source
        self.normalize_head = bool(normalize_head)
        self.head_dim: int = int(head_dim) if head_dim is not None else _output_dim(head)
        self.feature_dim: int = int(encoder.feature_dim) if feature_source == "encoder" else self.head_dim

    @property
    def normalize(self) -> Normalize:
        """The encoder's input normalisation."""
        return self.encoder.normalize

    def project(self, h: Tensor) -> Tensor:
        """Head output for encoder features h (L2-normalised if normalize_head)."""
        z = self.head(h)
        return F.normalize(z, dim=1) if self.normalize_head else z

    def forward(self, x: Tensor) -> Tensor:
        """(B, head_dim) projection of [0, 1] images."""
        return self.project(self.encoder.features(x))

    def features(self, x: Tensor) -> Tensor:
        """(B, feature_dim) representation for the kNN (encoder features or head output)."""
        h = self.encoder.features(x)
        return h if self.feature_source == "encoder" else self.project(h)


# --------------------------------------------------------------------------- factory

_ENCODERS: dict[str, type[nn.Module]] = {"convnet": SmallConvNet, "resnet18": ResNet18, "amdim": AMDIMEncoder}


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
