"""A results record's models as typed identities: written by `collect`, read back equal, never parsed from names."""

import dataclasses
import json

import pytest

from satnb.core.config import PROFILES, TrainSettings
from satnb.core.identity import ModelId, supervised_twin
from satnb.report import record

RESNET, AMDIM_ENC = "ResNet-18", "AMDIM ndf 32 BN"
IDS = [ModelId.pretrained("amdim"), ModelId.pretrained("sup"), ModelId.pretrained("npid", seed=2),
       ModelId.pretrained("sup", twin="resnet18"), ModelId.pretrained("simclr", variant="ls0.1"),
       ModelId.sat("amdim"), ModelId.sat("npid", objective="amdim"),
       ModelId.sat("amdim", refresh_every=10, iterations=40), ModelId.sat(ModelId.pretrained("npid", seed=2)),
       ModelId.baseline("mat"),
       ModelId.baseline("at", base=ModelId.pretrained("sup", twin="resnet18"))]


def _file(tmp_path, **parts) -> dict:
    """A results file on disk with the given parts, read back with `load_results`."""
    res = {"profile": "smoke", "dataset": {"dataset": "cifar10", "source": "test"}, "evaluation": {}, **parts}
    (tmp_path / "run.json").write_text(json.dumps(res))
    return record.load_results(tmp_path / "run.json")


def test_identities_round_trip_through_a_results_file(tmp_path):
    written = {m.name: dataclasses.asdict(m) for m in IDS}  # what `collect` writes into "models"
    ids = record.model_ids(_file(tmp_path, models=written))
    assert list(ids.values()) == IDS and list(ids) == [m.name for m in IDS]
    assert [record.label(n, ids) for n in ids] == [m.label for m in IDS]
    assert ids["sat-npid-seed2"].base == ModelId.pretrained("npid", seed=2)
    assert record.label(ids["at-sup-resnet18"]) == "AT (from SUP (resnet18 twin))"


def test_collect_writes_the_models_it_ran(tiny_profile, tiny_data, tmp_path):
    from satnb.core.store import Store
    from satnb.experiment.pipeline import Pipeline
    from satnb.experiment.run import collect

    small = TrainSettings("convnet", epochs=1, batch_size=50, lr=5e-3, encoder_kwargs={"widths": (4, 8)})
    other = dataclasses.replace(small, encoder_kwargs={"widths": (8, 8)})  # NPID on another size: SUP gets a twin
    profile = tiny_profile.replace(train={"sup": small, "npid": other}, sup_variants=())
    pipe = Pipeline(profile, tiny_data.subset(100, 40, seed=0), Store(tmp_path / "store"), progress=False)
    res = collect(pipe, stages=("train",), methods=("npid", "sup"))
    twin = supervised_twin("convnet", {"widths": (8, 8)}, "convnet")
    ids = record.model_ids(_file(tmp_path, **json.loads(json.dumps(res))))
    assert ids == {m.name: m for m in (ModelId.pretrained("npid"), ModelId.pretrained("sup"), twin)}
    assert set(ids) == set(res["training"]) and record.label(twin.name, ids) == "SUP (convnet-widths(8,8) twin)"


def test_a_bad_models_entry_names_itself(tmp_path):
    with pytest.raises(ValueError, match="models.amdim describes the model 'sup'"):
        _file(tmp_path, models={"amdim": dataclasses.asdict(ModelId.pretrained("sup"))})
    with pytest.raises(ValueError, match="models.sat-amdim is not a model identity"):
        _file(tmp_path, models={"sat-amdim": {"method": "sat"}})  # no base: SAT of nothing
    with pytest.raises(ValueError, match="models.x is not a model identity"):
        _file(tmp_path, models={"x": {"method": "sup", "colour": "red"}})


@pytest.mark.parametrize("name", ["cpu-cifar10.json", "quick-cifar10.json"])
def test_older_files_read_their_models_from_the_structure(name):
    # a file made before the "models" entry: its models are read from its structure, and must be the very
    # identities a newer file records (seeds, SUP's and SAT's variants, the baselines)
    res = record.load_results(record.results_dir() / name)
    recorded = record.model_ids(res)
    older = {k: v for k, v in res.items() if k != "models"}
    assert record.model_ids(older) == recorded
    assert set(recorded) == set(res["evaluation"]["pixel"])
    assert ModelId.baseline("alp", base=ModelId.pretrained("sup")) in recorded.values()


def test_labels_are_looked_up_never_parsed():
    assert record.label("sat-amdim") == "SAT (AMDIM)" and record.label("sup-resnet18") == "SUP (resnet18 twin)"
    assert record.label("sat-amdim-amdim") == "SAT (AMDIM, AMDIM NCE)"
    with pytest.raises(ValueError, match="no model called 'sat-foo' is known.*ModelId.label"):
        record.label("sat-foo")
    # a name only one record knows is labelled through that record's identities
    mine = {"sup-convnet": ModelId.pretrained("sup", twin="convnet")}
    assert record.label("sup-convnet", mine) == "SUP (convnet twin)"


