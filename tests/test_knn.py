"""The kNN classifier against an independent brute-force implementation, its tie rule, errors and guide groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from satnb.core.config import ConfigError
from satnb.knn.classifier import KNN, _put_first, guide_groups, guide_means


def clustered(n: int, n_classes: int, dim: int, seed: int, spread: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs: random class centres, unit noise."""
    g = torch.Generator().manual_seed(seed)
    centres = spread * torch.randn(n_classes, dim, generator=g)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    return centres[labels] + torch.randn(n, dim, generator=g), labels


def brute_force(library: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, k: int):
    """Float64 exact neighbours and a plain-Python majority vote with the documented tie rule."""
    d = torch.cdist(queries.double(), library.double()).pow(2)
    dist, idx = d.topk(k, dim=1, largest=False, sorted=True)
    preds = []
    for row in idx.tolist():
        votes: dict[int, int] = {}
        first: dict[int, int] = {}
        for rank, j in enumerate(row):
            c = int(labels[j])
            votes[c] = votes.get(c, 0) + 1
            first.setdefault(c, rank)
        top = max(votes.values())
        preds.append(min((c for c in votes if votes[c] == top), key=lambda c: first[c]))
    return dist, idx, torch.tensor(preds), d


@pytest.mark.parametrize("k", [1, 5, 75])
def test_matches_brute_force(k):
    lib, lab = clustered(800, 5, 16, seed=1, spread=1.5)
    q, qy = clustered(300, 5, 16, seed=2, spread=1.5)
    knn = KNN(k=k).fit(lib, lab)
    dist, idx = knn.search(q)
    bd, bi, bpred, _ = brute_force(lib, lab, q, k)
    assert dist.shape == idx.shape == (300, k) and idx.dtype == torch.int64
    np.testing.assert_allclose(dist.numpy(), bd.numpy(), rtol=1e-4, atol=1e-3)
    # float32 vs float64 may swap neighbours whose distances (nearly) tie; there must be none here
    assert (idx == bi).float().mean() > 0.999
    pred = knn.predict(q)
    assert pred.dtype == torch.int64 and pred.shape == (300,)
    assert torch.equal(pred, bpred)
    votes = knn.vote(q)
    assert votes.shape == (300, 5) and torch.all(votes.sum(1) == k)
    assert torch.equal(votes.argmax(1)[votes.max(1).values * 2 > k], pred[votes.max(1).values * 2 > k])
    # scikit-learn's brute kNN agrees wherever the vote has a unique winner
    sk = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(lib.numpy(), lab.numpy())
    sk_pred = torch.from_numpy(sk.predict(q.numpy()))
    top = votes.max(1, keepdim=True).values
    unique = (votes == top).sum(1) == 1
    assert unique.sum() > 100
    assert torch.equal(pred[unique], sk_pred[unique])
    assert knn.score(q, qy) == pytest.approx((bpred == qy).double().mean().item())


