"""The primary protocol's recipes, training seeds as part of a model's identity, and the protocol grid of a run."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from satnb.core.config import PROFILE_NAMES, ConfigError, get_profile
from satnb.core.identity import ModelId
from satnb.core.variants import RECIPE_VARIANTS


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_primary_sup_is_plain_cross_entropy_in_every_profile(name):
    profile = get_profile(name)
    assert profile.train["sup"].label_smoothing == 0.0
    assert profile.protocol.guide == "paper" and profile.sat.guide == "paper"
    for twin in profile.twins().values():
        assert twin.label_smoothing == 0.0


def test_recipe_variant_changes_only_its_settings(tiny_pipeline):
    plain = tiny_pipeline.recipe(ModelId.pretrained("sup"))
    smoothed = tiny_pipeline.recipe(ModelId.pretrained("sup", variant="ls0.1"))
    assert smoothed == dataclasses.replace(plain, label_smoothing=0.1)
    assert tiny_pipeline.recipe(ModelId.pretrained("sup", variant="adam")).optimizer == "adam"
    assert tiny_pipeline.recipe(ModelId.pretrained("sup", seed=2)) == plain  # a seed changes no setting
    with pytest.raises(ConfigError, match="unknown recipe variant 'ls9'"):
        tiny_pipeline.recipe(ModelId.pretrained("sup", variant="ls9"))


def test_profile_refuses_bad_seeds_and_variants():
    quick = get_profile("quick")
    assert quick.seeds == (0, 1, 2)
    for seeds in ((), (1, 2), (0, 0), (0, -1)):
        with pytest.raises(ConfigError, match="seeds="):
            quick.replace(seeds=seeds)
    assert quick.grid_seeds == 1  # the cells beside the primary: seed 0 only at quick (cost)
    with pytest.raises(ConfigError, match="grid_seeds=0"):
        quick.replace(grid_seeds=0)
    for bad in (0, True, 1.5):
        with pytest.raises(ConfigError, match="baseline_seeds="):
            quick.replace(baseline_seeds=bad)
    cpu = get_profile("cpu")  # the reference run: three seeds, AT/MAT/ALP from the primary SUP only
    assert cpu.seeds == (0, 1, 2) and cpu.baseline_seeds == 1 and quick.baseline_seeds is None
    with pytest.raises(ConfigError, match="unknown SUP recipe variant"):
        quick.replace(sup_variants=("nope",))
    assert set(quick.sup_variants) <= set(RECIPE_VARIANTS)


def test_a_training_seed_is_part_of_the_model(tiny_profile, tiny_data, tmp_path):
    from satnb.core.store import Store
    from satnb.experiment.pipeline import Pipeline

    short = dataclasses.replace(tiny_profile.train["sup"], epochs=2)
    tiny_pipeline = Pipeline(tiny_profile.replace(train={"sup": short}), tiny_data, Store(tmp_path / "s"),
                             progress=False)
    a, b = tiny_pipeline.train("sup"), tiny_pipeline.train(ModelId.pretrained("sup", seed=1))
    assert b.name == "sup-seed1" and a.key != b.key
    assert tiny_pipeline.training_seed(b.id) == tiny_pipeline.profile.seed + 1000
    wa, wb = (next(iter(e.model.parameters())).detach() for e in (a, b))
    assert not torch.equal(wa, wb)  # another initialisation, not the same model under another name
    again = tiny_pipeline.train(ModelId.pretrained("sup", seed=1))
    assert again is b
    mat = tiny_pipeline.baseline(ModelId.baseline("mat", base=b.id))
    assert mat.name == "mat-seed1" and mat.id.seed == 1


@pytest.mark.slow
def test_collect_trains_every_seed_and_evaluates_the_grid(tiny_profile, tiny_data, tmp_path):
    from satnb.core.store import Store
    from satnb.experiment.pipeline import Pipeline
    from satnb.experiment.run import collect
    from satnb.report.record import check_entries, model_ids

    short = dataclasses.replace(tiny_profile.train["sup"], epochs=2)
    profile = tiny_profile.replace(
        seeds=(0, 1), sup_variants=("ls0.1",), train={"sup": short, "npid": short}, n_attack=8, n_attack_opt=2,
        opt_binary_steps=1, opt_steps=3, zoo=dataclasses.replace(tiny_profile.zoo, n_images=5, queries=10, restarts=1,
                                                                  steps_factor=1))
    pipe = Pipeline(profile, tiny_data, Store(tmp_path / "store"), progress=False)
    res = collect(pipe, stages=("train", "evaluate", "robustness"), methods=("sup",),
                  eps_spaces=("pixel", "normalized"))
    check_entries(res)
    names = set(model_ids(res))
    assert names == {"sup", "sup-seed1", "sup-ls0.1"}
    assert res["seeds"] == [0, 1]
    assert res["protocol"]["primary"] == {"eps_space": "pixel", "guide": "paper", "attacks": "paper"}
    assert any(row["setting"] == "SUP" for row in res["protocol"]["declared"])
    # the primary cell evaluates every model; the grid the claim models under the other guide rule
    assert set(res["evaluation"]["pixel"]) == names
    assert all(r["guide"] == "paper" for r in res["evaluation"]["pixel"].values())
    assert set(res["evaluation"]["normalized"]) == names and set(res["robustness"]) == {"pixel", "normalized"}
    cells = {(c["eps_space"], c["guide"]) for c in res["grid"]}
    assert cells == {("pixel", "authors"), ("normalized", "authors")}
    for cell in res["grid"]:
        assert set(cell["evaluation"]) == names == set(cell["robustness"])
        assert all(r["guide"] == "authors" and r["eps_space"] == cell["eps_space"]
                   for r in cell["evaluation"].values())
        assert all(z["guide"] == "authors" for z in cell["robustness"].values())


def test_sat_variants_are_the_authors_configuration_and_the_normalised_units(tiny_pipeline):
    from satnb.experiment.run import sat_variant_ids

    amdim = ModelId.pretrained("amdim")
    authors, normalized = sat_variant_ids(tiny_pipeline.profile)
    assert (authors.name, normalized.name) == ("sat-amdim-amdim-authors", "sat-amdim-normalized")
    s, eps = tiny_pipeline.sat_settings(authors)
    assert (s.objective, s.keep_only_successful, s.betas, s.weight_decay, s.refresh_every, s.guide, eps) == \
        ("amdim", True, (0.8, 0.999), 1e-5, 1, "authors", "pixel")
    s, eps = tiny_pipeline.sat_settings(normalized)
    assert s == tiny_pipeline.profile.sat and eps == "normalized"
    with pytest.raises(ConfigError, match="objective='amdim'"):
        tiny_pipeline.sat_settings(ModelId.sat(amdim, variant="authors"))
    with pytest.raises(ConfigError, match="unknown SAT variant"):
        tiny_pipeline.sat_settings(ModelId.sat(amdim, variant="nope"))


def test_the_grid_judges_the_claim_models_and_the_baselines_only_with_few_labels():
    from satnb.experiment.run import grid_ids

    sup, amdim = ModelId.pretrained("sup", seed=1), ModelId.pretrained("amdim")
    models = [amdim, sup, ModelId.pretrained("simclr"), ModelId.sat(amdim), ModelId.sat(ModelId.pretrained("simclr")),
              ModelId.baseline("mat", base=sup), ModelId.pretrained("sup", twin="resnet18")]
    assert grid_ids(models) == [amdim, sup, ModelId.sat(amdim)]
    assert grid_ids(models, label_scarce=True) == [amdim, sup, ModelId.sat(amdim), ModelId.baseline("mat", base=sup)]
