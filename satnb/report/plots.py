"""Seaborn figures for the book: data, features, attacks, SAT trajectories and the accuracy/robustness trade-off.

Nothing happens at import; `set_theme()` (called by `satnb.setup()`) applies the book's seaborn style.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from satnb.core.dataset import Dataset
from satnb.core.identity import ModelId
from satnb.report.paper import PAPER_POINTS

# The width a figure may take on the book's page (its output column is about 676 px) at matplotlib's 100 dpi: a
# wider figure is shrunk to fit and its labels with it (scripts/check_layout.py fails one shown below 70%).
PAGE_IN = 6.8


def _grid(n: int, ncols: int, height: float, **kw) -> tuple[plt.Figure, np.ndarray]:
    """n panels in rows of at most `ncols`, the page's width, `height` inches a row; unused panels hidden."""
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(max(n, 1) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_IN, height * nrows), squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def model_palette(names: Iterable[str]) -> dict[str, tuple[float, float, float]]:
    """A distinct colour for each name, in order: tab10 up to ten names, evenly spaced hues beyond (no repeats)."""
    names = list(dict.fromkeys(names))
    colors = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    return dict(zip(names, colors))


def _legend_below(fig: plt.Figure, axes, ncol: int = 3, **kw) -> None:
    """One legend for the whole figure, under it: every label of every panel once (no series left out)."""
    found: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, text in zip(*ax.get_legend_handles_labels()):
            found.setdefault(text, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if found:
        fig.legend(list(found.values()), list(found), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
                   fontsize=8, frameon=False, **kw)


def set_theme() -> None:
    """The book's plot style (seaborn's notebook context, white grid)."""
    sns.set_theme(context="notebook", style="whitegrid")


def image_grid(images: np.ndarray, titles: list[str] | None = None, ncols: int = 10,
               size: float | None = None, suptitle: str | None = None) -> plt.Figure:
    """Show uint8 NHWC (or float NCHW in [0,1]) images in a grid (`size` inches a panel; default: the page's width)."""
    if images.dtype != np.uint8:
        images = (np.asarray(images).transpose(0, 2, 3, 1).clip(0, 1) * 255).astype(np.uint8)
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    size = min(PAGE_IN / ncols, 1.2) if size is None else size
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], interpolation="nearest")
            if titles:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def class_examples(data: Dataset, per_class: int = 8) -> plt.Figure:
    """The first images of each class in the training split (one row per class)."""
    idx = np.concatenate([np.flatnonzero(data.y_train == c)[:per_class] for c in range(data.n_classes)])
    titles = [data.classes[data.y_train[i]] if j % per_class == 0 else "" for j, i in enumerate(idx)]
    return image_grid(data.x_train[idx], titles, ncols=per_class)


def training_curves(histories: dict[str, list[dict]]) -> plt.Figure:
    """Training loss per epoch, one panel per method (losses differ in scale)."""
    fig, axes = _grid(len(histories), 2, 2.4)
    for ax, (name, hist) in zip(axes.flat, histories.items()):
        df = pd.DataFrame(hist)
        if len(df):
            sns.lineplot(data=df, x="epoch", y="loss", marker="o", ax=ax)
        ax.set_title(name)
    fig.tight_layout()
    return fig


def accuracy_vs_k(rows: list[dict]) -> plt.Figure:
    """Clean kNN accuracy against k for each model (rows: model, k, accuracy)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.lineplot(data=pd.DataFrame(rows), x="k", y="accuracy", hue="model", marker="o", ax=ax)
    ax.set_xscale("log")
    ax.axvline(75, color="grey", ls=":", lw=1)
    ax.text(75, ax.get_ylim()[0], " k=75 (paper)", color="grey", va="bottom")
    fig.tight_layout()
    return fig


def feature_map(features: dict[str, np.ndarray], labels: np.ndarray, classes: tuple[str, ...]) -> plt.Figure:
    """2-D PCA of each model's test features, coloured by class."""
    from sklearn.decomposition import PCA

    fig, axes = _grid(len(features), 2, 3.0)
    for ax, (name, f) in zip(axes.flat, features.items()):
        xy = PCA(2, random_state=0).fit_transform(np.asarray(f, dtype=np.float64))
        sns.scatterplot(x=xy[:, 0], y=xy[:, 1], hue=[classes[c] for c in labels], hue_order=list(classes), s=8,
                        linewidth=0, palette="tab10", ax=ax)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    _legend_below(fig, axes, ncol=5, markerscale=2)
    return fig


