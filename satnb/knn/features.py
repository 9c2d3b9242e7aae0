"""Features of images under an encoder, and the kNN library built from them (what the attacks and SAT search)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from satnb.core.images import check_images, to_tensor
from satnb.knn.classifier import KNN


def as_images(x: np.ndarray | Tensor, check: bool = True) -> Tensor:
    """Float NCHW [0,1] tensor from a uint8 NHWC array (float NCHW tensors in [0,1] pass through).

    Anything else (uint8 or NHWC tensors, float arrays, values outside [0,1]) raises ConfigError.
    """
    if check:
        check_images(x)
    return x if isinstance(x, Tensor) else to_tensor(x)


@torch.inference_mode()
def extract_features(model: nn.Module, images: Tensor | np.ndarray, batch_size: int = 512,
                     progress: bool = False, desc: str = "features") -> Tensor:
    """Features (N, D) of images (uint8 NHWC array or float NCHW tensor in [0,1]), on the CPU as float32."""
    check_images(images)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    n = len(images)
    for i in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, leave=False):
        x = images[i:i + batch_size]
        if isinstance(x, np.ndarray):  # uint8 to the device (a quarter of the bytes), float there
            x = torch.from_numpy(np.ascontiguousarray(x)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        out.append(model.features(x).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def build_library(model: nn.Module, images: np.ndarray | Tensor, labels: np.ndarray | Tensor, k: int,
                  n_classes: int | None = None, progress: bool = False) -> KNN:
    """Fit the kNN on the features of the library images under the current model."""
    feats = extract_features(model, images, progress=progress, desc="library")
    device = next(model.parameters()).device
    return KNN(k=k, n_classes=n_classes, device=device).fit(feats, torch.as_tensor(np.asarray(labels)))


def predict(model: nn.Module, knn: KNN, images: np.ndarray | Tensor, batch_size: int = 512) -> Tensor:
    """kNN predictions for images."""
    return knn.predict(extract_features(model, images, batch_size))
