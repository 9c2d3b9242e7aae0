#!/usr/bin/env python3
"""Check a built book's layout in a headless browser: exit 1 with one line per problem, 0 when every page fits.

    python scripts/check_layout.py [BUILD] [--width 1280]      # BUILD defaults to _build/html

Each page is opened in headless Chromium at a laptop's window (1280 x 900 px by default) and fails when
  (a) a table is wider than the page's text column (it scrolls sideways or runs off the page): fewer or
      narrower columns, abbreviations with a legend, or a figure instead;
  (b) a displayed formula is wider than the column (its right edge is cut);
  (c) a figure is shrunk below 70% of its drawn width to fit the column (its labels become unreadable);
  (d) a script raises, or a script, style sheet or image fails to load (a JavaScript error on the page);
  (e) the page did not finish loading and typesetting its formulas within the time budget.
Code and output blocks that scroll sideways are counted and listed with ``--verbose``, not failed: a long
line of code is sometimes the clearest form.

Needs Chromium (Debian: ``apt-get install chromium``; elsewhere set CHROME to a Chrome or Chromium binary);
exits 2 with that advice when there is none. Standard library otherwise; the static checks are in
``scripts/check_book.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_book import _pages  # noqa: E402  (the same pages as the static checks)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
MARKER = "satnb-layout"
SLACK_PX = 2  # sub-pixel rounding
# a figure drawn wider than the column is shrunk to fit, and its text with it: below this share of its drawn size
# matplotlib's 10-point labels (14 px at 100 dpi) fall under about 10 px on the page
MIN_FIGURE_SCALE = 0.7
# Runs first in <head>: collects errors (capture phase, so a <script> or <link> that fails to load counts too),
# then after load and MathJax's typesetting measures the page and writes the result into the DOM as JSON.
PROBE = """<script>
window.__satnbErrors = [];
window.addEventListener("error", e => {
  const t = e.target;
  window.__satnbErrors.push(t && t !== window && (t.src || t.href) ? "failed to load " + (t.src || t.href)
                                                                    : String(e.message || e.error || e));
}, true);
window.addEventListener("unhandledrejection", e => window.__satnbErrors.push("unhandled rejection: " + e.reason));
window.addEventListener("load", () => {
  const mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  (mj || Promise.resolve()).then(() => setTimeout(() => {
    const col = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
    const column = col.clientWidth;
    const where = el => {
      const s = el.closest("section");
      const h = s && s.querySelector("h1, h2, h3");
      return h ? h.textContent.replace(/[#\\u00b6]\\s*$/, "").trim() : "";
    };
    const width = el => Math.ceil(el.getBoundingClientRect().width);
    const out = {column: column, tables: [], formulas: [], code: [], figures: [], errors: window.__satnbErrors};
    col.querySelectorAll("img").forEach(img => {
      if (img.naturalWidth > 0) out.figures.push({src: img.getAttribute("src") || "", section: where(img),
                                                  natural: img.naturalWidth, shown: width(img)});
    });
    col.querySelectorAll("table").forEach((t, i) => {
      const cap = t.querySelector("caption");
      const heads = Array.from(t.querySelectorAll("thead th")).map(th => th.textContent.trim()).filter(x => x);
      out.tables.push({i: i + 1, width: width(t), section: where(t), caption: cap ? cap.textContent.trim() : "",
                       columns: heads.length, head: heads.slice(0, 4).join(", ")});
    });
    col.querySelectorAll("mjx-container[display=true], mjx-container[display]").forEach(m => {
      const inner = m.querySelector("mjx-math") || m;
      out.formulas.push({width: Math.max(width(inner), inner.scrollWidth || 0), section: where(m),
                         text: (m.getAttribute("aria-label") || m.textContent || "").slice(0, 60)});
    });
    col.querySelectorAll("pre").forEach(p => {
      if (p.scrollWidth > p.clientWidth + 1) out.code.push({width: p.scrollWidth, section: where(p),
                                                            start: p.textContent.trim().slice(0, 50)});
    });
    const el = document.createElement("pre");
    el.id = "MARKER";
    el.textContent = JSON.stringify(out);
    document.body.appendChild(el);
  }, 500));
});
</script>""".replace("MARKER", MARKER)
RESULT = re.compile(r'<pre id="' + MARKER + r'">(.*?)</pre>', re.S)


class NoBrowser(RuntimeError):
    """No Chrome or Chromium binary to run."""


def find_browser(env: dict[str, str] | None = None) -> str:
    """The Chrome/Chromium binary: $CHROME, else the first of BROWSERS on PATH."""
    env = os.environ if env is None else env
    if env.get("CHROME"):
        if shutil.which(env["CHROME"]) is None:
            raise NoBrowser(f"CHROME={env['CHROME']} is not an executable; set it to a Chrome or Chromium binary")
        return env["CHROME"]
    for name in BROWSERS:
        if shutil.which(name):
            return name
    raise NoBrowser("no Chromium or Chrome found: install it (Debian/Ubuntu: apt-get install chromium) or set "
                    "CHROME to its binary")


@dataclass
class Layout:
    """What the browser measured on one page."""

    column: int
    tables: list[dict] = field(default_factory=list)
    formulas: list[dict] = field(default_factory=list)
    code: list[dict] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def measure(page: Path, browser: str, width: int = 1280, height: int = 900, budget_ms: int = 30000) -> Layout | None:
    """Open `page` in headless Chromium at width x height and return its measurements (None: it never finished)."""
    html = page.read_text(encoding="utf-8", errors="replace")
    probed = re.sub(r"<head[^>]*>", lambda m: m.group(0) + PROBE, html, count=1)
    # a sibling copy, so the page's relative links (_static/, images) resolve as they do for a reader
    fd, name = tempfile.mkstemp(prefix=".layout-", suffix=".html", dir=page.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(probed)
        with tempfile.TemporaryDirectory(prefix="satnb-chrome-") as profile:
            cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
                   f"--user-data-dir={profile}", f"--window-size={width},{height}",
                   f"--virtual-time-budget={budget_ms}", "--dump-dom", Path(name).resolve().as_uri()]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_ms / 1000 + 90)
    finally:
        os.unlink(name)
    found = RESULT.search(done.stdout)
    if found is None:
        return None
    data = json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    return Layout(**data)


def problems_of(layout: Layout | None) -> list[str]:
    """One line per layout problem of a measured page."""
    if layout is None:
        return ["did not finish loading and typesetting within the time budget (a script hangs or fails early)"]
    col, out = layout.column, []
    for t in layout.tables:
        if t["width"] > col + SLACK_PX:
            name = f"table {t['i']}" + (f" ({t['caption']!r})" if t["caption"] else "")
            where = f" in {t['section']!r}" if t["section"] else ""
            out.append(f"{name}{where} is {t['width']} px wide, the column {col} px ({t['columns']} header cells: "
                       f"{t['head']}...)")
    for f in layout.formulas:
        if f["width"] > col + SLACK_PX:
            where = f" in {f['section']!r}" if f["section"] else ""
            out.append(f"a displayed formula{where} is {f['width']} px wide, the column {col} px: break it "
                       f"(aligned lines) or shorten it")
    for f in layout.figures:
        scale = f["shown"] / f["natural"]
        if scale < MIN_FIGURE_SCALE:
            where = f" in {f['section']!r}" if f["section"] else ""
            out.append(f"a figure{where} ({Path(f['src']).name}) is shown at {scale:.0%} of its drawn width "
                       f"({f['natural']} px into {f['shown']} px), its labels too small to read: draw it narrower "
                       f"(figsize width <= {layout.column / 100:.1f} in at 100 dpi) or split it")
    out += [f"JavaScript error: {e}" for e in dict.fromkeys(layout.errors)]
    return out


def check(build: Path, browser: str, width: int = 1280, verbose: bool = False) -> tuple[list[str], list[str]]:
    """(problems, notes) of every page of the build, one line each, prefixed with the page."""
    problems, notes = [], []
    for page in _pages(build):
        rel = page.relative_to(build).as_posix()
        if not re.search(r"<head[\s>]", page.read_text(encoding="utf-8", errors="replace")[:4096], re.I):
            continue  # a redirect (index.html: <meta http-equiv="Refresh">), no page of its own
        layout = measure(page, browser, width)
        problems += [f"{rel}: {p}" for p in problems_of(layout)]
        if layout is not None and layout.code:
            notes.append(f"{rel}: {len(layout.code)} code or output block(s) scroll sideways")
            if verbose:
                notes += [f"{rel}:   {c['width']} px in {c['section']!r}: {c['start']!r}" for c in layout.code]
    return problems, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", nargs="?", default="_build/html", help="the built HTML folder (default _build/html)")
    parser.add_argument("--width", type=int, default=1280, help="browser window width in px (default 1280)")
    parser.add_argument("--verbose", action="store_true", help="list every code block that scrolls sideways")
    args = parser.parse_args(argv)
    build = Path(args.build)
    if not (build / "index.html").is_file():
        print(f"{build}: no built pages here (build the book first: bash scripts/book.sh)")
        return 1
    try:
        browser = find_browser()
    except NoBrowser as e:
        print(f"[check_layout] {e}", file=sys.stderr)
        return 2
    problems, notes = check(build, browser, args.width, args.verbose)
    for line in problems:
        print(line)
    for line in notes:
        print(f"[check_layout] note: {line}", file=sys.stderr)
    pages = sum(1 for _ in _pages(build))
    print(f"[check_layout] {len(problems)} problem(s) in {pages} page(s) of {build} at {args.width} px",
          file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
