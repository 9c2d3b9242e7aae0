"""The evaluation protocol, the pipeline and its studies, end to end on the tiny offline setup (conftest)."""

import numpy as np
import pytest
import torch

from satnb.core.config import ConfigError, get_profile
from satnb.core.identity import ModelId
from satnb.core.store import Store
from satnb.experiment.pipeline import Pipeline
from satnb.experiment.studies import Studies
from satnb.knn.classifier import guide_size
from satnb.knn.features import as_images, build_library, extract_features
from satnb.protocol.evaluate import evaluate, first_correct
from satnb.report.tables import evaluation_table


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


def test_pipeline_end_to_end(tiny_pipeline):
    pipe = tiny_pipeline
    res = Studies(pipe).evaluate("sup")
    assert 0.3 < res["acc"] <= 1.0
    assert res["n_attacked"] == 30 and res["model"] == "sup"
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
    # cached: the second call, from a new pipeline on the same store, reads the stored JSON
    warm = Pipeline(pipe.profile, pipe.data, pipe.store, progress=False)
    assert Studies(warm).evaluate(ModelId.pretrained("sup")) == res
    table = evaluation_table(Studies(pipe).evaluations(["sup"]))
    assert table.loc["SUP", "ACC"] == res["acc"]


def test_evaluate_agrees_with_direct_knn(tiny_pipeline):
    pipe, protocol, data = tiny_pipeline, tiny_pipeline.profile.protocol, tiny_pipeline.data
    model = pipe.entry("sup").model
    knn = build_library(model, data.x_train, data.y_train, k=protocol.k)
    out = evaluate(model, knn, data.x_test, data.y_test, protocol, optimization=False, progress=False)
    feats = extract_features(model, as_images(data.x_test))
    # an independent brute-force kNN vote
    d = torch.cdist(feats, knn.features)
    nn_labels = knn.labels[d.topk(protocol.k, largest=False).indices]
    votes = torch.nn.functional.one_hot(nn_labels, data.n_classes).sum(1)
    unique_max = (votes == votes.max(1, keepdim=True).values).sum(1) == 1
    acc_ref = (votes.argmax(1) == torch.as_tensor(data.y_test))[unique_max].float().mean()
    pred = knn.predict(feats)
    acc_ours = (pred == torch.as_tensor(data.y_test))[unique_max].float().mean()
    assert float(acc_ours) == pytest.approx(float(acc_ref))
    assert out["acc"] == pytest.approx(float((pred == torch.as_tensor(data.y_test)).float().mean()))
    # the guide groups: the protocol's m, capped by the library's smallest class
    counts = np.bincount(data.y_train, minlength=data.n_classes)
    assert out["m"] == guide_size(knn, protocol.m) == min(protocol.m, int(counts.min())) == pipe.guide_size("sup")


def test_models_are_registered_and_looked_up_by_identity(tiny_pipeline):
    pipe = tiny_pipeline
    sup = pipe.entry("sup")
    assert sup.id == ModelId.pretrained("sup") and sup.name == "sup" and sup.kind == "pretrained"
    assert pipe.entry(ModelId.pretrained("sup")) is sup and pipe.train("sup") is sup
    assert pipe.resolve("sup") == sup.id and pipe.entries == {sup.id: sup}
    with pytest.raises(ConfigError, match="no model named 'sat-x'"):
        pipe.entry("sat-x")
    with pytest.raises(ConfigError, match="no recipe for amdim"):  # the tiny profile trains sup, simclr, npid
        pipe.train("amdim")
    with pytest.raises(ConfigError, match="unknown baseline 'pgd'"):
        pipe.baseline("pgd")


def test_library_subset_is_stratified(tiny_profile, tiny_data, tmp_path):
    pipe = Pipeline(tiny_profile.replace(n_library=200), tiny_data, Store(tmp_path), progress=False)
    counts = np.bincount(tiny_data.y_train[pipe.library_index])
    assert len(pipe.library_index) == 200 and counts.max() - counts.min() <= 2


def test_sweep_rule_contains_the_paper_settings():
    from satnb.protocol.evaluate import sweep_setting

    paper = get_profile("paper").protocol
    assert sweep_setting(paper.small.eps) == paper.small and sweep_setting(paper.large.eps) == paper.large
    for eps in (0.004, 0.01, 0.1):
        s = sweep_setting(eps)
        assert s.step <= 0.005 and s.steps * s.step >= eps  # every point of the ball is reachable


