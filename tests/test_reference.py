"""The committed reference run beside this build: loading it (current, stale, old, absent), tables and curves."""

import dataclasses
import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from satnb.core.identity import ModelId
from satnb.experiment.run import stage_fingerprints
from satnb.report import cells, fine_tuning, plots, pretraining, record, reference, table1, tables
from satnb.report.record import results_dir

matplotlib.use("Agg")

AMDIM_ENC = "AMDIM ndf 32 rkhs 128 depth 1 BN"


def _record(acc, dsr_small, dsr_large=0.1, n=100, n_test=1000, encoder=AMDIM_ENC, robust=None, **extra):
    r = {"acc": acc, "acc_ci": [acc - 0.02, acc + 0.02], "dsr_small": dsr_small,
         "dsr_small_ci": [dsr_small - 0.05, dsr_small + 0.05], "dsr_large": dsr_large, "n_attacked": n,
         "n_test": n_test, **extra}
    if encoder is not None:
        r["encoder"] = encoder
    if robust is not None:
        r["robust_small"], r["robust_small_ci"] = robust, [robust - 0.03, robust + 0.03]
    return r


def _curve(points):
    return [{"epoch": e, "loss": 1.0 / e, "seconds": 60.0, "lr": 1e-3, **({"knn_acc": a} if a is not None else {})}
            for e, a in points]


def _run(profile="cpu", amdim=0.7, sup=0.8, n=1000, n_test=10000, current=True, sup_encoder=AMDIM_ENC):
    """A results record in today's format (encoders, curves, refresh check, stage fingerprints)."""
    res = {"profile": profile, "dataset": {"dataset": "cifar10", "n_train": 45000, "n_test": n_test,
                                           "source": "test"},
           "settings": {"train": {m: {"encoder": "amdim", "encoder_kwargs": {"ndf": 32}} for m in ("amdim", "sup")}},
           "evaluation": {"pixel": {
               "amdim": _record(amdim, 0.5, n=n, n_test=n_test, robust=0.35, l2_mean_broken_norm=0.6),
               "sup": _record(sup, 0.2, n=n, n_test=n_test, encoder=sup_encoder, robust=0.16,
                              l2_mean_broken_norm=0.3)}},
           "training": {"amdim": {"seconds": 600.0, "epochs": 10, "encoder": "amdim", "encoder_name": AMDIM_ENC,
                                  "curve": _curve([(5, 0.5), (10, amdim)])},
                        "sup": {"seconds": 300.0, "epochs": 10, "encoder": "amdim", "encoder_name": sup_encoder,
                                "curve": _curve([(5, 0.6), (10, sup)])}},
           "baselines": {"at": {"name": "at", "train_seconds": 10.0,
                                "trajectory": [{"epoch": 0, "acc": 0.8}, {"epoch": 1, "acc": 0.6},
                                               {"epoch": 2, "acc": 0.595}]}},
           "sat_refresh": {"seed": "amdim", "iterations": 100, "refresh_every": 10,
                           "runs": {"1": {"name": "a", "train_seconds": 100.0, "acc": 0.7, "dsr_small": 0.6,
                                          "dsr_small_ci": [0.55, 0.65], "robust_small": 0.4,
                                          "robust_small_ci": [0.37, 0.43], "n_attacked": 1000},
                                    "10": {"name": "b", "train_seconds": 20.0, "acc": 0.7, "dsr_small": 0.62,
                                           "dsr_small_ci": [0.57, 0.67], "robust_small": 0.41,
                                           "robust_small_ci": [0.38, 0.44], "n_attacked": 1000}},
                           "dsr_small_difference": 0.02, "dsr_small_difference_ci": [-0.02, 0.06],
                           "dsr_small_within": True, "robust_small_difference": 0.01,
                           "robust_small_difference_ci": [-0.03, 0.05], "robust_small_within": True, "speedup": 5.0},
           "provenance": {"stage_code": stage_fingerprints() if current else {"train": "0" * 16}}}
    return res


