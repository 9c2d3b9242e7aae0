"""Batched, per-sample random image augmentations for contrastive and supervised training.

Every pipeline takes a float batch (B, C, H, W) in [0, 1] (CPU or GPU) and returns a batch
of the same kind, each image with its own random crop, flip, colour jitter and grayscale,
as the per-image PIL pipelines of AMDIM, NPID and SimCLR do, but vectorised: crops are one
``grid_sample`` (random resized crop) or one gather (integer shifts), colour ops are
elementwise tensor ops. Randomness comes from an optional ``torch.Generator`` (on CPU), so a
seeded generator reproduces the batch exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from satnb.nets import tvfunctional as TF

CROP_MODES = ("resized", "translate", "pad", "none")


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def _bernoulli(n: int, p: float, g: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=g) < p


def _view(v: Tensor, x: Tensor) -> Tensor:
    return v.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def random_resized_crop(
    x: Tensor,
    size: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample random resized crop (torchvision's sampling rule) to size x size, bilinear; optional flips."""
    b, _, h, w = x.shape
    attempts = 10
    area = _uniform(b * attempts, *scale, generator).view(b, attempts)
    log_r = _uniform(b * attempts, math.log(ratio[0]), math.log(ratio[1]), generator).view(b, attempts)
    aspect = torch.exp(log_r)
    # crop width / height as fractions of the image width / height
    cw = torch.sqrt(area * aspect * h / w)
    ch = torch.sqrt(area / aspect * w / h)
    ok = (cw <= 1) & (ch <= 1)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((b,), -1))
    rows = torch.arange(b)
    # like torchvision, fall back to the whole image when no attempt fits
    cw = torch.where(first >= 0, cw[rows, first.clamp(min=0)], torch.ones(b))
    ch = torch.where(first >= 0, ch[rows, first.clamp(min=0)], torch.ones(b))
    cx = torch.rand(b, generator=generator) * (1 - cw) + cw / 2
    cy = torch.rand(b, generator=generator) * (1 - ch) + ch / 2
    sx = cw if flip is None else torch.where(flip.cpu(), -cw, cw)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx, 2 * cx - 1
    theta[:, 1, 1], theta[:, 1, 2] = ch, 2 * cy - 1
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_shift(
    x: Tensor, max_shift: int, mode: str = "reflect", generator: torch.Generator | None = None,
    p: float = 1.0,
) -> Tensor:
    """Per-sample random integer translation by up to max_shift pixels, filling with reflection or zeros.

    mode="reflect" is AMDIM's RandomTranslateWithReflect; mode="constant" is RandomCrop(size, padding).
    Each image is shifted with probability p (else left in place).
    """
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    s = max_shift
    xp = F.pad(x, (s, s, s, s), mode=mode)
    off = torch.randint(0, 2 * s + 1, (2, b), generator=generator)
    off = torch.where(_bernoulli(b, p, generator), off, torch.full_like(off, s))
    iy = (off[0].view(b, 1) + torch.arange(h).view(1, h)).to(x.device)
    ix = (off[1].view(b, 1) + torch.arange(w).view(1, w)).to(x.device)
    bidx = torch.arange(b, device=x.device).view(b, 1, 1)
    out = xp[bidx, :, iy.view(b, h, 1), ix.view(b, 1, w)]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)  # a channels_last view: the caller chooses the memory format


def _grayscale(x: Tensor) -> Tensor:
    return TF.rgb_to_grayscale(x, num_output_channels=1)


def _adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of RGB images by shift (B,) turns, through HSV (as torchvision does)."""
    maxc = x.amax(dim=1, keepdim=True)
    delta = maxc - x.amin(dim=1, keepdim=True)  # = v * s in HSV terms
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    # 6 * hue, in [-1, 5); grey pixels (delta 0) get 0 and are unaffected by any hue below
    num = torch.where(maxc == r, g - b, torch.where(maxc == g, b - r + 2.0 * delta, r - g + 4.0 * delta))
    hue6 = num / torch.where(delta > 0, delta, torch.ones_like(delta))
    hue6 = hue6 + 6.0 * shift.view(-1, 1, 1, 1).to(x.dtype)
    # hsv -> rgb: channel n in (5, 3, 1) is v - v*s*clamp(min(k, 4-k), 0, 1), k = (n + 6h) mod 6
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = torch.remainder(hue6 + n, 6.0)
    return maxc - delta * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)


def color_jitter(
    x: Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """torchvision ColorJitter with an independent factor set and op order for every image."""
    b, c = x.shape[:2]
    ops: list[tuple[str, Tensor]] = []
    if brightness > 0:
        ops.append(("b", _uniform(b, max(0.0, 1 - brightness), 1 + brightness, generator)))
    if contrast > 0:
        ops.append(("c", _uniform(b, max(0.0, 1 - contrast), 1 + contrast, generator)))
    if saturation > 0 and c == 3:
        ops.append(("s", _uniform(b, max(0.0, 1 - saturation), 1 + saturation, generator)))
    if hue > 0 and c == 3:
        ops.append(("h", _uniform(b, -hue, hue, generator)))
    if not ops:
        return x
    # per-image random order of the ops: step t applies op order[i, t] to image i
    order = torch.argsort(torch.rand(b, len(ops), generator=generator), dim=1)
    out = x.clone()
    for t in range(len(ops)):
        for j, (kind, factor) in enumerate(ops):
            sel = (order[:, t] == j).nonzero().flatten()
            if sel.numel() == 0:
                continue
            sel_d = sel.to(x.device)
            xs, f = out.index_select(0, sel_d), factor[sel]
            if kind == "b":
                xs = xs * _view(f, xs)
            elif kind == "c":
                gray = _grayscale(xs) if c == 3 else xs
                m = gray.mean(dim=(1, 2, 3), keepdim=True)
                xs = _view(f, xs) * xs + (1 - _view(f, xs)) * m
            elif kind == "s":
                xs = _view(f, xs) * xs + (1 - _view(f, xs)) * _grayscale(xs)
            else:
                xs = _adjust_hue(xs, f.to(device=xs.device, dtype=xs.dtype))
            out.index_copy_(0, sel_d, xs.clamp_(0.0, 1.0))
    return out


def random_grayscale(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Turn each RGB image to 3-channel grayscale with probability p."""
    if p <= 0 or x.shape[1] != 3:
        return x
    mask = _view(_bernoulli(x.shape[0], p, generator).float(), x)
    return mask * _grayscale(x).expand_as(x) + (1 - mask) * x


