"""SAT (Algorithm 1) and the supervised baselines AT / MAT / ALP: losses, label-freeness, caching, resuming."""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import satnb.defences.baselines as baselines
import satnb.defences.selfsupervised as selfsupervised
from satnb.core.config import AttackSettings, BaselineSettings, ConfigError, SATSettings
from satnb.core.store import Store
from satnb.defences import (
    SATObjective,
    adversarial_train,
    alp_loss,
    alp_pairing,
    at_loss,
    mat_loss,
    sat,
    sat_step,
)
from satnb.nets.amdim import AMDIMEncoder
from satnb.nets.convnets import SmallConvNet
from satnb.nets.losses import AMDIMLoss
from satnb.nets.models import Classifier

ATTACK = AttackSettings(eps=0.03, step=0.005, steps=3)
K, M = 5, 5


@pytest.fixture(autouse=True)
def _seeded():
    """A fixed global seed for the models each test builds."""
    torch.manual_seed(0)


def clustered_images(n_per: int = 12, n_classes: int = 3, size: int = 32, seed: int = 0):
    """Images of a few classes (a class = a smooth random colour field plus per-image variation), labels."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n_classes, 3, 4, 4, generator=g)
    coarse = base.repeat_interleave(n_per, 0) + 0.15 * torch.randn(n_classes * n_per, 3, 4, 4, generator=g)
    x = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    x = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, torch.arange(n_classes).repeat_interleave(n_per)


@pytest.fixture(scope="module")
def data():
    return clustered_images()


def encoder(seed: int = 0) -> SmallConvNet:
    torch.manual_seed(seed)
    return SmallConvNet(widths=(8, 16))


def run_sat(x, y, store, iterations=3, model=None, **kw):
    """sat() with keyword arguments split: SATSettings fields go into the settings, the rest to sat()."""
    fields = {f.name for f in dataclasses.fields(SATSettings)}
    s = {"refresh_every": 1, "eval_every": 2, **{k: kw.pop(k) for k in list(kw) if k in fields}}
    settings = SATSettings(iterations=iterations, batch_size=12, lr=1e-3, **s)
    return sat(model or encoder(), x, y, settings, ATTACK, k=K, m=M, store=store, progress=False, **kw)


def run_baseline(x, y, store, method="alp", epochs=2, **kw):
    torch.manual_seed(1)
    clf = Classifier(SmallConvNet(widths=(8, 16)), 3)
    fields = {f.name for f in dataclasses.fields(BaselineSettings)}
    settings = BaselineSettings(epochs=epochs, batch_size=12, **{k: kw.pop(k) for k in list(kw) if k in fields})
    return adversarial_train(clf, method, x, y, ATTACK, settings, store=store, progress=False, **kw)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------- the SAT update


def test_one_sat_step_lowers_the_contrast_loss(data):
    x, _ = data
    model = encoder()
    objective = SATObjective("heads", model, critic_hidden=32, critic_embed=16)
    opt = torch.optim.Adam(list(model.parameters()) + list(objective.parameters()), lr=1e-3)
    x_adv = (x + 0.03 * torch.randn_like(x)).clamp(0, 1)
    model.train()

    def loss() -> float:
        with torch.no_grad():
            return float(objective(model, x, x_adv)[0])

    before = loss()
    out = sat_step(model, objective, opt, x, x_adv)
    assert out["loss"] == pytest.approx(before, rel=1e-5)
    assert out["mi_estimate"] == pytest.approx(math.log(len(x)) - before, rel=1e-5)
    assert loss() < before


def test_sat_step_has_no_label_argument():
    assert list(inspect.signature(sat_step).parameters) == ["model", "objective", "optimizer", "x", "x_adv"]


def test_sat_update_only_sees_image_pairs(data, tmp_path, monkeypatch):
    x, y = data
    seen = []

    def spy(model, objective, optimizer, *tensors):
        assert all(t.is_floating_point() and t.ndim == 4 for t in tensors), "a label reached the SAT update"
        seen.append(len(tensors[0]))
        return sat_step(model, objective, optimizer, *tensors)

    monkeypatch.setattr(selfsupervised, "sat_step", spy)
    run_sat(x, y, Store(tmp_path))
    assert seen == [12, 12, 12]


def test_sat_depends_on_labels_only_through_the_guides(data, tmp_path):
    """Renaming the classes keeps every guide group, so the weights are identical; shuffling labels does not."""
    x, y = data
    base = run_sat(x, y, Store(tmp_path / "a")).model
    renamed = run_sat(x, (y + 1) % 3, Store(tmp_path / "b")).model
    assert same_weights(base, renamed)
    shuffled = run_sat(x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(3))],
                       Store(tmp_path / "c")).model
    assert not same_weights(base, shuffled)


def test_sat_copies_the_model_and_accepts_uint8_images(data, tmp_path):
    x, y = data
    model = encoder()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x_u8 = (x * 255).round().byte().permute(0, 2, 3, 1).numpy()
    res = run_sat(x_u8, y.numpy(), Store(tmp_path), iterations=2, model=model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not same_weights(res.model, model)
    assert res.n_updates == 2 and res.method == "sat-heads"


def test_sat_trajectory_times_and_mi(data, tmp_path):
    x, y = data
    calls = []

    def eval_fn(model, it):
        calls.append((it, model.training))
        return {"acc": np.float32(0.5), "per_class": torch.tensor([1.0, 0.0])}

    res = run_sat(x, y, Store(tmp_path), iterations=5, eval_every=2, eval_fn=eval_fn, track_success=True)
    assert [c[0] for c in calls] == [0, 2, 4, 5] and not any(c[1] for c in calls)
    rows = res.trajectory
    assert [r["iteration"] for r in rows] == [0, 2, 4, 5]
    assert rows[0]["loss"] is None and isinstance(rows[1]["acc"], float) and rows[1]["per_class"] == [1.0, 0.0]
    assert rows[1]["loss"] == pytest.approx(np.mean([h["loss"] for h in res.history[:2]]))
    assert rows[1]["mi_estimate"] == pytest.approx(math.log(12) - rows[1]["loss"], abs=1e-6)
    assert all(0 <= h["attack_success"] <= 1 and h["refreshed"] for h in res.history)
    assert res.train_seconds == pytest.approx(sum(h["seconds"] for h in res.history))
    assert res.eval_seconds >= 0 and res.seconds_per_update > 0


def test_keep_only_successful_trains_on_the_fooled_pairs(data, tmp_path, monkeypatch):
    x, y = data
    sizes = []

    def spy(model, objective, optimizer, x, x_adv):
        sizes.append(len(x))
        return sat_step(model, objective, optimizer, x, x_adv)

    monkeypatch.setattr(selfsupervised, "sat_step", spy)
    strong = AttackSettings(eps=0.2, step=0.05, steps=5)
    settings = SATSettings(iterations=3, batch_size=12, lr=1e-3, eval_every=3)
    settings = dataclasses.replace(settings, keep_only_successful=True)
    res = sat(encoder(), x, y, settings, strong, k=K, m=M, store=Store(tmp_path), progress=False)
    kept = [h["n_pairs"] for h in res.history]
    assert kept == [round(h["attack_success"] * 12) for h in res.history]
    assert sizes == [n for n in kept if n >= 2] and res.n_updates == len(sizes)
    assert any(n < 12 for n in kept)


def test_sat_with_amdim_objective(data, tmp_path):
    x, y = data
    torch.manual_seed(0)
    model = AMDIMEncoder(ndf=8, n_rkhs=16, n_depth=1)
    settings = SATSettings(iterations=2, batch_size=8, lr=1e-3, eval_every=2, objective="amdim")
    res = sat(model, x, y, settings, ATTACK, k=K, m=M, store=Store(tmp_path), progress=False)
    assert res.method == "sat-amdim" and res.n_updates == 2
    assert res.objective.kind == "amdim" and isinstance(res.objective.nce, AMDIMLoss)  # the setting is obeyed
    assert all(math.isfinite(h["loss"]) and h["mi_estimate"] is None for h in res.history)
    assert not same_weights(res.model, model)
    with pytest.raises(ConfigError, match="AMDIMEncoder"):
        run_sat(x, y, Store(tmp_path), objective="amdim")
    with pytest.raises(ConfigError, match="objective"):
        run_sat(x, y, Store(tmp_path), objective="mine")


# ----------------------------------------------------------------------------- supervised baselines


class Linear(nn.Module):
    """logits = W flatten(x) + b with fixed weights."""

    def __init__(self, w: np.ndarray, b: np.ndarray):
        super().__init__()
        self.fc = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor(w))
            self.fc.bias.copy_(torch.tensor(b))

    def forward(self, x):
        return self.fc(x.flatten(1))


def _ce(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy by hand: log-sum-exp minus the true logit."""
    return float(np.mean([math.log(np.exp(row).sum()) - row[t] for row, t in zip(logits, y)]))


