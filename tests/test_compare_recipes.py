"""scripts/compare_recipes.py: a short comparison at a profile's scale, its options checked, written run by run."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compare_recipes", ROOT / "scripts" / "compare_recipes.py")
compare_recipes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_recipes)


def test_a_short_comparison_trains_each_kept_recipe_for_the_given_epochs(tmp_path):
    out = tmp_path / "cmp.json"
    assert compare_recipes.main(["--profile", "smoke", "--methods", "npid", "--epochs", "1",
                                 "--recipes", "adam 1e-3 cosine", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["epochs"] == 1 and [r["recipe"] for r in rec["runs"]] == ["previous (Adam 1e-3, constant)",
                                                                          "adam 1e-3 cosine"]
    for run in rec["runs"]:
        assert run["settings"]["epochs"] == 1 and len(run["curve"]) == 1 and 0 <= run["knn_acc"] <= 1
        lo, hi = run["knn_acc_ci"]
        assert lo <= run["knn_acc"] <= hi
    assert [r["settings"]["schedule"] for r in rec["runs"]] == ["constant", "cosine"]


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "give at least 1 epoch"),
    (["--methods", "amdim", "--recipes", "adam 9 cosine"], "--recipes: unknown adam 9 cosine"),
    (["--methods", "byol"], "--methods: unknown byol"),
])
def test_bad_options_name_the_problem(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        compare_recipes.main(["--profile", "smoke", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err
