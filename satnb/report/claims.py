"""The paper's four claims as pure functions of a results record: verdicts decided by 95% intervals of differences.

Every comparison pairs the two models on the same test images (`stats.paired_difference` for
proportions, `stats.paired_bootstrap` for L2). Each comparison's 95% interval implies a two-sided
p-value against its threshold (`verdicts.implied_p`: p < 0.05 exactly when the interval excludes
it); Holm's step-down at 5% within each claim decides which comparisons hold (above the threshold)
or do not hold (below), the others being *inconclusive at this N*. A claim holds when all its
comparisons hold, does not hold when some do not and none holds, is *mixed* when some hold and
some do not, and is inconclusive otherwise, with the number of images that would decide it
(`verdicts.combine`). The thresholds the paper leaves unstated are fixed here, once, and applied to
every run. `assess(res, seed=s)` judges the claims on the models of training seed s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import pandas as pd

from satnb.core import stats
from satnb.core.identity import ModelId
from satnb.report.paired import (  # noqa: F401 (re-exported: the claims' paired comparisons)
    _attacked,
    _bits,
    common_set_dsr,
    has_outcomes,
    paired_acc,
    paired_dsr,
    paired_l2,
    paired_robust,
)
from satnb.report.record import (
    MISSING,
    check_entries,
    evaluation_records,
    label,
    model_encoders,
    model_ids,
    same_encoder_supervised,
)
from satnb.report.verdicts import (  # noqa: F401 (the verdict words and rules, re-exported)
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    MIXED,
    NOT_TESTED,
    Comparison,
    combine,
    decide,
    holm_decide,
    holm_verdicts,
    holm_z,
    implied_p,
    n_to_decide,
    word,
)

SAT_MIN_DSR_GAIN = 0.05  # claim 2's "a lot": DSR must rise by at least 5 points
SAT_MAX_ACC_DROP = 0.10  # claim 2's "small drop": clean accuracy may fall by at most 10 points
MUCH_CHEAPER = 0.5  # claim 3's "much less": at most half the fine-tuning time
NAMES = ("AMDIM", "NPID", "SIMCLR", "SUP", "SAT_AMDIM", "SAT_NPID", "AT", "MAT", "ALP")


def named_models(seed: int = 0) -> dict[str, ModelId]:
    """The models the claims name, for one training seed: pretrained, SAT of the seeded SSL, baselines of seeded SUP."""
    amdim, npid, simclr, sup = (ModelId.pretrained(m, seed=seed) for m in ("amdim", "npid", "simclr", "sup"))
    return {"AMDIM": amdim, "NPID": npid, "SIMCLR": simclr, "SUP": sup,
            "SAT_AMDIM": ModelId.sat(amdim), "SAT_NPID": ModelId.sat(npid),
            **{m.upper(): ModelId.baseline(m, base=sup) for m in ("at", "mat", "alp")}}


AMDIM, NPID, SIMCLR, SUP, SAT_AMDIM, SAT_NPID, AT, MAT, ALP = (named_models(0)[n] for n in NAMES)  # seed 0's

HOLM = ("each comparison's p-value is the two-sided normal one its 95% interval implies (below 0.05 exactly when "
        "the interval excludes the threshold); Holm's step-down at 5% over the claim's comparisons decides which "
        "hold (wholly above the threshold) and which do not hold (below); the others are inconclusive at this N")
COMBINE = ("the claim holds if every comparison holds, does not hold if at least one does not and none holds, is "
           "mixed if some hold and some do not, and is inconclusive at this N otherwise")
RULES = {
    1: "SSL (AMDIM) minus SUP on the same encoder, up to 5 comparisons, each against a threshold of 0: DSR small "
       "and large (on the test images both classify correctly and both attacked), robust accuracy small and large "
       "(on the test images both scanned) and median L2 (pixel units, unbroken images infinitely far, on the "
       "images both attacked by the optimisation attack, at the authors' budget of 10 x 500 steps where the run "
       f"recorded it; when recorded); {HOLM}; {COMBINE}",
    2: "for each of AMDIM and NPID, SAT minus its starting model, 6 comparisons: DSR small (on the images both "
       f"classify correctly) against +{SAT_MIN_DSR_GAIN * 100:.0f} points (the paper's 'a lot'), robust accuracy "
       f"small against 0, clean accuracy against -{SAT_MAX_ACC_DROP * 100:.0f} points (the paper's 'small drop'); "
       f"{HOLM}; {COMBINE} (mixed: e.g. the accuracy drop is small but DSR does not rise)",
    3: "SAT (AMDIM) against each of MAT and ALP (each from its own starting model, on the same encoder and "
       "machine): the fine-tuning wall time to the lower of the two methods' best robust accuracy (small) along "
       f"their trajectories; SAT is cheaper when it needs at most {MUCH_CHEAPER:.0%} of the other's time (a "
       "measured time: no interval, no Holm); the claim holds if SAT is cheaper than both, does not hold if it is "
       "not cheaper than at least one and cheaper than none, is mixed if cheaper than one only; inconclusive when "
       "SAT's starting model already meets the target (0 s of fine-tuning measures nothing), not tested when the "
       "encoders differ or a time is missing",
    4: "with few labels (STL-10, or the CIFAR-10 proxy where only labelled_per_class images per class carry "
       "labels): SAT (AMDIM) minus each of AT, MAT and ALP in clean accuracy and in robust accuracy small, "
       f"6 comparisons against 0; {HOLM}. Against each defence SAT wins when it is better on one axis and not "
       "worse on the other, loses when the defence is better on both, trades off (neither win nor loss) when it "
       "is better on one axis and worse on the other, and is undecided otherwise. The claim holds if SAT wins "
       "against every defence it does not trade off with, does not hold if it loses against at least one and "
       "wins against none, is mixed if it wins against some and loses against others (or trades off against all "
       "three), and is inconclusive at this N otherwise",
}
CLAIMS = {
    1: "1. kNN on self-supervised features is more robust than on supervised ones",
    2: "2. SAT raises DSR a lot for a small drop in clean accuracy, for AMDIM and NPID",
    3: "3. SAT costs much less training time than MAT and ALP",
    4: "4. With few labels (STL-10), SAT trades robustness and accuracy better than supervised defences",
}


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


# ----------------------------------------------------------------------------- the claims


def _compare(metric: str, a: ModelId, b: ModelId, diff: stats.Interval, threshold: float = 0.0) -> Comparison:
    """One comparison with its unadjusted verdict and p-value (`holm_verdicts` makes the verdict the claim's)."""
    return Comparison(metric, (a, b), diff, threshold, decide(diff, threshold), implied_p(diff, threshold))


def _need(comparisons: list[Comparison], m: int) -> str:
    """" (about N images would decide it)" for the undecided comparisons of a claim of m, else ""."""
    need = [n_to_decide(c.diff, c.threshold, holm_z(m)) for c in comparisons if c.verdict == INCONCLUSIVE]
    need = [n for n in need if n is not None]
    return f" (about {max(need):,} images would decide it)" if need else ""


def _combine(number: int, comparisons: list[Comparison], note: str = "") -> Claim:
    comparisons = holm_verdicts(comparisons)
    verdict = combine([c.verdict for c in comparisons])
    if verdict == INCONCLUSIVE:
        verdict += _need(comparisons, len(comparisons))
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


def _same_encoder(encoders: Mapping[str, str | None], a: str, b: str) -> bool:
    """True when two models' recorded encoders are the same one (a model whose encoder is not recorded shares none)."""
    enc = encoders.get(a)
    return enc not in (None, MISSING) and encoders.get(b) == enc


def claim1(ev: dict, models: Mapping[str, ModelId] | None = None, seed: int = 0) -> Claim:
    """SSL (AMDIM) kNN more robust than SUP kNN, on one encoder (`models`: the run's `record.model_ids`)."""
    n = named_models(seed)
    amdim, sup = n["AMDIM"], n["SUP"]
    why = _missing(ev, [amdim, sup])
    if why:
        return Claim(1, NOT_TESTED, why)
    encoders = {name: r.get("encoder") for name, r in ev.items()}
    if not _same_encoder(encoders, amdim.name, sup.name):
        return Claim(1, NOT_TESTED, f"AMDIM's kNN runs on {encoders[amdim.name] or MISSING} and SUP's on "
                                    f"{encoders[sup.name] or MISSING}: the comparison would mix architecture with "
                                    "supervision; train SUP on AMDIM's encoder")
    a, s = ev[amdim.name], ev[sup.name]
    comps = [_compare(f"DSR {st}", amdim, sup, paired_dsr(a, s, st)) for st in ("small", "large")]
    comps += [_compare(f"robust accuracy {st}", amdim, sup, paired_robust(a, s, st)) for st in ("small", "large")]
    l2 = paired_l2(a, s, unit="px")
    if l2 is not None:
        comps.append(_compare("median L2 (pixel)" + (" at the authors' budget" if a.get("opt_strong") else ""),
                              amdim, sup, l2))
    parts = []
    for m in (n["NPID"], n["SIMCLR"]):
        twin = sup.name if _same_encoder(encoders, m.name, sup.name) else \
            same_encoder_supervised(encoders, m.name, models)
        if twin is not None and has_outcomes(ev[m.name]) and has_outcomes(ev[twin]):
            parts.append(f"{m.label} - {label(twin, models)}, DSR small: "
                         f"{paired_dsr(ev[m.name], ev[twin], 'small'):+.3f}")
    return _combine(1, comps, ", ".join(parts))


def claim2(ev: dict, seed: int = 0) -> Claim:
    """SAT raises DSR a lot for a small drop in accuracy, for AMDIM and NPID."""
    n = named_models(seed)
    pairs = ((n["AMDIM"], n["SAT_AMDIM"]), (n["NPID"], n["SAT_NPID"]))
    why = _missing(ev, [m for pair in pairs for m in pair])
    if why:
        return Claim(2, NOT_TESTED, why + " (the claim is about both starting models)")
    comps = []
    for start, sat in pairs:
        rs, rb = ev[sat.name], ev[start.name]
        comps += [_compare("DSR small", sat, start, paired_dsr(rs, rb, "small"), SAT_MIN_DSR_GAIN),
                  _compare("robust accuracy small", sat, start, paired_robust(rs, rb, "small")),
                  _compare("clean accuracy", sat, start, paired_acc(rs, rb), -SAT_MAX_ACC_DROP)]
    return _combine(2, comps)


def time_to_target(trajectory: list[dict], target: float, key: str = "robust_small") -> float | None:
    """Fine-tuning seconds until a trajectory first reaches target in key (None: never, or no timings)."""
    for row in trajectory:
        if row.get(key) is not None and row[key] >= target - 1e-12:
            return row.get("train_seconds")
    return None


def claim3(res: dict, key: str = "robust_small", seed: int = 0) -> Claim:
    """SAT needs much less fine-tuning time than MAT and ALP to reach the same robust accuracy, on the same encoder."""
    n = named_models(seed)
    amdim, sup, mat, alp = n["AMDIM"], n["SUP"], n["MAT"], n["ALP"]
    # SAT runs are keyed by their starting model's name ("amdim", "amdim-seed1"), baselines by their own ("mat-seed1")
    sat = (res.get("sat") or {}).get(amdim.name)
    base = {m: (res.get("baselines") or {}).get(m.name) for m in (mat, alp)}
    if sat is None or any(v is None for v in base.values()):
        return Claim(3, NOT_TESTED, f"{n['SAT_AMDIM'].label} or the baselines ({mat.label}, {alp.label}) not run")
    totals = (f"fine-tuning in total: SAT (AMDIM) {_seconds(sat['train_seconds'])}, "
              f"MAT {_seconds(base[mat]['train_seconds'])}, ALP {_seconds(base[alp]['train_seconds'])}")
    encoders = model_encoders(res)
    if not _same_encoder(encoders, amdim.name, sup.name):
        enc_sat, enc_sup = encoders.get(amdim.name, MISSING), encoders.get(sup.name, MISSING)
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
    verdict = combine([v for v in states if v != NOT_TESTED])
    if NOT_TESTED in states and verdict not in (FAILS, MIXED):
        verdict = NOT_TESTED  # what was measured cannot decide the claim: only a failure against one can
    return Claim(3, verdict, "; ".join(parts) + f"; {totals}; encoder {encoders[amdim.name]}")


def _seconds(t: float) -> str:
    """A fine-tuning time in words, a fraction of a second kept (so 0.3 s does not read as 0 s)."""
    return f"{t:.0f} s" if t == 0 or t >= 10 else f"{t:.2g} s"


TRADE_OFF = "trade-off"  # claim 4: SAT better on one axis and worse on the other against a defence


def _against(pair: list[Comparison]) -> str:
    """Claim 4 against one defence: a win (holds), a loss (does not hold), a trade-off, else undecided."""
    words = [c.verdict for c in pair]
    if HOLDS in words:
        return TRADE_OFF if FAILS in words else HOLDS
    return FAILS if all(w == FAILS for w in words) else INCONCLUSIVE


def claim4(res: dict, ev: dict, seed: int = 0) -> Claim:
    """With few labels, SAT (AMDIM) wins against the supervised defences: better on one axis, not worse on the other."""
    n = named_models(seed)
    sat_id, defences = n["SAT_AMDIM"], (n["AT"], n["MAT"], n["ALP"])
    scarce = (res.get("settings") or {}).get("labelled_per_class")
    dataset = res["dataset"]["dataset"]
    if dataset != "stl10" and not scarce:
        return Claim(4, NOT_TESTED, f"this run used {dataset} with every training label; the claim needs STL-10 "
                                    "or the label-scarce CIFAR-10 proxy (a profile with labelled_per_class)")
    why = _missing(ev, [sat_id, *defences])
    if why:
        return Claim(4, NOT_TESTED, why)
    sat = ev[sat_id.name]
    comps = []
    for m in defences:
        comps += [_compare("clean accuracy", sat_id, m, paired_acc(sat, ev[m.name])),
                  _compare("robust accuracy small", sat_id, m, paired_robust(sat, ev[m.name], "small"))]
    comps = holm_verdicts(comps)  # Holm over all six comparisons of the claim
    states = {m: _against(comps[2 * i: 2 * i + 2]) for i, m in enumerate(defences)}
    decided = [v for v in states.values() if v != TRADE_OFF]
    verdict = combine(decided) if decided else MIXED
    if verdict == INCONCLUSIVE:
        verdict += _need(comps, len(comps))
    regime = "STL-10" if dataset == "stl10" else f"CIFAR-10 proxy, {scarce} labelled images per class"
    words = {HOLDS: "SAT wins", FAILS: "SAT loses", TRADE_OFF: "a trade-off", INCONCLUSIVE: "undecided"}
    against = ", ".join(f"{words[v]} against {m.label}" for m, v in states.items())
    return Claim(4, verdict, "; ".join(c.text() for c in comps) + f" ({regime}; {against})", comps)


def seeds(res: dict) -> list[int]:
    """The training seeds a results record holds: its "seeds", else its models', else [0]."""
    recorded = res.get("seeds")
    if isinstance(recorded, list) and recorded and all(type(s) is int for s in recorded):
        return sorted(set(recorded))
    return sorted({m.seed for m in model_ids(res).values()}) or [0]


def with_strong_l2(ev: dict, strong: dict | None) -> dict:
    """Evaluation records whose optimisation-attack L2 is the authors'-budget run's (`res["strong_l2"]`) where one
    attacked the same model's first images under the same guide rule and eps units (pixel)."""
    out = dict(ev)
    for name, z in (strong or {}).items():
        r = ev.get(name)
        if isinstance(r, dict) and isinstance(z, dict) and r.get("guide") == z.get("guide") and \
                r.get("eps_space", "pixel") == "pixel" and "l2_all_px" in z:
            l2 = {k: z[k] for k in ("l2_all_px", "l2_all_norm") if k in z}
            if r.get("attack_set") == "worst case":  # per image, the smaller of the worst case's and this run's
                l2 = {k: v for k, v in l2.items() if r.get(k) is not None}
                if not l2 or any(len(r[k]) != len(v) for k, v in l2.items()):
                    continue
                l2 = {k: [None if u is None and w is None else min(x for x in (u, w) if x is not None)
                          for u, w in zip(r[k], v)] for k, v in l2.items()}
            out[name] = {**r, "opt_n": z["opt_n"], "opt_strong": [z.get("binary_search_steps"), z.get("steps")], **l2}
    return out


def assess(res: dict, space: str = "pixel", seed: int = 0) -> list[Claim]:
    """The four claims' verdicts for one results record, on the models of one training seed (0: the profile's)."""
    check_entries(res)
    ev = with_strong_l2(evaluation_records(res, space), res.get("strong_l2") if space == "pixel" else None)
    return [claim1(ev, model_ids(res), seed), claim2(ev, seed), claim3(res, seed=seed), claim4(res, ev, seed)]


def claims_table(res: dict, space: str = "pixel") -> pd.DataFrame:
    """One row per claim: verdict, the rule that gives it, the evidence (differences with 95% intervals)."""
    return pd.DataFrame([{"claim": c.text, "verdict": c.verdict, "rule": c.rule, "evidence": c.evidence}
                         for c in assess(res, space)]).set_index("claim")


def differences_table(res: dict, space: str = "pixel") -> pd.DataFrame:
    """One row per comparison inside a claim: the paired difference, its 95% interval, n, threshold, p, Holm verdict."""
    rows = [{"claim": c.number, "metric": k.metric, "models": f"{k.models[0].label} - {k.models[1].label}",
             "difference": k.diff.value, "95% low": k.diff.lo, "95% high": k.diff.hi, "n images": k.diff.n,
             "threshold": k.threshold, "p": k.p, "verdict": k.verdict}
            for c in assess(res, space) for k in c.comparisons]
    return pd.DataFrame(rows)


def claims_records(res: dict, space: str = "pixel") -> list[dict]:
    """The claims as JSON data (what `python -m satnb run` writes into a results file)."""
    return [c.to_dict() for c in assess(res, space)]

