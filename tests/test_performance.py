"""The Performance page's tables come from the committed benchmark results, formatted by rules that are checked."""

import json

import pytest

from satnb.performance import Benchmarks, find_results, fmt, verdict


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
    assert set(bench.provenance().index) == {r["benchmark"] for r in raw["benchmarks"]}
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
