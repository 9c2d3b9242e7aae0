"""Images as the models take them: uint8 NHWC arrays to float NCHW tensors, and the check of what a caller passed."""

from __future__ import annotations

import numpy as np
import torch

from satnb.core.config import ConfigError


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """Convert uint8 NHWC images to float NCHW in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


_FORMS = "pass uint8 NHWC arrays (as satnb.core.datasets loads them) or float NCHW tensors in [0, 1]"


def check_images(images: object, arrays: bool = True) -> None:
    """Raise ConfigError unless images are uint8 NHWC numpy arrays (when `arrays`) or float NCHW tensors in [0, 1].

    The message names the shape, dtype or range it got and what to pass instead.
    """
    forms = _FORMS if arrays else ("pass float NCHW tensors in [0, 1] (satnb.core.images.to_tensor converts uint8 "
                                   "NHWC arrays)")
    if isinstance(images, np.ndarray):
        shape = tuple(images.shape)
        if not arrays:
            raise ConfigError(f"images are a numpy {images.dtype} array of shape {shape}; {forms}")
        if images.dtype != np.uint8:
            hint = (" (float NCHW in [0, 1]: torch.from_numpy(x); float NHWC in [0, 1]: "
                    "torch.from_numpy(x).permute(0, 3, 1, 2))") if np.issubdtype(images.dtype, np.floating) else ""
            raise ConfigError(f"images are a numpy {images.dtype} array of shape {shape}; {forms}{hint}")
        if images.ndim != 4 or shape[-1] not in (1, 3):
            raise ConfigError(f"images are a uint8 array of shape {shape}, not NHWC (N, H, W, 1 or 3); {forms}"
                              + ("; add a batch dimension with x[None] for one image" if images.ndim == 3 else ""))
        return
    if not isinstance(images, torch.Tensor):
        raise ConfigError(f"images are a {type(images).__name__}; {forms}")
    shape = tuple(images.shape)
    if not images.is_floating_point():
        nhwc = images.ndim == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3)
        fix = "x.permute(0, 3, 1, 2).float() / 255" if nhwc else "x.float() / 255"
        raise ConfigError(f"images are a {images.dtype} tensor of shape {shape}; {forms} (convert with {fix})")
    if images.ndim != 4:
        raise ConfigError(f"images are a float tensor of shape {shape}, not NCHW (N, C, H, W); {forms}"
                          + ("; add a batch dimension with x[None] for one image" if images.ndim == 3 else ""))
    if shape[1] not in (1, 3) and shape[-1] in (1, 3):
        raise ConfigError(f"images are a float tensor of shape {shape}, which looks NHWC; {forms} "
                          "(convert with x.permute(0, 3, 1, 2))")
    if images.numel():
        lo, hi = float(images.detach().min()), float(images.detach().max())
        if lo < 0 or hi > 1:
            why = " (they look like 0..255: divide by 255)" if lo >= 0 and hi <= 255 else (
                " (pass unnormalised images: the model normalises internally)")
            raise ConfigError(f"images must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]{why}; {forms}")
