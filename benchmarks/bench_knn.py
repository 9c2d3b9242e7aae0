"""kNN evaluation of a 45 000-image library (k=75): satnb.knn.classifier.KNN vs scikit-learn brute force vs torch.

The three compute the same thing, the exact L2 k nearest library samples of each query and their
majority vote, and the benchmark checks that they predict the same class:

* satnb: ``KNN(k).fit(library).predict(queries)`` (faiss exact inner-product search on augmented rows + vote);
* scikit-learn: ``KNeighborsClassifier(k, algorithm="brute").fit(...).predict(...)``;
* torch: ``cdist`` + ``topk`` + a vote with satnb's tie rule, in chunks of 1 024 queries.

Prediction check: float32 distances computed in different orders may swap two neighbours at (nearly)
the same distance, and scikit-learn breaks vote ties towards the lower class index where satnb takes
the class whose member is nearest. So predictions must be identical on every query whose k-th and
(k+1)-th neighbour are clearly apart (relative gap > 1e-4), and for scikit-learn also without a vote
tie; the excluded queries are counted. Features are float32, either random (isotropic Gaussian,
random labels) or structured (10 Gaussian classes with a decaying spectrum, like real encoder
features). Only predict() is timed (fit is a copy of the library for all three).

Also timed: a floor for any exact kNN, faiss' 1-nearest-neighbour search of the same queries (the
blocked query-library matrix product plus a running minimum; a plain numpy or torch product is
slower than faiss' BLAS here). scikit-learn (>= 1.3) runs the same blocked product with a fused
top-k and vote, so sklearn / floor bounds the speed-up any exact method can reach.

Target: satnb at least 2x faster than scikit-learn on every configuration.
"""

from __future__ import annotations

import time

import faiss
import numpy as np
import torch
from _common import figure, interleave, log, main, ratio, record

TARGET = 2.0
TORCH_CHUNK = 1024
SMALL_BATCH, SMALL_CALLS = 100, 20