def test_pipeline_studies_are_cached_and_match_the_uncached_functions(tiny_pipeline, monkeypatch):
    from satnb.experiment import studies as pl
    from satnb.protocol import evaluate as ev

    pipe = tiny_pipeline
    studies = Studies(pipe)
    sweep = studies.eps_sweep("sup", [0.01, 0.06], n=20)
    x, y = pipe.attacked("sup", 20)
    direct = ev.eps_sweep(pipe.entry("sup").model, pipe.library("sup"), x, y, [0.01, 0.06], pipe.guide_size("sup"),
                          seed=pipe.profile.seed)
    assert sweep[["eps", "attack", "dsr"]].to_dict("records") == direct
    assert set(sweep["model"]) == {"sup"}
    restarts = studies.restarts("sup", 2, n=20)
    assert len(restarts) == 2 and restarts[1] <= restarts[0]
    transfer = studies.transfer("sup", "simclr", n=20)
    assert 0.0 <= transfer <= 1.0

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached study")

    # a new pipeline on the same store (a warm book) must read every study back without attacking again
    for name in ("eps_sweep", "restarts_dsr", "transfer_dsr"):
        monkeypatch.setattr(pl, name, fail)
    warm = Studies(Pipeline(pipe.profile, pipe.data, pipe.store, progress=False))
    assert warm.eps_sweep("sup", [0.01, 0.06], n=20).equals(sweep)
    assert warm.restarts(ModelId.pretrained("sup"), 2, n=20) == restarts
    assert warm.transfer("sup", "simclr", n=20) == transfer
    with pytest.raises(AssertionError, match="recomputed"):
        warm.restarts("sup", 3, n=20)  # other settings: a different study
    with pytest.raises(ConfigError, match="unknown attack setting"):
        warm.restarts("sup", 2, n=20, setting="medium")


def test_pipeline_mi_studies_are_cached(tiny_profile, tiny_data, tmp_path, monkeypatch):
    from satnb.nets import mi

    profile = tiny_profile.replace(mi_steps=20)
    studies = Studies(Pipeline(profile, tiny_data, Store(tmp_path), progress=False))
    feats = studies.mi_clean_adversarial("sup", batch_size=8)
    assert feats["batch_size"] == 8 and feats["clean vs clean"] <= feats["log_batch"] + 1e-6
    stairs = studies.mi_staircase(("infonce",), dim=4, batch_size=8, levels=(1, 2))
    assert len(stairs) == 2 * 20 and set(stairs["level"]) == {1, 2}
    study = studies.mi_batch_study(1.0, dim=4, batch_sizes=(8, 16), estimators=("infonce",))
    assert list(study["batch"]) == [8, 16]

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached study")

    for name in ("staircase", "batch_size_study", "mi_between_features"):
        monkeypatch.setattr(mi, name, fail)
    warm = Studies(Pipeline(profile, tiny_data, Store(tmp_path), progress=False))
    assert warm.mi_clean_adversarial("sup", batch_size=8) == feats
    assert warm.mi_staircase(("infonce",), dim=4, batch_size=8, levels=(1, 2)).equals(stairs)
    assert warm.mi_batch_study(1.0, dim=4, batch_sizes=(8, 16), estimators=("infonce",)).equals(study)


def test_features_are_cached_on_disk_and_match_a_fresh_extraction(tiny_pipeline, monkeypatch):
    pipe = tiny_pipeline
    test = pipe.features("sup", "test")
    torch.testing.assert_close(test, extract_features(pipe.entry("sup").model, pipe.data.x_test))
    acc = pipe.accuracy("sup")
    ex = Studies(pipe).optimization_examples("sup", n=3)
    assert ex["x"].shape == ex["adv"].shape == (3, 3, 32, 32) and ex["l2"].shape == (3,)
    broken = ex["success"]
    assert torch.allclose((ex["adv"] - ex["x"]).flatten(1).norm(dim=1)[broken], ex["l2"][broken], atol=1e-4)

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached stage")

    # a warm pipeline writes no checkpoint: features and examples come back from the store
    monkeypatch.setattr(Store, "save_checkpoint", fail)
    warm = Pipeline(pipe.profile, pipe.data, pipe.store, progress=False)
    assert torch.equal(warm.features("sup", "test"), test) and warm.accuracy("sup") == acc
    assert warm.accuracy("sup", k=1) <= 1.0
    assert torch.equal(Studies(warm).optimization_examples("sup", n=3)["adv"], ex["adv"])
    with pytest.raises(ConfigError, match="unknown split"):
        warm.features("sup", "train")


