"""The evaluation protocol and the pipeline, end to end on a tiny offline setup."""

import numpy as np
import pytest
import torch

from satnb.config import ConfigError, TrainSettings, get_profile
from satnb.data import load_digits
from satnb.evaluate import evaluate, first_correct
from satnb.features import as_images, build_library, extract_features
from satnb.pipeline import Pipeline
from satnb.store import Store
from satnb.tables import evaluation_table


@pytest.fixture(scope="module")
def tiny():
    data = load_digits().subset(400, 120, seed=0)
    settings = TrainSettings("convnet", epochs=6, batch_size=32, lr=5e-3, encoder_kwargs={"widths": (16, 32, 64)})
    profile = get_profile("smoke").replace(
        train={m: settings for m in ("sup", "simclr", "npid")}, k=5, m=10, n_attack=30, n_attack_opt=6,
        opt_binary_steps=3, opt_steps=10)
    return data, profile


def test_first_correct_takes_dataset_order():
    pred = torch.tensor([0, 1, 1, 0, 2])
    y = torch.tensor([0, 0, 1, 0, 2])
    assert first_correct(pred, y, 2).tolist() == [0, 2]
    with pytest.raises(ConfigError, match="larger than the test set"):
        first_correct(pred, y, 6)
    with pytest.raises(ConfigError, match="fewer than N=5"):
        first_correct(pred, y, 5)
    with pytest.raises(ConfigError, match="N >= 1"):
        first_correct(pred, y, 0)


def test_pipeline_end_to_end(tmp_path, tiny):
    data, profile = tiny
    pipe = Pipeline(profile, data, Store(tmp_path), progress=False)
    res = pipe.evaluate("sup")
    assert 0.3 < res["acc"] <= 1.0
    assert res["n_attacked"] == 30
    # the attacks must beat uniform noise of the same size, and the larger attack must not be weaker
    assert res["dsr_small"] < res["noise_dsr_small"]
    assert res["dsr_large"] <= res["dsr_small"] + 0.1
    assert res["opt_n"] == 6 and len(res["l2_all_px"]) == len(res["l2_all_norm"]) == 6
    # every number that enters a verdict carries its interval, and robust accuracy is over the scanned prefix
    for key in ("acc", "dsr_small", "dsr_large", "robust_small", "robust_large", "opt_success", "l2_median_px",
                "l2_mean_norm"):
        lo, hi = res[f"{key}_ci"]
        assert lo <= res[key] <= hi, key
    assert res["robust_small"] <= res["acc"] + 1e-9 and res["n_prefix"] >= res["n_attacked"]
    assert res["robust_small"] == pytest.approx(res["dsr_small"] * res["n_attacked"] / res["n_prefix"])
    assert res["provenance"]["profile"] == "smoke" and res["provenance"]["dataset"]["dataset"] == "digits"
    # cached: the second call reads the stored JSON
    assert Pipeline(profile, data, Store(tmp_path), progress=False).evaluate("sup") == res
    table = evaluation_table(pipe.evaluations(["sup"]))
    assert table.loc["SUP", "ACC"] == res["acc"]


def test_evaluate_agrees_with_direct_knn(tiny, tmp_path):
    data, profile = tiny
    pipe = Pipeline(profile, data, Store(tmp_path), progress=False)
    model = pipe.entry("sup").model
    knn = build_library(model, data.x_train, data.y_train, k=profile.k)
    out = evaluate(model, knn, data.x_test, data.y_test, profile, optimization=False, progress=False)
    feats = extract_features(model, as_images(data.x_test))
    # an independent brute-force kNN vote
    d = torch.cdist(feats, knn.features)
    nn_labels = knn.labels[d.topk(profile.k, largest=False).indices]
    votes = torch.nn.functional.one_hot(nn_labels, data.n_classes).sum(1)
    unique_max = (votes == votes.max(1, keepdim=True).values).sum(1) == 1
    acc_ref = (votes.argmax(1) == torch.as_tensor(data.y_test))[unique_max].float().mean()
    pred = knn.predict(feats)
    acc_ours = (pred == torch.as_tensor(data.y_test))[unique_max].float().mean()
    assert float(acc_ours) == pytest.approx(float(acc_ref))
    assert out["acc"] == pytest.approx(float((pred == torch.as_tensor(data.y_test)).float().mean()))


def test_unknown_model_name(tiny, tmp_path):
    data, profile = tiny
    with pytest.raises(ConfigError, match="no model named 'sat-x'"):
        Pipeline(profile, data, Store(tmp_path), progress=False).entry("sat-x")


def test_library_subset_is_stratified(tiny, tmp_path):
    data, profile = tiny
    pipe = Pipeline(profile.replace(n_library=200), data, Store(tmp_path), progress=False)
    counts = np.bincount(data.y_train[pipe.library_index])
    assert len(pipe.library_index) == 200 and counts.max() - counts.min() <= 2


def test_sweep_rule_contains_the_paper_settings():
    from satnb.evaluate import sweep_setting

    small, large = get_profile("paper").small, get_profile("paper").large
    assert sweep_setting(small.eps) == small and sweep_setting(large.eps) == large
    for eps in (0.004, 0.01, 0.1):
        s = sweep_setting(eps)
        assert s.step <= 0.005 and s.steps * s.step >= eps  # every point of the ball is reachable


