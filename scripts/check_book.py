#!/usr/bin/env python3
"""Check a built book: exit 1 with one line per problem, 0 when every page is clean.

    python scripts/check_book.py [BUILD]        # BUILD defaults to _build/html

A page fails when
  (a) it loads MathJax from outside the build (a CDN, a file:// URL, a missing or outside file), or it shows
      formulas and loads no MathJax at all: the formulas must render with no network;
  (b) it shows the code of the notebooks' setup cell (tagged remove-input: readers see its output only);
  (c) it contains an absolute path of the building machine: the repository, $HOME, $SATNB_DATA, $SATNB_CACHE
      (the last three when set and absolute), e.g. in a warning or a traceback printed by a cell;
  (d) it is a method chapter (02-05) with no element of class ``satnb-source`` (the method's code, shown from
      satnb's own source by ``satnb.notebook.display.show_source``), or that chapter page is missing;
  (e) it shows a progress bar frozen into the page (tqdm's "  0%|          | 0/8 [00:00<?, ?it/s]"): progress is for
      a person watching (JupyterLab, Colab, the CLI), never for the built report;
  (f) a table cell reads NaN (a missing number must say why, e.g. "not recorded" or "-");
  (g) its inline scripts declare one ``const``/``let`` name twice: the browser stops the second script with
      "Identifier '...' has already been declared";
  (h) a cell shows a table straight after another table with nothing naming it (no caption, no line between):
      the reader cannot tell which run or model it belongs to (e.g. one heading block printed before a table per
      run; name each with ``satnb.notebook.display.run_caption`` or a table caption);
  (i) a launch button (Colab, Binder) opens a repository path that is not a real file of the checkout: a
      missing file, or one reached through a symlink (GitHub does not follow symlinked folders in its URLs).

Layout (tables and formulas wider than the page column, JavaScript errors) needs a browser:
``scripts/check_layout.py``.

Standard library only, so it runs before or without the venv.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", ".doctrees", "reports"}
# Code of the setup cell, as it reads once syntax highlighting is stripped; any one of them is a leak.
SETUP_MARKERS = ("# Setup (the same in every chapter)", 'importlib.util.find_spec("satnb")')
CHAPTERS = (
    "notebooks/02_gradient_attack.html",
    "notebooks/03_optimization_attack.html",
    "notebooks/04_mutual_information.html",
    "notebooks/05_sat.html",
)
SOURCE_CLASS = "satnb-source"
PATH_VARIABLES = ("HOME", "SATNB_DATA", "SATNB_CACHE")
# tqdm's text: "<n>%|<bar>| <i>/<total>" (the rest, times and rates, varies)
PROGRESS_BAR = re.compile(r"\d{1,3}%\|[^|\n]{0,200}\|\s*[\d.]+[kMG]?/[\d.?]+[kMG]?")


class _Page(HTMLParser):
    """What the checks need from one page: script/link URLs, inline scripts, text and element classes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, url) of <script src> and <link href>
        self.mathjax_ids: list[str] = []  # src of <script id="MathJax-script">
        self.inline: list[str] = []  # bodies of inline scripts
        self.text: list[str] = []  # text outside <script> and <style>
        self.classes: set[str] = set()
        self.cells: list[str] = []  # text of every <td>/<th>
        self._in: str | None = None
        self._cell: list[str] | None = None
        # (h): each cell's outputs in order, each as (has a table, has a caption); the depth of the open cell
        # output and output <div>s
        self.cell_outputs: list[list[list[bool]]] = []
        self._depth = 0
        self._cell_output_depth: int | None = None
        self._output_depth: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        self.classes.update(classes)
        if tag == "div":
            self._depth += 1
            if "cell_output" in classes and self._cell_output_depth is None:
                self._cell_output_depth = self._depth
                self.cell_outputs.append([])
            elif self._cell_output_depth is not None and self._depth == self._cell_output_depth + 1:
                self._output_depth = self._depth
                self.cell_outputs[-1].append([False, False])
        elif tag in ("table", "caption") and self._output_depth is not None:
            self.cell_outputs[-1][-1][tag == "caption"] = True
        elif self._cell_output_depth is not None and self._output_depth is None:
            self.cell_outputs[-1].append([False, False])  # e.g. a displayed Markdown line between two outputs
        if tag == "script":
            if a.get("src"):
                self.urls.append((tag, "src", a["src"]))
                if a.get("id", "").lower() == "mathjax-script":
                    self.mathjax_ids.append(a["src"])
            self._in = tag
        elif tag == "style":
            self._in = tag
        elif tag == "link" and a.get("href"):
            self.urls.append((tag, "href", a["href"]))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            if self._depth == self._output_depth:
                self._output_depth = None
            elif self._depth == self._cell_output_depth:
                self._cell_output_depth = None
            self._depth -= 1
        if tag == self._in:
            self._in = None
        elif tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.inline.append(data)
        elif self._in is None:
            self.text.append(data)
            if self._cell is not None:
                self._cell.append(data)