def test_label_scarce_regime_gives_labels_only_to_the_library(tiny_profile, tiny_data, tmp_path, monkeypatch):
    """Claim 4's proxy: SUP and the baselines see only the labelled images; SSL sees them all, without labels."""
    from satnb.experiment import pipeline as registry

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
    pipe = Pipeline(tiny_profile.replace(labelled_per_class=8, n_attack=10), tiny_data, Store(tmp_path),
                    progress=False)
    pipe.train("sup"), pipe.train("simclr"), pipe.baseline("at")
    assert len(pipe.library_index) == 80 and np.bincount(tiny_data.y_train[pipe.library_index]).tolist() == [8] * 10
    assert seen == {"sup": 80, "simclr": len(tiny_data.y_train), "at": 80}
    at = pipe.entry("at")
    assert at.id == ModelId.baseline("at") and at.id.base == ModelId.pretrained("sup") and at.kind == "baseline"
    assert pipe.baseline(ModelId.baseline("at")) is at
    with pytest.raises(ConfigError, match="labelled_per_class=999"):
        Pipeline(tiny_profile.replace(labelled_per_class=999), tiny_data, Store(tmp_path), progress=False)


def test_every_correct_image_is_attacked_and_the_papers_n_is_a_sub_view(tiny_pipeline):
    import dataclasses

    from satnb.core import stats

    pipe, data = tiny_pipeline, tiny_pipeline.data
    model, knn = pipe.entry("sup").model, pipe.library("sup")
    protocol = dataclasses.replace(pipe.profile.protocol, n_attack=None, n_subview=10)
    out = evaluate(model, knn, data.x_test, data.y_test, protocol, optimization=False, progress=False)
    correct = stats.unpack_bits(out["per_image"]["correct"])[: len(data.y_test)]
    assert out["n_attacked"] == int(correct.sum()) and out["n_subview"] == 10
    assert out["n_prefix"] == int(np.flatnonzero(correct)[-1]) + 1
    survived = stats.unpack_bits(out["per_image"]["survived_small"])[: out["n_attacked"]]
    assert out["dsr_small"] == pytest.approx(survived.mean())
    assert out["dsr_small_subview"] == pytest.approx(survived[:10].mean())  # the first 10 attacked images
    assert protocol.attack_count(7) == 7 and dataclasses.replace(protocol, n_attack=5).attack_count(7) == 5
    with pytest.raises(ConfigError, match="n_subview=0 must be a positive number"):
        dataclasses.replace(protocol, n_subview=0)
    with pytest.raises(ConfigError, match="or None"):
        dataclasses.replace(protocol, n_attack=0)


def test_strong_l2_runs_the_optimisation_attack_at_its_own_budget(tiny_pipeline):
    import dataclasses

    from satnb.protocol.zoo import strong_l2

    pipe, data = tiny_pipeline, tiny_pipeline.data
    model, knn, p = pipe.entry("sup").model, pipe.library("sup"), pipe.profile
    zoo = dataclasses.replace(p.zoo, strong_opt_binary_steps=2, strong_opt_steps=5, strong_opt_images=4)
    out = strong_l2(model, knn, data.x_test, data.y_test, p.protocol, zoo, progress=False)
    assert (out["binary_search_steps"], out["steps"], out["opt_n"]) == (2, 5, 4)
    assert len(out["l2_all_px"]) == 4 and out["guide"] == p.protocol.guide and out["seconds"] > 0
    # broken images are listed with their L2, and an image counts as broken only if the kNN is fooled
    assert out["opt_unbroken"] == sum(v is None for v in out["l2_all_px"])


def test_trajectory_points_keep_per_image_outcomes(tiny_pipeline):
    from satnb.experiment.pipeline import TRAJECTORY_FIELDS

    pipe = tiny_pipeline
    point = pipe._trajectory_point(pipe.entry("sup").model)
    assert set(point) == set(TRAJECTORY_FIELDS)
    assert {"correct", "survived_small", "survived_large"} <= set(point["per_image"])
