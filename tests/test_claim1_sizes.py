"""The models that decide claim 1 are attacked on more images where a profile says so, the grid's other cells and
the recipe variants on fewer; the others keep its sizes."""

import dataclasses

import pytest

from satnb.core.config import ConfigError
from satnb.core.identity import ModelId
from satnb.experiment.pipeline import Pipeline
from satnb.experiment.run import collect, decides_claim1


def test_which_models_decide_claim1():
    assert decides_claim1(ModelId.pretrained("sup", seed=2)) and decides_claim1(ModelId.pretrained("amdim"))
    assert not decides_claim1(ModelId.pretrained("npid"))
    assert not decides_claim1(ModelId.pretrained("sup", variant="ls0.1"))  # a recipe variant, not claim 1's SUP
    assert not decides_claim1(ModelId.sat(ModelId.pretrained("amdim")))


def test_claim1_sizes_reach_only_claim1_models(tiny_pipeline):
    pipe = tiny_pipeline
    pipe.profile = dataclasses.replace(pipe.profile, grid=False, seeds=(0,), claim1_zoo_images=30,
                                       claim1_opt_images=10)
    out = collect(pipe, ("train", "evaluate", "robustness"), ("npid", "sup"), ("pixel",))
    ev, zoo = out["evaluation"]["pixel"], out["robustness"]["pixel"]
    assert ev["sup"]["opt_n"] == 10 and ev["npid"]["opt_n"] == pipe.profile.protocol.n_attack_opt == 6
    assert zoo["sup"]["n_attacked"] == 30 and zoo["npid"]["n_attacked"] == pipe.profile.zoo.n_images == 25
    assert out["settings"]["claim1_zoo_images"] == 30  # recorded with the run's settings


def test_without_claim1_sizes_the_profile_is_used_as_is(tiny_profile):
    assert tiny_profile.for_claim1() is tiny_profile


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_claim1_sizes_are_refused(tiny_profile, bad):
    with pytest.raises(ConfigError, match="claim1_zoo_images=.* must be a positive number of images"):
        dataclasses.replace(tiny_profile, claim1_zoo_images=bad)


def test_grid_sizes_reach_only_the_other_cells(tiny_pipeline):
    pipe = tiny_pipeline
    pipe.profile = dataclasses.replace(pipe.profile, seeds=(0,), sup_variants=(), grid_images=12)
    out = collect(pipe, ("train", "evaluate"), ("npid", "sup"), ("pixel", "normalized"))
    ev, cells = out["evaluation"], {(c["eps_space"], c["guide"]): c["evaluation"] for c in out["grid"]}
    n = pipe.profile.protocol.n_attack  # the primary cell: the profile's N (its first 30 correct images)
    assert ev["pixel"]["sup"]["n_attacked"] == ev["pixel"]["npid"]["n_attacked"] == n == 30
    assert ev["pixel"]["sup"]["opt_n"] == 6
    assert ev["normalized"]["sup"]["n_attacked"] == 12  # another eps convention: a grid cell
    assert {r["n_attacked"] for c in cells.values() for r in c.values()} == {12}  # the other guide rule
    assert out["settings"]["grid_images"] == 12


def test_grid_sizes_cap_every_attack(tiny_profile):
    g = dataclasses.replace(tiny_profile, grid_images=8).for_grid()
    assert (g.protocol.n_attack, g.protocol.n_attack_opt, g.zoo.n_images, g.protocol.n_subview) == (8, 6, 8, 8)
    assert tiny_profile.for_grid() is tiny_profile
    with pytest.raises(ConfigError, match="grid_images=0"):
        dataclasses.replace(tiny_profile, grid_images=0)


def test_trajectory_points_attack_the_first_trajectory_images(tiny_pipeline):
    pipe = tiny_pipeline
    pipe.profile = dataclasses.replace(pipe.profile, seeds=(0,), trajectory_images=10)
    short = pipe.sat("npid")
    assert short.trajectory and {p["n_attacked"] for p in short.trajectory} == {10}
    pipe.profile = dataclasses.replace(pipe.profile, trajectory_images=None)  # the protocol's N: another run
    pipe.entries.pop(short.id)
    full = pipe.sat("npid")
    assert {p["n_attacked"] for p in full.trajectory} == {pipe.profile.protocol.n_attack} == {30}
    assert full.key != short.key and not full.cached
    pipe.profile = dataclasses.replace(pipe.profile, trajectory_images=100)  # more than N: the protocol's N
    assert pipe._trajectory_protocol is pipe.profile.protocol


def test_bad_trajectory_images_are_refused(tiny_profile):
    with pytest.raises(ConfigError, match="trajectory_images=0"):
        dataclasses.replace(tiny_profile, trajectory_images=0)


def test_the_grid_measures_the_models_the_run_made(tiny_pipeline):
    pipe = tiny_pipeline
    pipe.profile = dataclasses.replace(pipe.profile, seeds=(0,), trajectory_images=10, grid_images=10)
    grid_profile = pipe.profile.for_grid()
    # a pipeline of the grid's sizes alone keys a fine-tuning run otherwise (its N is the trajectory's)
    assert Pipeline(grid_profile, pipe.data, pipe.store)._trajectory_key != pipe._trajectory_key
    sized = pipe.sized(grid_profile)
    made = sized.entry(ModelId.sat(ModelId.pretrained("npid"), objective=pipe.profile.sat.objective))
    assert pipe.entry(made.id) is made and not made.cached
    again = Pipeline(pipe.profile, pipe.data, pipe.store).sat("npid")  # the run's own key: read, not fine-tuned
    assert again.cached and again.key == made.key


def test_a_sized_pipeline_differs_only_in_attack_sizes(tiny_pipeline):
    with pytest.raises(ConfigError, match="only in attack sizes"):
        tiny_pipeline.sized(dataclasses.replace(tiny_pipeline.profile, seed=tiny_pipeline.profile.seed + 1))
