"""The verdict rules as pure functions: words, p-values of intervals, Holm, verdicts across comparisons, seeds, cells.

- A comparison's p-value is the two-sided normal one its 95% interval implies (`implied_p`): it is
  below 0.05 exactly when the interval excludes the threshold.
- Within a claim, Holm's step-down at 5% (`holm`) decides which comparisons hold or do not hold;
  the rest are inconclusive at this N.
- A claim holds when every comparison holds, does not hold when some do not and none holds, is
  mixed when some hold and some do not, and is inconclusive otherwise (`combine`).
- A claim judged on several training seeds (`across_seeds`) and in several cells of the protocol
  grid (`across_cells`) says when the seeds disagree and which choice of protocol flips it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from statistics import NormalDist

from satnb.core.config import ConfigError
from satnb.core.identity import ModelId
from satnb.core.stats import Z95, Interval
from satnb.core.variants import ATTACK_SETS, EPS_SPACES, GUIDE_RULES

HOLDS = "holds"
FAILS = "does not hold"
MIXED = "mixed"
INCONCLUSIVE = "inconclusive at this N"
DEPENDS = "depends on the protocol"
NOT_TESTED = "not tested"
WORDS = (HOLDS, FAILS, MIXED, INCONCLUSIVE, DEPENDS, NOT_TESTED)
ALPHA = 0.05  # the family-wise error rate of each claim (Holm), and 1 - the intervals' coverage


def word(verdict: str) -> str:
    """A verdict's bare word, without its parenthesised tail ("inconclusive at this N (about ...)" -> before it)."""
    return verdict.partition(" (")[0].strip()


# ----------------------------------------------------------------------------- p-values and Holm


def implied_p(diff: Interval, threshold: float = 0.0) -> float:
    """The two-sided p-value a 95% interval implies against a threshold (normal approximation; p < 0.05 iff excluded).

    The standard error comes from the half of the interval on the threshold's side (intervals of
    bootstrap statistics need not be symmetric): (value - lo) / Z95 when the value lies above the
    threshold, (hi - value) / Z95 otherwise. A nan interval gives 1; a degenerate one (zero width on
    that side, or infinite values) gives 0 when it excludes the threshold, else 1.
    """
    value, lo, hi = diff.value, diff.lo, diff.hi
    if any(math.isnan(v) for v in (value, lo, hi)):
        return 1.0
    excluded = lo > threshold or hi < threshold
    gap = value - threshold
    side = value - lo if gap > 0 else hi - value
    if not side > 0:  # zero width on the threshold's side (or a value outside its own interval): no spread
        return 0.0 if excluded else 1.0
    z = abs(gap) * Z95 / side
    if math.isnan(z):  # inf / inf: an infinite estimate with an infinite half
        return 0.0 if excluded else 1.0
    p = math.erfc(z / math.sqrt(2))
    # the normal tail at exactly Z95 rounds to 0.05 either way: keep "p < 0.05 iff the interval excludes" exact
    return min(p, math.nextafter(ALPHA, 0.0)) if excluded else max(p, math.nextafter(ALPHA, 1.0))


