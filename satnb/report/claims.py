"""The paper's four claims as pure functions of a results record: verdicts decided by 95% intervals of differences.

Every comparison pairs the two models on the same test images (`stats.paired_difference` for
proportions, `stats.paired_bootstrap` for L2). A comparison *holds* when its whole interval lies
above its threshold, *does not hold* when it lies below, and is *inconclusive at this N*
otherwise. A claim holds when all its comparisons hold, does not hold when any does not, and is
inconclusive otherwise, with the number of images that would decide it. The thresholds the paper
leaves unstated are fixed here, once, and applied to every run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from satnb.core import stats
from satnb.core.identity import ModelId
from satnb.report.record import (
    MISSING,
    check_entries,
    evaluation_records,
    label,
    model_encoders,
    model_ids,
    same_encoder_supervised,
)

SAT_MIN_DSR_GAIN = 0.05  # claim 2's "a lot": DSR must rise by at least 5 points
SAT_MAX_ACC_DROP = 0.10  # claim 2's "small drop": clean accuracy may fall by at most 10 points
MUCH_CHEAPER = 0.5  # claim 3's "much less": at most half the fine-tuning time
NOT_TESTED = "not tested"
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive at this N"
# the models the claims name
AMDIM, NPID, SIMCLR, SUP = (ModelId.pretrained(m) for m in ("amdim", "npid", "simclr", "sup"))
SAT_AMDIM, SAT_NPID = ModelId.sat(AMDIM), ModelId.sat(NPID)
AT, MAT, ALP = (ModelId.baseline(m) for m in ("at", "mat", "alp"))

RULES = {
    1: "holds if SSL (AMDIM) minus SUP is above 0 for DSR small and large (on the test images both classify "
       "correctly), robust accuracy small and large (on the same test images) and median L2 (normalised units, "
       "on the images both attacked), every 95% interval excluding 0; does not hold if any interval lies below 0",
    2: f"for each of AMDIM and NPID: SAT minus its seed must exceed +{SAT_MIN_DSR_GAIN:.0%} points in DSR small "
       "(images both classify correctly) and 0 in robust accuracy small, and exceed "
       f"-{SAT_MAX_ACC_DROP:.0%} points in clean accuracy, every 95% interval on the right side; "
       "does not hold if any interval lies wholly on the wrong side",
    3: f"holds if SAT (AMDIM) reaches the same robust accuracy (small) in at most {MUCH_CHEAPER:.0%} of the "
       "fine-tuning wall time MAT and ALP need, each from its own starting model, on the same encoder and machine "
       "(the target: the lower of the two methods' best robust accuracy along their trajectories; a measured time, "
       "no interval); inconclusive when SAT's starting model already meets the target (0 s of fine-tuning measures "
       "nothing), not tested when the encoders differ or a time is missing",
    4: "with few labels (STL-10, or the CIFAR-10 proxy where only labelled_per_class images per class carry "
       "labels): holds if, against each of AT, MAT and ALP, SAT (AMDIM) is better in clean accuracy or in robust "
       "accuracy small (paired 95% interval above 0); does not hold if some supervised defence is better in both",
}
CLAIMS = {
    1: "1. kNN on self-supervised features is more robust than on supervised ones",
    2: "2. SAT raises DSR a lot for a small drop in clean accuracy, for AMDIM and NPID",
    3: "3. SAT costs much less training time than MAT and ALP",
    4: "4. With few labels (STL-10), SAT trades robustness and accuracy better than supervised defences",
}


@dataclass(frozen=True)
class Comparison:
    """One paired difference inside a claim: what was compared, its interval and the verdict it gives."""

    metric: str
    models: tuple[ModelId, ModelId]  # the difference is models[0] minus models[1]
    diff: stats.Interval
    threshold: float
    verdict: str

    def text(self) -> str:
        """One line of evidence."""
        d = self.diff
        return (f"{self.metric}, {self.models[0].label} - {self.models[1].label}: {d.value:+.3f} "
                f"[{d.lo:+.3f}, {d.hi:+.3f}] (n={d.n}, threshold {self.threshold:+.2f}): {self.verdict}")


@dataclass
class Claim:
    """One claim's verdict, its rule and the comparisons behind it."""

    number: int
    verdict: str
    evidence: str = ""
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The claim in words."""
        return CLAIMS[self.number]

    @property
    def rule(self) -> str:
        """How the verdict follows from the numbers."""
        return RULES[self.number]

    def to_dict(self) -> dict:
        """What a results file records of the claim."""
        return {"claim": self.text, "verdict": self.verdict, "rule": self.rule, "evidence": self.evidence,
                "comparisons": [{**asdict(c), "diff": c.diff.to_dict(), "models": [m.name for m in c.models]}
                                for c in self.comparisons]}


# ----------------------------------------------------------------------------- the verdict rule


def decide(diff: stats.Interval, threshold: float = 0.0) -> str:
    """holds when the whole interval lies above the threshold, does not hold when below, else inconclusive."""
    if math.isnan(diff.lo) or math.isnan(diff.hi):
        return INCONCLUSIVE
    if diff.lo > threshold:
        return HOLDS
    if diff.hi < threshold:
        return FAILS
    return INCONCLUSIVE


def n_to_decide(diff: stats.Interval, threshold: float = 0.0) -> int | None:
    """About how many images would make an interval this wide at this estimate exclude the threshold (None: never)."""
    gap = abs(diff.value - threshold)
    # the half of the interval that reaches across the threshold (bootstrap intervals need not be symmetric)
    side = diff.value - diff.lo if diff.value > threshold else diff.hi - diff.value
    if not diff.n or not math.isfinite(gap) or gap == 0 or not math.isfinite(side):
        return None
    return int(math.ceil(diff.n * (side / gap) ** 2))


# ----------------------------------------------------------------------------- per-image outcomes


def _bits(r: dict, key: str) -> np.ndarray:
    return stats.unpack_bits(r["per_image"][key])


def _attacked(r: dict) -> np.ndarray:
    """Test-set indices of the N attacked images: the first N the model classifies correctly."""
    return np.flatnonzero(_bits(r, "correct"))[: r["n_attacked"]]


def _robust(r: dict, setting: str) -> np.ndarray:
    """Per test image of the scanned prefix: correct and still correct after the attack."""
    out = np.zeros(r["n_prefix"], dtype=bool)
    out[_attacked(r)] = _bits(r, f"survived_{setting}")
    return out


def _on_common(ra: dict, rb: dict, values_a: np.ndarray, values_b: np.ndarray, n_a: int, n_b: int):
    """The values of two models on the test images both attacked (the first n_a / n_b of each one's attacked)."""
    ia, ib = _attacked(ra)[:n_a], _attacked(rb)[:n_b]
    common, pa, pb = np.intersect1d(ia, ib, return_indices=True)
    return values_a[pa], values_b[pb]


def paired_acc(ra: dict, rb: dict) -> stats.Interval:
    """Clean accuracy of a minus b on the whole test set."""
    return stats.paired_difference(_bits(ra, "correct"), _bits(rb, "correct"))


def paired_dsr(ra: dict, rb: dict, setting: str) -> stats.Interval:
    """DSR of a minus b on the test images both classify correctly and both attacked (the common set)."""
    a, b = _on_common(ra, rb, _bits(ra, f"survived_{setting}"), _bits(rb, f"survived_{setting}"),
                      ra["n_attacked"], rb["n_attacked"])
    return stats.paired_difference(a, b)


def paired_robust(ra: dict, rb: dict, setting: str) -> stats.Interval:
    """Robust accuracy of a minus b on the test images inside both models' scanned prefixes."""
    a, b = _robust(ra, setting), _robust(rb, setting)
    n = min(len(a), len(b))
    return stats.paired_difference(a[:n], b[:n])


def paired_l2(ra: dict, rb: dict, unit: str = "norm", seed: int = 0) -> stats.Interval | None:
    """Median L2 of a minus b (unbroken = infinite) on the images both attacked with the optimisation attack."""
    key = f"l2_all_{unit}"
    if key not in ra or key not in rb:
        return None
    inf = lambda vals: np.array([math.inf if v is None else v for v in vals], dtype=np.float64)  # noqa: E731
    a, b = _on_common(ra, rb, inf(ra[key]), inf(rb[key]), ra["opt_n"], rb["opt_n"])
    return stats.paired_bootstrap(a, b, np.median, seed=seed)


def has_outcomes(r: dict) -> bool:
    """True when an evaluation record holds the per-image outcomes paired comparisons need."""
    return isinstance(r.get("per_image"), dict) and "n_prefix" in r


# ----------------------------------------------------------------------------- the claims


def _compare(metric: str, a: ModelId, b: ModelId, diff: stats.Interval, threshold: float = 0.0) -> Comparison:
    return Comparison(metric, (a, b), diff, threshold, decide(diff, threshold))


def _combine(number: int, comparisons: list[Comparison], note: str = "") -> Claim:
    verdicts = [c.verdict for c in comparisons]
    if FAILS in verdicts:
        verdict = FAILS
    elif all(v == HOLDS for v in verdicts):
        verdict = HOLDS
    else:
        need = [n_to_decide(c.diff, c.threshold) for c in comparisons if c.verdict == INCONCLUSIVE]
        need = [n for n in need if n is not None]
        verdict = INCONCLUSIVE + (f" (about {max(need):,} images would decide it)" if need else "")
    evidence = "; ".join(c.text() for c in comparisons) + (f" ({note})" if note else "")
    return Claim(number, verdict, evidence, comparisons)


def _missing(ev: dict, models: list[ModelId]) -> str | None:
    names = [m.name for m in models]
    absent = [n for n in names if n not in ev]
    if absent:
        return f"not evaluated: {', '.join(absent)}"
    old = [n for n in names if not has_outcomes(ev[n])]
    if old:
        return (f"{', '.join(old)}: made before per-image outcomes were recorded, so no paired interval can be "
                "formed; rerun `python -m satnb run`")
    return None


def claim1(ev: dict, models: Mapping[str, ModelId] | None = None) -> Claim:
    """SSL (AMDIM) kNN more robust than SUP kNN, on one encoder (`models`: the run's `record.model_ids`)."""
    why = _missing(ev, [AMDIM, SUP])
    if why:
        return Claim(1, NOT_TESTED, why)
    encoders = {n: r.get("encoder") for n, r in ev.items()}
    if same_encoder_supervised(encoders, AMDIM.name, models) != SUP.name:
        return Claim(1, NOT_TESTED, f"AMDIM's kNN runs on {encoders[AMDIM.name] or MISSING} and SUP's on "
                                    f"{encoders[SUP.name] or MISSING}: the comparison would mix architecture with "
                                    "supervision; train SUP on AMDIM's encoder")
    a, s = ev[AMDIM.name], ev[SUP.name]
    comps = [_compare(f"DSR {st}", AMDIM, SUP, paired_dsr(a, s, st)) for st in ("small", "large")]
    comps += [_compare(f"robust accuracy {st}", AMDIM, SUP, paired_robust(a, s, st)) for st in ("small", "large")]
    l2 = paired_l2(a, s)
    if l2 is not None:
        comps.append(_compare("median L2 (normalised)", AMDIM, SUP, l2))
    parts = []
    for m in (NPID, SIMCLR):
        twin = same_encoder_supervised(encoders, m.name, models)
        if twin is not None and has_outcomes(ev[m.name]) and has_outcomes(ev[twin]):
            parts.append(f"{m.label} - {label(twin, models)}, DSR small: "
                         f"{paired_dsr(ev[m.name], ev[twin], 'small'):+.3f}")
    return _combine(1, comps, ", ".join(parts))


def claim2(ev: dict) -> Claim:
    """SAT raises DSR a lot for a small drop in accuracy, for AMDIM and NPID."""
    why = _missing(ev, [AMDIM, SAT_AMDIM, NPID, SAT_NPID])
    if why:
        return Claim(2, NOT_TESTED, why + " (the claim is about both seeds)")
    comps = []
    for seed, sat in ((AMDIM, SAT_AMDIM), (NPID, SAT_NPID)):
        rs, rb = ev[sat.name], ev[seed.name]
        comps += [_compare("DSR small", sat, seed, paired_dsr(rs, rb, "small"), SAT_MIN_DSR_GAIN),
                  _compare("robust accuracy small", sat, seed, paired_robust(rs, rb, "small")),
                  _compare("clean accuracy", sat, seed, paired_acc(rs, rb), -SAT_MAX_ACC_DROP)]
    return _combine(2, comps)


def time_to_target(trajectory: list[dict], target: float, key: str = "robust_small") -> float | None:
    """Fine-tuning seconds until a trajectory first reaches target in key (None: never, or no timings)."""
    for row in trajectory:
        if row.get(key) is not None and row[key] >= target - 1e-12:
            return row.get("train_seconds")
    return None


def claim3(res: dict, key: str = "robust_small") -> Claim:
    """SAT needs much less fine-tuning time than MAT and ALP to reach the same robust accuracy, on the same encoder."""
    sat = res.get("sat", {}).get(AMDIM.method)  # SAT runs by seed method, baselines by method
    base = {m: res.get("baselines", {}).get(m.method) for m in (MAT, ALP)}
    if sat is None or any(v is None for v in base.values()):
        return Claim(3, NOT_TESTED, "SAT (AMDIM) or the baselines not run")
    totals = (f"fine-tuning in total: SAT (AMDIM) {_seconds(sat['train_seconds'])}, "
              f"MAT {_seconds(base[MAT]['train_seconds'])}, ALP {_seconds(base[ALP]['train_seconds'])}")
    ids = model_ids(res)
    encoders = model_encoders(res)
    if same_encoder_supervised(encoders, AMDIM.name, ids) != SUP.name:
        enc_sat, enc_sup = encoders.get(AMDIM.name, MISSING), encoders.get(SUP.name, MISSING)
        return Claim(3, NOT_TESTED, f"SAT fine-tunes AMDIM's encoder ({enc_sat}) and MAT/ALP fine-tune SUP's "
                                    f"({enc_sup}): times of different architectures say nothing about the methods; "
                                    + totals)
    if not all(r.get("trajectory") and all(row.get("train_seconds") is not None for row in r["trajectory"])
               for r in (sat, *base.values())):
        return Claim(3, NOT_TESTED, "the trajectories carry no fine-tuning times (an older results file); " + totals)
    parts, states = [], []
    for m, b in base.items():
        best = lambda r: max((row.get(key) or 0.0) for row in r["trajectory"])  # noqa: E731
        target = min(best(sat), best(b))
        t_sat, t_b = time_to_target(sat["trajectory"], target, key), time_to_target(b["trajectory"], target, key)
        head = f"to {key.replace('_', ' ')} {target:.1%}: "
        if t_sat is None or t_b is None:
            states.append(NOT_TESTED)
            parts.append(head + f"{'SAT' if t_sat is None else m.label}'s trajectory records no {key} with a time")
            continue
        part = head + f"SAT {_seconds(t_sat)} vs {m.label} {_seconds(t_b)}"
        if t_sat == 0:
            # a target met before any fine-tuning measures the starting models, not what SAT's training costs
            states.append(INCONCLUSIVE)
            who = "both starting models already have it" if t_b == 0 else "SAT's starting model (AMDIM) already has it"
            part += (f": no evidence, {who} at 0 s of fine-tuning; a profile whose fine-tuning raises robust "
                     "accuracy above the starting models' would decide it")
        else:
            ratio = t_sat / t_b if t_b else math.inf
            states.append(HOLDS if ratio <= MUCH_CHEAPER else FAILS)
            part += f" (ratio {ratio:.2f})"
            if t_b == 0:
                start = b["trajectory"][0].get(key) or 0.0
                part += f": {m.label}'s starting model (SUP) already has {start:.1%}, more than SAT ever reaches"
        parts.append(part)
    verdict = next((v for v in (FAILS, NOT_TESTED, INCONCLUSIVE) if v in states), HOLDS)
    return Claim(3, verdict, "; ".join(parts) + f"; {totals}; encoder {encoders[AMDIM.name]}")


def _seconds(t: float) -> str:
    """A fine-tuning time in words, a fraction of a second kept (so 0.3 s does not read as 0 s)."""
    return f"{t:.0f} s" if t == 0 or t >= 10 else f"{t:.2g} s"


def claim4(res: dict, ev: dict) -> Claim:
    """With few labels, no supervised defence beats SAT (AMDIM) in both clean accuracy and robust accuracy."""
    scarce = (res.get("settings") or {}).get("labelled_per_class")
    dataset = res["dataset"]["dataset"]
    if dataset != "stl10" and not scarce:
        return Claim(4, NOT_TESTED, f"this run used {dataset} with every training label; the claim needs STL-10 "
                                    "or the label-scarce CIFAR-10 proxy (a profile with labelled_per_class)")
    why = _missing(ev, [SAT_AMDIM, AT, MAT, ALP])
    if why:
        return Claim(4, NOT_TESTED, why)
    comps, states = [], []
    sat = ev[SAT_AMDIM.name]
    for m in (AT, MAT, ALP):
        pair = [_compare("clean accuracy", SAT_AMDIM, m, paired_acc(sat, ev[m.name])),
                _compare("robust accuracy small", SAT_AMDIM, m, paired_robust(sat, ev[m.name], "small"))]
        comps += pair
        verdicts = [c.verdict for c in pair]
        states.append(FAILS if all(v == FAILS for v in verdicts) else
                      HOLDS if HOLDS in verdicts else INCONCLUSIVE)
    verdict = (FAILS if FAILS in states else HOLDS if all(v == HOLDS for v in states)
               else INCONCLUSIVE)
    regime = "STL-10" if dataset == "stl10" else f"CIFAR-10 proxy, {scarce} labelled images per class"
    return Claim(4, verdict, "; ".join(c.text() for c in comps) + f" ({regime})", comps)


def assess(res: dict, space: str = "pixel") -> list[Claim]:
    """The four claims' verdicts for one results record."""
    check_entries(res)
    ev = evaluation_records(res, space)
    return [claim1(ev, model_ids(res)), claim2(ev), claim3(res), claim4(res, ev)]


def claims_table(res: dict, space: str = "pixel") -> pd.DataFrame:
    """One row per claim: verdict, the rule that gives it, the evidence (differences with 95% intervals)."""
    return pd.DataFrame([{"claim": c.text, "verdict": c.verdict, "rule": c.rule, "evidence": c.evidence}
                         for c in assess(res, space)]).set_index("claim")


def differences_table(res: dict, space: str = "pixel") -> pd.DataFrame:
    """One row per comparison inside a claim: the paired difference, its 95% interval, n and threshold."""
    rows = [{"claim": c.number, "metric": k.metric, "models": f"{k.models[0].label} - {k.models[1].label}",
             "difference": k.diff.value, "95% low": k.diff.lo, "95% high": k.diff.hi, "n images": k.diff.n,
             "threshold": k.threshold, "verdict": k.verdict}
            for c in assess(res, space) for k in c.comparisons]
    return pd.DataFrame(rows)


def claims_records(res: dict, space: str = "pixel") -> list[dict]:
    """The claims as JSON data (what `python -m satnb run` writes into a results file)."""
    return [c.to_dict() for c in assess(res, space)]


def verdicts(runs: dict[str, dict], space: str = "pixel") -> pd.DataFrame:
    """One column of claim verdicts per run (this build's and every committed one)."""
    cols = {}
    for name, res in runs.items():
        heading = f"{name} ({res['profile']}, {res['dataset']['dataset']}, N={_n_attacked(res, space)})"
        cols[heading] = claims_table(res, space)["verdict"]
    return pd.DataFrame(cols)


def _n_attacked(res: dict, space: str) -> int | str:
    ev = res["evaluation"].get(space, {})
    return next((r["n_attacked"] for r in ev.values()), "?")


def common_set_dsr(ev: dict, names: list[str], setting: str = "small") -> pd.DataFrame:
    """DSR of each model on the test images that every one of them attacked (all classify them correctly).

    Beside each model's own DSR (its first N correct images, the paper's protocol) it shows the
    selection effect directly: a model that loses clean accuracy keeps only easier images.
    """
    names = [n for n in names if n in ev and has_outcomes(ev[n])]
    if not names:
        return pd.DataFrame()
    common = _attacked(ev[names[0]])
    for n in names[1:]:
        common = np.intersect1d(common, _attacked(ev[n]))
    rows = []
    for n in names:
        pos = np.searchsorted(_attacked(ev[n]), common)
        survived = _bits(ev[n], f"survived_{setting}")[pos]
        ci = stats.proportion(survived)
        rows.append({"model": label(n), f"DSR {setting} (own N)": ev[n][f"dsr_{setting}"],
                     f"DSR {setting} (common set)": ci.value, "95% low": ci.lo, "95% high": ci.hi,
                     "common images": len(common)})
    return pd.DataFrame(rows).set_index("model")
