"""The verdict rules: p-values of intervals, Holm within a claim, mixed claims, seeds, the protocol grid."""

import dataclasses
import math

import numpy as np
import pytest
from test_claims import models, record, run

from satnb.core import stats
from satnb.core.config import ConfigError
from satnb.report import claims, grid, verdicts
from satnb.report.record import worst_case_view
from satnb.report.verdicts import Cell

# ----------------------------------------------------------------------------- p-values and Holm


def test_implied_p_agrees_with_the_interval():
    rng = np.random.default_rng(0)
    for _ in range(5000):
        value = rng.normal(0, 1)
        lo, hi = value - rng.exponential(0.5), value + rng.exponential(0.5)  # lopsided, as bootstrap ones can be
        threshold = rng.choice([0.0, rng.normal(0, 1)])
        d = stats.Interval(value, lo, hi, 100)
        p = verdicts.implied_p(d, threshold)
        assert 0.0 <= p <= 1.0
        assert (p < 0.05) == (lo > threshold or hi < threshold), (d, threshold, p)
    assert verdicts.implied_p(stats.Interval(math.nan, math.nan, math.nan, 0)) == 1.0
    assert verdicts.implied_p(stats.Interval(0.2, 0.2, 0.2, 10)) == 0.0
    assert verdicts.implied_p(stats.Interval(0.0, 0.0, 0.0, 10)) == 1.0
    # the half of the interval on the threshold's side sets the standard error: here (0.1 - 0.0) / Z95
    assert verdicts.implied_p(stats.Interval(0.1, 0.0, 0.9, 50)) == pytest.approx(0.05)
    assert verdicts.implied_p(stats.Interval(0.1, 0.05, 0.9, 50)) == pytest.approx(math.erfc(2 * stats.Z95 / 2 ** 0.5))
    assert verdicts.implied_p(stats.Interval(math.inf, 0.3, math.inf, 50)) == 0.0  # an unbroken model's L2


def test_holm_against_a_hand_computed_example():
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, then 0.03 > 0.05/2 stops (0.04 is not rejected either)
    assert verdicts.holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]
    # each step passes: 0.001 <= 0.05/3, 0.013 <= 0.05/2, 0.02 <= 0.05 (Bonferroni would reject only the first)
    assert verdicts.holm([0.02, 0.001, 0.013]) == [True, True, True]
    assert verdicts.holm([0.04, 0.04]) == [False, False]
    assert verdicts.holm([0.05]) == [True] and verdicts.holm([]) == []
    assert verdicts.holm([0.01, 0.2], alpha=0.01) == [False, False]


def test_words_and_combine():
    assert verdicts.word("inconclusive at this N (about 2,300 images would decide it)") == verdicts.INCONCLUSIVE
    assert verdicts.word("depends on the protocol (flipped by the eps convention)") == verdicts.DEPENDS
    H, F, I = verdicts.HOLDS, verdicts.FAILS, verdicts.INCONCLUSIVE  # noqa: E741
    assert verdicts.combine([H, H]) == H
    assert verdicts.combine([F, I, I]) == F
    assert verdicts.combine([H, F, I]) == verdicts.MIXED
    assert verdicts.combine([H, I]) == I
    assert claims.HOLDS is verdicts.HOLDS and claims.NOT_TESTED == "not tested"  # the old imports keep working


# ----------------------------------------------------------------------------- Holm and mixed in the claims


def claim1_pair(a_only: int, b_only: int, n: int = 400, w: int = 40):
    """AMDIM and SUP records whose DSR large differs by a_only - b_only discordant images, all else equal.

    AMDIM classifies all n images correctly, SUP all but the last w: both attack the first n - w (the
    common set), where their small outcomes agree and their large ones differ on a_only + b_only images.
    On SUP's w misclassified images AMDIM survives the large attack b_only - a_only times, so robust
    accuracy large (over all n images) is equal; median L2 is equal on the images both attacked.
    """
    c = n - w
    shared = np.arange(c) % 2 == 0
    large_a, large_b = shared.copy(), shared.copy()
    large_a[:a_only + b_only] = np.arange(a_only + b_only) < a_only
    large_b[:a_only + b_only] = ~large_a[:a_only + b_only]
    extra = np.arange(w) < b_only - a_only  # AMDIM's large survivals on SUP's misclassified images
    out = {}
    for name, correct, small, large in (("amdim", np.ones(n, bool), np.r_[shared, np.zeros(w, bool)],
                                         np.r_[large_a, extra]),
                                        ("sup", np.r_[np.ones(c, bool), np.zeros(w, bool)], shared, large_b)):
        out[name] = {"acc": float(correct.mean()), "dsr_small": float(small.mean()), "dsr_large": float(large.mean()),
                     "n_attacked": len(small), "n_prefix": n, "opt_n": 50, "l2_all_px": [1.0] * 50,
                     "per_image": {"correct": stats.pack_bits(correct), "survived_small": stats.pack_bits(small),
                                   "survived_large": stats.pack_bits(large)}}
    return out


