"""The Performance page's tables come from the committed benchmark results, formatted by rules that are checked."""

import json
import sys

import pytest

from satnb.report.performance import Benchmarks, find_results, fmt, verdict


def test_formatting_rules():
    assert fmt(0.0123, "s") == "12.3 ms" and fmt(3.456, "s") == "3.46 s" and fmt(600, "s") == "10.0 min"
    assert fmt(2.0, "x") == "2.000x" and fmt(None, "x") == "n/a" and fmt(float("nan"), "s") == "n/a"
    assert verdict(True) == "pass" and verdict(False) == "FAIL" and verdict(None) == ""


def test_committed_results_load_and_count_targets():
    bench = Benchmarks.load(find_results())
    raw = json.loads(find_results().read_text())
    met, n = bench.n_met()
    rows = [r for r in raw["table"] if r["kind"] in ("target", "error")]
    assert n == len(rows) and met == sum(r["passed"] is True for r in rows)
    prov = bench.provenance()
    assert set(prov.index) == {r["benchmark"] for r in raw["benchmarks"]}
    assert not prov["threads"].isna().any()  # the book build's unset threads read "default", never NaN
    assert len(bench.of("knn")) == sum(r["benchmark"] == "knn" for r in raw["table"])
    assert bench.of("no-such-benchmark").empty


def test_commands_show_no_folders_of_the_measuring_machine(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"command": "python benchmarks/run_all.py --out /tmp/bb/results3.json",
                                "benchmarks": [], "table": []}))
    assert Benchmarks.load(path).command == "python benchmarks/run_all.py --out results3.json"


def test_missing_results_say_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="run_all.py"):
        find_results("benchmarks/none.json")


TRAIN_CONFIGS = {"amdim", "npid", "simclr", "sup", "sup-convnet"}


def test_committed_train_record_if_present():
    """The training-throughput record (benchmarks/bench_train.py), when the results file has one."""
    raw = json.loads(find_results().read_text())
    rec = {r["benchmark"]: r for r in raw["benchmarks"]}.get("train")
    if rec is None or rec.get("error"):
        pytest.skip("no train benchmark record in the committed results")
    rows = rec["checks"]["throughput"]
    assert set(rows) == TRAIN_CONFIGS
    names = [f["name"] for f in rec["figures"]]
    for row in rows.values():
        assert row["fp32_images_per_s"] > 0 and row["bf16_images_per_s"] > 0 and row["gflop_per_step"] > 0
        assert row["bf16_over_fp32"] == pytest.approx(row["bf16_images_per_s"] / row["fp32_images_per_s"], rel=0.01)
        assert row["bf16_gflops"] == pytest.approx(row["gflop_per_step"] / row["bf16_step_s"], rel=0.02)
        assert 0 < row["bf16_fraction_of_bf16_peak"] < 2
        label = f"{row['method']} on {row['encoder']}: ".lower()
        for p in ("fp32", "bf16"):  # one images/s figure per precision, named by method and encoder
            assert sum(n.lower() == f"{label}{p} images/s" for n in names) == 1
    targets = [r for r in rec["ratios"] if r["target"]]  # SUP on each encoder, and nothing else
    assert len(targets) == 2 and all(r["target"] == ">= 1.6" and r["name"].startswith("SUP on ") for r in targets)
    for key in ("sup", "sup-convnet"):
        assert sum(r["name"].startswith(f"SUP on {rows[key]['encoder']}:") for r in targets) == 1
    assert rec["checks"]["peak"]["bf16_gflops"] > 0 and rec["checks"]["peak"]["fp32_gflops"] > 0
    # time to accuracy is bench_tta's record (measured), no longer read by bench_train from an old run
    assert not [f for f in rec["figures"] if "kNN accuracy" in f["name"]]
    assert sum(r["benchmark"] == "train" for r in raw["table"]) == len(rec["figures"]) + len(rec["ratios"])
    table = Benchmarks.load(find_results()).train_throughput()
    assert table is not None and len(table) == len(TRAIN_CONFIGS)


def test_committed_tta_record_if_present():
    """SUP's time to 85% and 90% kNN accuracy (benchmarks/bench_tta.py), measured, when the results file has it."""
    rec = {r["benchmark"]: r for r in json.loads(find_results().read_text())["benchmarks"]}.get("tta")
    if rec is None or rec.get("error"):
        pytest.skip("no tta benchmark record in the committed results")
    tta = [f for f in rec["figures"] if "kNN accuracy" in f["name"]]
    assert len(tta) == 2 and all(f["unit"] == "min" for f in tta)
    assert all((f["value"] is None and f["note"]) or f["value"] > 0 for f in tta)
    assert [r["target"] for r in rec["ratios"]] == [">= 1"]


