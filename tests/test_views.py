"""satnb.report.views: the report's tables reshaped for the page keep every number of the data table they show."""

import math

import pandas as pd
import pytest

from satnb.report import claims, tables, views
from satnb.report.record import MISSING


def _diffs() -> pd.DataFrame:
    return pd.DataFrame([
        {"claim": 1, "metric": "DSR small", "models": "SSL (AMDIM) - SUP", "difference": -0.080229,
         "95% low": -0.146492, "95% high": -0.013052, "n images": 349, "threshold": 0.0, "p": 0.019243,
         "verdict": "does not hold"},
        {"claim": 1, "metric": "median L2 (pixel) at the authors' budget", "models": "SSL (AMDIM) - SUP",
         "difference": -0.2671, "95% low": -0.6612, "95% high": -0.1083, "n images": 1019, "threshold": 0.0,
         "p": 0.001, "verdict": "does not hold"},
        {"claim": 2, "metric": "clean accuracy", "models": "SAT (AMDIM) - SSL (AMDIM)", "difference": -0.022,
         "95% low": -0.046, "95% high": 0.002, "n images": 1000, "threshold": -0.10, "p": 1.7e-10,
         "verdict": "holds"},
    ])


def test_differences_view_puts_each_interval_and_unit_in_one_cell():
    view = views.differences_view(_diffs())
    assert list(view.columns) == ["difference [95%]", "threshold", "n", "p", "verdict"]
    dsr = view.loc[(1, "DSR small", "SSL (AMDIM) - SUP")]
    assert dsr["difference [95%]"] == "-8.0 [-14.6, -1.3] pts"  # proportions in percentage points
    assert dsr["threshold"] == "+0.0 pts" and dsr["p"] == "0.019" and dsr["n"] == "349"
    l2 = view.loc[(1, "median L2 (pixel) at the authors' budget", "SSL (AMDIM) - SUP")]
    assert l2["difference [95%]"] == "-0.267 [-0.661, -0.108]"  # an L2 in its own unit, named by the metric
    assert l2["n"] == "1,019"
    assert view.loc[(2, "clean accuracy", "SAT (AMDIM) - SSL (AMDIM)")]["threshold"] == "-10.0 pts"
    assert views.differences_view(pd.DataFrame()).empty


def test_a_missing_number_says_so():
    assert views.with_interval(math.nan, 0.1, 0.2) == MISSING
    assert views.with_interval(0.05, None, None) == "+5.0 pts"
    assert views.signed(None) == MISSING


def test_hoist_moves_only_constant_columns_into_the_caption():
    frame = pd.DataFrame({"encoder": ["AMDIM ndf 16", "AMDIM ndf 16"], "cpu": ["EPYC", "Zen"], "ACC": [0.4, 0.5]})
    shown, caption = views.hoist(frame, ["encoder", "cpu", "not a column"])
    assert list(shown.columns) == ["cpu", "ACC"] and caption == "encoder: AMDIM ndf 16"
    shown, caption = views.hoist(frame.iloc[:0], ["encoder"])  # no rows: nothing is constant
    assert "encoder" in shown and caption == ""


def test_grid_view_turns_claims_into_columns():
    grid = pd.DataFrame({"cell A": ["holds", "mixed"], "verdict": ["holds", "mixed"], "flipped by": ["", "guide"],
                         "rule": ["r1", "r2"]}, index=[claims.CLAIMS[1], claims.CLAIMS[2]])
    view = views.grid_view(grid)
    assert list(view.columns) == ["claim 1", "claim 2"]
    assert list(view.index) == ["cell A", "verdict", "flipped by"]  # the rule is printed once elsewhere
    assert view.loc["flipped by", "claim 2"] == "guide"


def test_seed_view_keeps_every_seed_and_the_range():
    spread = pd.DataFrame([{"claim": 1, "metric": "DSR small", "models": "SSL (AMDIM) - SUP", "seed 0": -0.08,
                            "seed 1": math.nan, "min": -0.08, "max": -0.08, "verdict seed 0": "does not hold",
                            "verdict seed 1": "not tested"}])
    row = views.seed_view(spread).iloc[0]
    assert row["seed 0"] == "-8.0 pts: does not hold" and row["seed 1"] == "not tested"
    assert row["range over seeds"] == "-8.0 to -8.0"


def test_paper_view_reads_ours_then_the_papers():
    table = pd.DataFrame([{"eps units": "pixel", "model": "SUP", "ACC paper": 0.9202, "ACC ours": 0.579,
                           "DSR small paper": 0.187, "DSR small ours": 0.411, "DSR large paper": 0.154,
                           "DSR large ours": math.nan, "L2 paper": 0.378, "L2 ours": 3.9333,
                           "L2: share broken (ours)": 0.9333}]).set_index(["eps units", "model"])
    row = views.paper_view(table).loc[("pixel", "SUP")]
    assert row["ACC"] == "57.9% (92.0%)" and row["DSR large"] == f"{MISSING} (15.4%)"
    assert row["L2, broken images"] == "3.933 (0.378)" and row["broken by L2 attack"] == "93%"


