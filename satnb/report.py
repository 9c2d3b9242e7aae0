"""Tables and seaborn plots for the book: profiles, data, results beside the paper's numbers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from satnb.config import PROFILES
from satnb.data import Dataset

sns.set_theme(context="notebook", style="whitegrid")


def profile_table() -> pd.DataFrame:
    """One row per profile: data sizes, epochs per method, attack sizes."""
    rows = []
    for p in PROFILES.values():
        rows.append({
            "profile": p.name,
            "train images": p.n_train or "all",
            "test images": p.n_test or "all",
            "kNN k / m": f"{p.k} / {p.m}",
            "attacked N (grad / opt)": f"{p.n_attack} / {p.n_attack_opt}",
            **{f"{m} epochs": f"{t.epochs} ({t.encoder})" for m, t in p.train.items()},
            "SAT iterations": p.sat.iterations,
        })
    return pd.DataFrame(rows).set_index("profile")


def class_counts(data: Dataset) -> pd.DataFrame:
    """Images per class in each split."""
    return pd.DataFrame({
        "class": list(data.classes),
        "train": np.bincount(data.y_train, minlength=data.n_classes),
        "test": np.bincount(data.y_test, minlength=data.n_classes),
    }).set_index("class")


def image_grid(images: np.ndarray, titles: list[str] | None = None, ncols: int = 10,
               size: float = 1.2, suptitle: str | None = None) -> plt.Figure:
    """Show uint8 NHWC (or float NCHW in [0,1]) images in a grid."""
    if images.dtype != np.uint8:
        images = (np.asarray(images).transpose(0, 2, 3, 1).clip(0, 1) * 255).astype(np.uint8)
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], interpolation="nearest")
            if titles:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def class_examples(data: Dataset, per_class: int = 8) -> plt.Figure:
    """The first images of each class in the training split (one row per class)."""
    idx = np.concatenate([np.flatnonzero(data.y_train == c)[:per_class] for c in range(data.n_classes)])
    titles = [data.classes[data.y_train[i]] if j % per_class == 0 else "" for j, i in enumerate(idx)]
    return image_grid(data.x_train[idx], titles, ncols=per_class)