def _pages(build: Path) -> Iterable[Path]:
    for path in sorted(build.rglob("*.html")):
        if not SKIP_DIRS.intersection(path.relative_to(build).parts[:-1]):
            yield path


def _local_target(page: Path, build: Path, url: str) -> tuple[Path | None, str]:
    """The file in the build a URL points to, or None and why not."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None, f"from outside the build: {url}"
    target = (page.parent / unquote(parts.path)).resolve() if not parts.path.startswith("/") else None
    if target is None:
        return None, f"from an absolute path, not the build: {url}"
    if not target.is_relative_to(build.resolve()):
        return None, f"from outside the build folder: {url}"
    if not target.is_file():
        return None, f"from a file the build does not have: {url}"
    return target, ""


def check_mathjax(page: Path, build: Path, parsed: _Page) -> list[str]:
    problems = []
    loads = [u for tag, _, u in parsed.urls if tag == "script" and "mathjax" in u.lower()] + parsed.mathjax_ids
    for url in dict.fromkeys(loads):
        target, why = _local_target(page, build, url)
        if target is None:
            problems.append(f"loads MathJax {why}")
    for tag, _, url in parsed.urls:  # e.g. <link rel="preload" href="https://cdn.../mathjax/...">
        if tag == "link" and "mathjax" in url.lower() and (urlsplit(url).scheme or urlsplit(url).netloc):
            problems.append(f"links MathJax from outside the build: {url}")
    for body in parsed.inline:  # e.g. window.MathJax = {loader: {paths: {mathjax: "https://..."}}}
        for url in re.findall(r"""(?:https?:)?//[^\s"'`)]*mathjax[^\s"'`)]*""", body, flags=re.I):
            problems.append(f"configures MathJax from outside the build: {url}")
    if "math" in parsed.classes and not loads:  # Sphinx writes formulas as <span|div class="math ...">
        problems.append("shows formulas but loads no MathJax")
    return problems


def check_setup_code(parsed: _Page) -> list[str]:
    text = "".join(parsed.text)
    found = [m for m in SETUP_MARKERS if m in text]
    return [f"shows the setup cell's code ({', '.join(map(repr, found))}); tag the cell remove-input"] if found else []


def check_progress(parsed: _Page) -> list[str]:
    bars = PROGRESS_BAR.findall(html.unescape("".join(parsed.text)))
    return [f"shows {len(bars)} frozen progress bar(s), e.g. {bars[0].strip()!r}; build with SATNB_PROGRESS=0 "
            "(scripts/book.sh does)"] if bars else []


def check_nan(parsed: _Page) -> list[str]:
    nan = [c for c in parsed.cells if c.lower() in ("nan", "nat", "<na>")]
    return [f"shows {len(nan)} table cell(s) reading {nan[0]!r}; format the table so a missing number says why "
            "(na_rep)"] if nan else []


DECLARATION = re.compile(r"\b(?:const|let)\s+([A-Za-z_$][\w$]*)")


def check_scripts(parsed: _Page) -> list[str]:
    names = [n for body in parsed.inline for n in DECLARATION.findall(body)]
    twice = sorted({n for n in names if names.count(n) > 1})
    return [f"declares {', '.join(twice)} twice in its inline scripts (the browser reports \"Identifier "
            f"'{twice[0]}' has already been declared\")"] if twice else []