def holm(ps: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down rejections: the i-th smallest p (0-based) is rejected while p <= alpha / (m - i)."""
    m = len(ps)
    out = [False] * m
    for rank, i in enumerate(sorted(range(m), key=lambda j: (math.isnan(ps[j]), ps[j]))):
        if not ps[i] <= alpha / (m - rank):  # nan never rejects
            break
        out[i] = True
    return out


def holm_z(m: int, alpha: float = ALPHA) -> float:
    """The |z| a comparison needs to be rejected at Holm's strictest step among m (two-sided alpha / m)."""
    return NormalDist().inv_cdf(1 - alpha / (2 * max(m, 1)))


def decide(diff: Interval, threshold: float = 0.0) -> str:
    """One interval alone (no Holm): holds when it lies wholly above the threshold, does not hold when below."""
    if math.isnan(diff.lo) or math.isnan(diff.hi):
        return INCONCLUSIVE
    if diff.lo > threshold:
        return HOLDS
    if diff.hi < threshold:
        return FAILS
    return INCONCLUSIVE


def holm_decide(comparisons: Sequence[tuple[Interval, float]], alpha: float = ALPHA) -> list[str]:
    """Holm's verdict of each (interval, threshold) of a claim: holds / does not hold where it rejects, else undecided.

    A rejected p is below 0.05, so its interval excludes the threshold and gives the direction.
    """
    rejected = holm([implied_p(d, t) for d, t in comparisons], alpha)
    return [decide(d, t) if r else INCONCLUSIVE for (d, t), r in zip(comparisons, rejected)]


def n_to_decide(diff: Interval, threshold: float = 0.0, z: float = Z95) -> int | None:
    """About how many images would make an interval this wide at this estimate exclude the threshold (None: never).

    `z`: the |z| the decision needs (Z95 for one interval alone, `holm_z(m)` within a claim of m comparisons).
    """
    gap = abs(diff.value - threshold)
    # the half of the interval that reaches across the threshold (bootstrap intervals need not be symmetric)
    side = diff.value - diff.lo if diff.value > threshold else diff.hi - diff.value
    if not diff.n or not math.isfinite(gap) or gap == 0 or not math.isfinite(side):
        return None
    return int(math.ceil(diff.n * (side * z / (Z95 * gap)) ** 2))


# ----------------------------------------------------------------------------- one comparison


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


@dataclass(frozen=True)
class Comparison:
    """One paired difference inside a claim: what was compared, its interval, its p-value and its Holm verdict."""

    metric: str
    models: tuple[ModelId, ModelId]  # the difference is models[0] minus models[1]
    diff: Interval
    threshold: float
    verdict: str  # Holm's decision within the claim: holds / does not hold, else inconclusive at this N
    p: float = 1.0  # the unadjusted two-sided p-value the interval implies against the threshold

    def text(self) -> str:
        """One line of evidence."""
        d = self.diff
        return (f"{self.metric}, {self.models[0].label} - {self.models[1].label}: {d.value:+.3f} "
                f"[{d.lo:+.3f}, {d.hi:+.3f}] (n={d.n}, threshold {self.threshold:+.2f}, {_p_text(self.p)}): "
                f"{self.verdict}")


def holm_verdicts(comparisons: list[Comparison]) -> list[Comparison]:
    """The comparisons of one claim with Holm's verdicts: holds / does not hold where it rejects, else inconclusive."""
    decided = holm_decide([(c.diff, c.threshold) for c in comparisons])
    return [replace(c, verdict=v) for c, v in zip(comparisons, decided)]


# ----------------------------------------------------------------------------- verdicts of comparisons, seeds, cells


def combine(comparison_verdicts: Sequence[str]) -> str:
    """A claim's verdict from its comparisons': holds (all hold), does not hold, mixed (some each way), inconclusive.

    No comparison at all is "not tested"; a comparison's "mixed" counts as both holding and failing.
    """
    words = [word(v) for v in comparison_verdicts]
    if not words:
        return NOT_TESTED
    holds, fails = any(w in (HOLDS, MIXED) for w in words), any(w in (FAILS, MIXED) for w in words)
    if holds and fails:
        return MIXED
    if all(w == HOLDS for w in words):
        return HOLDS
    if fails:
        return FAILS
    return INCONCLUSIVE


def _seeds_text(groups: dict[str, list[int]]) -> str:
    return "; ".join(f"{w} with seed{'s' * (len(s) > 1)} {', '.join(map(str, s))}" for w, s in groups.items())


def across_seeds(verdicts: Mapping[int, str]) -> str:
    """One verdict from each training seed's: theirs when all agree, else mixed or inconclusive saying how they differ.

    Seeds that disagree with "holds" and "does not hold" (or "mixed") among them make it mixed,
    any other disagreement inconclusive at this N; untested seeds are left out when others are tested.
    """
    if not verdicts:
        return NOT_TESTED
    if len(verdicts) == 1:
        return next(iter(verdicts.values()))
    tested = {s: v for s, v in sorted(verdicts.items()) if word(v) != NOT_TESTED}
    if not tested:
        return next(iter(verdicts.values()))
    groups: dict[str, list[int]] = {}
    for s, v in tested.items():
        groups.setdefault(word(v), []).append(s)
    if len(groups) == 1:
        return next(iter(tested.values()))
    opposed = MIXED in groups or (HOLDS in groups and FAILS in groups)
    return f"{MIXED if opposed else INCONCLUSIVE} (seeds disagree: {_seeds_text(groups)})"


AXES = ("eps_space", "guide", "attacks")
AXIS_WORDS = {"eps_space": "eps convention", "guide": "guide rule", "attacks": "attack set"}
_VALUES = {"eps_space": EPS_SPACES, "guide": GUIDE_RULES, "attacks": ATTACK_SETS}
_LABELS = {"eps_space": {"pixel": "pixel eps", "normalized": "normalized eps"},
           "guide": {"paper": "paper's guide rule", "authors": "authors' guide rule"},
           "attacks": {"paper": "paper's attacks", "worst case": "worst case of the attack zoo"}}


@dataclass(frozen=True)
class Cell:
    """One cell of the protocol grid: an eps convention, a guide-group rule and an attack set."""

    eps_space: str
    guide: str
    attacks: str

    def __post_init__(self) -> None:
        for f in fields(self):
            value, allowed = getattr(self, f.name), _VALUES[f.name]
            if value not in allowed:
                raise ConfigError(f"unknown {f.name} {value!r} for a cell of the protocol grid; use one of "
                                  f"{', '.join(map(repr, allowed))}")

    @property
    def label(self) -> str:
        """The cell in words: "pixel eps, paper's guide rule, paper's attacks"."""
        return ", ".join(_LABELS[a][getattr(self, a)] for a in AXES)


PRIMARY = Cell("pixel", "paper", "paper")


def across_cells(verdicts: Mapping[Cell, str], primary: Cell = PRIMARY) -> tuple[str, list[str]]:
    """The grid's verdict and the axes that flip it: the shared verdict, else "depends on the protocol (flipped by..)".

    Only tested cells count. An axis flips the verdict when two tested cells that differ only on
    that axis have different bare words; the axes are named by their words, in `AXES` order.
    """
    tested = {c: v for c, v in verdicts.items() if word(v) != NOT_TESTED}
    if not tested:
        return verdicts.get(primary, NOT_TESTED), []
    if len({word(v) for v in tested.values()}) == 1:
        return tested.get(primary, next(iter(tested.values()))), []
    flips = []
    for axis in AXES:
        others = [a for a in AXES if a != axis]
        if any(getattr(a, axis) != getattr(b, axis) and all(getattr(a, o) == getattr(b, o) for o in others)
               and word(va) != word(vb) for a, va in tested.items() for b, vb in tested.items()):
            flips.append(AXIS_WORDS[axis])
    tail = f"flipped by {', '.join(f'the {f}' for f in flips)}" if flips else \
        "the cells disagree, but no single choice flips it"
    return f"{DEPENDS} ({tail})", flips
