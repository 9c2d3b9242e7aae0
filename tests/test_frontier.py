"""Claim 4 on the frontier (robust accuracy at matched clean accuracy) and claim 3 in both framings."""

from __future__ import annotations

import numpy as np
import pytest

from satnb.core import stats
from satnb.report import cost, frontier

N = 2000


def point(rng, acc, robust_given_correct, unit, it):
    """A trajectory point with per-image outcomes (every correct test image attacked)."""
    correct = rng.random(N) < acc
    survived = rng.random(int(correct.sum())) < robust_given_correct
    return {unit: it, "acc": float(correct.mean()), "robust_small": float(survived.sum() / N),
            "n_attacked": int(correct.sum()), "n_prefix": N, "train_seconds": float(it),
            "per_image": {"correct": stats.pack_bits(correct), "survived_small": stats.pack_bits(survived)}}


def record(rng, sat, defences, starts=((0.30, 0.1), (0.99, 0.1))):
    """A label-scarce record: SAT's trajectory and AT's, MAT's and ALP's, each as (acc, robust | correct) pairs after
    their starting points (iteration / epoch 0: SSL's and SUP's (acc, robust | correct), `starts`)."""
    ssl, sup = starts
    return {"settings": {"labelled_per_class": 100}, "dataset": {"dataset": "cifar10"},
            "sat": {"amdim": {"trajectory": [point(rng, a, r, "iteration", 10 * i)
                                             for i, (a, r) in enumerate([ssl, *sat])]}},
            "baselines": {name: {"trajectory": [point(rng, a, r, "epoch", i)
                                                for i, (a, r) in enumerate([sup, *points])]}
                          for name, points in defences.items()}}


def test_matched_pair_is_the_closest_clean_accuracy():
    s = [{"acc": 0.8}, {"acc": 0.7}, {"acc": 0.6}]
    d = [{"acc": 0.9}, {"acc": 0.66}]
    assert frontier.matched_pair(s, d) == (s[1], d[1])
    assert frontier.matched_pair([], d) is None


def test_frontier_wins_loses_and_unmatched():
    rng = np.random.default_rng(0)
    res = record(rng, sat=[(0.60, 0.2), (0.55, 0.6)],
                 defences={"at": [(0.55, 0.2)],  # matched at 55%: SAT far more robust -> wins
                           "mat": [(0.60, 0.8)],  # matched at 60%: SAT far less robust -> loses
                           "alp": [(0.95, 0.9)]})  # never matched: better on both axes -> SAT loses (dominated)
    table = frontier.frontier(res).set_index("defence")
    assert table.loc["AT", "matched"] and table.loc["AT", "SAT"] == "holds"
    assert table.loc["AT", "SAT point"] == 20 and table.loc["AT", "defence point"] == 1
    assert table.loc["MAT", "matched"] and table.loc["MAT", "SAT"] == "does not hold"
    assert not table.loc["ALP", "matched"] and table.loc["ALP", "SAT"] == "does not hold"
    assert frontier.frontier_verdict(frontier.frontier(res)) == "mixed"
    lines = frontier.frontier_text(res, [0])
    assert lines[0].startswith("Claim 4 on the frontier") and "  seed 0: MIXED" in lines
    assert not any("every training label" in line for line in lines)
    assert any(line.startswith("   - vs AT: SAT wins") for line in lines)
    assert any(line.startswith("   - vs MAT: SAT loses") for line in lines)
    full = {**res, "settings": {**(res.get("settings") or {}), "labelled_per_class": None}}
    assert "every training label" in frontier.frontier_text(full, [0])[2]  # named as outside claim 4's regime


def test_frontier_never_pairs_a_starting_model():
    rng = np.random.default_rng(2)
    # the starting models (SSL, SUP) have the same clean accuracy and SSL is far more robust: paired, SAT would win;
    # after fine-tuning SAT and AT meet at 60% and AT is far more robust: SAT loses
    res = record(rng, sat=[(0.60, 0.3)], defences={"at": [(0.60, 0.7)]}, starts=((0.70, 0.6), (0.70, 0.1)))
    table = frontier.frontier(res).set_index("defence")
    assert table.loc["AT", "SAT point"] == 10 and table.loc["AT", "defence point"] == 1
    assert table.loc["AT", "matched"] and table.loc["AT", "SAT"] == "does not hold"
    # a trajectory that holds only its starting point gives no reading
    only_start = record(rng, sat=[], defences={"at": [(0.60, 0.7)]})
    assert frontier.frontier(only_start).empty


def test_frontier_not_comparable_and_old_records():
    rng = np.random.default_rng(1)
    # unmatched and a trade-off (SAT less accurate, more robust): not comparable -> inconclusive
    res = record(rng, sat=[(0.40, 0.9)], defences={"at": [(0.80, 0.2)]})
    table = frontier.frontier(res)
    assert table["SAT"].tolist() == [frontier.NOT_COMPARABLE]
    assert frontier.frontier_verdict(table) == "inconclusive at this N"
    # trajectories without per-image outcomes (older records): no reading
    old = {"sat": {"amdim": {"trajectory": [{"iteration": 10, "acc": 0.5, "robust_small": 0.1}]}},
           "baselines": {"at": {"trajectory": [{"epoch": 1, "acc": 0.5, "robust_small": 0.1}]}}}
    assert frontier.frontier(old).empty and frontier.frontier_text(old, [0]) == []


def _timed(robust, seconds):
    return {"trajectory": [{"robust_small": r, "train_seconds": s} for r, s in zip(robust, seconds)]}


def test_claim3_in_both_framings():
    res = {"sat": {"amdim": _timed([0.1, 0.3], [0, 10])},
           "baselines": {"mat": _timed([0.1, 0.3], [0, 100]), "alp": _timed([0.1, 0.4], [0, 40])},
           "training": {"amdim": {"seconds": 500.0}, "sup": {"seconds": 50.0}}}
    table = cost.cost_table(res)
    fine = table[table["framing"] == cost.FRAMINGS[0]].set_index("defence")
    assert fine.loc["MAT", "ratio"] == pytest.approx(0.1) and fine.loc["ALP", "ratio"] == pytest.approx(0.25)
    both = table[table["framing"] == cost.FRAMINGS[1]].set_index("defence")
    # AMDIM's 500 s of pretraining against SUP's 50 s: SAT is no longer cheaper
    assert both.loc["MAT", "SAT s"] == pytest.approx(510) and both.loc["MAT", "defence s"] == pytest.approx(150)
    assert cost.framing_verdicts(table) == {cost.FRAMINGS[0]: "holds", cost.FRAMINGS[1]: "does not hold"}
    assert "HOLDS" in "\n".join(cost.cost_text(res, [0]))
    # without pretraining times only the primary framing is read; without runs nothing is
    no_pre = {**res, "training": {}}
    assert set(cost.cost_table(no_pre)["framing"]) == {cost.FRAMINGS[0]}
    assert cost.cost_table({}).empty and cost.framing_verdicts(cost.cost_table({})) == {}