def _old_run():
    """A results record from before encoders, curves, intervals and stage fingerprints (like the old cpu file)."""
    ev = {m: {"acc": a, "dsr_small": d, "dsr_large": 0.05, "n_attacked": 500, "n_test": 2000, "l2": 0.5}
          for m, a, d in (("amdim", 0.59, 0.5), ("sup", 0.71, 0.07), ("sat-amdim", 0.43, 0.71), ("at", 0.4, 0.7))}
    return {"profile": "cpu", "dataset": {"dataset": "cifar10", "n_train": 10000, "n_test": 2000,
                                          "source": "image-folder-archive:/somewhere/cifar10-jpeg.tar.gz"},
            "settings": {"train": {"amdim": {"encoder": "amdim", "encoder_kwargs": {"ndf": 32, "n_depth": 1}},
                                   "sup": {"encoder": "convnet", "encoder_kwargs": {}}}},
            "evaluation": {"pixel": ev},
            "training": {m: {"seconds": 60.0, "epochs": 12, "encoder": s} for m, s in
                         (("amdim", "amdim"), ("sup", "convnet"))},
            "baselines": {"at": {"name": "at", "train_seconds": 5.0,
                                 "trajectory": [{"epoch": 0, "acc": 0.7}, {"epoch": 1, "acc": 0.4}]}},
            "provenance": {"git_commit": "abc"}}


def _write(folder, res, name="cpu-cifar10.json"):
    (folder / name).write_text(json.dumps(res))
    return folder


# ----------------------------------------------------------------------------- loading the reference run


def test_current_reference_run(tmp_path):
    ref = reference.reference_run(directory=_write(tmp_path, _run()))
    assert ref.available and ref.current and ref.state == "current" and ref.stale == {}
    assert "is current" in ref.sentence() and "results/cpu-cifar10.json" in ref.sentence()
    assert ref.heading == "reference run (cpu, 10,000 test images, N = 1,000)"
    assert str(tmp_path) not in ref.sentence()


def test_every_correct_image_attacked_names_the_range_of_n(tmp_path):
    # attacking every correctly classified test image gives each model its own N: the heading and the sentence
    # must not pass the first model's off as the run's
    res = _run()
    res["evaluation"]["pixel"]["amdim"]["n_attacked"] = 6861
    res["evaluation"]["pixel"]["sup"]["n_attacked"] = 8343
    ref = reference.reference_run(directory=_write(tmp_path, res))
    assert ref.heading == "reference run (cpu, 10,000 test images, N = 6,861 to 8,343 by model)"
    assert "N = 6,861 to 8,343 by model" in ref.sentence()


def test_stale_reference_run_says_which_stage(tmp_path):
    ref = reference.reference_run(directory=_write(tmp_path, _run(current=False)))
    assert ref.available and not ref.current and ref.state == "stale" and "train" in ref.stale
    assert "is stale (train:" in ref.sentence() and "python -m satnb run --profile cpu" in ref.sentence()
    assert ref.heading.endswith("stale)")


def test_old_format_reference_run_is_stale_and_still_usable(tmp_path):
    ref = reference.reference_run(directory=_write(tmp_path, _old_run()))
    assert ref.state == "stale" and "all" in ref.stale
    ev = ref.evaluation()
    # no encoder recorded: named from the settings, the SAT and baseline models from their seeds
    assert ev["amdim"]["encoder"] == "AMDIM ndf 32 depth 1 (from settings)"
    assert ev["sat-amdim"]["encoder"] == ev["amdim"]["encoder"]
    assert ev["at"]["encoder"] == "convnet (from settings)"
    assert record.result_curves(ref.res) == {}
    assert pretraining.curve_frame({"ref": record.result_curves(ref.res)}).empty
    assert ref.res.get("sat_refresh") is None and fine_tuning.refresh_table({"ref": None}).empty


