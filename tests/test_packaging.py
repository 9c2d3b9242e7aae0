"""The repository's own rules: dependencies in step, notebooks clean and set up alike, book wiring."""

import json
import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the dev extra installs tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_installs_the_package_and_nothing_else():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    known = {_name(r) for r in project["dependencies"]}
    for reqs in project["optional-dependencies"].values():
        known |= {_name(r) for r in reqs}
    env = (ROOT / "environment.yml").read_text().split("- pip:", 1)[1]
    lines = [m.strip().strip("\"'") for m in re.findall(r"^\s+- ([^\n#]*)", env, flags=re.M)]
    installs = [line for line in lines if re.fullmatch(r"(-e\s+)?\.\[book,\s*dev,\s*cluster\]", line)]
    assert installs, "environment.yml must install the package itself: -e .[book,dev,cluster]"
    others = [line for line in lines if line not in installs]
    first = {_name(r) for r in lines[: lines.index(installs[0])]}
    assert {"torch", "torchvision"} <= first, "torch and torchvision go together, before the package"
    extra = sorted(line for line in others if _name(line) not in known)
    assert not extra, f"environment.yml lists what pyproject.toml does not: {extra}"


def test_the_tests_run_on_every_supported_python():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    low = re.fullmatch(r">=\s*3\.(\d+)", pyproject["project"]["requires-python"].strip())
    assert low, "requires-python is a lower bound"
    if int(low.group(1)) < 11:  # tomllib is 3.11+: the dev extra brings tomli below that
        dev = pyproject["project"]["optional-dependencies"]["dev"]
        assert any(_name(r) == "tomli" and "python_version < '3.11'" in r.replace('"', "'") for r in dev)


def test_notebooks_exist_and_are_in_the_toc():
    assert NOTEBOOKS, "no notebooks"
    toc = (ROOT / "_toc.yml").read_text()
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in toc, f"{nb.name} is not in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_nbformat_with_a_unique_id_per_cell(path):
    import nbformat

    raw = json.loads(path.read_text())
    ids = [cell.get("id") for cell in raw["cells"]]
    assert None not in ids, f"{path.name}: cell(s) {[i for i, c in enumerate(ids) if c is None]} have no id " \
                            "(nbformat 4.5 requires one; nbformat.validator.normalize adds them)"
    assert len(set(ids)) == len(ids), f"{path.name}: cell ids repeat"
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_read_n_attack_as_possibly_none(path):
    """N is None (every correctly classified image) from quick up, while smoke (the CI book) caps it: a notebook
    line that uses `protocol.n_attack` must handle None, or only the quick book would fail on it."""
    code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    for line in code.splitlines():
        if re.search(r"protocol\.n_attack\b(?!_)", line):
            assert re.search(r"protocol\.n_attack or ", line), f"{path.name}: {line.strip()}"


def test_every_notebook_starts_with_the_same_setup_cell():
    setups = set()
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        code = next(c for c in cells if c["cell_type"] == "code")
        setups.add("".join(code["source"]))
    assert len(setups) == 1
    setup = setups.pop()
    assert "satnb.setup(" in setup and "pip" in setup
    url = re.search(r"^\s+url: (\S+)", (ROOT / "_config.yml").read_text(), flags=re.M).group(1)
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M).group(1)
    assert f'git+{url}@v{version}"' in setup, ("the Colab install must pin the release tag of pyproject's version on "
                                               "the repository URL of _config.yml (python scripts/sync_repo_url.py)")
    assert "satnb.setup(drive=KEEP_CACHE_ON_DRIVE)" in setup and "KEEP_CACHE_ON_DRIVE = False" in setup


