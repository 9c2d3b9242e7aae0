"""The `Dataset` type (in-memory uint8 arrays and where they came from), its subsets and stratified indices."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A dataset is missing or malformed; the message names the problem and the fix."""


@dataclass
class Dataset:
    """A labelled image dataset held as uint8 NHWC arrays, with where it really came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str
    fallback: bool = False  # True when a smaller profile fell back to sklearn digits
    x_unlabeled: np.ndarray | None = None
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(self.x_train.shape[1:])

    def fingerprint(self) -> str:
        """Return a short hash of the arrays (a change of data changes it)."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=8)
            for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
                h.update(str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr).data)
            if self.x_unlabeled is not None:
                h.update(str(self.x_unlabeled.shape).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def describe(self) -> dict:
        """Return what a result must record about the data behind it (no path of this machine: see `short_source`)."""
        return {
            "dataset": self.name,
            "source": short_source(self.source),
            "fallback": self.fallback,
            "n_train": int(len(self.y_train)),
            "n_test": int(len(self.y_test)),
            "image_shape": list(self.image_shape),
            "fingerprint": self.fingerprint(),
        }

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> "Dataset":
        """Return a seeded, stratified subset that keeps the dataset's order."""
        tr = stratified_indices(self.y_train, n_train, seed) if n_train else slice(None)
        te = stratified_indices(self.y_test, n_test, seed + 1) if n_test else slice(None)
        return replace(self, x_train=self.x_train[tr], y_train=self.y_train[tr],
                       x_test=self.x_test[te], y_test=self.y_test[te], _fingerprint=None)


def short_source(source: str) -> str:
    """A data source without the folders of the machine that read it ("npz:/home/u/x.npz" -> "npz:x.npz")."""
    kind, sep, where = source.partition(":")
    if not sep or ("/" not in where and "\\" not in where):
        return source
    return f"{kind}:{Path(where).name}"


def profile_subset(full: Dataset, profile) -> Dataset:
    """The profile's seeded, stratified train/test subset (the whole split where the profile asks for more)."""
    n_train = profile.n_train if profile.n_train and profile.n_train < len(full.y_train) else None
    n_test = profile.n_test if profile.n_test and profile.n_test < len(full.y_test) else None
    return full.subset(n_train, n_test, seed=profile.seed)


def stratified_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Return n sorted indices drawn per class in proportion to the class sizes."""
    labels = np.asarray(labels)
    if n <= 0 or n > len(labels):
        raise DataError(f"cannot take a subset of {n} from {len(labels)} samples; choose 1..{len(labels)}")
    if n == len(labels):
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    # hand out the remainder to the classes with the largest fractional parts
    rest = n - quota.sum()
    frac = counts / counts.sum() * n - quota
    quota[np.argsort(-frac, kind="stable")[:rest]] += 1
    chosen = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))
