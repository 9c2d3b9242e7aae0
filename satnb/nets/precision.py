"""The precision an encoder's trunk computes in: bfloat16 autocast or float32, as the process was set up."""

from __future__ import annotations

import contextlib

import torch

from satnb.core.precision import effective_precision


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast when bf16 is this process's precision and the device runs it; else a no-op.

    A CUDA device without bf16 (e.g. Colab's T4) computes in float32.
    """
    if effective_precision(device) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
