"""The report's verdicts follow the numbers; tables and figures are built from results records."""

import io
import json

import matplotlib
import pytest
from PIL import Image

from satnb.report import claims, plots, tables
from satnb.report import record as results

matplotlib.use("Agg")


def _eval(acc, small, large, l2=None):
    r = {"acc": acc, "dsr_small": small, "dsr_large": large, "n_attacked": 100, "train_seconds": 1.0}
    if l2 is not None:
        r["l2"] = l2
    return r


def _results(dataset="cifar10", sup=(0.9, 0.2, 0.1, 0.3), amdim=(0.8, 0.5, 0.3, 0.6), sat_amdim=(0.75, 0.7, 0.5),
             npid=(0.7, 0.3, 0.2, 0.4), sat_npid=(0.68, 0.6, 0.4), times=(10.0, 50.0, 60.0)):
    ev = {"sup": _eval(*sup), "amdim": _eval(*amdim), "npid": _eval(*npid),
          "sat-amdim": _eval(*sat_amdim), "sat-npid": _eval(*sat_npid),
          "mat": _eval(0.85, 0.6, 0.4), "alp": _eval(0.8, 0.65, 0.6), "at": _eval(0.7, 0.8, 0.7)}
    return {"profile": "smoke", "dataset": {"dataset": dataset, "source": "test"}, "evaluation": {"pixel": ev},
            "sat": {"amdim": {"name": "sat-amdim", "train_seconds": times[0], "trajectory": []}},
            "baselines": {"mat": {"name": "mat", "train_seconds": times[1]},
                          "alp": {"name": "alp", "train_seconds": times[2]}}}


def test_paper_table_differences():
    t = tables.paper_table(_results(), spaces=("pixel",))
    row = t.loc[("pixel", "SUP")]
    assert row["ACC paper"] == 0.9202 and row["ACC ours"] == 0.9
    assert row["ACC diff"] == pytest.approx(0.9 - 0.9202)
    assert t.loc[("pixel", "SSL (AMDIM)"), "L2 ours"] == 0.6


def test_load_results_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m satnb run"):
        results.load_results(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a satnb results file"):
        results.load_results(bad)


def test_committed_results_are_valid():
    for name, res in results.committed_results().items():
        assert res["provenance"]["git_commit"], name
        assert claims.claims_table(res)["verdict"].notna().all()


def test_figures_build():
    res = _results()
    frame = tables.results_frame(res).reset_index()
    assert plots.tradeoff_plot(frame[["model", "ACC", "DSR small", "DSR large"]]) is not None
    traj = [{"iteration": 0, "acc": 0.8, "dsr_small": 0.5, "dsr_large": 0.3},
            {"iteration": 10, "acc": 0.78, "dsr_small": 0.6, "dsr_large": 0.4}]
    assert plots.sat_trajectory_plot({"SAT (AMDIM)": traj}) is not None


def test_widget_render(tmp_path):
    from satnb.core.config import TrainSettings, get_profile
    from satnb.core.datasets import load_digits
    from satnb.core.store import Store
    from satnb.experiment.pipeline import Pipeline
    from satnb.notebook.widgets import AttackExplorer

    data = load_digits().subset(200, 50, seed=0)
    settings = TrainSettings("convnet", epochs=1, batch_size=50, lr=5e-3, encoder_kwargs={"widths": (8, 16)})
    profile = get_profile("smoke").replace(train={"sup": settings}, k=5, m=5)
    explorer = AttackExplorer(Pipeline(profile, data, Store(tmp_path), progress=False), models=["sup"])
    r = explorer.compute("sup", 0, 0.05)
    assert (r["adv"] - r["x"]).abs().max() <= 0.05 + 1e-6 and r["votes_adv"].sum() == 5
    fig = explorer.render()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)
    assert Image.open(buf).size[0] <= 700  # drawn at the page's width: the book shows it at full size
    with pytest.raises(ValueError, match="outside the test set"):
        explorer.compute("sup", 10_000, 0.03)
