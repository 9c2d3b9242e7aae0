"""Tables and seaborn plots for the book: profiles, data, results beside the paper's numbers."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from satnb.config import PROFILES
from satnb.data import Dataset

sns.set_theme(context="notebook", style="whitegrid")


def profile_table() -> pd.DataFrame:
    """One row per profile: data sizes, epochs per method, attack sizes."""
    rows = []
    for p in PROFILES.values():
        rows.append({
            "profile": p.name,
            "train images": p.n_train or "all",
            "test images": p.n_test or "all",
            "kNN k / m": f"{p.k} / {p.m}",
            "attacked N (grad / opt)": f"{p.n_attack} / {p.n_attack_opt}",
            **{f"{m} epochs": f"{t.epochs} ({t.encoder})" for m, t in p.train.items()},
            "SAT iterations": p.sat.iterations,
        })
    return pd.DataFrame(rows).set_index("profile")


def class_counts(data: Dataset) -> pd.DataFrame:
    """Images per class in each split."""
    return pd.DataFrame({
        "class": list(data.classes),
        "train": np.bincount(data.y_train, minlength=data.n_classes),
        "test": np.bincount(data.y_test, minlength=data.n_classes),
    }).set_index("class")


def image_grid(images: np.ndarray, titles: list[str] | None = None, ncols: int = 10,
               size: float = 1.2, suptitle: str | None = None) -> plt.Figure:
    """Show uint8 NHWC (or float NCHW in [0,1]) images in a grid."""
    if images.dtype != np.uint8:
        images = (np.asarray(images).transpose(0, 2, 3, 1).clip(0, 1) * 255).astype(np.uint8)
    n = len(images)
    nrows = int(np.ceil(n / ncols))
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


# ---------------------------------------------------------------- representation learning

def training_curves(histories: dict[str, list[dict]]) -> plt.Figure:
    """Training loss per epoch, one panel per method (losses differ in scale)."""
    n = len(histories)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8), squeeze=False)
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

    n = len(features)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
    for i, (ax, (name, f)) in enumerate(zip(axes.flat, features.items())):
        xy = PCA(2, random_state=0).fit_transform(np.asarray(f, dtype=np.float64))
        sns.scatterplot(x=xy[:, 0], y=xy[:, 1], hue=[classes[c] for c in labels], s=8, linewidth=0,
                        palette="tab10", ax=ax, legend=i == n - 1)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    if n:
        axes.flat[-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- attacks

def attack_examples(x: np.ndarray, adv: np.ndarray, neighbours_before: np.ndarray, neighbours_after: np.ndarray,
                    titles: list[str], n_neighbours: int = 5) -> plt.Figure:
    """Rows of: clean image, adversarial image, amplified perturbation, nearest library images before/after."""
    rows = len(x)
    cols = 3 + 2 * n_neighbours
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.25, rows * 1.45), squeeze=False)
    for r in range(rows):
        delta = adv[r].astype(np.float32) - x[r].astype(np.float32)
        amp = np.clip(0.5 + delta / (2 * max(np.abs(delta).max(), 1e-6)), 0, 1)
        panels = [x[r], adv[r], amp, *neighbours_before[r][:n_neighbours], *neighbours_after[r][:n_neighbours]]
        for c, (ax, img) in enumerate(zip(axes[r], panels)):
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                head = ["clean", "adversarial", "perturbation\n(amplified)"]
                ax.set_title(head[c] if c < 3 else ("neighbours\nbefore" if c == 3 else
                             "neighbours\nafter" if c == 3 + n_neighbours else ""), fontsize=7)
        axes[r][0].set_ylabel(titles[r], fontsize=7)
    fig.tight_layout()
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


# ---------------------------------------------------------------- the paper's numbers and the claims

PAPER_TABLE1 = pd.DataFrame([
    {"dataset": "cifar10", "model": "SUP", "ACC": 0.9202, "DSR small": 0.187, "DSR large": 0.154, "L2": 0.378},
    {"dataset": "cifar10", "model": "SSL (AMDIM)", "ACC": 0.8464, "DSR small": 0.519, "DSR large": 0.277,
     "L2": 0.667},
    {"dataset": "stl10", "model": "SUP", "ACC": 0.7541, "DSR small": 0.242, "DSR large": 0.163, "L2": 0.970},
    {"dataset": "stl10", "model": "SSL (AMDIM)", "ACC": 0.8613, "DSR small": 0.549, "DSR large": 0.447,
     "L2": 1.591},
])

# (clean ACC, DSR) read from the authors' published figures, CIFAR-10, AMDIM seed (SPEC.md s.8)
PAPER_POINTS = pd.DataFrame([
    {"model": "SSL (AMDIM)", "setting": "small", "ACC": 0.846, "DSR": 0.52},
    {"model": "SSL (AMDIM)", "setting": "large", "ACC": 0.846, "DSR": 0.277},
    {"model": "SAT (AMDIM) start", "setting": "small", "ACC": 0.835, "DSR": 0.62},
    {"model": "SAT (AMDIM) end", "setting": "small", "ACC": 0.745, "DSR": 0.87},
    {"model": "SAT (AMDIM) start", "setting": "large", "ACC": 0.835, "DSR": 0.39},
    {"model": "SAT (AMDIM) end", "setting": "large", "ACC": 0.745, "DSR": 0.72},
    {"model": "SUP", "setting": "small", "ACC": 0.92, "DSR": 0.19},
    {"model": "MAT", "setting": "small", "ACC": 0.885, "DSR": 0.565},
    {"model": "MAT", "setting": "large", "ACC": 0.885, "DSR": 0.365},
    {"model": "AT", "setting": "small", "ACC": 0.70, "DSR": 0.92},
    {"model": "AT", "setting": "large", "ACC": 0.70, "DSR": 0.775},
    {"model": "ALP", "setting": "small", "ACC": 0.86, "DSR": 0.71},
    {"model": "ALP", "setting": "large", "ACC": 0.815, "DSR": 0.71},
    {"model": "SAT (NPID) start", "setting": "small", "ACC": 0.787, "DSR": 0.12},
    {"model": "SAT (NPID) end", "setting": "small", "ACC": 0.735, "DSR": 0.65},
])

# What "a lot" and "a small drop" mean in claim 2, and "much less" in claim 3 (the paper gives no numbers)
SAT_MIN_DSR_GAIN = 0.05
SAT_MAX_ACC_DROP = 0.10
MUCH_CHEAPER = 0.5


def load_results(path) -> dict:
    """Read a results JSON written by `python -m satnb run`."""
    import json

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass a results JSON file written by `python -m satnb run`")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `python -m satnb run --profile ...` to make it")
    fix = "pass a results JSON written by `python -m satnb run`"
    try:
        res = json.loads(path.read_text())
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a text file ({err.reason}); {fix}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {fix}") from err
    if not isinstance(res, dict):
        raise ValueError(f"{path} holds a JSON {type(res).__name__}, not a satnb results file; {fix}")
    for key, kind in (("profile", str), ("dataset", dict), ("evaluation", dict)):
        if not isinstance(res.get(key), kind):
            raise ValueError(f"{path} lacks {key!r} (or it is not a {kind.__name__}): not a satnb results file; {fix}")
    return res


def _label(name: str) -> str:
    from satnb.pipeline import LABELS

    return LABELS.get(name, name)


def results_frame(res: dict, space: str = "pixel") -> pd.DataFrame:
    """One row per evaluated model: ACC, DSR small/large, L2, fine-tuning/training seconds."""
    rows = []
    for name, r in res["evaluation"].get(space, {}).items():
        rows.append({"name": name, "model": _label(name), "ACC": r["acc"], "DSR small": r["dsr_small"],
                     "DSR large": r["dsr_large"], "L2": r.get("l2", np.nan), "N": r["n_attacked"],
                     "train s": r.get("train_seconds", np.nan)})
    return pd.DataFrame(rows).set_index("name") if rows else pd.DataFrame()


def paper_table(res: dict, spaces: tuple[str, ...] = ("pixel", "normalized")) -> pd.DataFrame:
    """Paper Table 1 beside ours (SUP and SSL-AMDIM, every eps convention that was run), with differences."""
    ds = res["dataset"]["dataset"]
    paper = PAPER_TABLE1[PAPER_TABLE1.dataset == ("stl10" if ds == "stl10" else "cifar10")].set_index("model")
    rows = []
    for space in spaces:
        ours = results_frame(res, space)
        if ours.empty:
            continue
        for name in ("sup", "amdim"):
            if name not in ours.index:
                continue
            label = _label(name)
            row = {"eps units": space, "model": label}
            for col in ("ACC", "DSR small", "DSR large", "L2"):
                row[f"{col} paper"] = paper.loc[label, col]
                row[f"{col} ours"] = ours.loc[name, col]
                row[f"{col} diff"] = ours.loc[name, col] - paper.loc[label, col]
            rows.append(row)
    return pd.DataFrame(rows).set_index(["eps units", "model"]) if rows else pd.DataFrame()


def _verdict(n_ok: int, n: int) -> str:
    if n == 0:
        return "not tested at this scale"
    return "holds" if n_ok == n else ("does not hold" if n_ok == 0 else "partly holds")


def claims_table(res: dict, space: str = "pixel") -> pd.DataFrame:
    """The paper's four claims (SPEC.md s.8), each with a verdict computed from this results record."""
    ev = res["evaluation"].get(space, {})
    rows = []

    # 1. SSL kNN more robust than SUP kNN (DSR small, DSR large, L2)
    if "sup" in ev and "amdim" in ev:
        s, a = ev["sup"], ev["amdim"]
        checks = [(k, a.get(k), s.get(k)) for k in ("dsr_small", "dsr_large", "l2") if k in a and k in s]
        ok = sum(1 for _, x, y in checks if x is not None and y is not None and x > y)
        others = [m for m in ("npid", "simclr") if m in ev]
        more = "; ".join(f"{_label(m)}: DSR small {ev[m]['dsr_small']:.1%}, L2 {ev[m].get('l2', np.nan):.3f}"
                         for m in others)
        rows.append({"claim": "1. kNN on self-supervised features is more robust than on supervised ones",
                     "verdict": _verdict(ok, len(checks)),
                     "evidence": ", ".join(f"{k}: AMDIM {x:.3f} vs SUP {y:.3f}" for k, x, y in checks)
                     + (f" ({more})" if more else "")})
    else:
        rows.append({"claim": "1. kNN on self-supervised features is more robust than on supervised ones",
                     "verdict": _verdict(0, 0), "evidence": "AMDIM or SUP not evaluated"})

    # 2. SAT raises DSR a lot for a small drop in accuracy (AMDIM and NPID)
    ok, n, ev2 = 0, 0, []
    for seed in ("amdim", "npid"):
        sat_name = f"sat-{seed}"
        if seed in ev and sat_name in ev:
            n += 1
            gain = ev[sat_name]["dsr_small"] - ev[seed]["dsr_small"]
            drop = ev[seed]["acc"] - ev[sat_name]["acc"]
            ok += gain >= SAT_MIN_DSR_GAIN and drop <= SAT_MAX_ACC_DROP
            ev2.append(f"{seed.upper()}: DSR small {ev[seed]['dsr_small']:.1%} -> {ev[sat_name]['dsr_small']:.1%}, "
                       f"ACC {ev[seed]['acc']:.1%} -> {ev[sat_name]['acc']:.1%}")
    rows.append({"claim": f"2. SAT raises DSR a lot (>= {SAT_MIN_DSR_GAIN:.0%} points) for a small drop in "
                          f"accuracy (<= {SAT_MAX_ACC_DROP:.0%} points), for AMDIM and NPID",
                 "verdict": _verdict(ok, n), "evidence": "; ".join(ev2) or "SAT not run"})

    # 3. SAT much cheaper than MAT and ALP
    sat_t = res.get("sat", {}).get("amdim", {}).get("train_seconds")
    base = {m: res.get("baselines", {}).get(m, {}).get("train_seconds") for m in ("mat", "alp")}
    if sat_t is not None and all(v is not None for v in base.values()):
        ok = sum(sat_t <= MUCH_CHEAPER * v for v in base.values())
        rows.append({"claim": f"3. SAT costs much less training time (<= {MUCH_CHEAPER:.0%}) than MAT and ALP",
                     "verdict": _verdict(ok, 2),
                     "evidence": f"SAT (AMDIM) {sat_t:.0f} s vs MAT {base['mat']:.0f} s, ALP {base['alp']:.0f} s "
                                 "(fine-tuning wall time with this profile's settings)"})
    else:
        rows.append({"claim": "3. SAT costs much less training time than MAT and ALP",
                     "verdict": _verdict(0, 0), "evidence": "SAT or the baselines not run"})

    # 4. label-scarce data (STL-10): SAT trades robustness and accuracy better than supervised methods
    sat_name = "sat-amdim"
    if res["dataset"]["dataset"] == "stl10" and sat_name in ev:
        sat_pt = (ev[sat_name]["acc"], ev[sat_name]["dsr_small"])
        sup_pts = {m: (ev[m]["acc"], ev[m]["dsr_small"]) for m in ("at", "mat", "alp") if m in ev}
        dominated = [m for m, (a, d) in sup_pts.items() if a >= sat_pt[0] and d >= sat_pt[1]]
        rows.append({"claim": "4. On label-scarce STL-10, SAT trades robustness and accuracy better",
                     "verdict": "does not hold" if dominated else "holds",
                     "evidence": f"SAT (ACC, DSR) = ({sat_pt[0]:.1%}, {sat_pt[1]:.1%}); "
                                 + ", ".join(f"{m.upper()} ({a:.1%}, {d:.1%})" for m, (a, d) in sup_pts.items())})
    else:
        rows.append({"claim": "4. On label-scarce STL-10, SAT trades robustness and accuracy better",
                     "verdict": _verdict(0, 0),
                     "evidence": f"this run used {res['dataset']['dataset']}, not STL-10"})
    return pd.DataFrame(rows).set_index("claim")