@torch.no_grad()
def test_baseline_losses_match_their_equations():
    w = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 1.5]], dtype=np.float32)
    b = np.array([0.1, 0.0, -0.2], dtype=np.float32)
    model = Linear(w, b)
    x = np.array([[0.2, 0.4], [0.9, 0.1]], dtype=np.float32)
    x_adv = np.array([[0.25, 0.35], [0.85, 0.15]], dtype=np.float32)
    y = np.array([1, 0])
    lc, la = x @ w.T + b, x_adv @ w.T + b
    tx, ta = (torch.tensor(a).view(2, 1, 1, 2) for a in (x, x_adv))
    ty = torch.tensor(y)
    pairing = np.mean(((lc - la) ** 2).sum(1))
    assert float(at_loss(model, tx, ta, ty)) == pytest.approx(_ce(la, y), rel=1e-5)
    assert float(mat_loss(model, tx, ta, ty)) == pytest.approx(_ce(lc, y) + _ce(la, y), rel=1e-5)
    assert float(mat_loss(model, tx, ta, ty, adv_weight=0.3)) == pytest.approx(_ce(lc, y) + 0.3 * _ce(la, y), rel=1e-5)
    assert float(alp_pairing(torch.tensor(lc), torch.tensor(la))) == pytest.approx(pairing, rel=1e-5)
    assert float(alp_loss(model, tx, ta, ty, weight=0.7)) == pytest.approx(
        _ce(lc, y) + _ce(la, y) + 0.7 * pairing, rel=1e-5)


