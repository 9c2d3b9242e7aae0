"""torchvision is imported only when an augmentation needs it: a notebook or CLI call that trains nothing never
pays its import (about 1.3 s, through torchvision.models and torch._dynamo)."""

import subprocess
import sys

import torch

from satnb.nets.augment import random_grayscale

LIGHT = """
import sys
import satnb, satnb.notebook.display, satnb.experiment.run, satnb.nets.augment
heavy = [m for m in ("torchvision", "torch._dynamo") if m in sys.modules]
assert not heavy, f"imported at start: {heavy}"
"""


def test_importing_satnb_leaves_torchvision_out():
    done = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_grayscale_is_the_luma_of_itu_r_601():
    x = torch.rand(4, 3, 8, 8)
    gray = random_grayscale(x, p=1.0, generator=torch.Generator().manual_seed(0))
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert gray.shape == x.shape
    for c in range(3):
        torch.testing.assert_close(gray[:, c], luma, atol=2e-4, rtol=0)