def test_frontier_view_pairs_each_difference_with_its_interval():
    front = pd.DataFrame([{"defence": "AT", "SAT point": 40, "defence point": 2, "SAT clean": 0.377,
                           "defence clean": 0.358, "clean difference": 0.019, "clean 95%": [-0.012, 0.05],
                           "robust small difference": -0.065, "robust 95%": [-0.091, -0.04], "n images": 993,
                           "matched": True, "SAT": "does not hold"}])
    row = views.frontier_view(front).loc["AT"]
    assert row["clean difference [95%]"] == "+1.9 [-1.2, +5.0] pts"
    assert row["robust small difference [95%]"] == "-6.5 [-9.1, -4.0] pts"
    assert row["clean, SAT / defence"] == "37.7% / 35.8%" and row["clean matched"] == "yes"


def test_environment_view_shortens_the_commit_and_names_minutes():
    env = tables.environment({"provenance": {"git_commit": "4c22f0aac01b85e9f936168c317e42286498197a+dirty",
                                             "wall_time_s": 3850.8},
                              "dataset": {"source": "image-folder-archive:/data/cifar10-jpeg.tar.gz"}})
    view = views.environment_view(env)
    assert view["git_commit"] == "4c22f0aac0+dirty" and view["wall time"] == "3,850.8 s (64.2 min)"


def test_environment_tables_keep_every_run_in_order_at_most_three_a_table():
    envs = {f"run {i}": tables.environment({"provenance": {"git_commit": f"{i}" * 40, "threads": i},
                                            "dataset": {"source": "image-folder-archive:/d/c.tar.gz"}})
            for i in range(5)}
    parts = views.environment_tables(envs)
    assert [list(p.columns) for p in parts] == [["run 0", "run 1", "run 2"], ["run 3", "run 4"]]
    assert parts[1].loc["git_commit", "run 4"] == "4" * 10 and parts[0].loc["threads", "run 2"] == 2
    assert len(views.environment_tables(envs, per_table=5)) == 1 and views.environment_tables({}) == []
    with pytest.raises(ValueError, match="per_table"):
        views.environment_tables(envs, per_table=0)


def test_claims_verdicts_have_a_row_per_run_and_a_column_per_claim(monkeypatch):
    fake = [claims.Claim(n, f"verdict {n}") for n in sorted(claims.CLAIMS)]
    monkeypatch.setattr(views, "assess", lambda res, space="pixel": fake)
    res = {"profile": "quick", "dataset": {"dataset": "cifar10"}, "evaluation": {"pixel": {"sup": {"n_attacked": 9}}}}
    every_correct = {**res, "evaluation": {"pixel": {"sup": {"n_attacked": 9}, "amdim": {"n_attacked": 1200}}}}
    table = views.verdicts({"this build": res, "other": every_correct})
    assert list(table.columns) == ["claim 1", "claim 2", "claim 3", "claim 4"]
    # each model attacked on its own N (every correct image): the range, not the first model's N
    assert list(table.index) == ["this build (quick, cifar10, N=9)", "other (quick, cifar10, N=9 to 1,200 by model)"]
    assert table.loc["other (quick, cifar10, N=9 to 1,200 by model)", "claim 3"] == "verdict 3"


def test_proportion_text_gives_wilsons_interval():
    from satnb.report.cells import proportion_text

    # 52 of 100: Wilson's 95% interval is [42.3%, 61.5%] (as a results file records the black-box DSR)
    assert proportion_text(0.52, 100) == "52.0% [42.3%, 61.5%]"
    assert proportion_text(1.0, 10) == "100.0% [72.2%, 100.0%]"
    assert proportion_text(math.nan, 100) == MISSING and proportion_text(0.5, 0) == MISSING


def test_the_reference_runs_stage_times_come_from_its_stage_log(tmp_path, monkeypatch):
    from satnb.report import tables

    (tmp_path / "cpu-cifar10.stages.tsv").write_text(
        "stage\tseconds\tfinished_at\tgit_commit\tthreads\ntrain (stopped)\t60\tx\ta\t2\n"
        "train (interrupted)\t992\tx\ta\t2\ntrain (failed)\t0\tx\ta\t2\ntrain\t4\tx\ta\t2\n"
        "sat\t1092\tx\tb\t2\n")
    monkeypatch.setattr(tables, "results_dir", lambda: tmp_path)
    res = {"profile": "cpu", "dataset": {"dataset": "cifar10"}, "stage_seconds": {"train": 0.29, "sat": 1.5},
           "training": {}, "sat": {}, "baselines": {}, "models": {}}
    monkeypatch.setattr(tables, "model_ids", lambda r: {})
    logged = tables.run_times(res, from_log=True)["seconds"].to_dict()
    # a killed, an interrupted and a resumed row summed
    assert logged == {"stage: train (stage log)": 1056.0, "stage: sat (stage log)": 1092.0}
    assert tables.run_times(res)["seconds"].to_dict() == {"stage: train": 0.3, "stage: sat": 1.5}
    assert tables.stage_log("quick", "cifar10") is None  # no log: the file's own stage times
