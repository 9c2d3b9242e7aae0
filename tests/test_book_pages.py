"""book/_ext/satnb_pages.py: every page lists each script asset once (its inline sphinx-thebe config was doubled)."""

import importlib.util
from pathlib import Path

from sphinx.builders.html._assets import _JavaScript

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("satnb_pages", ROOT / "book" / "_ext" / "satnb_pages.py")
satnb_pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(satnb_pages)


def test_repeated_scripts_are_dropped_and_the_rest_keep_their_order():
    thebe = 'const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"'
    # sphinx-thebe's config reached pages twice, once with filename None and once with "" (Sphinx 7.4)
    scripts = [_JavaScript("a.js"), _JavaScript(None, body=thebe), _JavaScript("b.js", **{"async": "async"}),
               _JavaScript(None, body="var x = 1"), _JavaScript("", body=thebe), _JavaScript("b.js"),
               _JavaScript("a.js")]
    expected = scripts[:4] + [scripts[5]]  # b.js without async differs: kept
    context = {"script_files": scripts}
    satnb_pages.unique_scripts(None, "index", "page.html", context, None)
    assert context["script_files"] == expected
    # the same list object: handlers after this one (Sphinx's MathJax) add to the builder's list, which it is
    assert context["script_files"] is scripts


def test_the_book_config_loads_the_extension():
    config = (ROOT / "_config.yml").read_text()
    assert "satnb_pages: book/_ext" in config
