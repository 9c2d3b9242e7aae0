"""The process's compute precision (bf16 or fp32): decided once per process, and what a device can run of it."""

from __future__ import annotations

import os

import torch

from satnb.core.config import ConfigError

PRECISIONS = ("bf16", "fp32")
DEFAULT_PRECISION = "bf16"
_PRECISION: list[str] = []  # the process's precision once decided (set_precision, else $SATNB_PRECISION)


def get_precision() -> str:
    """This process's compute precision: as `set_precision` set it, else `SATNB_PRECISION` (read once), else bf16."""
    if not _PRECISION:
        value = os.environ.get("SATNB_PRECISION", DEFAULT_PRECISION).strip().lower()
        if value not in PRECISIONS:
            raise ConfigError(f"SATNB_PRECISION={value!r} is not a precision; use {' or '.join(PRECISIONS)} "
                              "(fp32 turns mixed precision off)")
        _PRECISION.append(value)
    return _PRECISION[0]


def cpu_has_bf16() -> bool:
    """True when this CPU has oneDNN's bfloat16 kernels (AVX-512 class); AVX2-only CPUs emulate them 10-20x slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the check: assume the kernels are there
        return True


def effective_precision(device: torch.device | str) -> str:
    """The precision that runs on a device: bf16 needs a CPU with bf16 kernels or a CUDA device with bf16 (not a T4)."""
    kind = torch.device(device).type
    if get_precision() != "bf16" or kind not in ("cpu", "cuda"):
        return "fp32"
    if kind == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return "fp32"
    if kind == "cpu" and not cpu_has_bf16():
        return "fp32"
    return "bf16"


def set_precision(name: str) -> str:
    """Set the precision of this process's every forward and backward pass (the session does, once) and return it."""
    key = str(name).strip().lower()
    if key not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r}; use {' or '.join(PRECISIONS)} (fp32 turns mixed precision off)")
    _PRECISION[:] = [key]
    return key
