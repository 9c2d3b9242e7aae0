"""scripts/check_book.py on tiny synthetic builds: each check passes a good tree and fails a bad one (offline, fast)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_book", ROOT / "scripts" / "check_book.py")
check_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_book)

REPO = "/srv/builder/satnb"  # the "repository" of the synthetic builds
ENV = {"HOME": "/home/builder", "SATNB_DATA": "/data/cifar", "SATNB_CACHE": "relative/cache"}
LOCAL_MATHJAX = '<script defer="defer" src="{up}_static/mathjax/tex-chtml.js"></script>'
FORMULA = '<span class="math notranslate nohighlight">\\(x^2\\)</span>'
SOURCE = '<div class="satnb-source"><pre>def pgd(model, x):\n    ...</pre></div>'
# the setup cell's code as Pygments highlights it
SETUP_CODE = (
    '<div class="cell_input"><pre><span class="c1"># Setup (the same in every chapter): install satnb</span>\n'
    '<span class="k">if</span> <span class="n">importlib</span><span class="o">.</span><span class="n">util</span>'
    '<span class="o">.</span><span class="n">find_spec</span><span class="p">(</span>'
    '<span class="s2">&quot;satnb&quot;</span><span class="p">)</span> <span class="ow">is</span> '
    '<span class="kc">None</span><span class="p">:</span></pre></div>'
)


def _page(head: str = "", body: str = "") -> str:
    return f"<!DOCTYPE html><html><head><title>t</title>{head}</head><body>{body}</body></html>"


def _good_tree(build: Path) -> Path:
    (build / "_static" / "mathjax").mkdir(parents=True)
    (build / "_static" / "mathjax" / "tex-chtml.js").write_text("/* MathJax */")
    (build / "index.html").write_text(_page(body="<p>Welcome. See <a href='https://www.mathjax.org'>MathJax</a>.</p>"))
    (build / "method.html").write_text(_page(LOCAL_MATHJAX.format(up=""), f"<p>The loss {FORMULA}</p>"))
    (build / "notebooks").mkdir()
    for rel in check_book.CHAPTERS:
        body = f"<p>{FORMULA} seen from https://example.org/home/builder/x</p>{SOURCE}"
        (build / rel).write_text(_page(LOCAL_MATHJAX.format(up="../"), body))
    (build / "notebooks" / "00_data.html").write_text(_page(body="<div class='output'>profile smoke</div>"))
    (build / "_static" / "ignored.html").write_text(_page(body=f"{REPO} lives in _static, not a page"))
    return build


def _problems(build: Path, env=ENV) -> list[str]:
    return check_book.check(build, root=Path(REPO), env=env)


@pytest.fixture
def good(tmp_path):
    return _good_tree(tmp_path / "html")


def test_a_good_build_passes(good):
    assert _problems(good) == []


def test_main_prints_one_line_per_problem_and_exits_1(good, capsys, monkeypatch):
    for name in ("HOME", "SATNB_DATA", "SATNB_CACHE"):
        monkeypatch.setenv(name, ENV[name])
    assert check_book.main([str(good), "--root", REPO]) == 0
    assert capsys.readouterr().out == ""
    (good / "notebooks" / "05_sat.html").write_text(_page(body=f"<pre>{REPO}/satnb/sat.py</pre>"))
    assert check_book.main([str(good), "--root", REPO]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"notebooks/05_sat.html: contains the repository {REPO} (1x)",
        "notebooks/05_sat.html: shows no method source (no element of class 'satnb-source')",
    ]


def test_an_empty_folder_fails(tmp_path):
    (problem,) = _problems(tmp_path)
    assert "no built pages" in problem


# (a) MathJax from the build itself


@pytest.mark.parametrize(
    "src",
    [
        "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js",
        "//cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/MathJax.js",
        "file:///usr/share/javascript/mathjax/MathJax.js",
        "/usr/share/javascript/mathjax/MathJax.js",
        "../../outside/mathjax/tex-chtml.js",
        "_static/mathjax/tex-mml-chtml.js",  # not in the build
    ],
)
def test_mathjax_from_outside_the_build_fails(good, src):
    (good / "method.html").write_text(_page(f'<script src="{src}"></script>', FORMULA))
    (problem,) = _problems(good)
    assert problem.startswith("method.html: loads MathJax from") and src in problem


def test_mathjax_by_id_or_config_or_preload_from_a_cdn_fails(good):
    head = (
        '<script id="MathJax-script" async src="https://cdn.example.net/tex.js"></script>'
        '<script>window.MathJax = {loader: {paths: {mathjax: "https://cdn.jsdelivr.net/npm/mathjax@3/es5"}}}</script>'
        '<link rel="preload" href="https://cdn.jsdelivr.net/npm/mathjax@3/es5/output/chtml.js">'
    )
    (good / "method.html").write_text(_page(LOCAL_MATHJAX.format(up="") + head, FORMULA))
    problems = _problems(good)
    assert len(problems) == 3, problems
    assert any("https://cdn.example.net/tex.js" in p for p in problems)
    assert any(p.startswith("method.html: configures MathJax") for p in problems)
    assert any(p.startswith("method.html: links MathJax") for p in problems)


def test_formulas_without_mathjax_fail(good):
    (good / "method.html").write_text(_page(body=f"<p>{FORMULA}</p>"))
    assert _problems(good) == ["method.html: shows formulas but loads no MathJax"]


# (b) the setup cell's code


def test_setup_code_in_a_page_fails(good):
    page = good / "notebooks" / "00_data.html"
    page.write_text(_page(body=SETUP_CODE + "<div class='output'>profile smoke</div>"))
    (problem,) = _problems(good)  # one line per page
    assert problem.startswith("notebooks/00_data.html: shows the setup cell's code")
    assert "find_spec" in problem and "# Setup" in problem
    page.write_text(_page(body="<pre>if importlib.util.find_spec(&quot;satnb&quot;) is None: pass</pre>"))
    (problem,) = _problems(good)  # either marker alone is enough
    assert "find_spec" in problem


def test_the_setup_output_alone_passes(good):
    # remove-input keeps the cell's output: a page that shows only what satnb.setup() printed is fine
    shown = "<pre>satnb 0.1.0 | profile smoke | data: CIFAR-10</pre>"
    (good / "notebooks" / "00_data.html").write_text(_page(body=shown))
    assert _problems(good) == []


# (c) absolute paths of the building machine


@pytest.mark.parametrize(
    ("leak", "label"),
    [
        (f"{REPO}/satnb/attacks.py:42: UserWarning", "the repository"),
        ("File /home/builder/.cache/torch/hub.py, line 3", "$HOME"),
        ("reading file:///data/cifar/cifar10-jpeg.tar.gz", "$SATNB_DATA"),
        ("data: &quot;/data/cifar&quot;", "$SATNB_DATA"),
    ],
)
def test_absolute_paths_fail(good, leak, label):
    (good / "notebooks" / "00_data.html").write_text(_page(body=f"<pre>{leak}</pre>"))
    (problem,) = _problems(good)
    assert problem.startswith(f"notebooks/00_data.html: contains {label} /")


def test_paths_in_attributes_fail(good):
    (good / "index.html").write_text(_page(body='<img src="/home/builder/fig.png">'))
    assert _problems(good) == ["index.html: contains $HOME /home/builder (1x)"]


def test_similar_paths_and_relative_or_unset_variables_pass(good):
    body = (
        "<pre>/srv/builder/satnb2/x /other/srv/builder/satnb https://example.org/data/cifar/x "
        "relative/cache/file ~/notebooks</pre>"
    )
    (good / "notebooks" / "00_data.html").write_text(_page(body=body))
    assert _problems(good) == []
    assert _problems(good, env={"HOME": "/", "SATNB_DATA": ""}) == []


def test_machine_paths_include_the_resolved_variant(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    paths = check_book.machine_paths({"SATNB_CACHE": f"{tmp_path}/link/"}, root=None)
    assert paths == {f"{tmp_path}/link": "$SATNB_CACHE", str(real.resolve()): "$SATNB_CACHE"}


# (d) the method chapters show satnb's source


def test_a_chapter_without_the_method_source_fails(good):
    (good / "notebooks" / "03_optimization_attack.html").write_text(_page(body="<div class='satnb-sources'></div>"))
    assert _problems(good) == [
        "notebooks/03_optimization_attack.html: shows no method source (no element of class 'satnb-source')"
    ]


def test_a_missing_chapter_fails(good):
    (good / "notebooks" / "04_mutual_information.html").unlink()
    assert _problems(good) == ["notebooks/04_mutual_information.html: missing (a method chapter must be built)"]


def test_the_source_class_may_come_with_others(good):
    (good / "notebooks" / "02_gradient_attack.html").write_text(
        _page(body='<section><div class="cell_output satnb-source highlight">code</div></section>')
    )
    assert _problems(good) == []


@pytest.mark.parametrize("bar", [
    "  0%|          | 0/8 [00:00&lt;?, ?it/s]",  # what a widget's text fallback froze into chapter 01
    "100%|##########| 40/40 [00:12&lt;00:00,  3.2it/s]",
    " 37%|███▋      | 1.10k/3.00k [00:01&lt;00:02, 820img/s]",
])
def test_a_frozen_progress_bar_fails(good, bar):
    (good / "notebooks" / "05_sat.html").write_text(_page(LOCAL_MATHJAX.format(up="../"),
                                                          f"{SOURCE}<pre>{bar}</pre>"))
    (problem,) = _problems(good)
    assert problem.startswith("notebooks/05_sat.html: shows 1 frozen progress bar") and "SATNB_PROGRESS=0" in problem


def test_percentages_and_tables_are_not_progress_bars(good):
    text = "<p>DSR 45.2% | robust 12.0% | N 200/1000</p><table><tr><td>50%</td><td>| 3/4</td></tr></table>"
    (good / "notebooks" / "00_data.html").write_text(_page(body=text))
    assert _problems(good) == []


def test_a_nan_table_cell_fails(good):
    page = good / "notebooks" / "07_report.html"
    page.write_text(_page(body="<table><tr><th>model</th><th>ACC</th></tr><tr><td>SUP</td><td>0.5</td></tr></table>"))
    assert _problems(good) == []
    page.write_text(_page(body="<table><tr><td>SUP</td><td>NaN</td><td>nan</td></tr></table><p>NaN in prose</p>"))
    assert _problems(good) == ["notebooks/07_report.html: shows 2 table cell(s) reading 'NaN'; format the table so "
                               "a missing number says why (na_rep)"]


def test_a_name_declared_twice_in_inline_scripts_fails(good):
    script = '<script>const THEBE_JS_URL = "x"; let other = 1;</script>'
    page = good / "notebooks" / "00_data.html"
    page.write_text(_page(script))
    assert _problems(good) == []
    page.write_text(_page(script + script))
    (problem,) = _problems(good)
    assert problem.startswith("notebooks/00_data.html: declares THEBE_JS_URL, other twice")
    assert "'THEBE_JS_URL' has already been declared" in problem


def _cell(*outputs: str) -> str:
    return '<div class="cell docutils container"><div class="cell_output docutils container">' + "".join(outputs) + \
        "</div></div>"


TABLE = '<div class="output text_html"><div><table><tr><td>SUP</td><td>0.9</td></tr></table></div></div>'
CAPTIONED = '<div class="output text_html"><table><caption>differences</caption><tr><td>1</td></tr></table></div>'
STREAM = '<div class="output stream"><pre>reference run\nthis build</pre></div>'


@pytest.mark.parametrize("outputs, bare", [
    ((STREAM, TABLE, TABLE), 1),  # one merged heading block, then a table per run
    ((TABLE, TABLE, TABLE), 2),
    ((TABLE, CAPTIONED, TABLE), 1),  # the caption names its own table only
])
def test_a_table_straight_after_another_fails(good, outputs, bare):
    page = good / "notebooks" / "07_report.html"
    page.write_text(_page(body=_cell(*outputs)))
    assert _problems(good) == [f"notebooks/07_report.html: shows {bare} table(s) straight after another table of the "
                               "same cell with nothing naming them; display a line naming each "
                               "(satnb.notebook.display.run_caption) or give it a caption"]


@pytest.mark.parametrize("outputs", [
    ("<p><strong>reference run</strong></p>", TABLE, "<p><strong>this build</strong></p>", TABLE),  # run_caption
    (TABLE, STREAM, TABLE),
    (TABLE, CAPTIONED, CAPTIONED),
    (TABLE,),
])
def test_named_tables_pass(good, outputs):
    (good / "notebooks" / "07_report.html").write_text(_page(body=_cell(*outputs)))
    assert _problems(good) == []


def test_tables_of_two_cells_are_judged_apart(good):
    # a cell's first table is named by the prose and code above it, whatever the cell before showed
    (good / "notebooks" / "07_report.html").write_text(_page(body=_cell(TABLE) + _cell(TABLE)))
    assert _problems(good) == []


def test_launch_buttons_must_open_a_real_notebook(tmp_path):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "notebooks" / "01.ipynb").write_text("{}")
    (repo / "book").mkdir()
    (repo / "book" / "notebooks").symlink_to("../notebooks")
    colab = "https://colab.research.google.com/github/satnb/satnb/blob/main/{}"
    page = '<a href="{}" class="btn">Colab</a>'
    assert check_book.check_launch(page.format(colab.format("notebooks/01.ipynb")), repo) == []
    through = check_book.check_launch(page.format(colab.format("book/notebooks/01.ipynb")), repo)
    assert len(through) == 1 and "through a symlink that GitHub does not follow" in through[0]
    missing = check_book.check_launch(page.format(colab.format("notebooks/02.ipynb")), repo)
    assert missing == ["has a launch button for notebooks/02.ipynb, which the repository does not have"]
    binder = "https://mybinder.org/v2/gh/satnb/satnb/main?urlpath=tree/notebooks/01.ipynb"
    assert check_book.check_launch(page.format(binder), repo) == []  # a Binder link to a real notebook