def test_train_throughput_table(tmp_path):
    row = {"method": "sup", "encoder": "convnet 32-64-128-256", "fp32_images_per_s": 100.0,
           "bf16_images_per_s": 180.0, "bf16_over_fp32": 1.8, "gflop_per_step": 22.6, "bf16_gflops": 16.0,
           "bf16_fraction_of_bf16_peak": 0.05}
    rec = {"benchmark": "train", "figures": [], "ratios": [], "checks": {"throughput": {"sup-convnet": row}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"command": "x", "benchmarks": [rec], "table": []}))
    table = Benchmarks.load(path).train_throughput()
    assert table.loc[("SUP", "convnet 32-64-128-256")].to_dict() == {
        "fp32 images/s": 100.0, "bf16 images/s": 180.0, "bf16 / fp32": "1.800x", "GFLOP per step": 22.6,
        "bf16 GFLOP/s": 16.0, "% of bf16 peak": "5.0%"}
    path.write_text(json.dumps({"command": "x", "benchmarks": [], "table": []}))
    assert Benchmarks.load(path).train_throughput() is None


def test_time_to_accuracy_sums_training_seconds_up_to_the_first_epoch_at_the_threshold():
    import sys

    sys.path.insert(0, str(find_results().parent))
    from bench_tta import minutes_to

    curve = [{"epoch": e, "seconds": 60.0, **({} if a is None else {"knn_acc": a})}
             for e, a in [(1, 0.5), (2, None), (3, 0.86), (4, None), (5, 0.89)]]
    assert minutes_to(curve, 0.85) == (pytest.approx(3.0), 3, 0.86, pytest.approx(5.0))
    minutes, epoch, best, total = minutes_to(curve, 0.90)
    assert (minutes, epoch, best, total) == (None, None, 0.89, pytest.approx(5.0))


def test_training_step_table(tmp_path):
    row = {"profile": "quick", "method": "amdim", "encoder": "AMDIM ndf 16", "batch": 256, "real_images_per_s": 300.0,
           "loop_images_per_s": 250.0,
           "nchw_images_per_s": 150.0, "real_over_nchw": 2.0, "noaug_images_per_s": 330.0, "fused_images_per_s": 310.0,
           "fraction_of_conv_peak": 0.1, "phases_s": {"augmentation": 0.1, "forward": 0.3, "backward": 0.5,
                                                     "optimiser": 0.1}}
    rec = {"benchmark": "step", "figures": [], "ratios": [], "checks": {"rows": {"quick:amdim": row}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"command": "x", "benchmarks": [rec], "table": []}))
    got = Benchmarks.load(path).training_step().loc[("AMDIM", "AMDIM ndf 16")].to_dict()
    assert got["images/s"] == 300.0 and got["real / before"] == "2.000x" and got["% of conv peak"] == "10.0%"
    assert got["in the loop"] == 250.0
    assert got["backward share"] == "50.0%" and got["augmentation share"] == "10.0%"
    path.write_text(json.dumps({"command": "x", "benchmarks": [], "table": []}))
    assert Benchmarks.load(path).training_step() is None


def test_committed_step_record_if_present():
    """The training-step record (benchmarks/bench_step.py), when the results file has one."""
    raw = json.loads(find_results().read_text())
    rec = {r["benchmark"]: r for r in raw["benchmarks"]}.get("step")
    if rec is None or rec.get("error"):
        pytest.skip("no step benchmark record in the committed results")
    rows = rec["checks"]["rows"]
    assert {r["method"] for r in rows.values()} == {"amdim", "npid", "simclr", "sup"}
    for r in rows.values():
        assert r["real_over_nchw"] == pytest.approx(r["nchw_step_s"] / r["real_step_s"], rel=0.01)
        assert r["real_images_per_s"] == pytest.approx(r["batch"] / r["real_step_s"], rel=0.01)
        assert set(r["phases_s"]) == {"batch", "augmentation", "forward", "backward", "optimiser"}
        assert r["loop_over_real_time"] == pytest.approx(r["loop_step_s"] / r["real_step_s"], rel=0.01)
    targets = [x for x in rec["ratios"] if x["target"]]
    assert len(targets) == len(rows) and all(x["target"] == ">= 1.5" for x in targets)


def test_bf16_against_fp32_is_not_measured_on_a_cpu_without_bf16_kernels(monkeypatch):
    import argparse
    import sys

    sys.path.insert(0, str(find_results().parent))
    import bench_train
    from _common import NotMeasurableHere

    from satnb.core import precision as core_precision

    monkeypatch.setattr(core_precision, "cpu_has_bf16", lambda: False)
    with pytest.raises(NotMeasurableHere, match="no bfloat16 kernels"):
        bench_train.run(argparse.Namespace(quick=True, repeats=1, threads=1))


def test_the_committed_table_is_made_from_the_committed_records():
    """The Performance chapter reads the table; it must never lag the records (a --save once left it stale)."""
    import sys

    sys.path.insert(0, str(find_results().parents[1] / "benchmarks"))
    from _common import flat

    raw = json.loads(find_results().read_text())
    assert raw["table"] == flat(raw["benchmarks"])


def test_saving_one_benchmark_rewrites_the_table(tmp_path):
    import sys

    sys.path.insert(0, str(find_results().parents[1] / "benchmarks"))
    from _common import save

    path = tmp_path / "results.json"
    old = {"benchmark": "book", "figures": [{"name": "quick book, cold cache (wall)", "value": 578.0, "unit": "s"}],
           "ratios": [], "provenance": {"finished_at": "2026-12-02"}}
    save(old, path)
    save(dict(old, figures=[dict(old["figures"][0], value=1263.0)], provenance={"finished_at": "2026-12-05"}), path)
    rows = json.loads(path.read_text())["table"]
    assert [(r["value"], r["measured_at"]) for r in rows] == [(1263.0, "2026-12-05")]