@pytest.mark.parametrize("content", [None, "{not json", json.dumps([1, 2]), json.dumps({"profile": "cpu"})])
def test_absent_or_unreadable_reference_run_never_raises(tmp_path, content):
    if content is not None:
        (tmp_path / "cpu-cifar10.json").write_text(content)
    ref = reference.reference_run(directory=tmp_path)
    assert not ref.available and not ref.current and ref.evaluation() == {}
    assert ref.state == ("absent" if content is None else "unreadable")
    text = ref.sentence()
    assert "only this build's numbers are shown" in text and str(tmp_path) not in text
    assert ref.heading == f"reference run ({ref.state})"
    assert reference.beside({"this build": {"amdim": _record(0.5, 0.5)}, ref.heading: ref.evaluation()},
                         ["amdim"]).index.get_level_values("run").tolist() == ["this build"]


def test_reference_run_from_records_already_read():
    ref = reference.reference_run(runs={"cpu-cifar10.json": _run(), "quick-cifar10.json": _run("quick")})
    assert ref.current and ref.res["profile"] == "cpu"
    assert reference.reference_run("stl10", runs={"cpu-cifar10.json": _run()}).state == "absent"


# ----------------------------------------------------------------------------- tables beside each other


def test_beside_takes_each_number_from_its_own_run(tmp_path):
    ref = reference.reference_run(directory=_write(tmp_path, _run(amdim=0.71, sup=0.82)))
    this = _run("quick", amdim=0.41, sup=0.55, n=200, n_test=1000)["evaluation"]["pixel"]
    this_heading = reference.run_heading("this build", "quick", this)
    assert this_heading == "this build (quick, 1,000 test images, N = 200)"
    t = reference.beside({this_heading: this, ref.heading: ref.evaluation()}, ["amdim", "sup", "npid"])
    assert t.loc[("SSL (AMDIM)", this_heading), "ACC"] == 0.41
    assert t.loc[("SSL (AMDIM)", ref.heading), "ACC"] == 0.71
    assert t.loc[("SUP", ref.heading), "ACC"] == 0.82 and t.loc[("SUP", this_heading), "N"] == 200
    assert t.loc[("SUP", ref.heading), "ACC lo"] == pytest.approx(0.80)
    assert t.loc[("SUP", ref.heading), "encoder"] == AMDIM_ENC
    assert "SSL (NPID)" not in t.index.get_level_values("model")  # evaluated by neither run: no row
    shown = reference.show_beside(t)
    assert shown.loc[("SSL (AMDIM)", ref.heading), "ACC"] == "71.0% [69.0%, 73.0%]"
    assert shown.loc[("SSL (AMDIM)", ref.heading), "DSR large"] == "10.0%"  # no interval recorded
    assert shown.loc[("SSL (AMDIM)", ref.heading), "robust large"] == record.MISSING
    assert shown.loc[("SSL (AMDIM)", ref.heading), "N"] == "1,000"
    assert list(shown.columns[:2]) == ["encoder", "ACC"]


def test_with_intervals_never_prints_nan():
    t = pd.DataFrame({"ACC": [0.5, np.nan], "ACC lo": [0.4, np.nan], "ACC hi": [0.6, np.nan]}, index=["a", "b"])
    assert cells.with_intervals(t, ["ACC"])["ACC"].tolist() == ["50.0% [40.0%, 60.0%]", record.MISSING]


def test_training_records_and_knn_curves():
    res = _run()
    recs = pretraining.training_records(res)
    assert recs["amdim"]["encoder"] == AMDIM_ENC and recs["amdim"]["minutes"] == 10.0
    assert recs["amdim"]["kNN accuracy"] == 0.7 and recs["amdim"]["curve points"] == 2
    assert recs["amdim"]["kNN accuracy lo"] < 0.7 < recs["amdim"]["kNN accuracy hi"]
    assert pretraining.training_records(res, acc={"amdim": 0.65})["amdim"]["kNN accuracy"] == 0.65
    old = pretraining.training_records(_old_run())
    assert old["amdim"]["kNN accuracy"] == 0.59 and old["amdim"]["curve points"] == 0  # from the evaluation
    table = pretraining.training_beside({"this build": recs, "reference run": old})
    assert table.index.tolist()[:2] == [("SSL (AMDIM)", "this build"), ("SSL (AMDIM)", "reference run")]

    # this build's history (pipe.entry(m).history): epochs without a kNN point count towards the minutes
    history = [{"epoch": 1, "loss": 2.0, "seconds": 30.0}, {"epoch": 2, "loss": 1.5, "seconds": 30.0, "knn_acc": 0.4}]
    frame = pretraining.curve_frame({"this build": {"amdim": history}, "reference run": record.result_curves(res)})
    row = frame[frame["run"] == "this build"].iloc[0]
    assert (row["epoch"], row["minutes"], row["kNN accuracy"]) == (2, 1.0, 0.4)
    ref_rows = frame[(frame["run"] == "reference run") & (frame["model"] == "SUP")]
    assert ref_rows["kNN accuracy"].tolist() == [0.6, 0.8] and ref_rows["minutes"].tolist() == [1.0, 2.0]
    assert plots.knn_curves(frame) is not None
    assert plots.knn_curves(pretraining.curve_frame({"smoke": {"amdim": history[:1]}})) is not None  # nothing to draw


