"""Per-image distances packed in results files: lossless, refused where lossy, malformed text named."""
import json
import math
import struct
import subprocess
from pathlib import Path

import pytest

from satnb.report.compact import pack_distances, pack_results, unpack_distances, unpack_results
from satnb.report.record import load_results

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 2_000_000  # bytes: the most a tracked file may hold


def f32(x: float) -> float:
    """x rounded to float32 by the standard library, an independent reference for numpy's cast."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_round_trip_is_exact_and_keeps_unbroken_images():
    values = [f32(0.1), None, f32(2.718281828), 0.0, None, f32(1e-7), float("inf")]
    packed = pack_distances(values)
    assert isinstance(packed, str) and packed.startswith("f32:7:")
    assert unpack_distances(packed, "x") == values
    many = [f32(i / 997) for i in range(500)]
    assert len(pack_distances(many)) < len(json.dumps(many)) / 3


def test_values_float32_would_change_stay_a_list():
    assert pack_distances([0.1, None]) == [0.1, None]  # 0.1 is not a float32 value
    kept = pack_distances([float("nan")])  # unpacking reads NaN as an unbroken image
    assert isinstance(kept, list) and math.isnan(kept[0])
    assert pack_distances([True, 1.0]) == [True, 1.0]
    assert pack_distances(["a"]) == ["a"]


@pytest.mark.parametrize("text", ["f32:2:AAAAAA==", "f32:x:AAAA", "f32:1:***", "f32:1", "g32:1:AAAAAA=="])
def test_malformed_packing_names_the_place(text):
    with pytest.raises(ValueError, match=r"ev\.m\.l2_all_px is not packed distances"):
        unpack_results({"ev": {"m": {"l2_all_px": text}}}, "ev")


def test_only_distance_keys_are_packed():
    values = [f32(v / 7) for v in range(50)]
    res = {"evaluation": {"pixel": {"amdim": {"l2_all_px": values, "dsr": values}}}, "runs": [{"l2_all_norm": values}]}
    packed = pack_results(res)
    assert packed["evaluation"]["pixel"]["amdim"]["dsr"] == values
    assert isinstance(packed["evaluation"]["pixel"]["amdim"]["l2_all_px"], str)
    assert isinstance(packed["runs"][0]["l2_all_norm"], str)
    assert res["runs"][0]["l2_all_norm"] is values  # the input is left as it was
    assert unpack_results(json.loads(json.dumps(packed))) == res


def test_a_packed_results_file_loads_as_the_unpacked_one(tmp_path):
    res = load_results(ROOT / "results" / "quick-cifar10.json")
    assert any("l2_all_px" in r for models in res["evaluation"].values() for r in models.values())
    path = tmp_path / "quick-cifar10.json"
    path.write_text(json.dumps(pack_results(res), indent=1, sort_keys=True))
    assert "f32:" in path.read_text() and load_results(path) == res


def test_tracked_results_files_fit_the_limit():
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    sizes = {name: (ROOT / name).stat().st_size for name in tracked if (ROOT / name).is_file()}
    assert {name: size for name, size in sizes.items() if size > LIMIT} == {}