def features(kind: str, n: int, dim: int, n_classes: int, rng: np.random.Generator,
             centres: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 features and int64 labels; structured: class centres + noise with a decaying spectrum."""
    y = rng.integers(0, n_classes, n)
    z = rng.standard_normal((n, dim)).astype(np.float32)
    if kind == "random":
        return z, y
    scale = (1.0 + np.arange(dim, dtype=np.float32)) ** -0.5  # most variance in few directions
    return (centres[y] + z * scale).astype(np.float32), y


def torch_predict(library: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, k: int,
                  n_classes: int) -> torch.Tensor:
    """cdist + topk + majority vote; ties go to the tied class with the nearest member (satnb's rule)."""
    out = []
    for s in range(0, len(queries), TORCH_CHUNK):
        d = torch.cdist(queries[s:s + TORCH_CHUNK], library)
        idx = d.topk(k, dim=1, largest=False, sorted=True).indices
        lab = labels[idx]
        b = len(lab)
        counts = torch.zeros(b, n_classes, dtype=torch.int64).scatter_add_(1, lab, torch.ones_like(lab))
        first = torch.full((b, n_classes), k, dtype=torch.int64).scatter_reduce_(
            1, lab, torch.arange(k).expand(b, k), "amin")
        out.append((counts * (k + 1) + (k - first)).argmax(1))
    return torch.cat(out)


def gemm_floor(index, queries: np.ndarray) -> None:
    """The cheapest exact search: 1 nearest neighbour (the inner products plus a running minimum, in faiss)."""
    index.search(queries, 1)


def check(knn, q: np.ndarray, preds: dict[str, np.ndarray], k: int) -> dict:
    """Compare predictions on the queries without near-equal boundary neighbours (and vote ties, for sklearn)."""
    dist, idx = knn.search(q, k + 1)
    d = dist.numpy().astype(np.float64)
    clear = (d[:, k] - d[:, k - 1]) > 1e-4 * np.maximum(d[:, k], 1e-12)
    votes = knn.vote(q).numpy()
    unique = (votes == votes.max(1, keepdims=True)).sum(1) == 1
    out = {"queries": int(len(q)), "boundary_near_ties": int((~clear).sum()), "vote_ties": int((~unique).sum())}
    for name, p in preds.items():
        if name == "satnb":
            continue
        mask = clear & unique if name == "sklearn" else clear
        diff = int((p[mask] != preds["satnb"][mask]).sum())
        out[f"{name}_compared"] = int(mask.sum())
        out[f"{name}_mismatches"] = diff
        out[f"{name}_agreement_all"] = round(float((p == preds["satnb"]).mean()), 5)
        if diff:
            raise AssertionError(f"{name} predicts differently from satnb on {diff} of {int(mask.sum())} clear queries")
    return out


def small_batches(knn, q: torch.Tensor, repeats: int) -> tuple[list[dict], list[dict], dict]:
    """An attack-sized search (SMALL_BATCH queries, as in a per-step kNN check): satnb now vs faiss' default kernel."""
    from _attack_common import faiss_default_kernel

    q = q[:SMALL_BATCH]
    dim = q.shape[1]
    out: dict[str, np.ndarray] = {}

    def now():
        for _ in range(SMALL_CALLS):
            p = knn.predict(q)
        return p.numpy()

    def before():
        with faiss_default_kernel():
            return now()

    times = interleave({"now": now, "before": before}, repeats, after=lambda name, p: out.__setitem__(name, p))
    same = float((out["now"] == out["before"]).mean())
    per_call = 1 / SMALL_CALLS
    figures = [figure(f"satnb predict, d={dim}, {SMALL_BATCH} queries (one call)", times["now"].scaled(per_call)),
               figure(f"same, d={dim}, faiss' default kernel (before the fix)", times["before"].scaled(per_call))]
    ratios = [ratio(f"before / now, {SMALL_BATCH}-query predict, d={dim}", times["before"].value / times["now"].value,
                    note="satnb.knn.classifier now uses faiss' BLAS kernel from 16 queries (informational)")]
    return figures, ratios, {"predictions_identical_fraction": same}


def one_case(dim: int, kind: str, n_lib: int, n_query: int, k: int, n_classes: int, repeats: int,
             figures: list, ratios: list, checks: dict) -> None:
    """Time satnb, scikit-learn and torch on one library / query set and check their predictions."""
    from sklearn.neighbors import KNeighborsClassifier

    from satnb.knn.classifier import KNN

    rng = np.random.default_rng(dim)
    centres = rng.standard_normal((n_classes, dim)).astype(np.float32) * 0.35
    lib, lab = features(kind, n_lib, dim, n_classes, rng, centres)
    q, qy = features(kind, n_query, dim, n_classes, rng, centres)
    lib_t, lab_t, q_t = torch.from_numpy(lib), torch.from_numpy(lab), torch.from_numpy(q)
    knn = KNN(k=k, n_classes=n_classes).fit(lib, lab)
    floor_index = faiss.IndexFlatL2(dim)
    floor_index.add(lib)
    sk = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(lib, lab)
    preds: dict[str, np.ndarray] = {}
    variants = {
        "satnb": lambda: knn.predict(q_t).numpy(),
        "sklearn": lambda: sk.predict(q),
        "torch": lambda: torch_predict(lib_t, lab_t, q_t, k, n_classes).numpy(),
        "floor": lambda: gemm_floor(floor_index, q),
    }
    # warm up on a few queries only (code paths, allocations), then time the full query set
    knn.predict(q_t[:64])
    sk.predict(q[:64])
    torch_predict(lib_t, lab_t, q_t[:64], k, n_classes)
    times = interleave(variants, repeats, warmup=False,
                       after=lambda name, p: None if name == "floor" else preds.__setitem__(name, p))
    case = f"d={dim} {kind}"
    log(f"[knn] {case}: " + ", ".join(f"{n} {t.value:.2f} s" for n, t in times.items()))
    checks[case] = {**check(knn, q, preds, k), "satnb_accuracy": round(float((preds["satnb"] == qy).mean()), 4)}
    for name, t in times.items():
        figures.append(figure(f"{name} predict, {case} ({n_query} queries)", t))
    base = times["satnb"].value
    ratios.append(ratio(f"sklearn / satnb time, {case}", times["sklearn"].value / base, ">=", TARGET,
                        "satnb must be at least 2x faster than scikit-learn brute force"))
    ratios.append(ratio(f"torch / satnb time, {case}", times["torch"].value / base,
                        note="cdist + topk + vote in torch (informational)"))
    ratios.append(ratio(f"satnb / GEMM floor, {case}", base / times["floor"].value,
                        note="floor: faiss 1-NN search of the same queries, i.e. the matrix product (informational)"))
    ratios.append(ratio(f"sklearn / GEMM floor, {case}", times["sklearn"].value / times["floor"].value,
                        note="so the most any exact kNN can beat scikit-learn by (informational)"))
    if kind == "structured":
        figures_small, ratios_small, checks[f"{case}, {SMALL_BATCH} queries"] = small_batches(knn, q_t, repeats)
        figures += figures_small
        ratios += ratios_small


def run(args) -> dict:
    t_start = time.perf_counter()
    n_lib, k, n_classes = 45_000, 75, 10
    n_query = 2_000 if args.quick else 5_000
    repeats = args.repeats or (2 if args.quick else 3)
    dims = (128, 256)
    kinds = ("structured",) if args.quick else ("random", "structured")
    figures, ratios, checks = [], [], {}
    for dim in dims:
        for kind in kinds:
            one_case(dim, kind, n_lib, n_query, k, n_classes, repeats, figures, ratios, checks)
    settings = {"library": n_lib, "k": k, "classes": n_classes, "queries": n_query, "dims": list(dims),
                "kinds": list(kinds), "repeats": repeats, "threads": args.threads, "torch_chunk": TORCH_CHUNK,
                "small_batch": SMALL_BATCH}
    return record("knn", "kNN evaluation: satnb (faiss) vs scikit-learn vs torch", settings, figures, ratios,
                  time.perf_counter() - t_start, checks,
                  notes="predict() only; identical predictions asserted on queries without boundary near-ties "
                        "(and without vote ties for scikit-learn)")


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