def test_one_failing_comparison_at_p_004_is_not_a_failure_after_holm():
    res = run(claim1_pair(a_only=11, b_only=23))
    c = claims.assess(res)[0]
    by = {k.metric: k for k in c.comparisons}
    assert len(by) == 5
    fails = by["DSR large"]
    assert fails.diff.hi < 0 and 0.03 < fails.p < 0.05  # the interval alone says "does not hold" ...
    assert all(k.p > 0.5 for m, k in by.items() if m != "DSR large")
    assert fails.verdict == verdicts.INCONCLUSIVE  # ... Holm over five comparisons needs p <= 0.01
    assert c.verdict.startswith("inconclusive at this N")
    assert "p = 0.0" in fails.text()
    strong = claims.assess(run(claim1_pair(a_only=8, b_only=27)))[0]
    k = next(k for k in strong.comparisons if k.metric == "DSR large")
    assert k.p < 0.002 and k.verdict == verdicts.FAILS
    assert strong.verdict == "does not hold"  # one decisive failure, the rest inconclusive


def test_one_comparison_holds_and_one_fails_is_mixed():
    rng = np.random.default_rng(20)
    ev = models(rng)
    ev["sat-amdim"] = record(rng, 0.5, 0.95)  # DSR up a lot, clean accuracy down 30 points
    c = claims.claim2(ev)
    by = {(k.metric, k.models[1].name): k.verdict for k in c.comparisons}
    assert by[("DSR small", "amdim")] == "holds" and by[("clean accuracy", "amdim")] == "does not hold"
    assert c.verdict == "mixed"


# ----------------------------------------------------------------------------- seeds


def test_across_seeds_says_when_seeds_disagree():
    H, F, I, N = verdicts.HOLDS, verdicts.FAILS, verdicts.INCONCLUSIVE, verdicts.NOT_TESTED  # noqa: E741
    assert verdicts.across_seeds({0: H, 1: H, 2: H}) == H
    assert verdicts.across_seeds({0: I + " (about 900 images would decide it)", 1: I}) == \
        I + " (about 900 images would decide it)"
    assert verdicts.across_seeds({0: H, 1: H, 2: F}) == \
        "mixed (seeds disagree: holds with seeds 0, 1; does not hold with seed 2)"
    assert verdicts.across_seeds({0: H, 1: I + " (about 900 images would decide it)"}) == \
        "inconclusive at this N (seeds disagree: holds with seed 0; inconclusive at this N with seed 1)"
    assert verdicts.across_seeds({0: verdicts.MIXED, 1: I}).startswith("mixed (seeds disagree")
    assert verdicts.across_seeds({0: F, 1: N}) == F  # an untested seed is left out
    assert verdicts.across_seeds({3: I + " (x)"}) == I + " (x)"


def seeded(ev: dict, seed: int) -> dict:
    """The evaluation records of seed 0's claim models renamed as training seed `seed`'s."""
    named0, named = claims.named_models(0), claims.named_models(seed)
    by_name = {m.name: named[key] for key, m in named0.items()}
    return {by_name[n].name: r for n, r in ev.items() if n in by_name}


def with_models(res: dict) -> dict:
    """A record with its "models" entry, as `collect` writes it (seeded names are not read from the structure)."""
    every = {**{m.name: m for s in (0, 1, 2) for m in claims.named_models(s).values()}}
    names = {n for space in res["evaluation"].values() for n in space}
    names |= {r["name"] for key in ("sat", "baselines") for r in res.get(key, {}).values()}
    res["models"] = {n: dataclasses.asdict(every[n]) for n in names}
    return res


