"""What the two attack benchmarks share: encoders, a fitted library, the compute floor, before/after, profiles."""

from __future__ import annotations

import contextlib
import cProfile
import io
import pstats
from collections.abc import Iterator

import torch
from torch import nn


def encoder(name: str, seed: int = 0) -> nn.Module:
    """The benchmarked encoders: the quick profile's SmallConvNet and its small AMDIM (eval mode)."""
    from satnb.nets.amdim import AMDIMEncoder
    from satnb.nets.convnets import SmallConvNet

    torch.manual_seed(seed)
    if name == "convnet":
        return SmallConvNet((32, 64, 128, 256)).eval()
    if name == "amdim":
        return AMDIMEncoder(ndf=32, n_rkhs=128, n_depth=1).eval()
    raise ValueError(name)


def library(model: nn.Module, n: int, n_classes: int = 10, k: int = 75, seed: int = 1):
    """A KNN fitted on the model's features of n random images (labels i mod n_classes)."""
    from satnb.knn.classifier import KNN
    from satnb.knn.features import extract_features

    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g)
    return KNN(k=k, n_classes=n_classes).fit(extract_features(model, images), torch.arange(n) % n_classes)


def batch(n: int, n_classes: int = 10, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """n random [0, 1] 32x32 images and labels."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, n_classes, (n,), generator=g)


def floor_passes(model: nn.Module, x: torch.Tensor, passes: int) -> None:
    """The compute floor of a white-box attack: `passes` forward + backward passes of model.features on x.

    Eval mode, gradient with respect to the images only (as every satnb attack takes it), a squared
    distance to a fixed target as the loss; nothing else (no kNN, no guide groups, no projection).
    """
    from satnb.attacks import eval_mode

    with eval_mode(model), torch.enable_grad():
        target = torch.zeros(len(x), model.feature_dim)
        xa = x.clone()
        for _ in range(passes):
            xa.requires_grad_(True)
            (g,) = torch.autograd.grad((model.features(xa) - target).pow(2).sum(), xa)
            xa = xa.detach()


@contextlib.contextmanager
def faiss_default_kernel() -> Iterator[None]:
    """The code before the fix: the kNN leaves faiss' kernel choice alone (per-query pass below 128 000 / dim)."""
    import satnb.knn.classifier as knn_module

    before = knn_module.BLAS_MIN_QUERIES
    knn_module.BLAS_MIN_QUERIES = 1 << 62
    try:
        yield
    finally:
        knn_module.BLAS_MIN_QUERIES = before


def profile(fn, top: int = 8) -> tuple[list[dict], str]:
    """cProfile one call: the top functions by own time (name, seconds, share) and the printed report."""
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    stats = pstats.Stats(pr)
    total = sum(v[2] for v in stats.stats.values()) or 1.0
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    out = []
    for (file, line, func), (_, ncalls, tottime, _cum, _) in rows:
        where = func if file == "~" else f"{file.rsplit('/', 2)[-2]}/{file.rsplit('/', 1)[-1]}:{line}({func})"
        out.append({"function": where, "calls": int(ncalls), "seconds": round(tottime, 4),
                    "share": round(tottime / total, 4)})
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(top)
    return out, buf.getvalue()
