"""Mean/std normalisation inside every encoder, and the default statistics (CIFAR-10's for RGB input)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from satnb.core.datasets import CIFAR10_MEAN, CIFAR10_STD


def default_stats(
    in_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std an encoder normalises with: those given, else CIFAR-10's (RGB) or 0.5 and 0.25 per channel."""
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