def check_unlabelled_tables(parsed: _Page) -> list[str]:
    bare = 0
    for outputs in parsed.cell_outputs:  # a table is named by a caption or by anything shown between it and the last
        for before, (table, caption) in zip(outputs, outputs[1:]):
            bare += before[0] and table and not caption
    return [f"shows {bare} table(s) straight after another table of the same cell with nothing naming them; "
            "display a line naming each (satnb.notebook.display.run_caption) or give it a caption"] if bare else []


LAUNCH = re.compile(r"https://(?:colab\.research\.google\.com/github|mybinder\.org/v2/gh)/[^/\s\"']+/[^/\s\"']+/"
                    r"(?:blob/)?[^/\s\"']+/([^?\s\"']+\.ipynb)")


def check_launch(raw: str, root: Path | None) -> list[str]:
    if root is None:
        return []
    problems = []
    for rel in dict.fromkeys(LAUNCH.findall(html.unescape(raw))):
        path, real = root / rel, True
        for part in [root / Path(*Path(rel).parts[:i]) for i in range(1, len(Path(rel).parts) + 1)]:
            real = real and not part.is_symlink()
        if not path.is_file():
            problems.append(f"has a launch button for {rel}, which the repository does not have")
        elif not real:
            problems.append(f"has a launch button for {rel}, a path through a symlink that GitHub does not follow: "
                            "set repository.path_to_book in _config.yml so it names the real file")
    return problems


def machine_paths(env: Mapping[str, str], root: Path | None) -> dict[str, str]:
    """Absolute paths of the building machine that no page may contain, by where they come from."""
    found: dict[str, str] = {}
    candidates = [("the repository", str(root))] if root is not None else []
    candidates += [(f"${name}", env.get(name, "")) for name in PATH_VARIABLES]
    for label, value in candidates:
        value = value.rstrip("/")
        if not value.startswith("/"):  # unset, empty, relative or "/" itself
            continue
        for variant in (value, os.path.realpath(value)):
            found.setdefault(variant, label)
    return found


def check_paths(raw: str, paths: Mapping[str, str]) -> list[str]:
    text = html.unescape(raw)
    problems = []
    for path, label in paths.items():
        # a whole path: not the tail of a longer one (/x/work/main) nor of a URL (https://host/root/...)
        pattern = r"(?<![\w.~-])" + re.escape(path) + r"(?![\w.~-])"
        hits = len(re.findall(pattern, text))
        if hits:
            problems.append(f"contains {label} {path} ({hits}x)")
    return problems


def check(build: Path, root: Path | None = ROOT, env: Mapping[str, str] | None = None,
          chapters: Iterable[str] = CHAPTERS) -> list[str]:
    """Every problem of the build at ``build``, one line each (``page: problem``); empty when clean."""
    build = Path(build)
    if not (build / "index.html").is_file() and not any(_pages(build)):
        return [f"{build}: no built pages here (build the book first: bash scripts/book.sh)"]
    paths = machine_paths(os.environ if env is None else env, root)
    problems: list[str] = []
    classes: dict[str, set[str]] = {}
    for page in _pages(build):
        rel = page.relative_to(build).as_posix()
        raw = page.read_text(encoding="utf-8", errors="replace")
        parsed = _Page()
        parsed.feed(raw)
        parsed.close()
        classes[rel] = parsed.classes
        found = (check_mathjax(page, build, parsed) + check_setup_code(parsed) + check_progress(parsed)
                 + check_nan(parsed) + check_scripts(parsed) + check_unlabelled_tables(parsed)
                 + check_launch(raw, root) + check_paths(raw, paths))
        problems += [f"{rel}: {p}" for p in found]
    for rel in chapters:
        if rel not in classes:
            problems.append(f"{rel}: missing (a method chapter must be built)")
        elif SOURCE_CLASS not in classes[rel]:
            problems.append(f"{rel}: shows no method source (no element of class {SOURCE_CLASS!r})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", nargs="?", default="_build/html", help="the built HTML folder (default _build/html)")
    parser.add_argument("--root", default=str(ROOT), help="the repository whose absolute path no page may contain")
    args = parser.parse_args(argv)
    build = Path(args.build)
    problems = check(build, root=Path(args.root).resolve())
    for line in problems:
        print(line)
    pages = sum(1 for _ in _pages(build)) if build.is_dir() else 0
    print(f"[check_book] {len(problems)} problem(s) in {pages} page(s) of {build}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