def test_the_readme_book_times_come_from_the_book_record(tmp_path):
    """The README's book build times are written from the book benchmark: walls, exit codes, targets, chapters."""
    from satnb.report.performance import book_markdown

    run = {"exit_code": 0, "wall_s": 125.0, "notebook_seconds": {"00_data": 12.4, "01_knn_features": 40.0}}
    rec = {"benchmark": "book", "settings": {"profiles": ["smoke", "quick"]},
           "provenance": {"finished_at": "2026-12-06T12:33:10+0000", "git_commit": "abcdef0123456789",
                          "machine": {"cpu": "Some CPU"}},
           "ratios": [{"name": "smoke book, cold (wall)", "value": 125.0, "target": "<= 3.0 min", "passed": True},
                      {"name": "quick book, warm (wall)", "value": 130.0, "target": "<= 2.0 min", "passed": False}],
           "checks": {"smoke cold": run, "smoke warm": dict(run, wall_s=61.0, exit_code=1),
                      "quick warm": dict(run, wall_s=130.0, notebook_seconds={"00_data": 9.0})}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"command": "x", "benchmarks": [rec], "table": []}))
    text = book_markdown(Benchmarks.load(path))
    assert "2026-12-06 12:33 UTC, commit abcdef0123, on Some CPU" in text
    assert "| 2.1 min (125 s) | 1.0 min (61 s, exit 1) | cold <= 3.0 min: met |" in text
    assert "| n/a | 2.2 min (130 s) | warm <= 2.0 min: not met |" in text
    assert "| chapter | smoke cold | smoke warm | quick warm |" in text  # a build not measured has no column
    assert "| 00_data | 12 | 12 | 9 |" in text and "| 01_knn_features | 40 | 40 | - |" in text
    path.write_text(json.dumps({"command": "x", "benchmarks": [], "table": []}))
    assert "has not been measured" in book_markdown(Benchmarks.load(path))


def test_a_build_of_one_profile_keeps_the_other_profiles_figures(tmp_path):
    """Benchmarking the smoke book alone keeps quick's figures, each saying when and at which commit it was measured."""
    sys.path.insert(0, str(find_results().parents[1] / "benchmarks"))
    from _common import flat, keep_other_profiles, save

    from satnb.report.performance import book_markdown

    def book(profiles, wall, when, commit, passed=True):
        figs = [{"name": f"{p} book, cold cache (wall)", "value": wall, "unit": "s"} for p in profiles]
        ratios = [{"name": f"{p} book, cold (wall)", "value": wall, "unit": "s", "target": "<= 3.0 min",
                   "passed": passed} for p in profiles]
        checks = {f"{p} cold": {"exit_code": 0, "wall_s": wall, "notebook_seconds": {"00_data": 1.0}}
                  for p in profiles}
        return {"benchmark": "book", "settings": {"profiles": profiles}, "figures": figs, "ratios": ratios,
                "checks": checks, "passed": passed, "provenance": {"finished_at": when, "git_commit": commit}}

    path = tmp_path / "results.json"
    save(book(["smoke", "quick"], 600.0, "2026-12-06T20:03:44+0000", "aaaaaaaaaaaa", passed=False), path)
    save(book(["smoke"], 150.0, "2026-12-07T09:00:00+0000", "bbbbbbbbbbbb"), path)
    data = json.loads(path.read_text())
    rec = data["benchmarks"][0]
    assert rec["settings"]["profiles"] == ["smoke", "quick"] and rec["passed"] is False  # quick's failed target stays
    rows = {r["metric"]: r for r in data["table"]}
    assert rows["quick book, cold cache (wall)"]["measured_at"] == "2026-12-06T20:03:44+0000"
    assert rows["quick book, cold cache (wall)"]["carried_over"] and not rows["smoke book, cold (wall)"]["carried_over"]
    assert rows["smoke book, cold cache (wall)"]["value"] == 150.0
    text = book_markdown(Benchmarks.load(path))
    assert "| quick: `bash scripts/book.sh` (the default) (measured 2026-12-06 20:03 UTC, commit aaaaaaaaaa) |" in text
    assert "| smoke: `SATNB_PROFILE=smoke bash scripts/book.sh` | 2.5 min (150 s) |" in text
    # measured a third time, smoke alone again: quick keeps its first stamp; a record without profiles is as it was
    save(book(["smoke"], 140.0, "2026-12-08T09:00:00+0000", "cccccccccccc"), path)
    assert "commit aaaaaaaaaa" in book_markdown(Benchmarks.load(path))
    other = {"benchmark": "knn", "settings": {}, "figures": [], "ratios": [], "passed": True}
    assert keep_other_profiles(other, {"benchmark": "knn", "settings": {"profiles": ["x"]}}) is other
    assert flat([other]) == []