def sat_trajectory_plot(trajectories: dict[str, list[dict]], paper: bool = True) -> plt.Figure:
    """Fig. 2 style: clean ACC against DSR (small, large) along SAT, one path per seed model."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, setting in zip(axes, ("small", "large")):
        for i, (name, traj) in enumerate(trajectories.items()):
            df = pd.DataFrame(traj)
            if df.empty or f"dsr_{setting}" not in df:
                continue
            color = sns.color_palette()[i]
            ax.plot(df["acc"], df[f"dsr_{setting}"], "-o", color=color, ms=3, label=f"{name} (ours)")
            ax.annotate("start", (df["acc"].iloc[0], df[f"dsr_{setting}"].iloc[0]), fontsize=7, color=color)
            ax.annotate(f"it {int(df['iteration'].iloc[-1])}", (df["acc"].iloc[-1], df[f"dsr_{setting}"].iloc[-1]),
                        fontsize=7, color=color)
        if paper:
            pts = PAPER_POINTS[(PAPER_POINTS.setting == setting) & PAPER_POINTS.model.str.startswith("SAT")]
            for seed, marker in (("AMDIM", "s"), ("NPID", "^")):
                sel = pts[pts.model.str.contains(seed)]
                if len(sel):
                    ax.plot(sel["ACC"], sel["DSR"], marker + "--", color="black", alpha=0.6, ms=6,
                            label=f"SAT ({seed}), paper")
        ax.set_title(f"{setting} perturbation")
        ax.set_xlabel("clean kNN accuracy (ACC)")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("DSR")
    axes[1].legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def tradeoff_plot(ours: pd.DataFrame, paper: bool = True) -> plt.Figure:
    """Figs. 3-4 style: clean ACC against DSR (small, large) for every method, the paper's points beside ours.

    `ours` has columns model, ACC, DSR small, DSR large.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    palette = dict(zip(ours["model"], sns.color_palette("tab10", len(ours))))
    for ax, setting in zip(axes, ("small", "large")):
        sns.scatterplot(data=ours, x="ACC", y=f"DSR {setting}", hue="model", palette=palette, s=70, ax=ax,
                        legend=setting == "large")
        for _, r in ours.iterrows():
            ax.annotate(r["model"], (r["ACC"], r[f"DSR {setting}"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        if paper:
            pts = PAPER_POINTS[PAPER_POINTS.setting == setting]
            ax.scatter(pts["ACC"], pts["DSR"], marker="x", color="black", alpha=0.6, label="paper (CIFAR-10)")
            for _, r in pts.iterrows():
                ax.annotate(r["model"], (r["ACC"], r["DSR"]), fontsize=6, color="grey", xytext=(3, -8),
                            textcoords="offset points")
        ax.set_title(f"{setting} perturbation (top right is better)")
        ax.set_xlabel("clean kNN accuracy (ACC)")
        ax.set_ylabel("DSR")
        ax.set_ylim(-0.02, 1.02)
    handles, labels = axes[1].get_legend_handles_labels()
    axes[1].legend(handles, labels, fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def results_dir() -> Path:
    """The repository's results/ folder (searched upward from here and from the package)."""
    import satnb

    for start in (Path.cwd(), Path(satnb.__file__).resolve().parent):
        for d in (start, *start.parents):
            if (d / "results").is_dir() and (d / "satnb").is_dir():
                return d / "results"
    raise FileNotFoundError("no results/ folder found next to the satnb package; run from a checkout")


def committed_results() -> dict[str, dict]:
    """Every committed reference run in results/, by file name."""
    return {p.name: load_results(p) for p in sorted(results_dir().glob("*.json"))}


def verdicts(runs: dict[str, dict], space: str = "pixel") -> pd.DataFrame:
    """One column of claim verdicts per run (this build's and every committed one)."""
    cols = {}
    for name, res in runs.items():
        label = f"{name} ({res['profile']}, {res['dataset']['dataset']}, N={_n_attacked(res, space)})"
        cols[label] = claims_table(res, space)["verdict"]
    return pd.DataFrame(cols)


def _n_attacked(res: dict, space: str) -> int | str:
    ev = res["evaluation"].get(space, {})
    return next((r["n_attacked"] for r in ev.values()), "?")


def run_times(res: dict) -> pd.DataFrame:
    """Wall time of each stage and each model's training or fine-tuning."""
    rows = [{"what": f"stage: {k}", "seconds": v} for k, v in res.get("stage_seconds", {}).items()]
    rows += [{"what": f"train {_label(m)} ({t['epochs']} epochs, {t['encoder']})", "seconds": t["seconds"]}
             for m, t in res.get("training", {}).items()]
    rows += [{"what": f"fine-tune {_label(r['name'])} ({r.get('n_updates', '?')} updates)",
              "seconds": r["train_seconds"]}
             for r in [*res.get("sat", {}).values(), *res.get("baselines", {}).values()]]
    return pd.DataFrame(rows).set_index("what").round(1)


def environment(res: dict) -> pd.Series:
    """Where and with what code a run was made."""
    p = res.get("provenance", {})
    keys = ("satnb_version", "git_commit", "code_fingerprint", "torch_version", "python", "platform", "device",
            "threads", "profile", "seed", "wall_time_s", "finished_at")
    return pd.Series({k: p.get(k) for k in keys} | {"dataset source": res["dataset"]["source"]}, name="value")
