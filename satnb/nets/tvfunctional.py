"""torchvision's functional image transforms (`torchvision.transforms.v2.functional`), imported on first use.

Importing torchvision takes about 1.3 s (through `torchvision.models` it imports `torch._dynamo`): a notebook,
CLI call or job that trains nothing would pay it only because the augmentations name one of its functions.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    return getattr(importlib.import_module("torchvision.transforms.v2.functional"), name)