def test_alp_pairing_is_zero_for_identical_logits():
    logits = torch.randn(5, 10)
    assert float(alp_pairing(logits, logits.clone())) == 0.0
    assert float(alp_pairing(logits, logits + 1)) == pytest.approx(10.0)


@pytest.mark.parametrize("method", ["at", "mat", "alp"])
def test_adversarial_train_runs_each_method(data, tmp_path, method):
    x, y = data
    res = run_baseline(x, y, Store(tmp_path), method=method, epochs=1, eval_fn=lambda m, e: {"epoch_seen": e})
    assert res.method == method and res.n_updates == 3
    assert [(r["epoch"], r["iteration"], r["epoch_seen"]) for r in res.trajectory] == [(0, 0, 0), (1, 3, 1)]
    assert math.isfinite(res.history[0]["loss"]) and res.history[0]["attack_seconds"] > 0


def test_adversarial_train_rejects_bad_inputs(data, tmp_path):
    x, y = data
    with pytest.raises(ConfigError, match="Classifier"):
        adversarial_train(encoder(), "at", x, y, ATTACK, BaselineSettings(batch_size=12), store=Store(tmp_path))
    with pytest.raises(ConfigError, match="method"):
        run_baseline(x, y, Store(tmp_path), method="trades")
    with pytest.raises(ConfigError, match="batch_size"):
        adversarial_train(Classifier(encoder(), 3), "at", x, y, ATTACK, BaselineSettings(batch_size=100),
                          store=Store(tmp_path))


