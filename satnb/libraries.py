"""The kNN library and test features of every registered model, cached on disk, and the images the attacks use."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from satnb.config import ConfigError
from satnb.evaluate import first_correct
from satnb.features import as_images, extract_features
from satnb.knn import KNN


class Libraries:
    """Features, kNN libraries and attacked images per model; mixed into `Pipeline` after `Models`.

    Needs `entry(name)`, `profile`, `data`, `store` and `library_index` (from `registry.Models`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._library_cache: dict[str, tuple[str, KNN]] = {}
        self._feature_cache: dict[tuple[str, str], tuple[str, torch.Tensor]] = {}

    def _forget(self, name: str) -> None:
        """Drop the in-memory library and features of a model that was re-registered."""
        self._library_cache.pop(name, None)
        for split in ("library", "test"):
            self._feature_cache.pop((name, split), None)

    def features(self, name: str, split: str = "test") -> torch.Tensor:
        """Features of the library or test images under a model (cached on disk: a warm book only reads them)."""
        if split not in ("library", "test"):
            raise ConfigError(f"unknown split {split!r}; use 'library' or 'test'")
        ent = self.entry(name)
        memo = self._feature_cache.get((name, split))
        if memo is not None and memo[0] == ent.key:
            return memo[1]
        images = self.data.x_train[self.library_index] if split == "library" else self.data.x_test
        index = self.library_index if split == "library" else np.arange(len(images))
        state = self.store.memo_state(
            "features", {"model": ent.key, "split": split, "n": len(images),
                         "index": hashlib.blake2b(index.tobytes(), digest_size=8).hexdigest()},
            lambda: {"features": extract_features(ent.model, images)}, self.data.fingerprint(),
            code="satnb.features")
        self._feature_cache[(name, split)] = (ent.key, state["features"])
        return state["features"]

    def test_features(self, name: str) -> torch.Tensor:
        """Features of the test images under this model."""
        return self.features(name, "test")

    def library(self, name: str) -> KNN:
        """The kNN over the library images' features under this model."""
        key = self.entry(name).key
        memo = self._library_cache.get(name)
        if memo is None or memo[0] != key:
            labels = torch.as_tensor(self.data.y_train[self.library_index])
            knn = KNN(k=self.profile.k, n_classes=self.data.n_classes, device=self.device).fit(
                self.features(name, "library"), labels)
            self._library_cache[name] = memo = (key, knn)
        return memo[1]

    def accuracy(self, name: str, k: int | None = None) -> float:
        """Clean kNN accuracy on the test set (optionally with another k)."""
        knn = self.library(name)
        feats = self.test_features(name)
        if k is None or k == knn.k:
            return knn.score(feats, torch.as_tensor(self.data.y_test))
        other = KNN(k=k, n_classes=knn.n_classes, device=knn.device).fit(knn.features, knn.labels)
        return other.score(feats, torch.as_tensor(self.data.y_test))

    def attacked(self, name: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n (default: the profile's N) correctly classified test images and their labels."""
        knn = self.library(name)
        y = torch.as_tensor(self.data.y_test)
        pred = knn.predict(self.test_features(name))
        idx = first_correct(pred, y, min(n or self.profile.n_attack, int((pred == y).sum())))
        return as_images(self.data.x_test[idx.numpy()]), y[idx]

    def library_images(self, library_idx: torch.Tensor) -> np.ndarray:
        """uint8 images of library entries (indices as returned by the kNN search)."""
        return self.data.x_train[self.library_index[np.asarray(library_idx)]]