def test_accuracy_trend_rule():
    # half-width of a 95% Wilson interval at 60% on 1,000 images is about 3 points
    half = fine_tuning.accuracy_trend([{"epoch": 0, "acc": 0.8}, {"epoch": 1, "acc": 0.6}], 1000)["half-width"]
    assert 0.025 < half < 0.035

    def trend(a, b, n=1000):
        return fine_tuning.accuracy_trend([{"epoch": 1, "acc": a}, {"epoch": 2, "acc": b}], n)["trend"]

    assert trend(0.70, 0.60) == "still falling"
    assert trend(0.61, 0.60) == "stopped falling"
    assert trend(0.50, 0.60) == "still rising"
    assert trend(0.61, 0.60, n=100_000) == "still falling"  # the same drop is significant on more images
    assert fine_tuning.accuracy_trend([{"epoch": 0, "acc": 0.8}], 1000)["trend"].startswith("not measured")
    runs = {"this build": record.fine_tuning_trajectories(_run()), "reference run": record.fine_tuning_trajectories(
        _old_run())}
    t = fine_tuning.accuracy_trends(runs, {"this build": 1000, "reference run": 2000})
    assert t.loc[("AT", "this build"), "trend"] == "stopped falling"  # 0.600 -> 0.595 on 1,000 images
    assert t.loc[("AT", "reference run"), "trend"] == "still falling"
    assert t.loc[("AT", "this build"), "epochs"] == 2
    frame = fine_tuning.trajectory_frame(runs)
    assert len(frame) == 5 and plots.clean_accuracy_curves(frame) is not None
    assert plots.clean_accuracy_curves(fine_tuning.trajectory_frame({})) is not None


def test_refresh_check_table_and_sentence():
    check = _run()["sat_refresh"]
    t = fine_tuning.refresh_table({"reference run": check, "this build (smoke)": None})
    assert t.index.tolist() == [("reference run", "1 iteration(s)"), ("reference run", "10 iteration(s)")]
    assert t.loc[("reference run", "10 iteration(s)"), "DSR small"] == "62.0% [57.0%, 67.0%]"
    text = fine_tuning.refresh_sentence(check, "reference run")
    assert "every 10 iterations" in text and "+2.0% [-2.0%, +6.0%]" in text and "5.0x" in text
    assert "inside" in text
    assert "no refresh check" in fine_tuning.refresh_sentence(None, "this build (smoke)")


# ----------------------------------------------------------------------------- Table 1: paper | reference | this build


