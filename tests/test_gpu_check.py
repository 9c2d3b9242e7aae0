"""benchmarks/gpu_check.py and scripts/gpu_check.sh on the CPU (--tiny): every stage measured, projections that
follow their formulas, and the script's stages in order."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from satnb.core.config import PROFILES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
STAGES = ("pretrain", "library_refresh", "predict_test", "gradient_attacks", "optimization_attack", "sat",
          "baselines", "attack_zoo")


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gpu_check():
    return _module()


@pytest.fixture(scope="module")
def record(gpu_check, tmp_path_factory):
    """One --tiny run on the CPU (a few seconds), shared by the tests below."""
    out = tmp_path_factory.mktemp("gpu-check")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SATNB_DEVICE", "cpu")
        mp.delenv("OUT", raising=False)
        mp.delenv("SATNB_PRECISION", raising=False)
        mp.setenv("SATNB_CACHE", str(out / "cache"))
        assert gpu_check.main(["--tiny", "--out", str(out)]) == 0
    return json.loads((out / "gpu-check.json").read_text())


def test_tiny_run_measures_every_stage_with_positive_throughputs(record):
    assert record["tiny"] is True and record["complete"] is True and record["passed"] is True
    assert record["errors"] == [] and record["checks"]["losses_finite"] is True
    assert record["device"]["type"] == "cpu" and record["device"]["precision"] in ("bf16", "fp32")
    assert record["matmul"]["bf16_tflops"] > 0 and record["matmul"]["fp32_tflops"] > 0
    stages = record["stages"]
    assert set(STAGES) <= set(stages)
    # every method and supervised twin of both projected profiles, at each of their batch sizes
    trained = {(r["model"], r["profile_batch_size"]) for r in stages["pretrain"].values()}
    for pname in ("paper", "gpu"):
        p = PROFILES[pname]
        for name, s in {**p.train, **p.supervised_twins()}.items():
            assert (name, s.batch_size) in trained
    assert "sup-resnet18" in {m for m, _ in trained}
    for r in stages["pretrain"].values():
        assert r["images_per_s"] > 0 and r["loss_finite"] and r["memory_peak_bytes"] is None  # no CUDA: null
    for arch in ("amdim", "resnet18"):
        assert stages["library_refresh"][arch]["images_per_s"] > 0
        assert stages["library_refresh"][arch]["device_resident_features_images_per_s"] > 0
        assert stages["predict_test"][arch]["images_per_s"] > 0
        for setting in ("small", "large", "noise_small", "noise_large"):
            assert stages["gradient_attacks"][arch][setting]["images_per_s"] > 0
        assert stages["optimization_attack"][arch]["images_per_s"] > 0
        assert stages["sat"][arch]["seconds_per_iteration"] > 0 and stages["sat"][arch]["refresh_every"] == 1
        assert stages["attack_zoo"][arch]["images_per_s"] > 0
    for method in ("at", "mat", "alp"):
        assert stages["baselines"][method]["seconds_per_batch"] > 0
    assert record["memory_peak_bytes"] is None
    assert record["figures"] and all(math.isfinite(f["value"]) for f in record["figures"])


def test_projections_follow_their_formulas(record, gpu_check):
    stages = record["stages"]
    for pname in ("paper", "gpu"):
        P, proj = PROFILES[pname], record["projections"][pname]
        terms = proj["terms"]
        for name, t in terms.items():
            assert t["seconds"] is not None and t["seconds"] > 0, name
            assert gpu_check.evaluate_formula(t["formula"], t["inputs"]) == pytest.approx(t["seconds"]), name
        # pretraining: epochs x images per epoch / measured images per second, for every model of the profile
        for name, s in {**P.train, **P.supervised_twins()}.items():
            t = terms[f"pretrain:{name}"]
            key = next(k for k, r in stages["pretrain"].items()
                       if r["model"] == name and r["profile_batch_size"] == s.batch_size)
            ips = stages["pretrain"][key]["images_per_s"]
            assert t["inputs"]["images_per_s"] == ips and t["inputs"]["epochs"] == s.epochs
            assert t["inputs"]["images_per_epoch"] == (50_000 // s.batch_size) * s.batch_size
            assert t["seconds"] == pytest.approx(s.epochs * (50_000 // s.batch_size) * s.batch_size / ips)
        # SAT: the profile's iterations, refresh period and library; the per-iteration costs measured
        for seed in ("amdim", "npid", "simclr"):
            inputs = terms[f"sat:{seed}"]["inputs"]
            arch = P.train[seed].encoder
            assert (inputs["iterations"], inputs["refresh_every"], inputs["n_library"]) == \
                (P.sat.iterations, P.sat.refresh_every, P.n_library)
            assert inputs["attack_update_s"] == stages["sat"][arch]["attack_update_seconds"]
        # baselines: epochs x batches per epoch x measured seconds per batch, plus their evaluation points
        for method in ("at", "mat", "alp"):
            inputs = terms[f"baselines:{method}"]["inputs"]
            assert inputs["epochs"] == P.baselines.epochs and inputs["batches_per_epoch"] == 50_000 // 100
            assert inputs["s_per_batch"] == stages["baselines"][method]["seconds_per_batch"]
        # n_attack None (every correctly classified test image): projected at its bound, the whole test set
        assert terms["gradient-attacks:amdim"]["inputs"]["n_attack"] == (P.protocol.n_attack or (P.n_test or 10_000))
        # the totals are the sums of the (non-component) terms
        by_stage = {}
        for t in terms.values():
            if t["stage"] is not None:
                by_stage[t["stage"]] = by_stage.get(t["stage"], 0.0) + t["seconds"]
        assert by_stage == pytest.approx(proj["by_stage"])
        assert set(by_stage) == {"train", "sat", "baselines", "evaluate", "robustness"}
        assert proj["total_seconds"] == pytest.approx(sum(by_stage.values()))
        # the T4 estimate: the same total scaled by the device's peak over the T4's published fp32 peak
        t4 = record["t4_estimate"]
        assert t4["estimate"] is True and t4["constants"]["T4_FP32_TFLOPS"] == 8.1
        assert t4["scale"] == pytest.approx(t4["device_reference_tflops"] / 8.1)
        assert t4["profiles"][pname]["total_seconds"] == pytest.approx(proj["total_seconds"] * t4["scale"])
    # the paper profile is the longer one
    assert record["projections"]["paper"]["total_seconds"] > record["projections"]["gpu"]["total_seconds"]


def test_a_failed_stage_is_recorded_and_the_rest_still_run(gpu_check, tmp_path, monkeypatch):
    monkeypatch.setenv("SATNB_DEVICE", "cpu")
    monkeypatch.delenv("OUT", raising=False)

    def broken(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(gpu_check.Check, "stage_baselines", broken)
    monkeypatch.setattr(gpu_check.Check, "stage_zoo", lambda self: None)  # keep the test short
    monkeypatch.setattr(gpu_check.Check, "stage_sat", lambda self: None)
    assert gpu_check.main(["--tiny", "--out", str(tmp_path)]) == 1
    rec = json.loads((tmp_path / "gpu-check.json").read_text())
    assert rec["passed"] is False and "baselines: RuntimeError: boom" in rec["errors"][0]
    assert rec["stages"]["baselines"]["error"].endswith("boom")
    terms = rec["projections"]["paper"]["terms"]
    assert terms["baselines:at"]["seconds"] is None and "baselines" in terms["baselines:at"]["missing"]
    assert terms["pretrain:amdim"]["seconds"] > 0  # what was measured is still projected
    assert rec["projections"]["paper"]["total_seconds"] is None


def test_script_runs_the_tests_then_the_smoke_profile_then_the_benchmark():
    text = SCRIPT.read_text()
    assert "set -uo pipefail" in text and "tee" in text
    calls = [line.strip() for line in text.splitlines() if line.strip().startswith("stage ")]
    assert [c.split()[1] for c in calls] == ["device", "tests", "smoke", "benchmark"]  # run in this order
    assert "-m pytest -q -p no:cacheprovider -m cuda tests/" in calls[1]
    assert calls[2] == "stage smoke smoke.log smoke"
    smoke = text[text.index("\nsmoke() {"):]
    assert "-m satnb run --profile smoke" in smoke[:smoke.index("\n}")]
    assert "benchmarks/gpu_check.py" in calls[3]
    assert 'SATNB_CACHE="$WORK/cache"' in text and "mktemp -d /tmp/" in text
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.slow
def test_script_runs_end_to_end_with_tiny_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "SATNB_DEVICE": "cpu", "OUT": str(out), "PYTHON": sys.executable}
    env.pop("SATNB_PRECISION", None)
    done = subprocess.run(["bash", str(SCRIPT), "--tiny"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = done.stdout
    order = [log.index("=== [device]"), log.index("=== [tests]"), log.index("=== [smoke] skipped (--tiny)"),
             log.index("=== [benchmark]"), log.index("=== summary")]
    assert order == sorted(order) and "all stages passed" in log
    files = sorted(p.name for p in out.iterdir())
    assert files == ["benchmark.log", "device.log", "gpu-check.json", "summary.txt", "tests.log"]
    rec = json.loads((out / "gpu-check.json").read_text())
    assert rec["tiny"] is True and rec["complete"] is True and rec["passed"] is True
    assert "skipped" in (out / "tests.log").read_text()  # the CUDA tests skip on the CPU