def test_assess_on_seed_1_reads_the_seed1_models():
    rng = np.random.default_rng(21)
    good, reversed_ = models(rng), models(rng, ssl_survive=0.1, sup_survive=0.6, l2=(0.5, 2.0))
    res = run({**good, **seeded(reversed_, 1)})
    res["sat"]["amdim-seed1"] = {**res["sat"]["amdim"], "name": "sat-amdim-seed1", "train_seconds": 100.0,
                                 "trajectory": [{"robust_small": 0.2, "train_seconds": 0.0},
                                                {"robust_small": 0.4, "train_seconds": 100.0}]}
    for m in ("mat", "alp"):
        res["baselines"][f"{m}-seed1"] = {**res["baselines"][m], "name": f"{m}-seed1"}
    res = with_models(res)
    assert claims.seeds(res) == [0, 1]
    zero, one = claims.assess(res), claims.assess(res, seed=1)
    assert zero[0].verdict == "holds" and one[0].verdict == "does not hold"
    assert {m.name for k in one[0].comparisons for m in k.models} == {"amdim-seed1", "sup-seed1"}
    assert {m.name for k in one[1].comparisons for m in k.models} == {"amdim-seed1", "sat-amdim-seed1", "npid-seed1",
                                                                       "sat-npid-seed1"}
    assert zero[2].verdict == "holds" and one[2].verdict == "does not hold"  # seed 1's SAT took 100 s
    assert "SAT 100 s vs MAT" in one[2].evidence
    assert claims.named_models(1)["MAT"].name == "mat-seed1" and claims.named_models(0)["SAT_NPID"].name == "sat-npid"
    assert claims.assess(res, seed=2)[0].verdict == "not tested"
    assert claims.seeds({**res, "seeds": [0, 1, 2]}) == [0, 1, 2]


def test_a_grid_verdict_whose_seeds_disagree_says_so():
    rng = np.random.default_rng(22)
    good, reversed_ = models(rng), models(rng, ssl_survive=0.1, sup_survive=0.6, l2=(0.5, 2.0))
    res = with_models(run({**good, **seeded(reversed_, 1)}))
    res["seeds"] = [0, 1]
    res["protocol"] = {"primary": {"eps_space": "pixel", "guide": "paper", "attacks": "paper"}}
    table = grid.grid_verdicts(res)
    first = table.loc[claims.CLAIMS[1]]
    assert first["verdict"] == "mixed (seeds disagree: holds with seed 0; does not hold with seed 1)"
    assert first[verdicts.PRIMARY.label] == first["verdict"]
    spread = grid.seed_spread(res)
    row = spread[(spread["claim"] == 1) & (spread["metric"] == "DSR small")].iloc[0]
    assert row["min"] == row["seed 1"] < 0 < row["seed 0"] == row["max"]
    assert (row["verdict seed 0"], row["verdict seed 1"]) == ("holds", "does not hold")
    assert row["models"] == "SSL (AMDIM) - SUP"
    text = grid.grid_text(res)
    assert "training seeds: 0, 1" in text and "seeds disagree" in text and "Seed spread" in text


# ----------------------------------------------------------------------------- the protocol grid


def test_an_undeclared_record_names_the_guide_rule_it_was_evaluated_with():
    rng = np.random.default_rng(25)
    res = run(models(rng))  # no protocol declared, no guide per record: made when the authors' rule was the default
    assert grid.primary_cell(res) == Cell("pixel", "authors", "paper")
    for r in res["evaluation"]["pixel"].values():
        r["guide"] = "paper"
    assert grid.primary_cell(res) == verdicts.PRIMARY
    assert "guide rule (paper)" in "\n".join(grid.primary_text(res))


def test_cell_validates_and_labels():
    assert verdicts.PRIMARY.label == "pixel eps, paper's guide rule, paper's attacks"
    assert Cell("normalized", "authors", "worst case").label.startswith("normalized eps, authors' guide rule")
    with pytest.raises(ConfigError, match="unknown guide 'code'"):
        Cell("pixel", "code", "paper")
    with pytest.raises(ConfigError, match="eps_space"):
        Cell("linf", "paper", "paper")


def test_across_cells_names_the_axis_that_flips_it():
    H, F, N = verdicts.HOLDS, verdicts.FAILS, verdicts.NOT_TESTED
    p, a = Cell("pixel", "paper", "paper"), Cell("pixel", "authors", "paper")
    n, na = Cell("normalized", "paper", "paper"), Cell("normalized", "authors", "paper")
    w = Cell("pixel", "paper", "worst case")
    assert verdicts.across_cells({p: H, a: H, n: H}) == (H, [])
    assert verdicts.across_cells({p: N, a: H + " (x)", n: N}) == (H + " (x)", [])
    assert verdicts.across_cells({p: H, a: H, n: F, na: F, w: N}) == \
        ("depends on the protocol (flipped by the eps convention)", ["eps convention"])
    assert verdicts.across_cells({p: H, a: F, n: H, w: F}) == \
        ("depends on the protocol (flipped by the guide rule, the attack set)", ["guide rule", "attack set"])
    verdict, flips = verdicts.across_cells({p: H, na: F})  # no two cells differ in one choice only
    assert verdict.startswith("depends on the protocol") and flips == []