def attack_examples(x: np.ndarray, adv: np.ndarray, neighbours_before: np.ndarray, neighbours_after: np.ndarray,
                    titles: list[str], n_neighbours: int = 5) -> plt.Figure:
    """Rows of: clean image, adversarial image, amplified perturbation, nearest library images before/after."""
    rows = len(x)
    cols = 3 + 2 * n_neighbours
    side = PAGE_IN / cols  # each picture's side: the row fills the page
    fig, axes = plt.subplots(rows, cols, figsize=(PAGE_IN, rows * side + 0.6), squeeze=False)
    for r in range(rows):
        delta = adv[r].astype(np.float32) - x[r].astype(np.float32)
        amp = np.clip(0.5 + delta / (2 * max(np.abs(delta).max(), 1e-6)), 0, 1)
        panels = [x[r], adv[r], amp, *neighbours_before[r][:n_neighbours], *neighbours_after[r][:n_neighbours]]
        for c, (ax, img) in enumerate(zip(axes[r], panels)):
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                head = ["clean", "attacked", "change\n(x amp.)"]
                ax.set_title(head[c] if c < 3 else ("neighbours before" if c == 3 else
                             "neighbours after" if c == 3 + n_neighbours else ""), fontsize=7,
                             loc="center" if c < 3 else "left")
        axes[r][0].set_ylabel(titles[r], fontsize=7)
    fig.tight_layout(w_pad=0.1, h_pad=0.3)
    return fig


def eps_sweep_plot(rows: list[dict], paper_eps: tuple[float, ...] = (0.03, 0.06)) -> plt.Figure:
    """DSR against eps for the gradient attack and uniform noise, one line per model."""
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    sns.lineplot(data=df, x="eps", y="dsr", hue="model", style="attack", marker="o", ax=ax)
    for e in paper_eps:
        ax.axvline(e, color="grey", ls=":", lw=1)
    ax.set_ylabel("DSR (kNN accuracy on attacked images)")
    ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return fig


