"""Claim 2 along the trajectory: the best point within the paper's accuracy cost, and the slope beside the paper's."""

from __future__ import annotations

import math

import pytest

from satnb.report import tradeoff


def _row(it, acc, dsr, robust):
    return {"iteration": it, "acc": acc, "dsr_small": dsr, "robust_small": robust}


def test_the_paper_passes_its_own_rule():
    amdim, npid = tradeoff.paper_sat("amdim"), tradeoff.paper_sat("npid")
    assert amdim["acc_cost"] == pytest.approx(0.101) and amdim["dsr_per_acc"] == pytest.approx(0.35 / 0.101)
    assert npid["acc_cost"] == pytest.approx(0.052) and npid["dsr_per_acc"] == pytest.approx(0.53 / 0.052)


def test_best_point_picks_the_largest_gain_within_the_cost():
    traj = [_row(0, 0.80, 0.50, 0.30), _row(50, 0.78, 0.60, 0.36), _row(100, 0.72, 0.70, 0.40),
            _row(150, 0.69, 0.75, 0.44), _row(300, 0.60, 0.85, 0.50)]
    best = tradeoff.best_point(traj, max_cost=0.101)
    assert best["iteration"] == 100  # 0.69 costs 0.11 > 0.101: iteration 150 is past the paper's cost
    assert best["gain"] == pytest.approx(0.10) and best["acc_cost"] == pytest.approx(0.08)
    assert tradeoff.best_point(traj, max_cost=0.5)["iteration"] == 300
    assert tradeoff.best_point(traj, max_cost=0.0)["iteration"] == 0  # nothing allowed but the start
    # a gain that falls back is not chased: the largest gain, not the last allowed point
    dip = [_row(0, 0.8, 0.5, 0.30), _row(10, 0.79, 0.6, 0.40), _row(20, 0.78, 0.65, 0.35)]
    assert tradeoff.best_point(dip, max_cost=0.1)["iteration"] == 10
    assert tradeoff.best_point([], 0.1) is None


def test_slope_and_the_table_of_a_record():
    traj = [_row(0, 0.80, 0.50, 0.30), _row(40, 0.70, 0.80, 0.35)]
    assert tradeoff.slope(traj) == pytest.approx(3.0)
    assert math.isinf(tradeoff.slope([_row(0, 0.8, 0.5, 0.3), _row(1, 0.8, 0.6, 0.3)]))
    res = {"seeds": [0, 1], "sat": {"amdim": {"trajectory": traj}, "npid-seed1": {"trajectory": traj}}}
    table = tradeoff.sat_tradeoff(res)
    assert list(table["SAT run"]) == ["SAT (AMDIM)", "SAT (NPID, seed 1)"]
    assert list(table["training seed"]) == [0, 1]
    assert table["(paper's)"].round(1).tolist() == [3.5, 10.2]
    # AMDIM's paper cost (10.1 points) admits this run's 10; NPID's (5.2) admits only the start: no gain
    assert table["at iteration"].tolist() == [40, 0]
    assert table["best robust-small gain within it"].tolist() == pytest.approx([0.05, 0.0])


def test_best_point_has_paired_intervals_when_the_trajectory_keeps_outcomes():
    import numpy as np

    from satnb.core import stats

    rng = np.random.default_rng(3)
    correct = rng.random(1000) < 0.8

    def row(it, survive, lose):
        c = correct & (rng.random(1000) >= lose)
        s = rng.random(int(c.sum())) < survive
        return {"iteration": it, "acc": float(c.mean()), "robust_small": float(s.sum() / 1000),
                "dsr_small": float(s.mean()), "n_attacked": int(c.sum()), "n_prefix": 1000,
                "per_image": {"correct": stats.pack_bits(c), "survived_small": stats.pack_bits(s)}}

    traj = [row(0, 0.1, 0.0), row(20, 0.5, 0.05)]
    best = tradeoff.best_point(traj, max_cost=0.101)
    assert best["iteration"] == 20
    assert best["gain_ci"].lo > 0.2 and best["gain_ci"].value == pytest.approx(best["gain"])
    assert best["acc_cost_ci"].value == pytest.approx(best["acc_cost"]) and best["acc_cost_ci"].lo > 0
    table = tradeoff.sat_tradeoff({"sat": {"amdim": {"trajectory": traj}}})
    assert table["gain 95% interval"].iloc[0].startswith("[+")
    assert tradeoff.sat_tradeoff({"sat": {"amdim": {"trajectory": [_row(0, 0.8, 0.5, 0.3)]}}})[
        "gain 95% interval"].iloc[0] == ""