def test_table1_columns_and_numbers_come_from_the_right_runs():
    ref, this = _run(amdim=0.71, sup=0.82), _run("quick", amdim=0.41, sup=0.55, n=200)
    t = table1.table1({"reference run (cpu)": ref, "this build (quick)": this})
    assert list(t.columns) == ["paper (CIFAR-10, N = 1,000)", "reference run (cpu)", "this build (quick)"]
    assert t.loc[("SUP", "ACC"), "paper (CIFAR-10, N = 1,000)"] == "92.02%"
    assert t.loc[("SUP", "ACC"), "reference run (cpu)"] == "82.0% [80.0%, 84.0%]"
    assert t.loc[("SUP", "ACC"), "this build (quick)"] == "55.0% [53.0%, 57.0%]"
    assert t.loc[("SSL (AMDIM)", "encoder"), "paper (CIFAR-10, N = 1,000)"] == "AMDIM ndf 128 rkhs 128 depth 3"
    assert t.loc[("SSL (AMDIM)", "encoder"), "reference run (cpu)"] == AMDIM_ENC
    assert t.loc[("SSL (AMDIM)", "epochs"), "reference run (cpu)"] == "10"
    assert t.loc[("SUP", "N attacked"), "this build (quick)"] == "200"
    assert t.loc[("SUP", "L2 (norm, mean over broken)"), "reference run (cpu)"] == "0.300"
    assert t.loc[("SSL (AMDIM) - SUP", "same encoder?"), "reference run (cpu)"] == f"yes ({AMDIM_ENC})"
    assert t.loc[("SSL (AMDIM) - SUP", "ACC"), "reference run (cpu)"] == "-11.0 points"
    assert t.loc[("SSL (AMDIM) - SUP", "DSR small"), "paper (CIFAR-10, N = 1,000)"] == "+33.2 points"
    assert t.loc[("SSL (AMDIM) - SUP", "robust small"), "this build (quick)"] == "+19.0 points"
    assert not t.isna().any().any()


def test_table1_shows_a_run_of_several_seeds_as_the_mean_and_range():
    ref = _run(amdim=0.70, sup=0.80)
    for seed, (a, b) in ((1, (0.72, 0.84)), (2, (0.74, 0.82))):
        ref["evaluation"]["pixel"][f"amdim-seed{seed}"] = _record(a, 0.5 + seed / 100, n=990 + seed, robust=0.3)
        ref["evaluation"]["pixel"][f"sup-seed{seed}"] = _record(b, 0.2, n=980, robust=0.1)
    ref["seeds"] = [0, 1, 2]
    t = table1.table1({"reference run": ref, "this build": _run("quick")})
    col = "reference run, mean over seeds"
    assert list(t.columns) == ["paper (CIFAR-10, N = 1,000)", col, "this build"]
    assert t.loc[("SUP", "ACC"), col] == "82.0% (80.0% to 84.0%, 3 seeds)"
    assert t.loc[("SSL (AMDIM)", "DSR small"), col] == "51.0% (50.0% to 52.0%, 3 seeds)"
    assert t.loc[("SSL (AMDIM)", "robust small"), col] == "31.7% (30.0% to 35.0%, 3 seeds)"
    assert t.loc[("SSL (AMDIM)", "N attacked"), col] == "1,000 / 991 / 992 (per seed)"
    # the difference of each seed's pair (-10, -12, -8 points), then their mean and range
    assert t.loc[("SSL (AMDIM) - SUP", "ACC"), col] == "-10.0 points (-12.0 points to -8.0 points, 3 seeds)"
    assert t.loc[("SSL (AMDIM) - SUP", "seeds"), col].startswith("0, 1, 2")
    assert t.loc[("SSL (AMDIM) - SUP", "seeds"), "this build"] == record.MISSING  # one seed: no such row
    assert t.loc[("SSL (AMDIM)", "encoder"), col] == AMDIM_ENC
    ref["seeds"] = [0, 1]  # seed 2 not judged: its models are left out
    t = table1.table1({"reference run": ref})
    assert t.loc[("SUP", "ACC"), col] == "82.0% (80.0% to 84.0%, 2 seeds)"


