"""satnb.report.plots: every figure fits the book's page at its drawn size, and every series is in its legend."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from satnb.report import plots  # noqa: E402

# the page's figure column is about 676 px: a figure drawn wider is shrunk with its labels (check_layout fails one
# shown below 70%); each figure is drawn at the page's width
MAX_PX = int(plots.PAGE_IN * 100 * 1.03)


def _width_px(fig) -> int:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)  # as the notebooks' inline backend saves it
    plt.close(fig)
    return Image.open(buf).size[0]


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


RNG = np.random.default_rng(0)
TRAJ = [{"iteration": i, "acc": 0.8 - 0.01 * i, "dsr_small": 0.5 + 0.02 * i, "dsr_large": 0.3 + 0.02 * i,
         "robust_small": 0.4, "robust_large": 0.2} for i in (0, 10, 20)]
OURS = pd.DataFrame({"model": ["SUP", "SSL (AMDIM)", "SAT (AMDIM)", "AT", "MAT", "ALP"],
                     "ACC": [0.58, 0.41, 0.39, 0.36, 0.38, 0.47], "DSR small": [0.41, 0.41, 0.5, 0.7, 0.6, 0.5],
                     "DSR large": [0.23, 0.36, 0.4, 0.6, 0.5, 0.4], "robust small": [0.2, 0.17, 0.2, 0.25, 0.2, 0.2],
                     "robust large": [0.1, 0.15, 0.16, 0.2, 0.2, 0.2]})
ZOO = pd.DataFrame([{"model": m, "setting": s, "attack": a, "robust": 0.3, "robust lo": 0.25, "robust hi": 0.35}
                    for m in ("SUP", "SSL (AMDIM)", "SAT (AMDIM)", "AT", "MAT", "ALP") for s in ("small", "large")
                    for a in ("paper's PGD", "PGD restarts", "black-box", "transfer", "worst case")])
CURVES = pd.DataFrame([{"run": r, "model": m, "epoch": e, "minutes": e * 2.0, "kNN accuracy": 0.3 + 0.02 * e}
                       for r in ("this build", "reference run") for m in ("AMDIM", "NPID", "SimCLR", "SUP")
                       for e in range(1, 6)])
FINETUNE = pd.DataFrame([{"run": r, "model": r, "epoch": e, "ACC": 0.5 - 0.01 * e}
                         for r in ("AT", "MAT", "ALP") for e in range(3)])

FIGURES = {
    "image_grid": lambda: plots.image_grid(RNG.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8), ncols=10),
    "training_curves": lambda: plots.training_curves({m: [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5}]
                                                      for m in ("AMDIM", "NPID", "SimCLR", "SUP")}),
    "feature_map": lambda: plots.feature_map({m: RNG.normal(size=(60, 8)) for m in ("AMDIM", "NPID", "SimCLR", "SUP")},
                                             np.arange(60) % 10, tuple(f"class {c}" for c in range(10))),
    "attack_examples": lambda: plots.attack_examples(
        RNG.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8), RNG.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8),
        RNG.integers(0, 255, (3, 5, 32, 32, 3), dtype=np.uint8),
        RNG.integers(0, 255, (3, 5, 32, 32, 3), dtype=np.uint8),
        ["cat -> dog", "ship", "frog"]),
    "sat_trajectory_plot": lambda: plots.sat_trajectory_plot({"SAT (AMDIM)": TRAJ, "SAT (NPID)": TRAJ}),
    "tradeoff_plot": lambda: plots.tradeoff_plot(OURS),
    "attack_zoo_plot": lambda: plots.attack_zoo_plot(ZOO),
    "knn_curves": lambda: plots.knn_curves(CURVES),
    "clean_accuracy_curves": lambda: plots.clean_accuracy_curves(FINETUNE),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_figure_fits_the_page_at_a_readable_scale(name):
    width = _width_px(FIGURES[name]())
    assert width <= MAX_PX, f"{name} is {width} px wide: the book would shrink it and its labels"


def test_fig2_legend_has_both_paper_paths_and_ours():
    fig = plots.sat_trajectory_plot({"SAT (AMDIM)": TRAJ, "SAT (NPID)": TRAJ})
    texts = _legend_texts(fig)
    plt.close(fig)
    # the paper has NPID's path only for the small perturbation: one panel's legend alone would lose it
    assert {"SAT (AMDIM), paper", "SAT (NPID), paper", "SAT (AMDIM) (ours)", "SAT (NPID) (ours)"} <= set(texts)
    assert len(texts) == len(set(texts))  # each series once


def test_figs3_4_legend_names_every_model_and_the_paper():
    fig = plots.tradeoff_plot(OURS)
    texts = _legend_texts(fig)
    plt.close(fig)
    assert set(OURS["model"]) | {"paper (CIFAR-10)"} == set(texts)


def test_more_models_than_tab10_still_get_one_distinct_colour_each():
    # the reference run trains 11 models (three seeds of AMDIM, NPID and SUP, SimCLR, SUP ls0.1): a 10-colour
    # palette once dropped the 11th from the kNN-curve figure, and the book build failed on it
    names = [f"model {i}" for i in range(23)]
    palette = plots.model_palette(names)
    assert list(palette) == names
    assert len({tuple(np.round(c, 6)) for c in palette.values()}) == len(names)
    curves = pd.DataFrame([{"run": "reference run", "model": m, "epoch": e, "minutes": e, "kNN accuracy": 0.1 * e}
                           for m in names[:11] for e in (1, 2)])
    fig = plots.knn_curves(curves)
    drawn = {tuple(np.round(line.get_color(), 6)) for line in fig.axes[0].get_lines() if len(line.get_xdata())}
    plt.close(fig)
    assert drawn == {tuple(np.round(c, 6)) for c in plots.model_palette(names[:11]).values()}