def test_supervised_twins_are_named_as_the_profiles_name_them():
    for p in PROFILES.values():
        assert [t.name for t in dict.fromkeys(record._twins(p.to_dict()).values())] == list(p.supervised_twins())
    # the same builder at another size: tagged by its sizes, from tuples or from the lists JSON reads back
    assert supervised_twin("convnet", {"widths": (16, 16)}, "convnet").name == "sup-convnet-widths(16,16)"
    assert supervised_twin("convnet", {"widths": [16, 16]}, "convnet").name == "sup-convnet-widths(16,16)"


# ----------------------------------------------------------------------------- encoders and the same-encoder rule


def _tiny_record(models: bool = False) -> dict:
    """SUP on AMDIM's encoder, NPID on a ResNet-18 with SUP's twin there; SAT and MAT evaluated without encoders."""
    train = {"amdim": {"encoder": "amdim", "encoder_kwargs": {"ndf": 32, "use_bn": True}},
             "sup": {"encoder": "amdim", "encoder_kwargs": {"ndf": 32, "use_bn": True}},
             "npid": {"encoder": "resnet18", "encoder_kwargs": {}}}
    ev = {"amdim": {"encoder": AMDIM_ENC}, "sup": {"encoder": AMDIM_ENC}, "npid": {"encoder": RESNET},
          "sup-resnet18": {"encoder": RESNET}, "sat-amdim": {}, "mat": {}}
    res = {"settings": {"train": train}, "evaluation": {"pixel": ev},
           "training": {"amdim": {"encoder": "amdim", "encoder_name": AMDIM_ENC}, "npid": {"encoder": "resnet18"}},
           "sat": {"amdim": {"name": "sat-amdim"}}, "baselines": {"mat": {"name": "mat"}}}
    if models:
        ids = [*map(ModelId.pretrained, ("amdim", "sup", "npid")), ModelId.pretrained("sup", twin="resnet18"),
               ModelId.sat("amdim"), ModelId.baseline("mat")]
        res["models"] = {m.name: dataclasses.asdict(m) for m in ids}
    return res


@pytest.mark.parametrize("models", [False, True], ids=["structure", "models entry"])
def test_the_supervised_model_on_the_same_encoder(models):
    res = _tiny_record(models)
    ids, encoders = record.model_ids(res), record.model_encoders(res)
    assert ids["sup-resnet18"] == ModelId.pretrained("sup", twin="resnet18")
    assert record.same_encoder_supervised(encoders, "amdim", ids) == "sup"
    assert record.same_encoder_supervised(encoders, "npid", ids) == "sup-resnet18"
    assert record.same_encoder_supervised(encoders, "sat-amdim", ids) == "sup"  # SAT runs on its seed's encoder
    assert record.same_encoder_supervised({n: encoders[n] for n in ("npid", "sup")}, "npid", ids) is None
    assert record.same_encoder_supervised({"npid": record.MISSING, "sup": record.MISSING}, "npid", ids) is None
    # the twin is the choice only where SUP does not share the encoder
    assert record.same_encoder_supervised({**encoders, "npid": AMDIM_ENC}, "npid", ids) == "sup"


def test_encoders_come_from_evaluation_then_training_then_settings():
    res = _tiny_record()
    enc = record.model_encoders(res)
    assert enc["amdim"] == AMDIM_ENC and enc["npid"] == RESNET  # the evaluation's
    assert enc["sat-amdim"] == AMDIM_ENC  # its seed's pretraining (training.amdim.encoder_name)
    assert enc["mat"] == "AMDIM ndf 32 BN (from settings)"  # SUP's settings: no evaluation or pretraining names it
    del res["evaluation"]["pixel"]["sup-resnet18"]["encoder"]
    assert record.model_encoders(res)["sup-resnet18"] == "ResNet-18 (from settings)"  # NPID's encoder, SUP's recipe
    del res["settings"]
    assert record.encoder_name(res, "mat") == record.MISSING
    assert record.settings_encoder_name("convnet", {"widths": (8, 16)}) == "convnet widths 8-16"


def test_every_model_a_profile_can_make_has_a_label_without_its_record():
    """Seeds and variants included: a chapter that labels a committed run's model by name never fails."""
    from satnb.core.config import get_profile
    from satnb.experiment.run import grid_ids, pretrained_ids, sat_variant_ids

    quick = get_profile("quick")
    made = pretrained_ids(quick, ("amdim", "npid", "simclr", "sup"), quick.seeds) + sat_variant_ids(quick)
    made += [ModelId.sat(m) for m in made if m.method in ("amdim", "npid", "simclr") and not m.variant]
    made += [ModelId.baseline(b, base=m) for m in made if m.method == "sup" and not m.variant for b in ("at", "mat")]
    assert len(grid_ids(made)) > 10
    for mid in made:
        assert record.label(mid.name) == mid.label
