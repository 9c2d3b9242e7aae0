"""satnb.notebook.runtime: the runtime a notebook reports and the profile it recommends, from what was measured."""

import pytest

from satnb.notebook import runtime
from satnb.notebook.runtime import Runtime


def test_cpu_recommends_quick_with_the_measured_book_time(monkeypatch):
    monkeypatch.setattr(runtime, "_measured_book_minutes", lambda: {"quick": 21.05, "smoke": 5.3})
    text = runtime.recommend(Runtime(colab=False, device="cpu", bf16=False, cores=2))
    assert "SATNB_PROFILE=quick" in text and "21 min cold on 2 CPU cores (measured)" in text
    assert "Runtime > Change runtime type" not in text  # Colab advice only on Colab
    assert "Change runtime type > GPU" in runtime.recommend(Runtime(colab=True, device="cpu", bf16=False, cores=2))


def test_a_gpu_without_bf16_keeps_quick_and_a_bf16_gpu_gets_the_gpu_profile_marked_unmeasured(monkeypatch):
    monkeypatch.setattr(runtime, "shipped", lambda rel: None)  # no gpu-check.json, no benchmarks here
    t4 = runtime.recommend(Runtime(colab=True, device="Tesla T4", bf16=False, cores=2))
    assert "without bfloat16" in t4 and "SATNB_PROFILE=quick" in t4 and "not measured" in t4
    a100 = runtime.recommend(Runtime(colab=True, device="NVIDIA A100-SXM4-40GB", bf16=True, cores=12))
    assert "SATNB_PROFILE=gpu" in a100 and "has not been measured on a GPU yet" in a100


def test_the_banner_line_is_short_off_colab_and_full_on_it(monkeypatch):
    monkeypatch.setattr(runtime, "_measured_book_minutes", lambda: {})
    here = runtime.describe(Runtime(colab=False, device="cpu", bf16=True, cores=2), "quick")
    assert here == "Runtime: this machine, CPU, 2 cores, with bfloat16; profile quick."
    colab = runtime.describe(Runtime(colab=True, device="Tesla T4", bf16=False, cores=2), "quick")
    assert colab.startswith("Runtime: Colab, GPU Tesla T4, without bfloat16; profile quick. Tesla T4 without")


def test_the_measured_book_time_is_read_from_the_committed_benchmarks():
    minutes = runtime._measured_book_minutes()
    assert set(minutes) >= {"smoke", "quick"} and all(m > 0 for m in minutes.values())


def test_drive_is_touched_only_on_colab(monkeypatch):
    monkeypatch.delenv("SATNB_CACHE", raising=False)
    assert runtime.keep_cache_on_drive(Runtime(colab=False, device="cpu", bf16=False, cores=2)) is None
    import os

    assert "SATNB_CACHE" not in os.environ
    with pytest.raises(ImportError):  # on "Colab" it mounts Drive through google.colab, absent here
        runtime.keep_cache_on_drive(Runtime(colab=True, device="cpu", bf16=False, cores=2))


def test_detect_works_without_a_google_package(monkeypatch):
    import importlib.util

    def no_google(name, *args):
        raise ModuleNotFoundError("No module named 'google'")  # what find_spec("google.colab") raises then

    monkeypatch.setattr(importlib.util, "find_spec", no_google)
    rt = runtime.detect()
    assert rt.colab is False and rt.cores >= 1
