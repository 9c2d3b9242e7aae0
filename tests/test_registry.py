"""The registry's training curves, supervised twins and the SAT refresh-period check, on tiny offline data."""

import dataclasses

import pytest

from satnb.config import SATSettings, TrainSettings, get_profile
from satnb.data import load_digits
from satnb.models import Classifier, SmallConvNet, describe_encoder
from satnb.pipeline import Pipeline
from satnb.results import twin_names
from satnb.store import Store
from satnb.tables import label


@pytest.fixture(scope="module")
def tiny():
    data = load_digits().subset(300, 100, seed=0)
    small = TrainSettings("convnet", epochs=3, batch_size=50, lr=0.05, optimizer="sgd", schedule="onecycle",
                          warmup_epochs=1, encoder_kwargs={"widths": (8, 16)})
    profile = get_profile("smoke").replace(
        train={m: small for m in ("sup", "simclr", "npid")}, k=5, m=10, n_attack=20, n_attack_opt=4,
        opt_binary_steps=2, opt_steps=5, curve_every=2,
        sat=SATSettings(iterations=2, batch_size=40, refresh_every=2, eval_every=2))
    return data, profile


def test_curve_points_follow_curve_every_and_match_the_evaluation(tiny, tmp_path):
    data, profile = tiny
    pipe = Pipeline(profile, data, Store(tmp_path), progress=False)
    hist = pipe.entry("sup").history
    assert [("knn_acc" in h) for h in hist] == [False, True, True]  # every 2 epochs and at the last
    # the last point is the clean kNN accuracy the evaluation measures on its own
    assert hist[-1]["knn_acc"] == pytest.approx(pipe.evaluate("sup", optimization=False)["acc"])
    # the curve is part of the cache key: without it the same weights come back without points
    plain = Pipeline(profile.replace(curve_every=0), data, Store(tmp_path), progress=False).entry("sup")
    assert not plain.cached and all("knn_acc" not in h for h in plain.history)


def test_a_supervised_twin_is_trained_for_another_encoder(tiny, tmp_path):
    data, profile = tiny
    resnet = dataclasses.replace(profile.train["sup"], encoder="resnet18", encoder_kwargs={"widths": (8, 8, 8, 8)})
    prof = profile.replace(train={**profile.train, "sup": resnet}, curve_every=0)
    assert list(prof.supervised_twins()) == ["sup-convnet"]  # NPID and SimCLR share one twin
    assert twin_names(prof, ("amdim", "npid", "sup")) == ["sup-convnet"]
    assert twin_names(prof, ("amdim", "npid")) == []  # no SUP, no twin
    pipe = Pipeline(prof, data, Store(tmp_path), progress=False)
    twin = pipe.entry("sup-convnet").model
    assert isinstance(twin, Classifier) and isinstance(twin.encoder, SmallConvNet)
    assert describe_encoder(twin) == describe_encoder(pipe.entry("npid").model) == "convnet 8-16"
    assert describe_encoder(pipe.entry("sup").model) == "ResNet-18 8-8-8-8"
    assert pipe.evaluate("sup-convnet", optimization=False)["encoder"] == "convnet 8-16"
    assert label("sup-convnet") == "SUP (convnet twin)"
    # the same kind of encoder at another size gets a twin named by its size
    wide = dataclasses.replace(profile.train["npid"], encoder_kwargs={"widths": (16, 16)})
    assert list(profile.replace(train={**profile.train, "npid": wide}).supervised_twins()) == \
        ["sup-convnet-widths(16,16)"]


def test_refresh_check_compares_with_refreshing_every_iteration(tiny, tmp_path):
    data, profile = tiny
    pipe = Pipeline(profile.replace(refresh_check_iterations=2, curve_every=0), data, Store(tmp_path),
                    progress=False)
    out = pipe.refresh_check("simclr")
    assert out["iterations"] == 2 and out["refresh_every"] == 2
    assert set(out["runs"]) == {"1", "2"}
    assert out["runs"]["1"]["name"] == "sat-simclr-refresh1-it2"
    for key in ("dsr_small", "robust_small"):
        lo, hi = out[f"{key}_difference_ci"]
        assert lo <= out[f"{key}_difference"] <= hi
        assert out[f"{key}_difference"] == pytest.approx(out["runs"]["2"][key] - out["runs"]["1"][key])
    # a profile that already refreshes every iteration needs no check
    every = profile.replace(refresh_check_iterations=2, sat=dataclasses.replace(profile.sat, refresh_every=1))
    assert Pipeline(every, data, Store(tmp_path), progress=False).refresh_check("simclr") is None