@pytest.mark.parametrize("published", [True, False])
def test_the_setup_cell_installs_the_release_else_main(monkeypatch, capsys, published):
    """Where satnb is missing (Colab) the cell installs its release tag; a tag not published yet falls back to main."""
    import importlib.util
    import subprocess

    cells = json.loads(NOTEBOOKS[0].read_text())["cells"]
    setup = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
    install = setup[:setup.index("import satnb\n")]  # the part before satnb is imported
    calls = []

    def pip(args, check=False):
        calls.append(args[-1])
        failed = args[-1].endswith("@v" + re.search(r"@v([^\"]+)\"", setup).group(1)) and not published
        return subprocess.CompletedProcess(args, 1 if failed else 0)

    monkeypatch.setattr(subprocess, "run", pip)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    exec(install, {})
    release = re.search(r'"(satnb @ git\+\S+)"', setup).group(1)
    assert calls == ([release] if published else [release, release.rsplit("@", 1)[0] + "@main"])
    assert ("is not published yet: installing main" in capsys.readouterr().out) != published


def test_book_wiring():
    config = (ROOT / "_config.yml").read_text()
    assert "raise_on_error: true" in config and "execute_notebooks: force" in config
    assert (ROOT / "book" / "_toc.yml").resolve() == (ROOT / "_toc.yml").resolve()
    assert (ROOT / "book" / "notebooks").resolve() == (ROOT / "notebooks").resolve()
    # MathJax from the build itself (scripts/check_book.py checks the built pages)
    book = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["book"]
    assert "sphinx-mathjax-offline" in {_name(r) for r in book}
    assert re.search(r"extra_extensions:\s*\n\s+- sphinx-mathjax-offline", config)


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme and "bash scripts/book.sh" in readme
    assert "bash scripts/test.sh" in ci
    assert "bash scripts/book.sh" in ci and "scripts/check_book.py" in ci
    assert ci.index("ruff check") < ci.index("bash scripts/test.sh") < ci.index("bash scripts/book.sh")
    assert ci.index("bash scripts/book.sh") < ci.index("scripts/check_book.py")


def test_reference_run_script_names_real_stages_and_logs_times():
    import re

    from satnb.experiment.run import ALL_STAGES

    text = (ROOT / "scripts" / "reference_run.sh").read_text()
    stages = re.search(r"\$\{STAGES:-([a-z ]+)\}", text).group(1).split()
    assert stages[0] == "train" and set(stages) == {*ALL_STAGES, "proxy"} and stages[-1] == "proxy"
    assert "--profile cpu" in text and "cpu-cifar10.stages.tsv" in text and "--force" in text
    # each stage's partial results land in results/partial/, which the report (results/*.json) never reads as a run
    assert 'out="$PARTIAL/cpu-cifar10-$stage.json"' in text and '--out "$out"' in text
    assert "PARTIAL=results/partial" in text
    # claim 4's proxy: the whole profile with 500 labelled images per class, a results file of its own
    assert "--labelled-per-class 500" in text and "out=results/cpu-cifar10-labelled500.json" in text


def test_git_strips_notebook_outputs_on_commit(tmp_path):
    """The clean filter setup.sh installs: outputs stay on disk, never in what git stores."""
    import shutil
    import subprocess
    import sys

    attrs = (ROOT / ".gitattributes").read_text()
    assert "notebooks/*.ipynb filter=satnb-strip-outputs" in attrs
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert 'filter.satnb-strip-outputs.clean "python3 scripts/strip_outputs.py"' in setup
    for path in NOTEBOOKS:  # idempotent on the committed notebooks: no churn in any diff
        done = subprocess.run([sys.executable, "scripts/strip_outputs.py"], cwd=ROOT, input=path.read_text(),
                              capture_output=True, text=True, check=True)
        assert done.stdout == path.read_text(), path.name
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "strip_outputs.py", repo / "scripts")
    shutil.copy(ROOT / ".gitattributes", repo)
    nb = json.loads(NOTEBOOKS[0].read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"], code["execution_count"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}], 3
    (repo / "notebooks" / "a.ipynb").write_text(json.dumps(nb, indent=1))
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "config", "filter.satnb-strip-outputs.clean", "python3 scripts/strip_outputs.py"],
                   cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    stored = json.loads(subprocess.run(["git", "show", ":notebooks/a.ipynb"], cwd=repo, capture_output=True,
                                       text=True, check=True).stdout)
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in stored["cells"] if c["cell_type"] == "code")
    assert "hi" in (repo / "notebooks" / "a.ipynb").read_text()  # the file on disk keeps its outputs
