"""The AMDIM encoder (Bachman et al. 2019) and its building blocks.

Layer structure follows Philip-Bachman/amdim-public (model.py): a ResNet-like trunk
without padding whose spatial sizes run 32 -> 30 -> 14 -> 7 -> 5 -> 3 -> 1 (CIFAR) or
64 -> 62 -> 30 -> 14 -> 7 -> 5 -> 3 -> 1 (STL-10 at 64x64), plus 1x1-conv "fake RKHS"
embedding heads on the 5x5 and 7x7 maps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satnb.nets.normalize import Normalize, default_stats
from satnb.nets.precision import autocast


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
        mean, std = default_stats(in_channels, mean, std)
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