def test_pipeline_studies_are_cached_and_match_the_uncached_functions(tiny, tmp_path, monkeypatch):
    from satnb import evaluate as ev
    from satnb import studies as pl

    data, profile = tiny
    pipe = Pipeline(profile, data, Store(tmp_path), progress=False)
    sweep = pipe.eps_sweep("sup", [0.01, 0.06], n=20)
    x, y = pipe.attacked("sup", 20)
    direct = ev.eps_sweep(pipe.entry("sup").model, pipe.library("sup"), x, y, [0.01, 0.06], pipe.m("sup"),
                          seed=profile.seed)
    assert sweep[["eps", "attack", "dsr"]].to_dict("records") == direct
    restarts = pipe.restarts("sup", 2, n=20)
    assert len(restarts) == 2 and restarts[1] <= restarts[0]
    transfer = pipe.transfer("sup", "simclr", n=20)
    assert 0.0 <= transfer <= 1.0

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached study")

    # a new pipeline on the same store (a warm book) must read every study back without attacking again
    for name in ("eps_sweep", "restarts_dsr", "transfer_dsr"):
        monkeypatch.setattr(pl, name, fail)
    warm = Pipeline(profile, data, Store(tmp_path), progress=False)
    assert warm.eps_sweep("sup", [0.01, 0.06], n=20).equals(sweep)
    assert warm.restarts("sup", 2, n=20) == restarts
    assert warm.transfer("sup", "simclr", n=20) == transfer
    with pytest.raises(AssertionError, match="recomputed"):
        warm.restarts("sup", 3, n=20)  # other settings: a different study
    with pytest.raises(ConfigError, match="unknown attack setting"):
        warm.restarts("sup", 2, n=20, setting="medium")


def test_pipeline_mi_studies_are_cached(tiny, tmp_path, monkeypatch):
    from satnb import mi

    data, profile = tiny
    profile = profile.replace(mi_steps=20)
    pipe = Pipeline(profile, data, Store(tmp_path), progress=False)
    feats = pipe.mi_clean_adversarial("sup", batch_size=8)
    assert feats["batch_size"] == 8 and feats["clean vs clean"] <= feats["log_batch"] + 1e-6
    stairs = pipe.mi_staircase(("infonce",), dim=4, batch_size=8, levels=(1, 2))
    assert len(stairs) == 2 * 20 and set(stairs["level"]) == {1, 2}
    study = pipe.mi_batch_study(1.0, dim=4, batch_sizes=(8, 16), estimators=("infonce",))
    assert list(study["batch"]) == [8, 16]

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached study")

    for name in ("staircase", "batch_size_study", "mi_between_features"):
        monkeypatch.setattr(mi, name, fail)
    warm = Pipeline(profile, data, Store(tmp_path), progress=False)
    assert warm.mi_clean_adversarial("sup", batch_size=8) == feats
    assert warm.mi_staircase(("infonce",), dim=4, batch_size=8, levels=(1, 2)).equals(stairs)
    assert warm.mi_batch_study(1.0, dim=4, batch_sizes=(8, 16), estimators=("infonce",)).equals(study)


def test_features_are_cached_on_disk_and_match_a_fresh_extraction(tiny, tmp_path, monkeypatch):
    from satnb import libraries as pl

    data, profile = tiny
    pipe = Pipeline(profile, data, Store(tmp_path), progress=False)
    test = pipe.features("sup", "test")
    torch.testing.assert_close(test, extract_features(pipe.entry("sup").model, data.x_test))
    acc = pipe.accuracy("sup")
    ex = pipe.optimization_examples("sup", n=3)
    assert ex["x"].shape == ex["adv"].shape == (3, 3, 32, 32) and ex["l2"].shape == (3,)
    broken = ex["success"]
    assert torch.allclose((ex["adv"] - ex["x"]).flatten(1).norm(dim=1)[broken], ex["l2"][broken], atol=1e-4)

    def fail(*args, **kwargs):
        raise AssertionError("recomputed cached features")

    monkeypatch.setattr(pl, "extract_features", fail)
    monkeypatch.setattr("satnb.attacks.KNNOptimizationAttack.run", fail)
    warm = Pipeline(profile, data, Store(tmp_path), progress=False)
    assert torch.equal(warm.features("sup", "test"), test) and warm.accuracy("sup") == acc
    assert torch.equal(warm.optimization_examples("sup", n=3)["adv"], ex["adv"])
    with pytest.raises(ConfigError, match="unknown split"):
        warm.features("sup", "train")


def test_label_scarce_regime_gives_labels_only_to_the_library(tiny, tmp_path, monkeypatch):
    """Claim 4's proxy: SUP and the baselines see only the labelled images; SSL sees them all, without labels."""
    from satnb import registry

    data, profile = tiny
    seen = {}
    real_train, real_adv = registry.train, registry.adversarial_train

    def spy_train(method, d, *args, **kwargs):
        seen[method] = len(d.y_train)
        return real_train(method, d, *args, **kwargs)

    def spy_adv(model, method, x, y, *args, **kwargs):
        seen[method] = len(y)
        return real_adv(model, method, x, y, *args, **kwargs)

    monkeypatch.setattr(registry, "train", spy_train)
    monkeypatch.setattr(registry, "adversarial_train", spy_adv)
    pipe = Pipeline(profile.replace(labelled_per_class=8, n_attack=10), data, Store(tmp_path), progress=False)
    pipe.train("sup"), pipe.train("simclr"), pipe.baseline("at")
    assert len(pipe.library_index) == 80 and np.bincount(data.y_train[pipe.library_index]).tolist() == [8] * 10
    assert seen == {"sup": 80, "simclr": len(data.y_train), "at": 80}
    with pytest.raises(ConfigError, match="labelled_per_class=999"):
        Pipeline(profile.replace(labelled_per_class=999), data, Store(tmp_path), progress=False)