def l2_distribution(l2_by_model: dict[str, list[float | None]]) -> plt.Figure:
    """Empirical CDF of the optimisation attack's L2 per model (unbroken images never reach 1)."""
    rows = [{"model": m, "L2": v} for m, vals in l2_by_model.items() for v in vals if v is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if rows:
        sns.ecdfplot(data=pd.DataFrame(rows), x="L2", hue="model", ax=ax)
    ax.set_ylabel("fraction of attacked images broken")
    fig.tight_layout()
    return fig


def vote_histogram(votes: np.ndarray, classes: tuple[str, ...], title: str, ax: plt.Axes) -> None:
    """Bar chart of kNN votes per class."""
    sns.barplot(x=list(classes), y=votes, ax=ax, color="steelblue")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", rotation=60, labelsize=7)


MEASURES = (("dsr", "DSR", "DSR"), ("robust", "robust accuracy", "robust accuracy (paper: ACC x DSR)"))


def sat_trajectory_plot(trajectories: dict[str, list[dict]], paper: bool = True) -> plt.Figure:
    """Fig. 2 style: clean ACC against DSR (top) and robust accuracy (bottom) along SAT, one path per seed model."""
    fig, axes = plt.subplots(2, 2, figsize=(PAGE_IN, 6.0), sharey="row", squeeze=False)
    colors = model_palette(trajectories)
    for row, (key, name_y, paper_y) in enumerate(MEASURES):
        for ax, setting in zip(axes[row], ("small", "large")):
            col = f"{key}_{setting}"
            for name, traj in trajectories.items():
                df = pd.DataFrame(traj)
                if df.empty or col not in df:
                    continue
                color = colors[name]
                ax.plot(df["acc"], df[col], "-o", color=color, ms=3, label=f"{name} (ours)")
                ax.annotate("start", (df["acc"].iloc[0], df[col].iloc[0]), fontsize=7, color=color)
                ax.annotate(f"it {int(df['iteration'].iloc[-1])}", (df["acc"].iloc[-1], df[col].iloc[-1]),
                            fontsize=7, color=color)
            if paper:
                pts = PAPER_POINTS[PAPER_POINTS.setting == setting]
                for seed, marker in (("amdim", "s"), ("npid", "^")):
                    sel = pts[pts.sat_seed == seed]
                    y = sel["DSR"] if key == "dsr" else sel["ACC"] * sel["DSR"]
                    if len(sel):
                        ax.plot(sel["ACC"], y, marker + "--", color="black", alpha=0.6, ms=6,
                                label=f"{ModelId.sat(seed).label}, paper")
            ax.set_title(f"{name_y}, {setting}", fontsize=9)
            ax.set_xlabel("clean kNN accuracy (ACC)", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
        axes[row][0].set_ylabel(paper_y, fontsize=9)
    fig.tight_layout()
    _legend_below(fig, axes, ncol=2)  # every panel's series: the paper's NPID path is missing from some
    return fig


def tradeoff_plot(ours: pd.DataFrame, paper: bool = True) -> plt.Figure:
    """Figs. 3-4 style: clean ACC against DSR (top) and robust accuracy (bottom), ours beside the paper's points.

    `ours` has columns model, ACC, DSR small, DSR large and, when measured, robust small / robust
    large; a column "<measure> lo" / "<measure> hi" adds its 95% interval as an error bar.
    """
    measures = [("DSR", "DSR")] + ([("robust", "robust accuracy")] if "robust small" in ours else [])
    fig, axes = plt.subplots(len(measures), 2, figsize=(PAGE_IN, 3.2 * len(measures)), sharey="row", squeeze=False)
    palette = model_palette(ours["model"])
    for row, (prefix, name_y) in enumerate(measures):
        for ax, setting in zip(axes[row], ("small", "large")):
            col = f"{prefix} {setting}"
            for _, r in ours.iterrows():
                yerr = None
                if f"{col} lo" in ours:
                    yerr = [[r[col] - r[f"{col} lo"]], [r[f"{col} hi"] - r[col]]]
                ax.errorbar(r["ACC"], r[col], yerr=yerr, fmt="o", ms=7, color=palette[r["model"]], capsize=2,
                            label=r["model"])
                ax.annotate(r["model"], (r["ACC"], r[col]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            if paper:
                pts = PAPER_POINTS[PAPER_POINTS.setting == setting]
                y = pts["DSR"] if prefix == "DSR" else pts["ACC"] * pts["DSR"]
                ax.scatter(pts["ACC"], y, marker="x", color="black", alpha=0.6, label="paper (CIFAR-10)")
                for (_, r), yy in zip(pts.iterrows(), y):
                    ax.annotate(r["model"], (r["ACC"], yy), fontsize=7, color="grey", xytext=(3, -9),
                                textcoords="offset points")
            ax.set_title(f"{name_y}, {setting} (top right is better)", fontsize=9)
            ax.set_xlabel("clean kNN accuracy (ACC)", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
        axes[row][0].set_ylabel(name_y + (" (paper: ACC x DSR)" if prefix == "robust" else ""), fontsize=9)
    fig.tight_layout()
    _legend_below(fig, axes, ncol=4)
    return fig


def attack_zoo_plot(table: pd.DataFrame, measure: str = "robust") -> plt.Figure:
    """Robust accuracy (or DSR) of every model under each attack and the worst case, 95% intervals as bars."""
    settings = list(dict.fromkeys(table["setting"]))
    fig, axes = plt.subplots(len(settings), 1, figsize=(PAGE_IN, 3.0 * len(settings)), sharex=True, squeeze=False)
    attacks = list(dict.fromkeys(table["attack"]))
    models = list(dict.fromkeys(table["model"]))
    width = 0.8 / max(len(attacks), 1)
    for ax, setting in zip(axes[:, 0], settings):
        sel = table[table["setting"] == setting]
        for i, attack in enumerate(attacks):
            rows = sel[sel["attack"] == attack].set_index("model").reindex(models)
            pos = np.arange(len(models)) + (i - (len(attacks) - 1) / 2) * width
            err = [rows[measure] - rows[f"{measure} lo"], rows[f"{measure} hi"] - rows[measure]]
            ax.bar(pos, rows[measure], width, yerr=err, capsize=2, label=attack,
                   color="black" if attack == "worst case" else None, alpha=0.85)
        ax.set_xticks(np.arange(len(models)), models, rotation=30, ha="right", fontsize=9)
        ax.set_title(f"{setting} perturbation", fontsize=10)
        ax.set_ylim(0, 1)
        ax.set_ylabel("robust accuracy" if measure == "robust" else "DSR")
    fig.tight_layout()
    _legend_below(fig, axes, ncol=4)
    return fig


def _empty(message: str, figsize: tuple[float, float] = (6, 1.2)) -> plt.Figure:
    """A figure that says, in words, why there is nothing to plot."""
    fig, ax = plt.subplots(figsize=figsize)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, wrap=True)
    return fig


def knn_curves(frame: pd.DataFrame) -> plt.Figure:
    """kNN test accuracy against epoch (left) and training minutes (right), one row of panels per run.

    `frame` is `tables.curve_frame`'s: columns run, model, epoch, minutes, kNN accuracy.
    """
    if frame.empty:
        return _empty("no kNN-accuracy curve recorded (the profile's curve_every is 0, or the file predates curves)")
    runs = list(dict.fromkeys(frame["run"]))
    palette = model_palette(frame["model"])
    fig, axes = plt.subplots(len(runs), 2, figsize=(PAGE_IN, 2.8 * len(runs)), sharey=True, squeeze=False)
    for row, run in zip(axes, runs):
        sel = frame[frame["run"] == run]
        for ax, x, name in zip(row, ("epoch", "minutes"), ("epoch", "training minutes (kNN evaluations excluded)")):
            sns.lineplot(data=sel, x=x, y="kNN accuracy", hue="model", palette=palette, marker="o", ax=ax)
            ax.set_xlabel(name, fontsize=9)
            ax.set_title(run, fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("kNN test accuracy")
    fig.tight_layout()
    _legend_below(fig, axes, ncol=4)
    return fig


def clean_accuracy_curves(frame: pd.DataFrame, unit: str = "epoch") -> plt.Figure:
    """Clean kNN accuracy along each fine-tuning run (e.g. AT, MAT, ALP per epoch), one panel per run.

    `frame` is `tables.trajectory_frame`'s: columns run, model, <unit>, ACC.
    """
    if frame.empty:
        return _empty("no fine-tuning trajectory recorded")
    runs = list(dict.fromkeys(frame["run"]))
    palette = model_palette(frame["model"])
    fig, axes = _grid(len(runs), 3, 2.8, sharey=True)
    for ax, run in zip(axes.flat, runs):
        sns.lineplot(data=frame[frame["run"] == run], x=unit, y="ACC", hue="model", palette=palette, marker="o",
                     ax=ax, legend=False)
        ax.set_title(run, fontsize=9)
        ax.set_ylabel("clean kNN accuracy")
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles = [plt.Line2D([], [], color=color, marker="o", label=model) for model, color in palette.items()]
    fig.tight_layout()
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=8, frameon=False)
    return fig
