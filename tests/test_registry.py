"""The pipeline's training curves, supervised twins, typed identities and the SAT refresh-period check (tiny data)."""

import dataclasses

import pytest

from satnb.core.config import ConfigError
from satnb.core.identity import ModelId
from satnb.core.store import Store
from satnb.experiment.pipeline import Pipeline
from satnb.experiment.run import twin_ids
from satnb.experiment.studies import Studies
from satnb.nets.convnets import SmallConvNet
from satnb.nets.encoders import describe_encoder
from satnb.nets.models import Classifier
from satnb.report.record import label


@pytest.fixture(scope="module")
def fast(tiny_profile):
    """The tiny profile with a 3-epoch recipe (the registry's tests look at curves and names, not accuracy)."""
    small = dataclasses.replace(tiny_profile.train["sup"], epochs=3, batch_size=50, lr=0.05, optimizer="sgd",
                                schedule="onecycle", warmup_epochs=1, encoder_kwargs={"widths": (8, 16)})
    return tiny_profile.replace(train={m: small for m in ("sup", "simclr", "npid")}, n_attack=20, n_attack_opt=4)


def test_curve_points_follow_curve_every_and_match_the_evaluation(fast, tiny_data, tmp_path):
    pipe = Pipeline(fast.replace(curve_every=2), tiny_data, Store(tmp_path), progress=False)
    hist = pipe.entry("sup").history
    assert [("knn_acc" in h) for h in hist] == [False, True, True]  # every 2 epochs and at the last
    # the last point is the clean kNN accuracy the evaluation measures on its own
    assert hist[-1]["knn_acc"] == pytest.approx(Studies(pipe).evaluate("sup", optimization=False)["acc"])
    # the curve is part of the cache key: without it the same weights come back without points
    plain = Pipeline(fast, tiny_data, Store(tmp_path), progress=False).entry("sup")
    assert not plain.cached and all("knn_acc" not in h for h in plain.history)


def test_a_supervised_twin_is_trained_for_another_encoder(fast, tiny_data, tmp_path):
    resnet = dataclasses.replace(fast.train["sup"], encoder="resnet18", encoder_kwargs={"widths": (8, 8, 8, 8)})
    prof = fast.replace(train={**fast.train, "sup": resnet})
    twin_id = ModelId.pretrained("sup", twin="convnet")
    assert list(prof.twins()) == [twin_id] and list(prof.supervised_twins()) == ["sup-convnet"]  # NPID, SimCLR: one
    assert twin_ids(prof, ("amdim", "npid", "sup")) == [twin_id]
    assert twin_ids(prof, ("amdim", "npid")) == []  # no SUP, no twin
    pipe = Pipeline(prof, tiny_data, Store(tmp_path), progress=False)
    twin = pipe.entry("sup-convnet")
    assert twin.id == twin_id and pipe.entry(twin_id) is twin and twin.id.supervised
    assert isinstance(twin.model, Classifier) and isinstance(twin.model.encoder, SmallConvNet)
    assert describe_encoder(twin.model) == describe_encoder(pipe.entry("npid").model) == "convnet 8-16"
    assert describe_encoder(pipe.entry("sup").model) == "ResNet-18 8-8-8-8"
    assert pipe.recipe(twin_id) == prof.twins()[twin_id] and pipe.recipe(twin_id).encoder == "convnet"
    assert Studies(pipe).evaluate(twin_id, optimization=False)["encoder"] == "convnet 8-16"
    assert label(twin.id) == "SUP (convnet twin)"
    # the same kind of encoder at another size gets a twin named by its size
    wide = dataclasses.replace(fast.train["npid"], encoder_kwargs={"widths": (16, 16)})
    assert list(fast.replace(train={**fast.train, "npid": wide}).supervised_twins()) == ["sup-convnet-widths(16,16)"]


def test_sat_models_are_named_by_their_identity(fast, tiny_data, tmp_path):
    pipe = Pipeline(fast, tiny_data, Store(tmp_path), progress=False)
    plain = pipe.sat("simclr")
    assert plain.id == ModelId.sat("simclr") and plain.name == "sat-simclr" and plain.kind == "sat"
    assert pipe.sat(ModelId.pretrained("simclr")) is plain and pipe.entry("sat-simclr") is plain
    assert plain.fine_tuning_record()["seed"] == "simclr" and [r["iteration"] for r in plain.trajectory] == [0, 2]
    # an override names both the refresh period and the length, the profile's filling the one not given
    longer = pipe.sat(ModelId.sat("simclr", iterations=2))
    assert longer.id == ModelId.sat("simclr", refresh_every=2, iterations=2)
    assert longer.name == "sat-simclr-refresh2-it2" and longer.key == plain.key  # the same run, cached
    with pytest.raises(ConfigError, match="SAT fine-tunes a self-supervised model"):
        pipe.sat("sup")


def test_refresh_check_compares_with_refreshing_every_iteration(fast, tiny_data, tmp_path):
    pipe = Pipeline(fast.replace(refresh_check_iterations=2), tiny_data, Store(tmp_path), progress=False)
    out = Studies(pipe).refresh_check("simclr")
    assert out["iterations"] == 2 and out["refresh_every"] == 2 and out["seed"] == "simclr"
    assert set(out["runs"]) == {"1", "2"}
    assert out["runs"]["1"]["name"] == "sat-simclr-refresh1-it2"
    assert pipe.entry(ModelId.sat("simclr", refresh_every=1, iterations=2)).name == "sat-simclr-refresh1-it2"
    for key in ("dsr_small", "robust_small"):
        lo, hi = out[f"{key}_difference_ci"]
        assert lo <= out[f"{key}_difference"] <= hi
        assert out[f"{key}_difference"] == pytest.approx(out["runs"]["2"][key] - out["runs"]["1"][key])
    # a profile that already refreshes every iteration needs no check
    every = fast.replace(refresh_check_iterations=2, sat=dataclasses.replace(fast.sat, refresh_every=1))
    assert Studies(Pipeline(every, tiny_data, Store(tmp_path), progress=False)).refresh_check("simclr") is None