# ----------------------------------------------------------------------------- caching and resuming


class Interrupt(RuntimeError):
    pass


def interrupt_at(point: int):
    def eval_fn(model, t):
        if t == point:
            raise Interrupt(f"killed at {t}")
        return {"t": t}
    return eval_fn


def test_interrupted_sat_resumes_to_the_same_weights(data, tmp_path, monkeypatch):
    x, y = data
    # refresh_every=3: the run resumes at iteration 2 with the library built at 0, which must be restored
    kw = {"iterations": 5, "eval_every": 2, "refresh_every": 3}
    full = run_sat(x, y, Store(tmp_path / "full"), eval_fn=interrupt_at(-1), **kw)
    store = Store(tmp_path / "resumed")
    with pytest.raises(Interrupt):
        run_sat(x, y, store, eval_fn=interrupt_at(2), **kw)
    steps = []

    def spy(*args):
        steps.append(1)
        return sat_step(*args)

    monkeypatch.setattr(selfsupervised, "sat_step", spy)
    resumed = run_sat(x, y, store, eval_fn=interrupt_at(-1), **kw)
    assert len(steps) == 3 and not resumed.cached
    assert same_weights(full.model, resumed.model) and same_weights(full.objective, resumed.objective)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    assert [r["iteration"] for r in resumed.trajectory] == [0, 2, 4, 5]


def test_interrupted_baseline_resumes_to_the_same_weights(data, tmp_path):
    x, y = data
    full = run_baseline(x, y, Store(tmp_path / "full"), epochs=3, eval_fn=interrupt_at(-1))
    store = Store(tmp_path / "resumed")
    with pytest.raises(Interrupt):
        run_baseline(x, y, store, epochs=3, eval_fn=interrupt_at(2))
    resumed = run_baseline(x, y, store, epochs=3, eval_fn=interrupt_at(-1))
    assert same_weights(full.model, resumed.model)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    assert [r["epoch"] for r in resumed.trajectory] == [0, 1, 2, 3]


def test_second_call_is_a_cache_hit(data, tmp_path, monkeypatch):
    x, y = data
    store = Store(tmp_path)
    first = run_sat(x, y, store, iterations=2, base_key="amdim-abc")
    first_base = run_baseline(x, y, store, method="mat", epochs=1)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run trained again")

    monkeypatch.setattr(selfsupervised, "sat_step", no_training)
    monkeypatch.setattr(baselines, "baseline_loss", no_training)
    again = run_sat(x, y, store, iterations=2, base_key="amdim-abc")
    assert again.cached and not first.cached and again.artifact == first.artifact
    assert same_weights(first.model, again.model) and again.trajectory == first.trajectory
    assert again.train_seconds == pytest.approx(first.train_seconds)
    again_base = run_baseline(x, y, store, method="mat", epochs=1)
    assert again_base.cached and same_weights(first_base.model, again_base.model)
    with pytest.raises(AssertionError, match="trained again"):  # another seed model is another run
        run_sat(x, y, store, iterations=2, base_key="npid-def")


def test_baseline_settings_are_obeyed(data, tmp_path):
    """adversarial_train reads its loss weights and optimiser from BaselineSettings, its one source of settings."""
    x, y = data
    a = run_baseline(x, y, Store(tmp_path / "a"), method="alp", epochs=1, alp_weight=0.5)
    b = run_baseline(x, y, Store(tmp_path / "b"), method="alp", epochs=1, alp_weight=5.0)
    c = run_baseline(x, y, Store(tmp_path / "c"), method="alp", epochs=1, alp_weight=0.5, lr=1e-2)
    assert not same_weights(a.model, b.model) and not same_weights(a.model, c.model)
    assert a.settings["settings"]["alp_weight"] == 0.5 and b.settings["settings"]["alp_weight"] == 5.0
