"""The convolutional encoders: a small CPU-friendly convnet and ResNet-18 with the CIFAR stem."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from satnb.nets.normalize import Normalize, default_stats
from satnb.nets.precision import autocast


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
        mean, std = default_stats(in_channels, mean, std)
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
        mean, std = default_stats(in_channels, mean, std)
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
