"""The repository's own rules: dependencies in step, notebooks clean and set up alike, book wiring."""

import json
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("book", "dev"):
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    env = (ROOT / "environment.yml").read_text().split("- pip:", 1)[1]
    listed = {_name(m) for m in re.findall(r"^\s+- ([A-Za-z][^\n]*)$", env, flags=re.M)}
    assert wanted == listed


def test_notebooks_exist_and_are_in_the_toc():
    assert NOTEBOOKS, "no notebooks"
    toc = (ROOT / "_toc.yml").read_text()
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in toc, f"{nb.name} is not in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name} has outputs"


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
    assert f"git+{url}" in setup, "the Colab install must use the repository URL of _config.yml"


def test_book_wiring():
    config = (ROOT / "_config.yml").read_text()
    assert "raise_on_error: true" in config and "execute_notebooks: force" in config
    assert (ROOT / "book" / "_toc.yml").resolve() == (ROOT / "_toc.yml").resolve()
    assert (ROOT / "book" / "notebooks").resolve() == (ROOT / "notebooks").resolve()


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme and "bash scripts/book.sh" in readme
    assert "bash scripts/test.sh" in ci
