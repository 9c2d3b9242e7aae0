"""scripts/check_layout.py: layout problems found from measurements, and (where Chromium is installed) measured."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
_spec = importlib.util.spec_from_file_location("check_layout", ROOT / "scripts" / "check_layout.py")
check_layout = importlib.util.module_from_spec(_spec)
sys.modules["check_layout"] = check_layout  # its dataclass looks itself up there
_spec.loader.exec_module(check_layout)

Layout = check_layout.Layout


def _table(width: int, **kw) -> dict:
    return {"i": 1, "width": width, "section": "The four claims", "caption": "", "columns": 3, "head": "a, b, c", **kw}


def test_a_table_wider_than_the_column_fails_and_one_that_fits_passes():
    assert check_layout.problems_of(Layout(column=740, tables=[_table(740), _table(742)])) == []  # rounding slack
    found = check_layout.problems_of(Layout(column=740, tables=[_table(790, caption="verdicts")]))
    assert found == ["table 1 ('verdicts') in 'The four claims' is 790 px wide, the column 740 px (3 header cells: "
                     "a, b, c...)"]


def test_a_wide_formula_and_script_errors_fail():
    found = check_layout.problems_of(Layout(column=740, formulas=[{"width": 900, "section": "MI", "text": "I(X;Y)"}],
                                            errors=["Identifier 'X' has already been declared"] * 2))
    assert found == ["a displayed formula in 'MI' is 900 px wide, the column 740 px: break it (aligned lines) or "
                     "shorten it", "JavaScript error: Identifier 'X' has already been declared"]


def test_a_page_that_never_finished_fails():
    assert check_layout.problems_of(None)[0].startswith("did not finish loading")


def test_code_that_scrolls_is_a_note_not_a_problem():
    assert check_layout.problems_of(Layout(column=740, code=[{"width": 2000, "section": "", "start": "x"}])) == []


def test_no_browser_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(check_layout.shutil, "which", lambda name: None)
    with pytest.raises(check_layout.NoBrowser, match="apt-get install chromium"):
        check_layout.find_browser({})
    with pytest.raises(check_layout.NoBrowser, match="CHROME=/no/such/chrome is not an executable"):
        check_layout.find_browser({"CHROME": "/no/such/chrome"})


def test_main_without_a_build_says_to_build(tmp_path, capsys):
    assert check_layout.main([str(tmp_path)]) == 1
    assert "build the book first" in capsys.readouterr().out


PAGE = """<!DOCTYPE html><html><head><title>t</title><style>body {{ margin: 0 }}
article.bd-article {{ width: 600px }}</style></head><body><article class="bd-article">
<section><h2>Results</h2><div class="cell_output">{body}</div></section></article>{script}</body></html>"""


@pytest.mark.skipif(not any(shutil.which(b) for b in check_layout.BROWSERS), reason="no Chromium here "
                    "(apt-get install chromium); the measurement itself is tested where it is installed")
def test_the_browser_measures_tables_and_catches_errors(tmp_path):
    build = tmp_path / "html"
    build.mkdir()
    (build / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=ok.html" />')  # a redirect: skipped
    cells = "".join(f"<td>cell{i}</td>" for i in range(3))
    (build / "ok.html").write_text(PAGE.format(body=f"<table><tr>{cells}</tr></table>", script=""))
    wide = "".join(f"<td>a_long_unbreakable_value_{i}</td>" for i in range(12))
    (build / "bad.html").write_text(PAGE.format(body=f"<table><caption>runs</caption><tr>{wide}</tr></table>",
                                                script="<script>const x = 1;</script><script>const x = 2;</script>"))
    problems, _ = check_layout.check(build, check_layout.find_browser())
    assert [p.split(":")[0] for p in problems] == ["bad.html", "bad.html"], problems
    assert "table 1 ('runs') in 'Results' is" in problems[0] and "the column 600 px" in problems[0]
    assert "JavaScript error" in problems[1] and "x" in problems[1]
    assert not list(build.glob(".layout-*"))  # the probed copies are removed