def grid_record(pixel: dict, normalized: dict) -> dict:
    """A record with two eps conventions and, under the authors' guide rule, the same records again."""
    res = run(pixel)
    res["evaluation"]["normalized"] = normalized
    res["protocol"] = {"primary": {"eps_space": "pixel", "guide": "paper", "attacks": "paper"}}
    res["grid"] = [{"eps_space": s, "guide": "authors", "evaluation": dict(ev), "robustness": {}}
                   for s, ev in (("pixel", pixel), ("normalized", normalized))]
    return res


def test_a_claim_the_eps_convention_flips_depends_on_the_protocol():
    rng = np.random.default_rng(23)
    res = grid_record(models(rng), models(rng, ssl_survive=0.1, sup_survive=0.6, l2=(0.5, 2.0)))
    assert grid.cells(res) == [Cell("pixel", "paper", "paper"), Cell("pixel", "authors", "paper"),
                               Cell("normalized", "paper", "paper"), Cell("normalized", "authors", "paper")]
    table = grid.grid_verdicts(res)
    first = table.loc[claims.CLAIMS[1]]
    assert first["verdict"] == "depends on the protocol (flipped by the eps convention)"
    assert first["flipped by"] == "eps convention"
    assert first["pixel eps, authors' guide rule, paper's attacks"] == "holds"
    assert first["normalized eps, paper's guide rule, paper's attacks"] == "does not hold"
    assert table.loc[claims.CLAIMS[4], "verdict"] == "not tested" and table.loc[claims.CLAIMS[4], "flipped by"] == ""
    assert "not judged per cell" in table.loc[claims.CLAIMS[3], "flipped by"]
    assert list(table.columns[-3:]) == ["verdict", "flipped by", "rule"]
    text = grid.grid_text(res)
    assert "eps: pixel units in [0, 1] (the paper's text)" in text
    assert "flipped by: eps convention" in text and "rule: SSL (AMDIM) minus SUP" in text
    # the other guide rule's records are read from the grid: a different one there flips claim 1 by the guide rule
    res["grid"][0]["evaluation"] = dict(res["evaluation"]["normalized"])
    assert grid.grid_verdicts(res).loc[claims.CLAIMS[1], "flipped by"] == "eps convention, guide rule"


def zoo_record(r: dict, rng) -> dict:
    """An attack-zoo record for an evaluation record: the worst case survives a random part of what survived."""
    out = {"n_attacked": r["n_attacked"], "n_prefix": r["n_prefix"], "settings": {}}
    for s in ("small", "large"):
        survived = stats.unpack_bits(r["per_image"][f"survived_{s}"]) & (rng.random(r["n_attacked"]) < 0.5)
        robust = float(survived.sum() / r["n_prefix"])
        out["settings"][s] = {"attacks": {"worst case": {
            "dsr": float(survived.mean()), "dsr_ci": [0.0, 1.0], "robust": robust, "robust_ci": [0.0, 1.0],
            "survived": stats.pack_bits(survived)}}}
    return out


def test_cell_view_of_the_worst_case_is_the_worst_case_view():
    rng = np.random.default_rng(24)
    res = grid_record(models(rng), models(rng))
    res["robustness"] = {"pixel": {n: zoo_record(r, rng) for n, r in res["evaluation"]["pixel"].items()}}
    worst = Cell("pixel", "paper", "worst case")
    assert grid.cell_view(res, worst) == worst_case_view(res, "pixel")
    assert grid.cell_view(res, verdicts.PRIMARY) is res
    assert worst in grid.cells(res) and Cell("normalized", "paper", "worst case") not in grid.cells(res)
    # the other guide rule's worst case: the zoo of its grid entry, not the primary's
    assert grid.cell_view(res, Cell("pixel", "authors", "worst case"))["evaluation"]["pixel"] == {}
    res["grid"][0]["robustness"] = dict(res["robustness"]["pixel"])
    authors = grid.cell_view(res, Cell("pixel", "authors", "worst case"))
    assert authors["evaluation"]["pixel"] == worst_case_view(res, "pixel")["evaluation"]["pixel"]
    # a cell without records reads "not tested"
    empty = grid.cell_view(res, Cell("normalized", "authors", "worst case"))
    assert empty["evaluation"]["normalized"] == {}
    assert claims.assess(empty, "normalized")[0].verdict == "not tested"