def memory_format(x: Tensor) -> torch.memory_format:
    """channels_last when a batch (B, C, H, W) is laid out so (and not also plain contiguous), else contiguous."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


@dataclass(frozen=True)
class BatchAugment:
    """A configured per-sample augmentation: crop, horizontal flip, colour jitter (with prob), grayscale (prob).

    Call it as ``aug(x)`` or ``aug(x, generator)``; a generator passed at call time wins over
    the one given at construction. Output has shape (B, C, image_size, image_size), values in [0, 1],
    in the input's memory format (a channels_last batch stays channels_last for a channels_last model).
    """

    image_size: int
    crop: str = "resized"  # "resized" | "translate" (reflect fill) | "pad" (zero fill) | "none"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    shift: int = 4
    shift_p: float = 1.0
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    jitter_p: float = 0.8
    gray_p: float = 0.0
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {', '.join(CROP_MODES)}; got {self.crop!r}")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a batch (B, C, H, W) in [0, 1]."""
        if x.dim() != 4:
            raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected float images in [0, 1], got dtype {x.dtype}")
        g = generator if generator is not None else self.generator
        b = x.shape[0]
        fmt = memory_format(x)
        flip = _bernoulli(b, self.flip_p, g)
        if self.crop == "resized":
            x = random_resized_crop(x, self.image_size, self.scale, self.ratio, flip=flip, generator=g)
        else:
            if self.crop != "none":
                x = random_shift(x, self.shift, "reflect" if self.crop == "translate" else "constant", g, self.shift_p)
            x = torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)
            if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
                x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                  align_corners=False, antialias=True)
        if any(v > 0 for v in self.jitter) and self.jitter_p > 0:
            sel = _bernoulli(b, self.jitter_p, g).nonzero().flatten()
            if sel.numel():
                sel_d = sel.to(x.device)
                x = x.index_copy(0, sel_d, color_jitter(x.index_select(0, sel_d), *self.jitter, generator=g))
        x = random_grayscale(x, self.gray_p, g)
        return x.clamp(0.0, 1.0).contiguous(memory_format=fmt)


def simclr_augment(image_size: int = 32, strength: float = 0.5, generator: torch.Generator | None = None,
                   ) -> BatchAugment:
    """SimCLR (CIFAR) augmentation: resized crop (0.08-1), flip, jitter(0.8s,0.8s,0.8s,0.2s) p=0.8, gray p=0.2."""
    s = float(strength)
    return BatchAugment(image_size, crop="resized", scale=(0.08, 1.0), jitter=(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s),
                        jitter_p=0.8, gray_p=0.2, generator=generator)


def amdim_augment(image_size: int = 32, crop: str | None = None, generator: torch.Generator | None = None,
                  ) -> BatchAugment:
    """AMDIM's augmentation (amdim-public datasets.py), with an independent flip per view.

    32x32 (CIFAR): reflect-translate by up to 4 px (p=0.8); larger (STL-10 at 64): resized crop
    with scale (0.3, 1) and ratio (0.7, 1.4). Then jitter(0.4, 0.4, 0.4, 0.2) p=0.8, gray p=0.25.
    ``crop`` ("translate" or "resized") overrides the size-based choice.
    """
    crop = crop or ("translate" if image_size <= 32 else "resized")
    return BatchAugment(image_size, crop=crop, scale=(0.3, 1.0), ratio=(0.7, 1.4), shift=4, shift_p=0.8,
                        jitter=(0.4, 0.4, 0.4, 0.2), jitter_p=0.8, gray_p=0.25, generator=generator)


def npid_augment(image_size: int = 32, flip: bool = True, generator: torch.Generator | None = None) -> BatchAugment:
    """NPID (CIFAR) augmentation: resized crop (0.2-1), jitter(0.4, 0.4, 0.4, 0.4) always, gray p=0.2, flip.

    The released CIFAR script has the flip commented out; ``flip=False`` matches it.
    """
    return BatchAugment(image_size, crop="resized", scale=(0.2, 1.0), flip_p=0.5 if flip else 0.0,
                        jitter=(0.4, 0.4, 0.4, 0.4), jitter_p=1.0, gray_p=0.2, generator=generator)


def supervised_augment(image_size: int = 32, padding: int = 4, generator: torch.Generator | None = None,
                       ) -> BatchAugment:
    """Standard supervised augmentation: random crop with zero padding, horizontal flip."""
    return BatchAugment(image_size, crop="pad", shift=padding, shift_p=1.0, generator=generator)
