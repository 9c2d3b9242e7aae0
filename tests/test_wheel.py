"""The wheel of HEAD works outside the repository: installed into a fresh venv and run from a temporary folder,
satnb finds the committed reference run, the recipe comparison and the benchmark figures it ships."""

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, satnb
from satnb.report import reference, tables, targets
from satnb.report.performance import Benchmarks, find_results
from satnb.report.record import committed_results, results_dir
session = satnb.setup("smoke", show=False)
ref = reference.reference_run("cifar10")
print(json.dumps({"package": satnb.__file__, "results": str(results_dir()), "runs": sorted(committed_results()),
                  "reference": ref.available, "recipes": tables.recipe_comparison("cpu", "cifar10") is not None,
                  "longer": targets.longer_run("cpu", "cifar10") is not None,
                  "benchmarks": str(find_results()), "records": len(Benchmarks.load().records)}))
"""


@pytest.mark.slow
def test_the_wheel_ships_what_the_chapters_read(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    if built.returncode != 0 and "Could not find a version" in built.stderr + built.stdout:
        pytest.skip("no package index here to fetch the build backend (setuptools)")
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(dist.glob("satnb-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # the fresh venv borrows this one's third-party packages (torch & co.) through a .pth line, not its satnb:
    # a path in a .pth file is not a site directory, so this venv's editable install of the checkout stays off
    purelib = sysconfig.get_paths(vars={"base": str(env_dir), "platbase": str(env_dir)})["purelib"]
    Path(purelib).mkdir(parents=True, exist_ok=True)
    (Path(purelib) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    done = subprocess.run([str(python), "-c", PROBE], cwd=work, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SATNB_CACHE": str(tmp_path / "cache"),
                               "SATNB_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["package"].startswith(str(env_dir)), got  # the wheel's satnb, not the checkout's
    assert got["results"].startswith(str(env_dir)) and got["benchmarks"].startswith(str(env_dir))
    committed = sorted(p.name for p in (ROOT / "results").glob("*.json"))
    assert got["runs"] == committed and got["reference"] and got["recipes"] and got["longer"] and got["records"] > 0
    # each notebook's first cell, as Colab runs it (satnb already installed, so nothing is fetched): it sets up
    # the session and prints the banner with the runtime; off Colab nothing Drive-related runs
    cell = next(c for c in json.loads((ROOT / "notebooks" / "00_data.ipynb").read_text())["cells"]
                if c["cell_type"] == "code")
    code = "".join(cell["source"]).replace("satnb.setup(", 'satnb.setup("smoke", ')
    first = subprocess.run([str(python), "-c", code],
                           cwd=work, capture_output=True, text=True, timeout=600,
                           env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SATNB_CACHE": str(tmp_path / "cache"),
                                "SATNB_THREADS": "1"})
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Runtime: this machine, CPU" in first.stdout and "Google Drive" not in first.stdout, first.stdout[-2000:]


def test_the_commit_of_a_git_install_is_read_from_pips_record(monkeypatch):
    from importlib import metadata

    from satnb.core import store

    class Dist:
        def __init__(self, text):
            self.text = text

        def read_text(self, name):
            return self.text if name == "direct_url.json" else None

    record = {"url": "https://github.com/satnb/satnb", "vcs_info": {"vcs": "git", "commit_id": "0123abc" * 5,
                                                                     "requested_revision": "v0.1.0"}}
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(json.dumps(record)))
    assert store.installed_commit() == "0123abc" * 5
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(json.dumps({"url": "file:///tmp/satnb.whl"})))
    assert store.installed_commit() is None  # a local wheel: no commit to name
