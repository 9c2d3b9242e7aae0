"""Verdicts follow paired 95% intervals on simulated per-image outcomes: holds, does not hold, inconclusive."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest

import satnb.report
from satnb.core import stats
from satnb.report import claims

N_TEST = 800


def record(rng, p_correct, p_survive, n_attack=300, l2_scale=None, p_broken=1.0, correct=None):
    """An evaluation record as `satnb.protocol.evaluate.evaluate` writes it, from simulated per-image outcomes."""
    correct = rng.random(N_TEST) < p_correct if correct is None else correct
    idx = np.flatnonzero(correct)[:n_attack]
    small, large = rng.random(len(idx)) < p_survive, rng.random(len(idx)) < p_survive * 0.7
    r = {"acc": float(correct.mean()), "dsr_small": float(small.mean()), "dsr_large": float(large.mean()),
         "noise_dsr_small": 1.0, "noise_dsr_large": 1.0, "n_attacked": len(idx), "n_prefix": int(idx[-1]) + 1,
         "train_seconds": 1.0,
         "per_image": {"correct": stats.pack_bits(correct), "survived_small": stats.pack_bits(small),
                       "survived_large": stats.pack_bits(large)}}
    if l2_scale is not None:
        l2 = rng.exponential(l2_scale, 100)
        broken = rng.random(100) < p_broken
        values = [float(v) if b else None for v, b in zip(l2, broken)]
        r.update(opt_n=100, l2_all_norm=values, l2_all_px=list(values))
    return r


def trajectory(total_s, robust):
    """Evaluation points at equal time steps with the given robust accuracies."""
    step = total_s / max(len(robust) - 1, 1)
    return [{"iteration": i, "robust_small": r, "train_seconds": i * step} for i, r in enumerate(robust)]


def run(ev, dataset="cifar10", times=(10.0, 50.0, 60.0), encoders=("amdim", "amdim")):
    return {"profile": "smoke", "dataset": {"dataset": dataset, "source": "test"}, "evaluation": {"pixel": ev},
            "settings": {"train": {"amdim": {"encoder": encoders[0]}, "sup": {"encoder": encoders[1]}}},
            "sat": {"amdim": {"name": "sat-amdim", "train_seconds": times[0],
                              "trajectory": trajectory(times[0], [0.2, 0.3, 0.4])}},
            "baselines": {"mat": {"name": "mat", "train_seconds": times[1],
                                  "trajectory": trajectory(times[1], [0.1, 0.3, 0.4])},
                          "alp": {"name": "alp", "train_seconds": times[2],
                                  "trajectory": trajectory(times[2], [0.1, 0.2, 0.45])}}}


def models(rng, ssl_survive=0.6, sup_survive=0.2, sat_gain=0.3, sat_acc=0.78, l2=(2.0, 1.0)):
    return {"amdim": record(rng, 0.8, ssl_survive, l2_scale=l2[0]), "sup": record(rng, 0.9, sup_survive,
                                                                                  l2_scale=l2[1]),
            "npid": record(rng, 0.7, 0.3), "sat-amdim": record(rng, sat_acc, ssl_survive + sat_gain),
            "sat-npid": record(rng, sat_acc - 0.1, 0.3 + sat_gain)}


def test_clear_differences_hold():
    v = claims.claims_table(run(models(np.random.default_rng(0))))["verdict"].tolist()
    assert v == ["holds", "holds", "holds", "not tested"]


def test_clear_reversals_do_not_hold():
    ev = models(np.random.default_rng(1), ssl_survive=0.1, sup_survive=0.6, sat_gain=-0.05, sat_acc=0.5, l2=(0.5, 2.0))
    v = claims.claims_table(run(ev, times=(100.0, 50.0, 60.0)))["verdict"].tolist()
    assert v[:3] == ["does not hold", "does not hold", "does not hold"]


def test_a_claim_with_a_part_that_holds_and_one_that_fails_is_mixed():
    """SAT keeps its clean accuracy (the small drop holds) but its DSR falls (the gain fails): mixed, not failed."""
    ev = models(np.random.default_rng(1), ssl_survive=0.1, sup_survive=0.6, sat_gain=-0.05, l2=(0.5, 2.0))
    c = claims.assess(run(ev))[1]
    verdicts = {(k.metric, k.models[1].name): k.verdict for k in c.comparisons}
    assert verdicts[("clean accuracy", "amdim")] == "holds" and verdicts[("DSR small", "amdim")] == "does not hold"
    assert c.verdict == "mixed"


def test_equal_models_are_inconclusive_and_say_what_n_would_decide():
    rng = np.random.default_rng(2)
    ev = models(rng, ssl_survive=0.4, sup_survive=0.4, sat_gain=0.05, l2=(1.0, 1.0))
    table = claims.claims_table(run(ev))
    assert table["verdict"].iloc[0].startswith("inconclusive at this N")
    # the claim-2 gain of 5 points sits on its threshold: neither side can be excluded
    assert table["verdict"].iloc[1].startswith("inconclusive at this N")


def test_claim2_needs_robust_accuracy_to_rise_not_only_dsr():
    """The selection effect: SAT loses clean accuracy, DSR on the images left rises, robust accuracy does not."""
    rng = np.random.default_rng(3)
    ev = models(rng)
    for seed in ("amdim", "npid"):
        base_correct = claims._bits(ev[seed], "correct")
        keep = base_correct & (rng.random(N_TEST) < 0.55)  # SAT keeps 55% of the seed's correct images
        ev[f"sat-{seed}"] = record(rng, None, 0.75, correct=keep)
        ev[seed] = record(rng, None, 0.55, correct=base_correct)
    c = claims.claim2(ev)
    by = {(k.metric, k.models[1].name): k for k in c.comparisons}
    assert by[("DSR small", "amdim")].diff.value > 0.15  # DSR rose a lot on the common set ...
    assert by[("robust accuracy small", "amdim")].verdict == "does not hold"  # ... robust accuracy fell
    assert by[("DSR small", "amdim")].verdict == "holds"
    assert c.verdict == "mixed"  # the DSR gain holds, robust accuracy and clean accuracy do not


def test_paired_intervals_use_the_same_images():
    rng = np.random.default_rng(4)
    a, b = record(rng, 0.8, 0.5), record(rng, 0.8, 0.5)
    d = claims.paired_dsr(a, b, "small")
    both = np.intersect1d(claims._attacked(a), claims._attacked(b))
    assert d.n == len(both) and d.lo < 0 < d.hi
    same = claims.paired_robust(a, a, "small")
    assert same.value == 0 and same.n == a["n_prefix"]


def test_l2_comparison_counts_unbroken_images_as_infinite():
    rng = np.random.default_rng(5)
    robust_model = record(rng, 0.8, 0.5, l2_scale=0.5, p_broken=0.3)  # most images never broken
    weak_model = record(rng, 0.8, 0.5, l2_scale=0.5, p_broken=1.0)
    d = claims.paired_l2(robust_model, weak_model)
    assert d.value == math.inf and d.lo > 0  # never "smaller L2" for the model that resists


def test_missing_models_and_old_files_are_not_tested():
    rng = np.random.default_rng(6)
    ev = models(rng)
    del ev["sat-amdim"]
    row = claims.assess(run(ev))[1]
    assert row.verdict == "not tested" and "sat-amdim" in row.evidence
    ev = models(rng)
    del ev["sup"]["per_image"]
    row = claims.assess(run(ev))[0]
    assert row.verdict == "not tested" and "per-image outcomes" in row.evidence


def test_claim4_only_with_few_labels():
    rng = np.random.default_rng(7)
    ev = models(rng)
    ev.update(at=record(rng, 0.5, 0.3), mat=record(rng, 0.55, 0.2), alp=record(rng, 0.5, 0.25))
    assert claims.assess(run(ev))[3].verdict == "not tested"  # every label used: not the claim's regime
    assert claims.assess(run(ev, dataset="stl10"))[3].verdict == "holds"
    scarce = run(ev)
    scarce["settings"]["labelled_per_class"] = 50
    c = claims.assess(scarce)[3]
    assert c.verdict == "holds" and "CIFAR-10 proxy" in c.evidence
    ev["mat"] = record(rng, 0.95, 0.99)  # a supervised defence better in accuracy and robust accuracy
    c = claims.assess(run(ev, dataset="stl10"))[3]
    assert c.verdict == "mixed"  # SAT wins against AT and ALP, loses against MAT
    assert "SAT loses against MAT" in c.evidence and "SAT wins against AT" in c.evidence
    ev["at"], ev["alp"] = record(rng, 0.95, 0.99), record(rng, 0.95, 0.99)
    assert claims.assess(run(ev, dataset="stl10"))[3].verdict == "does not hold"  # loses against every one
    for m in ("at", "mat", "alp"):  # more accurate than SAT, far less robust: a trade-off, neither win nor loss
        ev[m] = record(rng, 0.95, 0.1)
    c = claims.assess(run(ev, dataset="stl10"))[3]
    assert c.verdict == "mixed" and c.evidence.count("a trade-off against") == 3
    ev["mat"] = record(rng, 0.5, 0.3)  # SAT wins against MAT, trades off against AT and ALP
    assert claims.assess(run(ev, dataset="stl10"))[3].verdict == "holds"


def test_records_carry_rule_difference_and_interval():
    recs = claims.claims_records(run(models(np.random.default_rng(9))))
    assert [r["verdict"] for r in recs][:3] == ["holds", "holds", "holds"]
    first = recs[0]["comparisons"][0]
    assert recs[0]["rule"] and first["diff"]["lo"] <= first["diff"]["value"] <= first["diff"]["hi"]
    diffs = claims.differences_table(run(models(np.random.default_rng(9))))
    assert set(diffs["claim"]) == {1, 2} and (diffs["95% low"] <= diffs["95% high"]).all()
    assert diffs.loc[diffs["metric"] == "clean accuracy", "threshold"].iloc[0] == pytest.approx(-0.10)


def test_common_set_dsr_shows_the_selection_effect():
    rng = np.random.default_rng(10)
    base = record(rng, 0.8, 0.5)
    kept = claims._bits(base, "correct") & (rng.random(N_TEST) < 0.5)
    ev = {"amdim": base, "sat-amdim": record(rng, None, 0.5, correct=kept)}
    t = claims.common_set_dsr(ev, ["amdim", "sat-amdim"])
    common = np.intersect1d(claims._attacked(base), claims._attacked(ev["sat-amdim"]))
    assert (t["common images"] == len(common)).all()
    own = claims._bits(base, "survived_small")[np.searchsorted(claims._attacked(base), common)]
    assert t.loc["SSL (AMDIM)", "DSR small (common set)"] == pytest.approx(own.mean())


def test_claim3_is_time_to_equal_robustness_on_one_encoder():
    res = run(models(np.random.default_rng(11)))
    c = claims.claim3(res)
    # target 40%: SAT reaches it at 10 s, MAT at 50 s; vs ALP the target is 40% too (ALP's path reaches 45% at 60 s)
    assert c.verdict == "holds" and "SAT 10 s vs MAT 50 s" in c.evidence
    slow = run(models(np.random.default_rng(11)), times=(100.0, 50.0, 60.0))
    assert claims.claim3(slow).verdict == "does not hold"
    other = run(models(np.random.default_rng(11)), encoders=("amdim", "convnet"))
    c = claims.claim3(other)
    assert c.verdict == "not tested" and "different architectures" in c.evidence
    assert claims.time_to_target(trajectory(10.0, [0.1, 0.2]), 0.5) is None


def test_claim3_names_a_starting_model_already_past_sat():
    res = run(models(np.random.default_rng(12)))
    res["baselines"]["mat"]["trajectory"] = trajectory(50.0, [0.5, 0.55, 0.6])  # SUP starts above SAT's best 40%
    c = claims.claim3(res)
    assert c.verdict == "mixed"  # slower than MAT (ratio inf), much faster than ALP
    assert "MAT's starting model (SUP) already has 50.0%, more than SAT ever reaches" in c.evidence
    assert "ALP's starting model" not in c.evidence  # ALP starts at 10%: it has to train to get there


def test_claim3_names_the_encoder_as_the_tables_do():
    res = run(models(np.random.default_rng(13)))
    res["settings"]["train"]["amdim"]["encoder_kwargs"] = {"ndf": 16, "n_rkhs": 128, "n_depth": 1, "use_bn": True}
    res["settings"]["train"]["sup"]["encoder_kwargs"] = dict(res["settings"]["train"]["amdim"]["encoder_kwargs"])
    for m in ("amdim", "sup"):  # as `collect` records them: every evaluated model names its encoder
        res["evaluation"]["pixel"][m]["encoder"] = "AMDIM ndf 16 rkhs 128 depth 1 BN"
    evidence = claims.claim3(res).evidence
    assert evidence.endswith("; encoder AMDIM ndf 16 rkhs 128 depth 1 BN") and "{" not in evidence


def test_claim1_is_not_tested_across_encoders_and_others_meet_their_twin():
    rng = np.random.default_rng(11)
    ev = models(rng)
    ev["amdim"]["encoder"], ev["sup"]["encoder"] = "AMDIM ndf 32", "convnet 32-64"
    row = claims.assess(run(ev))[0]
    assert row.verdict == "not tested" and "mix architecture" in row.evidence
    # SUP on AMDIM's encoder; NPID on a ResNet-18 meets SUP's twin there (the record's settings make the twin)
    ev["sup"]["encoder"], ev["npid"]["encoder"] = "AMDIM ndf 32", "ResNet-18"
    ev["sup-resnet18"] = record(rng, 0.9, 0.2)
    ev["sup-resnet18"]["encoder"] = "ResNet-18"
    res = run(ev)
    res["settings"]["train"]["npid"] = {"encoder": "resnet18"}
    row = claims.assess(res)[0]
    assert row.verdict == "holds" and "SSL (NPID) - SUP (resnet18 twin), DSR small" in row.evidence


def _satnb_imports(module: str) -> set[str]:
    """The satnb modules and names a report module imports, anywhere in it ("satnb.report.record.MISSING")."""
    found = set()
    for node in ast.walk(ast.parse((Path(satnb.report.__file__).parent / f"{module}.py").read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] == "satnb"}


def test_claims_import_no_presentation_module():
    """The claims are pure functions of a results record: from satnb they import core, `report.record`, the rules."""
    direct = _satnb_imports("claims")
    assert direct and all(m.startswith(("satnb.core", "satnb.report.record", "satnb.report.verdicts",
                                        "satnb.report.paired")) for m in direct), direct
    assert all(m.startswith("satnb.core") for m in _satnb_imports("verdicts"))  # the rules: core only
    reached, todo = set(), ["claims"]
    while todo:  # every report module the claims reach through any chain of imports
        module = todo.pop()
        reached.add(module)
        todo += [m.split(".")[2] for m in _satnb_imports(module) if m.startswith("satnb.report.")
                 and m.split(".")[2] in satnb.report.MODULES and m.split(".")[2] not in reached]
    assert reached == {"claims", "compact", "paired", "record", "verdicts"}  # compact: the file format record reads


def test_claim3_at_zero_seconds_is_no_evidence():
    res = run(models(np.random.default_rng(14)), times=(0.0, 0.0, 0.0))  # smoke: nothing fine-tuned for long
    for r in (res["sat"]["amdim"], *res["baselines"].values()):
        r["trajectory"] = trajectory(0.0, [0.0, 0.0])  # robust accuracy 0 everywhere: the target is met at 0 s
    c = claims.claim3(res)
    assert c.verdict == "inconclusive at this N"
    assert "no evidence, both starting models already have it at 0 s of fine-tuning" in c.evidence
    assert "ratio" not in c.evidence
    res["sat"]["amdim"]["trajectory"] = trajectory(0.3, [0.5, 0.2])  # SAT lowered robust accuracy
    for r in res["baselines"].values():
        r["trajectory"] = trajectory(5.0, [0.0, 0.3])
    c = claims.claim3(res)
    assert c.verdict == "inconclusive at this N" and "SAT's starting model (AMDIM) already has it" in c.evidence
    res["sat"]["amdim"]["trajectory"] = []
    assert claims.claim3(res).verdict == "not tested"


def _strong(r, l2_px, guide="paper"):
    """An authors'-budget record (`protocol.zoo.strong_l2`) of the same model's first attacked images."""
    return {"opt_n": len(l2_px), "l2_all_px": l2_px, "l2_all_norm": l2_px, "guide": guide,
            "binary_search_steps": 10, "steps": 500}


def test_claim1_l2_leg_reads_the_authors_budget_where_recorded():
    rng = np.random.default_rng(7)
    ev = models(rng)
    for name in ("amdim", "sup"):
        ev[name]["guide"] = "paper"
        ev[name]["l2_all_px"] = ev[name].pop("l2_all_norm")
    first = claims.assess(run(ev))[0]
    base = next(k for k in first.comparisons if k.metric.startswith("median L2"))
    assert base.metric == "median L2 (pixel)" and base.verdict == "holds"  # AMDIM's L2 2x SUP's
    # the authors' budget breaks AMDIM's images at a tenth of the weak attack's L2: the L2 leg now fails
    strong = {"amdim": _strong(ev["amdim"], [0.1] * 100), "sup": _strong(ev["sup"], [1.0] * 100)}
    res = run(ev)
    res["strong_l2"] = strong
    leg = next(k for c in claims.assess(res) if c.number == 1 for k in c.comparisons if "L2" in k.metric)
    assert leg.metric == "median L2 (pixel) at the authors' budget" and leg.verdict == "does not hold"
    assert leg.diff.value == pytest.approx(-0.9)
    # a record of the other guide rule is not this evaluation's: left alone
    other = claims.with_strong_l2(ev, {"amdim": _strong(ev["amdim"], [0.1] * 100, guide="authors")})
    assert other["amdim"] is ev["amdim"]
    # in the worst-case view each image keeps the smaller of the two L2s
    worst = {**ev["amdim"], "attack_set": "worst case", "l2_all_px": [0.05] * 50 + [None] * 50}
    merged = claims.with_strong_l2({"amdim": worst}, {"amdim": _strong(worst, [0.1] * 99 + [None])})["amdim"]
    assert merged["l2_all_px"][:50] == [0.05] * 50 and merged["l2_all_px"][50:99] == [0.1] * 49
    assert merged["l2_all_px"][99] is None
