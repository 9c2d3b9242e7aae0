"""Exact k-nearest-neighbour classifier on learned representations, and the attacks' guide groups.

The classifier is the paper's (section 3.1, 4.1): an exact L2 search over a library of training-set
features, and a plain majority vote over the k nearest. The search runs as faiss' exact
``IndexFlatIP`` over rows [x, -||x||^2/2] queried with [q, 1], which ranks exactly like L2 (up to
float32 rounding, as faiss' own L2 expansion) at less cost; distances are returned as squared L2.
A vote tie is broken in favour of the tied class whose nearest member ranks first among the k neighbours (the
closest one); neighbours at exactly equal distance keep faiss' order, so the rule is
deterministic.

Guide groups (paper section 2.1, "a nearest group of training instances from a different
class") are the m library samples an attack pulls a query's representation towards; see
:func:`guide_groups` for the two selection rules.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from satnb.core.checks import integer
from satnb.core.config import ConfigError
from satnb.core.variants import GUIDE_RULES

BACKENDS = ("auto", "faiss", "torch")
TORCH_BLOCK = 1 << 26  # queries x library entries per block of the torch search (256 MB of float32 scores)


def _faiss():
    """faiss, imported on first use (the torch backend, e.g. on a GPU box, runs without it)."""
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss-cpu is a dependency
        raise ConfigError("faiss is not installed; `pip install faiss-cpu`, or use KNN(backend='torch')") from err
    return faiss
SMALL_QUERY = 256  # below this many queries faiss runs on one thread (see _faiss_threads)
BLAS_MIN_QUERIES = 16  # from this many queries a search uses faiss' BLAS kernel (see _faiss_blas)


@contextlib.contextmanager
def _faiss_threads(n: int | None) -> Iterator[None]:
    """Run faiss on n OpenMP threads inside the block (None: leave as is)."""
    if n is None:
        yield
        return
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@contextlib.contextmanager
def _faiss_blas(n_queries: int) -> Iterator[None]:
    """Inside the block, search n_queries >= BLAS_MIN_QUERIES queries with faiss' BLAS kernel.

    faiss computes exact L2 distances either query by query (one pass over the library per
    query) or, when n_queries * dim reaches ``faiss.cvar.distance_compute_blas_threshold``
    (128 000), as ||q||^2 + ||x||^2 - 2 q.x with one matrix product per block. Below that
    threshold, e.g. an attack's 100-256 queries, the per-query pass re-reads the library for
    every query and costs 2-7x more than the product (measured in benchmarks/bench_knn.py);
    for a handful of queries it is faster, so those keep faiss' default. Both are exact up to
    float32 rounding.
    """
    if n_queries < BLAS_MIN_QUERIES:
        yield
        return
    faiss = _faiss()
    before = faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_min_k_reservoir
    faiss.cvar.distance_compute_blas_threshold = 0
    faiss.cvar.distance_compute_min_k_reservoir = 1  # reservoir selection: a few percent faster than the heap
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_min_k_reservoir = before


def _as_matrix(x: Tensor | np.ndarray, name: str, device: torch.device | str = "cpu") -> Tensor:
    """Return `x` as a finite, contiguous float32 (N, D) tensor on `device` (default the CPU)."""
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ConfigError(
            f"{name} must be a 2-D (N, D) array, got shape {tuple(x.shape)}; pass model.features(images), "
            "flattened to one row per sample"
        )
    x = x.detach().to(device, torch.float32).contiguous()
    bad = ~torch.isfinite(x).all(1)
    if bad.any():
        raise ConfigError(
            f"{name} contain NaN or inf in {int(bad.sum())} of {len(x)} rows (first: row {int(bad.nonzero()[0])}); "
            "check the model for diverged training or the inputs for invalid values"
        )
    return x


def _as_labels(y: Tensor | np.ndarray, n: int, name: str) -> Tensor:
    """Return `y` as an int64 (n,) CPU tensor."""
    y = torch.as_tensor(y)
    if y.ndim != 1 or len(y) != n:
        raise ConfigError(
            f"{name} must have shape ({n},) to match the {n} feature rows, got {tuple(y.shape)}; "
            "pass one integer label per row"
        )
    if y.is_floating_point() or y.is_complex():
        raise ConfigError(f"{name} must be integer class indices, got dtype {y.dtype}; convert with .long()")
    return y.detach().to("cpu", torch.int64)


def _augment_library(x: Tensor) -> Tensor:
    """Library rows [x, -||x||^2 / 2] for the inner-product index."""
    return torch.cat([x, -0.5 * x.double().pow(2).sum(1, keepdim=True).float()], 1).contiguous()


def _augment_queries(q: Tensor) -> Tensor:
    """Query rows [q, 1] for the inner-product index."""
    return torch.cat([q, torch.ones(len(q), 1, device=q.device, dtype=q.dtype)], 1).contiguous()


class KNN:
    """Exact L2 k-nearest-neighbour majority-vote classifier over a feature library."""

    def __init__(self, k: int = 75, n_classes: int | None = None, batch_size: int = 8192,
                 threads: int | None = None, progress: bool = False, backend: str = "auto",
                 device: torch.device | str | None = None) -> None:
        """Set k, the number of classes (None: inferred on fit), queries per search call, faiss threads, bars.

        threads=None uses one faiss thread for small query batches (an attack's per-step checks,
        where faiss' and torch's OpenMP pools otherwise spin against each other and a search
        costs ~30x more) and faiss' default for large ones. backend "faiss" searches on the CPU
        with faiss, "torch" with a matrix product and top-k on `device` (the library stays there);
        "auto" is torch on a CUDA device and faiss otherwise. Both rank by the same scores.
        """
        if backend not in BACKENDS:
            raise ConfigError(f"unknown kNN backend {backend!r}; use one of {', '.join(BACKENDS)}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.backend = ("torch" if self.device.type == "cuda" else "faiss") if backend == "auto" else backend
        self.k = integer(k, "k", "the paper uses k=75")
        self.threads = None if threads is None else integer(threads, "threads", "or None for automatic")
        self.n_classes = None if n_classes is None else integer(n_classes, "n_classes", "or pass None")
        self.batch_size = integer(batch_size, "batch_size", "use e.g. 8192")
        self.progress = progress
        self.features: Tensor | None = None
        self.labels: Tensor | None = None
        self.index = None  # faiss.IndexFlatIP, or the (N, D+1) library rows on `device` (torch backend)
        self._class_cache: dict[int, tuple[object, Tensor]] = {}

    def __repr__(self) -> str:
        size = "unfitted" if self.features is None else f"library={tuple(self.features.shape)}"
        return f"KNN(k={self.k}, n_classes={self.n_classes}, {size})"

    # ------------------------------------------------------------------ library

    def fit(self, features: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> KNN:
        """Store the library (features, labels) and build the exact L2 index; returns self."""
        feats = _as_matrix(features, "library features")
        labs = _as_labels(labels, len(feats), "library labels")
        if len(feats) == 0:
            raise ConfigError("the library is empty; fit on the features of at least k training images")
        if int(labs.min()) < 0:
            raise ConfigError(f"library labels must be >= 0, found {int(labs.min())}; map classes to 0..C-1")
        n_classes = self.n_classes if self.n_classes is not None else int(labs.max()) + 1
        if int(labs.max()) >= n_classes:
            raise ConfigError(
                f"library label {int(labs.max())} is out of range for n_classes={n_classes}; "
                "raise n_classes or map classes to 0..n_classes-1"
            )
        if self.k > len(feats):
            raise ConfigError(
                f"k={self.k} is larger than the library ({len(feats)} samples); lower k or add library samples"
            )
        self.n_classes = n_classes
        self.features, self.labels = feats, labs
        # argmin_x ||q - x||^2 = argmax_x (q.x - ||x||^2 / 2): one inner product with [x, -||x||^2/2]
        # and [q, 1] ranks exactly like L2 and spares faiss a pass that adds the norms to every distance
        rows = _augment_library(feats)
        if self.backend == "torch":
            self.index = rows.to(self.device)
        else:
            self.index = _faiss().IndexFlatIP(feats.shape[1] + 1)
            self.index.add(rows.numpy())
        self._class_cache = {}
        return self

    @property
    def fitted(self) -> bool:
        """Whether fit() has been called."""
        return self.index is not None

    @property
    def dim(self) -> int:
        """Feature dimension of the library."""
        self._check_fitted()
        return int(self.features.shape[1])

    @property
    def class_counts(self) -> Tensor:
        """Number of library samples of each class, shape (n_classes,)."""
        self._check_fitted()
        return torch.bincount(self.labels, minlength=self.n_classes)

    def _check_fitted(self) -> None:
        if self.index is None:
            raise ConfigError("this KNN has no library yet; call knn.fit(train_features, train_labels) first")

    def _queries(self, features: Tensor | np.ndarray) -> Tensor:
        self._check_fitted()
        q = _as_matrix(features, "query features", self.device if self.backend == "torch" else "cpu")
        if q.shape[1] != self.features.shape[1]:
            raise ConfigError(
                f"query features have dimension {q.shape[1]} but the library has {self.features.shape[1]}; "
                "extract both with the same model.features (or refit the library after changing the model)"
            )
        return q

    def _threads(self, n_queries: int) -> contextlib.AbstractContextManager:
        """faiss' threads and distance kernel for a search of n_queries queries."""
        stack = contextlib.ExitStack()
        if self.threads is not None:
            stack.enter_context(_faiss_threads(self.threads))
        else:
            stack.enter_context(_faiss_threads(1 if n_queries < SMALL_QUERY else None))
        stack.enter_context(_faiss_blas(n_queries))
        return stack

    def _k(self, k: int | None) -> int:
        k = self.k if k is None else integer(k, "k", "pass a positive number of neighbours")
        if k > len(self.features):
            raise ConfigError(
                f"k={k} is larger than the library ({len(self.features)} samples); lower k or add library samples"
            )
        return k

    # ------------------------------------------------------------------ search and vote

    def search(self, features: Tensor | np.ndarray, k: int | None = None) -> tuple[Tensor, Tensor]:
        """Return squared L2 distances (B, k) and library indices (B, k) of the k nearest, closest first."""
        q = self._queries(features)
        k = self._k(k)
        device = features.device if isinstance(features, Tensor) else torch.device("cpu")
        dists = np.empty((len(q), k), dtype=np.float32)
        idx = np.empty((len(q), k), dtype=np.int64)
        starts = range(0, len(q), self.batch_size)
        if self.backend == "torch":
            return self._torch_search(q, k, device)
        with self._threads(len(q)):
            for s in tqdm(starts, desc="kNN search", disable=not self.progress or len(starts) < 2, leave=False):
                block = q[s:s + self.batch_size]
                sim, i = self.index.search(_augment_queries(block).numpy(), k)
                dists[s:s + len(sim)] = block.pow(2).sum(1, keepdim=True).numpy() - 2 * sim
                idx[s:s + len(i)] = i
        # ||q||^2 - 2 (q.x - ||x||^2/2) = ||q - x||^2 up to float32 rounding, which can dip just below zero
        return torch.from_numpy(dists).clamp_(min=0).to(device), torch.from_numpy(idx).to(device)

    def _torch_search(self, q: Tensor, k: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """The same scores as the faiss index, as a matrix product and top-k on the library's device."""
        lib = self.index
        step = max(1, TORCH_BLOCK // len(lib))
        dists, idx = [], []
        for s in range(0, len(q), step):
            block = q[s:s + step].to(self.device)
            sim = _augment_queries(block) @ lib.T
            top, i = sim.topk(k, dim=1, largest=True, sorted=True)
            dists.append(block.pow(2).sum(1, keepdim=True) - 2 * top)
            idx.append(i)
        return torch.cat(dists).clamp_(min=0).to(device), torch.cat(idx).to(device)

    def _counts_and_first(self, features: Tensor | np.ndarray) -> tuple[Tensor, Tensor, torch.device]:
        """Votes per class (B, C) and the rank of each class's nearest neighbour (self.k when absent)."""
        device = features.device if isinstance(features, Tensor) else torch.device("cpu")
        # the vote runs where the search does: the library's device (torch backend) or the CPU (faiss)
        where = self.device if self.backend == "torch" else torch.device("cpu")
        _, idx = self.search(torch.as_tensor(features).detach().to(where))
        lab = self.labels.to(where)[idx]
        b, k = lab.shape
        counts = torch.zeros(b, self.n_classes, dtype=torch.int64, device=where).scatter_add_(
            1, lab, torch.ones_like(lab))
        ranks = torch.arange(k, device=where).expand(b, k)
        first = torch.full((b, self.n_classes), k, dtype=torch.int64, device=where).scatter_reduce_(
            1, lab, ranks, "amin")
        return counts, first, device

    def vote(self, features: Tensor | np.ndarray) -> Tensor:
        """Return the number of the k nearest library samples in each class, shape (B, n_classes)."""
        counts, _, device = self._counts_and_first(features)
        return counts.to(device)

    def predict(self, features: Tensor | np.ndarray) -> Tensor:
        """Return the majority-vote class (B,); ties go to the tied class with the closest member."""
        counts, first, device = self._counts_and_first(features)
        k = self.k
        # lexicographic (most votes, then earliest first rank): first rank lies in [0, k] < k + 1
        key = counts * (k + 1) + (k - first)
        return key.argmax(1).to(device)

    def score(self, features: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
        """Return the accuracy of predict(features) against labels."""
        q = torch.as_tensor(features)
        y = _as_labels(labels, len(q), "labels")
        if len(y) == 0:
            raise ConfigError("score needs at least one sample")
        return float((self.predict(q).cpu() == y).double().mean())

    # ------------------------------------------------------------------ per-class search (guides)

    def class_index(self, c: int) -> tuple[object, Tensor]:
        """Return an exact index over the library samples of class c (torch: their features on the device) and
        their library indices (cached)."""
        self._check_fitted()
        if c not in self._class_cache:
            members = (self.labels == c).nonzero().flatten()
            if self.backend == "torch":
                index = self.features[members].to(self.device)
            else:
                index = _faiss().IndexFlatL2(self.features.shape[1])
                index.add(self.features[members].numpy())
            self._class_cache[c] = (index, members)
        return self._class_cache[c]

    def search_class(self, c: int, features: Tensor | np.ndarray, k: int) -> tuple[Tensor, Tensor]:
        """Return squared distances and library indices (CPU) of the k nearest samples of class c."""
        q = self._queries(features)
        index, members = self.class_index(c)
        if k > len(members):
            raise ConfigError(
                f"{k} neighbours are needed from class {c}, but the library holds only {len(members)} samples "
                f"of it; lower m (or k) to at most {len(members)} or use a larger library"
            )
        if self.backend == "torch":
            qd = q.to(self.device)
            d2 = (qd.pow(2).sum(1, keepdim=True) - 2 * qd @ index.T + index.pow(2).sum(1)[None]).clamp_(min=0)
            d, i = d2.topk(k, dim=1, largest=False, sorted=True)
            return d.cpu(), members[i.cpu()]
        with self._threads(len(q)):
            d, i = index.search(q.numpy(), k)
        return torch.from_numpy(d).clamp_(min=0), members[torch.from_numpy(i)]


def _put_first(idx: Tensor, anchor: Tensor) -> Tensor:
    """Reorder each row of idx so that anchor[row] comes first (replacing the last entry if absent)."""
    found = (idx == anchor[:, None]).any(1)
    idx = idx.clone()
    idx[~found, -1] = anchor[~found]
    key = (idx != anchor[:, None]).long()
    order = torch.sort(key, dim=1, stable=True).indices
    return idx.gather(1, order)


def guide_size(knn: KNN, m: int, name: str = "m") -> int:
    """The guide-group size the attacks and SAT use: the protocol's m, capped (with a warning) by the smallest class."""
    m = integer(m, name, "the paper uses m=300 guide samples")
    counts = knn.class_counts
    smallest = int(counts.argmin())
    n = int(counts[smallest])
    if n < m:
        # one message per cut: Python's default filter shows it once however many models and attacks ask
        warnings.warn(f"{name}={m} cut to {n} for every class: class {smallest} of the kNN library has only {n} "
                      "image(s); give the library more images of that class (a larger n_library or "
                      f"labelled_per_class) or lower {name}", stacklevel=1)
    return min(m, n)


def guide_groups(knn: KNN, query_features: Tensor | np.ndarray, query_labels: Tensor | np.ndarray,
                 m: int = 300, mode: str = "authors") -> Tensor:
    """Return the library indices (B, m) of each query's guide group: m samples of one class other than its own.

    mode="authors" (the authors' code, "guide mode 2"): find the nearest library sample whose label
    differs from the query's label (the anchor); the group is the m samples of the anchor's class
    nearest to the anchor, the anchor first.
    mode="paper" (the paper's "nearest group of training instances from a different class"): for
    every class other than the query's, take its m samples nearest to the query; the group is the
    one of these with the smallest mean squared distance to the query.
    Equal distances between classes go to the lower class index.
    """
    if mode not in GUIDE_RULES:
        raise ConfigError(f"unknown guide mode {mode!r}; use one of {', '.join(GUIDE_RULES)}")
    m = integer(m, "m", "the paper uses m=300 guide samples")
    q = knn._queries(query_features)
    y = _as_labels(query_labels, len(q), "query labels")
    b, n_classes = len(q), knn.n_classes
    if b == 0:
        return torch.empty(0, m, dtype=torch.int64)
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ConfigError(f"query labels must lie in 0..{n_classes - 1}; got {int(y.min())}..{int(y.max())}")
    counts = knn.class_counts
    present = [c for c in range(n_classes) if counts[c] > 0]
    rows = torch.arange(b)

    score = torch.full((b, n_classes), float("inf"))
    if mode == "authors":
        nearest = torch.full((b, n_classes), -1, dtype=torch.int64)
        for c in present:
            d, i = knn.search_class(c, q, 1)
            score[:, c], nearest[:, c] = d[:, 0], i[:, 0]
    else:
        candidates: dict[int, Tensor] = {}
        for c in present:
            d, candidates[c] = knn.search_class(c, q, min(m, int(counts[c])))
            score[:, c] = d.mean(1)
    score[rows, y] = float("inf")
    target = score.argmin(1)
    if torch.isinf(score[rows, target]).any():
        raise ConfigError("the library holds no sample of any class other than the query's; fit it on several classes")

    group = torch.empty(b, m, dtype=torch.int64)
    for c in target.unique().tolist():
        sel = (target == c).nonzero().flatten()
        if m > int(counts[c]):
            raise ConfigError(
                f"m={m} guide samples are needed from class {c}, but the library holds only {int(counts[c])} "
                f"samples of it; lower m to at most {int(counts[c])} or use a larger library"
            )
        if mode == "authors":
            anchor = nearest[sel, c]
            _, idx = knn.search_class(c, knn.features[anchor], m)
            # the anchor is at distance 0, but exact duplicates of it may be listed before it
            group[sel] = _put_first(idx, anchor)
        else:
            group[sel] = candidates[c][sel]
    return group


def guide_means(knn: KNN, idx: Tensor) -> Tensor:
    """Return the mean library feature of each guide group, shape (B, D).

    With the guide features fixed, sum_i ||f(x_g^i) - f||^2 = m ||f - mean||^2 + const, so an attack
    can use the mean at 1/m of the cost.
    """
    knn._check_fitted()
    idx = torch.as_tensor(idx).cpu()
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ConfigError(f"guide indices must have shape (B, m) with m >= 1, got {tuple(idx.shape)}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(knn.features)):
        raise ConfigError("guide indices point outside the library; compute them with guide_groups on this KNN")
    return knn.features[idx].mean(1)