def test_table1_compares_only_models_of_the_same_encoder():
    other = _run(sup_encoder="ResNet-18")
    t = table1.table1({"reference run": other})
    assert t.loc[("SSL (AMDIM) - SUP", "same encoder?"), "reference run"].startswith("no: SUP runs on ResNet-18")
    assert t.loc[("SSL (AMDIM) - SUP", "DSR small"), "reference run"] == "not compared (encoders differ)"
    assert t.loc[("SUP", "encoder"), "reference run"] == "ResNet-18"
    # a supervised twin on AMDIM's encoder is the one compared with (named by the record's "models" entry)
    twin = ModelId.pretrained("sup", twin="amdim-ndf32")
    other["models"] = {m.name: dataclasses.asdict(m) for m in (*map(ModelId.pretrained, ("amdim", "sup")), twin)}
    other["evaluation"]["pixel"][twin.name] = _record(0.75, 0.1, encoder=AMDIM_ENC)
    t = table1.table1({"reference run": other})
    assert t.loc[("SUP", "ACC"), "reference run"].startswith("75.0%")
    assert t.loc[("SUP", "encoder"), "reference run"] == f"{AMDIM_ENC} (SUP (amdim-ndf32 twin))"
    assert t.loc[("SSL (AMDIM) - SUP", "ACC"), "reference run"] == "-5.0 points"
    # an old file: encoders from the settings (SUP on a convnet), so nothing is compared; no interval, no crash
    t = table1.table1({"old": _old_run(), "STL-10 run": {**_run(), "dataset": {"dataset": "stl10"}}})
    assert list(t.columns) == ["paper (CIFAR-10, N = 1,000)", "old"]
    assert t.loc[("SSL (AMDIM) - SUP", "ACC"), "old"] == "not compared (encoders differ)"
    assert t.loc[("SUP", "ACC"), "old"] == "71.0%" and t.loc[("SUP", "robust small"), "old"] == record.MISSING


def test_zoo_table_names_the_encoder():
    rec = {"settings": {"small": {"attacks": {"worst case": {"dsr": 0.5, "dsr_ci": [0.4, 0.6], "robust": 0.3,
                                                             "robust_ci": [0.2, 0.4]}}}}}
    t = tables.zoo_table({"amdim": rec}, encoders={"amdim": AMDIM_ENC})
    assert t.loc[0, "encoder"] == AMDIM_ENC and "encoder" not in tables.zoo_table({"amdim": rec})
    assert not math.isnan(t.loc[0, "robust"])


def test_zoo_beside_and_a_reference_without_the_zoo(tmp_path):
    rec = {"settings": {s: {"attacks": {"worst case": {"dsr": d, "dsr_ci": [d - 0.1, d + 0.1], "robust": d / 2,
                                                       "robust_ci": [d / 2 - 0.1, d / 2 + 0.1]},
                                        "gradient (paper)": {"dsr": 0.9, "dsr_ci": [0.8, 1.0], "robust": 0.5,
                                                             "robust_ci": [0.4, 0.6]}}}
                        for s, d in (("small", 0.4), ("large", 0.2))}}
    old = reference.reference_run(directory=_write(tmp_path, _old_run()))
    assert old.robustness() == {}
    t = reference.zoo_beside({"this build": {"amdim": rec}, old.heading: old.robustness()}, ["amdim", "sup"],
                          evaluations={"this build": {"amdim": _record(0.5, 0.5)}, old.heading: old.evaluation()})
    assert t.index.tolist() == [("SSL (AMDIM)", "this build")]
    assert t.loc[("SSL (AMDIM)", "this build"), "robust small"] == "20.0% [10.0%, 30.0%]"
    assert t.loc[("SSL (AMDIM)", "this build"), "DSR large"] == "20.0% [10.0%, 30.0%]"
    assert t.loc[("SSL (AMDIM)", "this build"), "encoder"] == AMDIM_ENC


def test_fine_tuning_times_and_mi_along_sat():
    res = _old_run()
    res["sat"] = {"amdim": {"name": "sat-amdim", "train_seconds": 30.0, "n_updates": 150, "seconds_per_update": 0.2,
                            "trajectory": [{"iteration": 0, "mi_estimate": None},
                                           {"iteration": 50, "mi_estimate": 1.5},
                                           {"iteration": 150, "mi_estimate": 4.2}]}}
    recs = record.fine_tuning_records(res)
    assert set(recs) == {"sat-amdim", "at"} and recs["sat-amdim"]["encoder"].startswith("AMDIM ndf 32")
    t = fine_tuning.fine_tuning_table({"reference run": recs, "this build": {"at": {"train_seconds": 2.0,
                                                                                "encoder": AMDIM_ENC}}})
    assert t.loc[("AT", "this build"), "fine-tuning s"] == 2.0 and t.loc[("AT", "reference run"), "fine-tuning s"] == 5
    assert t.loc[("AT", "this build"), "encoder"] == AMDIM_ENC
    mi = fine_tuning.mi_along_sat({"reference run": res["sat"]["amdim"]["trajectory"], "smoke": []},
                             {"reference run": 100, "smoke": 50})
    assert mi.loc["reference run", "MI estimate, last point (nats)"] == 4.2
    assert mi.loc["reference run", "last / ceiling"] == pytest.approx(4.2 / math.log(100))
    assert mi.loc["reference run", "iterations"] == 150 and math.isnan(mi.loc["smoke", "last / ceiling"])


