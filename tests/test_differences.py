"""Known differences from the paper: one source (satnb.report.differences), shown by the README and the report."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from satnb.experiment.run import stage_fingerprints
from satnb.report.differences import BEGIN, END, known_differences, readme_section, with_readme_section

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_shows_the_one_source():
    done = subprocess.run([sys.executable, "scripts/sync_readme.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr + " (run: python scripts/sync_readme.py)"
    assert readme_section((ROOT / "README.md").read_text()) == known_differences()


def test_the_report_chapter_shows_the_same_source():
    cells = json.loads((ROOT / "notebooks" / "07_report.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert any("satnb.report.differences.known_differences()" in c for c in code)
    prose = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    items = [line[2:62] for line in known_differences().splitlines() if line.startswith("- ")]
    assert len(items) >= 5
    for item in items:  # no hand-kept copy of the list: no item's opening words in the chapter's prose
        assert item not in prose, item


def test_figures_follow_the_committed_files(tmp_path):
    for name in ("cpu-cifar10.json", "quick-cifar10-labelled250.json"):
        shutil.copy(ROOT / "results" / name, tmp_path / name)
    ref = json.loads((tmp_path / "cpu-cifar10.json").read_text())
    acc = ref["evaluation"]["pixel"]["amdim"]["acc"]
    assert f"{100 * acc:.1f}% on AMDIM" in known_differences(tmp_path)
    ref["evaluation"]["pixel"]["amdim"]["acc"] = 0.5
    (tmp_path / "cpu-cifar10.json").write_text(json.dumps(ref))
    assert "50.0% on AMDIM" in known_differences(tmp_path)
    (tmp_path / "cpu-cifar10.json").unlink()
    (tmp_path / "quick-cifar10-labelled250.json").unlink()
    text = known_differences(tmp_path)
    assert "is not in this copy of the repository" in text and "No label-scarce proxy run" in text


def test_the_section_is_replaced_between_its_markers_only():
    readme = f"# T\n\n## Known differences\n\n{BEGIN}\nold\n{END}\n\n## Next\nkept\n"
    new = with_readme_section(readme, "- new\n")
    assert readme_section(new) == "- new\n" and new.endswith("## Next\nkept\n") and new.startswith("# T\n")
    assert readme_section("# no markers") is None


def test_guide_and_l2_lines_follow_the_quick_file(tmp_path):
    shutil.copy(ROOT / "results" / "quick-cifar10.json", tmp_path / "quick-cifar10.json")
    res = json.loads((tmp_path / "quick-cifar10.json").read_text())
    other = next(g for g in res["grid"] if g["eps_space"] == "pixel")
    ours = f"{100 * res['evaluation']['pixel']['sup']['dsr_small']:.1f}%"
    theirs = f"{100 * other['evaluation']['sup']['dsr_small']:.1f}%"
    n_ours, n_theirs = res["evaluation"]["pixel"]["sup"]["n_attacked"], other["evaluation"]["sup"]["n_attacked"]
    assert f"SUP {ours} (paper's rule, N = {n_ours:,}) vs {theirs} (authors', N = {n_theirs:,})" in \
        known_differences(tmp_path)
    other["evaluation"]["sup"]["dsr_small"] = 0.123
    strong = res["strong_l2"]["amdim"]
    assert f"{strong['l2_mean_broken_norm']:.3f} with {strong['opt_unbroken']} of {strong['opt_n']} unbroken" in \
        known_differences(tmp_path)
    del res["strong_l2"]
    (tmp_path / "quick-cifar10.json").write_text(json.dumps(res))
    text = known_differences(tmp_path)
    assert "vs 12.3% (authors', N = " in text
    assert "no committed run holds the optimisation attack at the authors' budget" in text


def test_measured_variants_come_from_the_reference_run_once_it_is_current(tmp_path):
    for name in ("cpu-cifar10.json", "quick-cifar10.json"):
        shutil.copy(ROOT / "results" / name, tmp_path / name)
    ref = json.loads((tmp_path / "cpu-cifar10.json").read_text())
    ref["provenance"]["stage_code"] = stage_fingerprints()  # current, whatever HEAD's code is
    (tmp_path / "cpu-cifar10.json").write_text(json.dumps(ref))
    text = known_differences(tmp_path)
    for opening in ("label smoothing 0.1 (our earlier recipe) is the variant `sup-ls0.1`. On",
                    "The guide-group rule changes the attack's strength: on", "as measured on"):
        assert f"{opening} `results/cpu-cifar10.json` (current)" in text, opening
    sup, smooth = ref["evaluation"]["pixel"]["sup"], ref["evaluation"]["pixel"]["sup-ls0.1"]
    assert f"N = {sup['n_attacked']:,} and {smooth['n_attacked']:,})" in text  # each model's own N
    ref["provenance"]["stage_code"] = {**ref["provenance"]["stage_code"], "evaluate": "0" * 16}  # stale: quick's
    (tmp_path / "cpu-cifar10.json").write_text(json.dumps(ref))
    text = known_differences(tmp_path)
    assert "`results/quick-cifar10.json` (" in text and "is the variant `sup-ls0.1`. On `results/cpu" not in text


def test_the_proxy_line_prefers_the_reference_scale(tmp_path):
    shutil.copy(ROOT / "results" / "quick-cifar10-labelled250.json", tmp_path / "quick-cifar10-labelled250.json")
    assert "`results/quick-cifar10-labelled250.json`" in known_differences(tmp_path)
    assert "No `cpu`-scale proxy run exists yet." in known_differences(tmp_path)
    shutil.copy(tmp_path / "quick-cifar10-labelled250.json", tmp_path / "cpu-cifar10-labelled500.json")
    text = known_differences(tmp_path)
    assert "On the proxy run `results/cpu-cifar10-labelled500.json`" in text
    assert "No `cpu`-scale proxy run exists yet." not in text
