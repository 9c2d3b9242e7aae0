"""Mutual-information critics, variational lower bounds and the contrast loss (paper eq. 7-11).

Every bound takes a (B, B) score matrix ``scores[i, j] = f(x_i, y_j)``: the diagonal holds the
positive pairs drawn from p(x, y), the off-diagonal entries the negatives from p(x) p(y).
Estimates are in nats. The correlated-Gaussian "staircase" of Poole et al. (2019,
"On variational bounds of mutual information") checks them where the true MI is known.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from satnb.core.checks import integer, one_of
from satnb.core.config import ConfigError

ArrayLike = torch.Tensor | np.ndarray


# ----------------------------------------------------------------------------- critics


def _mlp(dim_in: int, hidden: int, dim_out: int, layers: int) -> nn.Sequential:
    """MLP with `layers` hidden ReLU layers of width `hidden`."""
    modules: list[nn.Module] = []
    width = dim_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    modules.append(nn.Linear(width, dim_out))
    return nn.Sequential(*modules)


class SeparableCritic(nn.Module):
    """Separable critic S[i, j] = phi1(x_i)^T phi2(y_j) (paper eq. 10)."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int = 256, embed: int = 64, layers: int = 1) -> None:
        super().__init__()
        self.phi1 = _mlp(dim_x, hidden, embed, layers)
        self.phi2 = _mlp(dim_y, hidden, embed, layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the (B, B) score matrix, positives on the diagonal."""
        return self.phi1(x) @ self.phi2(y).T


class ConcatCritic(nn.Module):
    """Joint critic S[i, j] = f([x_i, y_j]), one MLP evaluated on all B^2 pairs."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int = 256, layers: int = 1) -> None:
        super().__init__()
        self.f = _mlp(dim_x + dim_y, hidden, 1, layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the (B, B) score matrix, positives on the diagonal."""
        b = x.shape[0]
        pairs = torch.cat([x[:, None, :].expand(b, b, -1), y[None, :, :].expand(b, b, -1)], dim=-1)
        return self.f(pairs).squeeze(-1)


CRITICS: dict[str, type[nn.Module]] = {"separable": SeparableCritic, "concat": ConcatCritic}


# ----------------------------------------------------------------------------- bounds


def _check_scores(scores: torch.Tensor) -> int:
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ConfigError(
            f"scores must be a square (B, B) matrix with B >= 2, got shape {tuple(scores.shape)}; "
            "build it with a critic's forward(x, y) on a batch of at least 2 pairs"
        )
    return scores.shape[0]


def infonce_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE / CPC lower bound on MI; never exceeds log B."""
    b = _check_scores(scores)
    return (scores.diagonal() - scores.logsumexp(dim=1)).mean() + math.log(b)


def contrast_loss(scores: torch.Tensor) -> torch.Tensor:
    """The paper's L_contrast (eq. 11): cross-entropy of each row with its diagonal entry as target."""
    b = _check_scores(scores)
    return F.cross_entropy(scores, torch.arange(b, device=scores.device))


def _off_diagonal(scores: torch.Tensor) -> torch.Tensor:
    b = scores.shape[0]
    return scores.masked_select(~torch.eye(b, dtype=torch.bool, device=scores.device))


def nwj_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    """NWJ (f-GAN KL, MINE-f) lower bound E_p[f] - e^{-1} E_q[e^f]."""
    b = _check_scores(scores)
    neg = _off_diagonal(scores)
    # exp(logmeanexp - 1) instead of mean(exp(.)) / e: same value, overflows later.
    log_mean_exp = neg.logsumexp(dim=0) - math.log(b * (b - 1))
    return scores.diagonal().mean() - (log_mean_exp - 1.0).exp()


def js_training_objective(scores: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon (f-GAN / Deep InfoMax) objective that trains the critic; not an MI estimate."""
    _check_scores(scores)
    return -F.softplus(-scores.diagonal()).mean() - F.softplus(_off_diagonal(scores)).mean()


def js_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    """MI estimate of a JS-trained critic: value of the NWJ bound, gradient of the JS objective."""
    # The JS optimum is f* = log p(x,y)/(p(x)p(y)), while NWJ is tight at 1 + log ratio, so the
    # critic is read out as NWJ(f + 1) (Poole et al. 2019). The detached difference makes the
    # value the NWJ estimate and the gradient the (lower-variance) JS one.
    js = js_training_objective(scores)
    mi = nwj_lower_bound(scores.detach() + 1.0)
    return js + (mi - js.detach())


BOUNDS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "infonce": infonce_lower_bound,
    "nwj": nwj_lower_bound,
    "js": js_lower_bound,
}


# ----------------------------------------------------------------------------- estimation


@dataclass
class MIEstimate:
    """A trained-critic MI estimate in nats, with its training curve."""

    value: float
    history: list[float] = field(repr=False)
    method: str
    batch_size: int
    log_batch: float  # log(batch_size): the InfoNCE ceiling


def _make_critic(critic: str, dim_x: int, dim_y: int, seed: int, **critic_kw) -> nn.Module:
    one_of(critic, "critic", sorted(CRITICS))
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(seed)
        return CRITICS[critic](dim_x, dim_y, **critic_kw)


def _as_2d(name: str, a: ArrayLike) -> torch.Tensor:
    t = torch.as_tensor(a)
    if t.ndim != 2:
        raise ConfigError(
            f"{name} must be 2-D (n_samples, n_features), got shape {tuple(t.shape)}; "
            f"reshape it, e.g. {name}.reshape(len({name}), -1)"
        )
    return t.float()


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order[: n - n % batch_size].split(batch_size))


def estimate_mi(
    x: ArrayLike,
    y: ArrayLike,
    method: str = "infonce",
    critic: str = "separable",
    steps: int = 500,
    batch_size: int = 128,
    lr: float = 5e-4,
    seed: int = 0,
    holdout: float = 0.2,
    progress: bool = True,
    device: str | torch.device | None = None,
    **critic_kw,
) -> MIEstimate:
    """Estimate I(X; Y) in nats from paired samples x (N, dx), y (N, dy) by training a fresh critic.

    The critic is trained with Adam on shuffled minibatches of the first ``1 - holdout`` of a seeded
    permutation of the samples; ``value`` is the bound of the trained critic averaged over all full
    batches of the held-out part (of the training part when ``holdout=0``), and ``history`` holds the
    per-step training-batch estimates. ``critic_kw`` go to the critic (hidden, embed, layers).
    """
    one_of(method, "MI method", sorted(BOUNDS))
    xt, yt = _as_2d("x", x), _as_2d("y", y)
    n = xt.shape[0]
    if yt.shape[0] != n:
        raise ConfigError(f"x and y must hold the same number of paired samples, got {n} and {yt.shape[0]}")
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"holdout must be in [0, 1), got {holdout}; use 0 to evaluate on the training samples")
    integer(steps, "steps", "train the critic for at least one step, e.g. 500")
    n_eval = int(round(n * holdout))
    n_train = n - n_eval
    if batch_size < 2 or batch_size > n_train or (holdout > 0 and batch_size > n_eval):
        raise ConfigError(
            f"batch_size={batch_size} does not fit {n} samples split into {n_train} for training and {n_eval} "
            f"held out; use 2 <= batch_size <= {min(n_train, n_eval) if holdout > 0 else n_train}, "
            "pass more samples, or change holdout"
        )

    device = torch.device(device) if device is not None else xt.device
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    train_idx = perm[:n_train]
    eval_idx = perm[n_train:] if holdout > 0 else train_idx
    xt, yt = xt.to(device), yt.to(device)
    net = _make_critic(critic, xt.shape[1], yt.shape[1], seed, **critic_kw).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    bound = BOUNDS[method]

    history: list[float] = []
    batches: list[torch.Tensor] = []
    for _ in tqdm(range(steps), desc=f"MI ({method})", disable=not progress, leave=False):
        if not batches:
            batches = _batches(n_train, batch_size, gen)
        idx = train_idx[batches.pop()].to(device)
        estimate = bound(net(xt[idx], yt[idx]))
        opt.zero_grad(set_to_none=True)
        (-estimate).backward()
        opt.step()
        history.append(estimate.item())

    with torch.no_grad():
        evals = [bound(net(xt[eval_idx[b]], yt[eval_idx[b]])).item() for b in _batches(len(eval_idx), batch_size, None)]
    return MIEstimate(
        value=float(np.mean(evals)),
        history=history,
        method=method,
        batch_size=batch_size,
        log_batch=math.log(batch_size),
    )


def mi_between_features(z: ArrayLike, z_hat: ArrayLike, method: str = "infonce", **kw) -> MIEstimate:
    """Estimate the MI between clean features z and adversarial features z_hat of the same inputs.

    Features are flattened to (N, -1), detached, and standardised per dimension (zero mean, unit
    variance, each with its own statistics) so the critic's learning rate does not depend on the
    encoder's feature scale; MI is invariant to such invertible per-dimension maps. ``kw`` go to
    :func:`estimate_mi`.
    """

    def standardise(a: ArrayLike) -> torch.Tensor:
        t = torch.as_tensor(a).detach().float()
        t = t.reshape(t.shape[0], -1)
        return (t - t.mean(0)) / t.std(0).clamp_min(1e-8)

    return estimate_mi(standardise(z), standardise(z_hat), method=method, **kw)


# ----------------------------------------------------------------------------- correlated Gaussians


def gaussian_mi(rho: float, dim: int) -> float:
    """True MI in nats between x and y = rho x + sqrt(1 - rho^2) eps in `dim` independent dimensions."""
    if not -1.0 < rho < 1.0:
        raise ConfigError(f"rho must lie in (-1, 1), got {rho}")
    return -dim / 2 * math.log(1 - rho**2)


def rho_for_mi(mi: float, dim: int) -> float:
    """Correlation rho >= 0 whose `dim`-dimensional Gaussian pair has the given MI in nats."""
    if mi < 0 or dim < 1:
        raise ConfigError(f"need mi >= 0 and dim >= 1, got mi={mi}, dim={dim}")
    return math.sqrt(1 - math.exp(-2 * mi / dim))


def sample_correlated_gaussian(
    n: int, dim: int, rho: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n pairs x ~ N(0, I), y = rho x + sqrt(1 - rho^2) eps."""
    x = torch.randn(n, dim, generator=generator)
    eps = torch.randn(n, dim, generator=generator)
    return x, rho * x + math.sqrt(1 - rho**2) * eps


def staircase(
    estimators: Sequence[str] = ("infonce", "nwj", "js"),
    dim: int = 20,
    batch_size: int = 64,
    steps_per_level: int = 300,
    levels: Sequence[float] = (2, 4, 6, 8, 10),
    critic: str = "separable",
    seed: int = 0,
    lr: float = 5e-4,
    progress: bool = True,
    **critic_kw,
) -> pd.DataFrame:
    """Poole et al.'s MI staircase: each estimator's critic trains on fresh samples while the true MI steps up.

    Returns one row per training step per method with columns step, level, true_mi, method, estimate.
    Every method sees the same sample sequence (same seed).
    """
    for method in estimators:
        one_of(method, "MI method", sorted(BOUNDS))
    rows = []
    bar = tqdm(total=len(estimators) * len(levels) * steps_per_level, desc="MI staircase", disable=not progress)
    for method in estimators:
        gen = torch.Generator().manual_seed(seed)
        net = _make_critic(critic, dim, dim, seed, **critic_kw)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        step = 0
        for level in levels:
            rho = rho_for_mi(level, dim)
            true_mi = gaussian_mi(rho, dim)
            for _ in range(steps_per_level):
                x, y = sample_correlated_gaussian(batch_size, dim, rho, gen)
                estimate = BOUNDS[method](net(x, y))
                opt.zero_grad(set_to_none=True)
                (-estimate).backward()
                opt.step()
                rows.append((step, level, true_mi, method, estimate.item()))
                step += 1
                bar.update()
    bar.close()
    return pd.DataFrame(rows, columns=["step", "level", "true_mi", "method", "estimate"])


def batch_size_study(
    true_mi: float = 4.0,
    dim: int = 20,
    batch_sizes: Sequence[int] = (16, 32, 64, 128, 256),
    estimators: Sequence[str] = ("infonce", "nwj"),
    n_samples: int = 20_000,
    steps: int = 300,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Bias and variance of each estimator against the batch size at a fixed true MI (correlated Gaussians).

    Returns one row per (batch, method): the held-out estimate, the std of the per-batch training
    estimates over the second half of training, and the InfoNCE ceiling log(batch).
    """
    for method in estimators:
        one_of(method, "MI method", sorted(BOUNDS))
    rho = rho_for_mi(true_mi, dim)
    x, y = sample_correlated_gaussian(n_samples, dim, rho, generator=torch.Generator().manual_seed(seed))
    rows = []
    for bs in tqdm(batch_sizes, desc="MI batch sizes", disable=not progress):
        for method in estimators:
            est = estimate_mi(x, y, method=method, batch_size=bs, steps=steps, seed=seed, progress=False)
            tail = est.history[len(est.history) // 2:]
            rows.append({"batch": bs, "method": method, "estimate": est.value,
                         "std (per batch)": float(np.std(tail)), "log(batch)": math.log(bs),
                         "true_mi": gaussian_mi(rho, dim)})
    return pd.DataFrame(rows)