def test_run_heading_without_evaluations():
    assert reference.run_heading("this build", "smoke", {}, n_test=500) == "this build (smoke, 500 test images)"
    assert reference.run_heading("this build", "smoke", {}) == "this build (smoke)"


def test_gaps_compare_only_models_of_one_encoder():
    this = _run("quick", amdim=0.41, sup=0.55, n=200)["evaluation"]["pixel"]
    other = _run(sup_encoder="ResNet-18")["evaluation"]["pixel"]
    t = reference.beside({"this build": this, "other": other}, ["amdim", "sup"])
    g = reference.gaps(t, "SSL (AMDIM)", "SUP", ["ACC", "DSR small"])
    assert g.loc["this build", "ACC: SSL (AMDIM) - SUP"] == pytest.approx(0.41 - 0.55)
    assert g.loc["this build", "encoder"] == AMDIM_ENC
    assert math.isnan(g.loc["other", "DSR small: SSL (AMDIM) - SUP"])
    assert g.loc["other", "encoder"].startswith("not compared")
    assert reference.gaps(pd.DataFrame(), "a", "b", ["ACC"]).empty


def test_curve_summary_and_encoders_in_every_table():
    frame = pretraining.curve_frame({"ref": record.result_curves(_run())})
    s = pretraining.curve_summary(frame)
    assert s.loc[("SUP", "ref"), "final kNN accuracy"] == 0.8
    assert s.loc[("SUP", "ref"), "last change"] == pytest.approx(0.2)
    assert s.loc[("SUP", "ref"), "epochs between them"] == 5
    ev = {"ref": _run()["evaluation"]["pixel"]}
    trends = fine_tuning.accuracy_trends({"ref": record.fine_tuning_trajectories(_run())}, {"ref": 1000},
                                    evaluations={"ref": {"at": _record(0.6, 0.7)}})
    assert trends.loc[("AT", "ref"), "encoder"] == AMDIM_ENC
    refresh = fine_tuning.refresh_table({"ref": _run()["sat_refresh"]}, evaluations=ev)
    assert refresh["encoder"].tolist() == [AMDIM_ENC] * 2
    mi = fine_tuning.mi_along_sat({"ref": []}, {"ref": 100}, evaluations={"ref": {"sat-amdim": _record(0.5, 0.6)}})
    assert mi.loc["ref", "encoder"] == AMDIM_ENC


def test_committed_runs_leave_out_the_reference_and_unreadable_files(tmp_path, monkeypatch):
    _write(tmp_path, _run())
    _write(tmp_path, _run("quick"), "quick-cifar10.json")
    (tmp_path / "broken.json").write_text("{")
    monkeypatch.setattr(reference, "results_dir", lambda: tmp_path)
    ref = reference.reference_run()
    assert ref.current and list(reference.committed_runs(ref)) == ["quick-cifar10.json"]

    def nowhere():
        raise FileNotFoundError("no results/ folder")

    monkeypatch.setattr(reference, "results_dir", nowhere)  # satnb installed from a wheel: no checkout around it
    assert reference.reference_run().state == "absent" and reference.committed_runs(ref) == {}


def test_the_repository_reference_run_never_raises():
    ref = reference.reference_run()  # whatever state results/cpu-cifar10.json is in (current, stale, old or absent)
    text = ref.sentence()
    assert ref.state in ("current", "stale", "absent", "unreadable")
    assert str(results_dir().parent) not in text  # never a path of this machine
    assert table1.table1({ref.heading: ref.res}).shape[1] == (2 if ref.available else 1)