def test_ties_go_to_the_closest_class_and_are_deterministic():
    # 1-D library: class 1 holds the nearest neighbour of the origin, class 0 the second
    lib = torch.tensor([[1.0], [2.0], [3.0], [4.0], [50.0]])
    knn = KNN(k=4).fit(lib, torch.tensor([1, 0, 1, 0, 2]))
    origin = torch.zeros(1, 1)
    assert torch.equal(knn.vote(origin), torch.tensor([[2, 2, 0]]))
    assert knn.predict(origin).item() == 1  # not the lowest label
    knn = KNN(k=4).fit(lib, torch.tensor([0, 1, 0, 1, 2]))
    assert knn.predict(origin).item() == 0
    # three-way tie: the class of the single nearest sample wins
    lib3 = torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0]])
    knn3 = KNN(k=6).fit(lib3, torch.tensor([2, 0, 1, 0, 1, 2]))
    assert knn3.predict(origin).item() == 2
    q = torch.randn(50, 1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(knn3.predict(q), knn3.predict(q.clone()))


def test_batched_queries_and_devices_agree():
    lib, lab = clustered(300, 4, 8, seed=3)
    q, _ = clustered(100, 4, 8, seed=4)
    big = KNN(k=7).fit(lib, lab)
    small = KNN(k=7, batch_size=9).fit(lib, lab)
    assert torch.equal(big.search(q)[1], small.search(q)[1])
    assert torch.equal(big.predict(q), small.predict(q))
    assert torch.equal(big.predict(q.numpy()), big.predict(q.double()))
    assert big.search(q, k=3)[1].shape == (100, 3)
    assert big.features.shape == (300, 8) and torch.equal(big.labels, lab)
    assert torch.equal(big.class_counts, torch.bincount(lab, minlength=4))


def test_errors_name_the_problem():
    lib, lab = clustered(50, 3, 4, seed=5)
    with pytest.raises(ValueError, match="k must be"):
        KNN(k=0)
    with pytest.raises(ValueError, match="larger than the library"):
        KNN(k=51).fit(lib, lab)
    knn = KNN(k=5)
    with pytest.raises(ValueError, match="call knn.fit"):
        knn.predict(lib)
    with pytest.raises(ValueError, match="to match the 50"):
        knn.fit(lib, lab[:-1])
    bad = lib.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        knn.fit(bad, lab)
    knn.fit(lib, lab)
    with pytest.raises(ValueError, match="dimension 5 but the library has 4"):
        knn.predict(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        knn.predict(bad)
    with pytest.raises(ValueError, match="larger than the library"):
        knn.search(lib, k=51)
    with pytest.raises(ValueError, match="2-D"):
        knn.predict(torch.zeros(4))
    with pytest.raises(ValueError, match="out of range"):
        KNN(k=1, n_classes=2).fit(lib, lab)


def test_guide_groups_authors_mode():
    lib, lab = clustered(600, 4, 8, seed=6)
    q, qy = clustered(40, 4, 8, seed=7)
    knn = KNN(k=5).fit(lib, lab)
    m = 30
    idx = guide_groups(knn, q, qy, m=m)
    assert idx.shape == (40, m) and idx.dtype == torch.int64
    d = torch.cdist(q.double(), lib.double())
    for b in range(len(q)):
        members = lab[idx[b]]
        assert (members == members[0]).all() and members[0] != qy[b]
        assert len(set(idx[b].tolist())) == m
        other = (lab != qy[b]).nonzero().flatten()
        anchor = other[d[b, other].argmin()]
        assert idx[b, 0] == anchor  # the nearest other-class sample, first
        same = (lab == lab[anchor]).nonzero().flatten()
        da = torch.cdist(lib[anchor][None].double(), lib[same].double())[0]
        assert set(idx[b].tolist()) == set(same[da.argsort()[:m]].tolist())
    means = guide_means(knn, idx)
    assert torch.allclose(means, lib[idx].mean(1), atol=1e-6)


def test_guide_groups_paper_mode():
    lib, lab = clustered(600, 4, 8, seed=8)
    q, qy = clustered(40, 4, 8, seed=9)
    knn = KNN(k=5).fit(lib, lab)
    m = 25
    idx = guide_groups(knn, q, qy, m=m, mode="paper")
    d = torch.cdist(q.double(), lib.double()).pow(2)
    for b in range(len(q)):
        best, best_set = float("inf"), None
        for c in range(4):
            if c == qy[b]:
                continue
            members = (lab == c).nonzero().flatten()
            near = d[b, members].topk(m, largest=False)
            if near.values.mean() < best:
                best, best_set = near.values.mean().item(), set(members[near.indices].tolist())
        assert set(idx[b].tolist()) == best_set
        assert len(set(lab[idx[b]].tolist())) == 1 and lab[idx[b, 0]] != qy[b]


def test_guide_anchor_first_despite_duplicates():
    # ten exact copies of one class-1 point: whichever is nearest must still open its group
    lib = torch.cat([torch.zeros(5, 2), torch.ones(10, 2), torch.ones(10, 2) * 3])
    lab = torch.tensor([0] * 5 + [1] * 20)
    knn = KNN(k=3).fit(lib, lab)
    idx = guide_groups(knn, torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), m=4)
    anchor = knn.search_class(1, torch.zeros(1, 2), 1)[1][0, 0]
    assert torch.all(idx[:, 0] == anchor) and all(len(set(r)) == 4 for r in idx.tolist())
    assert torch.all(lib[idx] == 1)


def test_put_first_moves_or_inserts_the_anchor():
    idx = torch.tensor([[4, 7, 9], [1, 2, 3], [5, 6, 8]])
    out = _put_first(idx, torch.tensor([7, 0, 5]))
    assert torch.equal(out, torch.tensor([[7, 4, 9], [0, 1, 2], [5, 6, 8]]))


def test_guide_errors():
    lib, lab = clustered(100, 3, 4, seed=10)
    knn = KNN(k=3).fit(lib, lab)
    counts = torch.bincount(lab)
    with pytest.raises(ValueError, match=r"guide samples are needed from class \d, but the library holds only"):
        guide_groups(knn, lib[:5], lab[:5], m=int(counts.max()) + 1)
    with pytest.raises(ValueError, match="unknown guide mode"):
        guide_groups(knn, lib[:5], lab[:5], m=3, mode="nearest")
    with pytest.raises(ValueError, match="no sample of any class other"):
        one = KNN(k=1).fit(lib[lab == 0], lab[lab == 0])
        guide_groups(one, lib[:2], torch.zeros(2, dtype=torch.long), m=1)


@pytest.mark.parametrize("n_queries", [5, 100, 300])
def test_search_is_exact_for_every_batch_size(n_queries):
    # 5 queries take faiss' per-query kernel, 100 (an attack batch) the BLAS kernel that satnb switches on
    gen = torch.Generator().manual_seed(n_queries)
    lib = torch.randn(3000, 64, generator=gen)
    q = torch.randn(n_queries, 64, generator=gen)
    knn = KNN(k=20).fit(lib, torch.randint(0, 10, (3000,), generator=gen))
    dist, idx = knn.search(q)
    ref = torch.cdist(q.double(), lib.double()).pow(2)
    ref_d, ref_i = ref.topk(20, dim=1, largest=False)
    torch.testing.assert_close(dist.double(), ref_d, rtol=1e-4, atol=1e-3)
    # the same neighbours, except where two library samples are (nearly) equally far
    gaps = ref_d.diff(dim=1).abs().min(1).values > 1e-3
    assert gaps.sum() > n_queries // 2
    assert torch.equal(idx[gaps], ref_i[gaps])


def test_blas_switch_restores_faiss_threshold_even_on_error():
    import faiss

    from satnb.knn.classifier import BLAS_MIN_QUERIES, _faiss_blas

    before = faiss.cvar.distance_compute_blas_threshold
    reservoir = faiss.cvar.distance_compute_min_k_reservoir
    with _faiss_blas(BLAS_MIN_QUERIES):
        assert faiss.cvar.distance_compute_blas_threshold == 0
        assert faiss.cvar.distance_compute_min_k_reservoir == 1
    assert faiss.cvar.distance_compute_blas_threshold == before
    assert faiss.cvar.distance_compute_min_k_reservoir == reservoir
    with _faiss_blas(BLAS_MIN_QUERIES - 1):
        assert faiss.cvar.distance_compute_blas_threshold == before  # a handful of queries: faiss' default
    with pytest.raises(RuntimeError), _faiss_blas(1000):
        raise RuntimeError("search failed")
    assert faiss.cvar.distance_compute_blas_threshold == before
    knn = KNN(k=3).fit(torch.randn(50, 4), torch.randint(0, 2, (50,)))
    knn.search(torch.randn(40, 4))
    assert faiss.cvar.distance_compute_blas_threshold == before


def test_torch_backend_matches_faiss_on_the_same_features():
    """The GPU path's search (matrix product + top-k) gives the faiss path's neighbours, votes and guides."""
    from satnb.knn.classifier import guide_groups

    g = torch.Generator().manual_seed(0)
    lib, labels = torch.randn(3000, 32, generator=g), torch.randint(0, 10, (3000,), generator=g)
    q = torch.randn(700, 32, generator=g)
    a = KNN(k=25, n_classes=10, backend="faiss").fit(lib, labels)
    b = KNN(k=25, n_classes=10, backend="torch").fit(lib, labels)
    assert a.backend == "faiss" and b.backend == "torch"
    da, ia = a.search(q)
    db, ib = b.search(q)
    assert torch.equal(ia, ib)
    assert torch.allclose(da, db, rtol=1e-4, atol=1e-4)
    # an independent reference: brute-force squared distances
    ref = torch.cdist(q.double(), lib.double()).pow(2).topk(25, largest=False).indices
    assert torch.equal(ia, ref)
    assert torch.equal(a.predict(q), b.predict(q))
    for mode in ("authors", "paper"):
        assert torch.equal(guide_groups(a, q[:50], labels[:50], m=40, mode=mode),
                           guide_groups(b, q[:50], labels[:50], m=40, mode=mode))


def test_backend_auto_picks_torch_only_on_cuda_and_rejects_unknown():
    assert KNN(5).backend == "faiss" and KNN(5, device="cpu").backend == "faiss"
    assert KNN(5, device="cuda:0").backend == "torch"  # no CUDA needed to choose
    with pytest.raises(ConfigError, match="backend"):
        KNN(5, backend="annoy")
