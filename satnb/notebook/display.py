"""What every notebook's setup cell calls: profile, device, data, provenance banner."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from satnb.core.store import provenance
from satnb.experiment.session import Session, start
from satnb.report.reference import ReferenceRun, reference_run, run_heading

T = TypeVar("T")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # satnb/


def banner(session: Session) -> str:
    """A one-paragraph Markdown banner naming the data and profile behind every number."""
    d = session.data.describe()
    warn = ""
    if d["fallback"]:
        warn = (f"**Warning: {session.dataset_name} was not found, so every number below comes from sklearn's "
                "8x8 digits upscaled to 32x32 (set `SATNB_DATA`).** ")
    elif "cifar10-jpeg" in d["source"] or "image-folder" in d["source"] and d["dataset"] == "cifar10":
        warn = "CIFAR-10 rebuilt from JPEG copies (mild artefacts, PSNR ~30 dB): comparable in kind, " \
               "not to the decimal, with published CIFAR-10 numbers. "
    p = provenance()
    return (f"{warn}Profile **{session.profile.name}**, dataset **{d['dataset']}** ({d['n_train']} train / "
            f"{d['n_test']} test images, from `{d['source']}`), seed {session.profile.seed}, device "
            f"{session.device} ({p['precision']}), satnb {p['satnb_version']} (code {p['code_fingerprint']}, commit "
            f"{p['git_commit'] or 'n/a'}), torch {p['torch_version']}.")


def table_style() -> None:
    """How the book's tables show numbers and text: 3 decimals, never a cell cut to "..." (long text wraps)."""
    import pandas as pd

    pd.set_option("display.precision", 3)
    pd.set_option("styler.format.precision", 3)
    pd.set_option("display.max_colwidth", None)


def setup(profile: str | None = None, dataset: str | None = None, show: bool = True, drive: bool = False) -> Session:
    """Pick the profile and device, open the artifact store and show the provenance banner and the runtime.

    `drive=True` on Colab keeps the artifact cache on Google Drive (a disconnect then loses no trained model);
    elsewhere it does nothing.
    """
    from satnb.notebook.runtime import describe, detect, keep_cache_on_drive
    from satnb.report.plots import set_theme

    rt = detect()
    if drive:
        kept = keep_cache_on_drive(rt)
        print(f"SATNB_CACHE={kept} (Google Drive)" if kept else "drive=True: not on Colab, the cache stays local")
    session = start(profile, dataset)
    set_theme()
    table_style()
    bundle = os.environ.get("SATNB_BUNDLE")
    if bundle:  # trained models from another machine (python -m satnb bundle export): placed before anything runs
        from satnb.experiment.bundle import import_once

        done = import_once(bundle, session.store, lambda m: session.data)
        if done is not None:
            print(f"SATNB_BUNDLE: imported {len(done.added)} artifacts of the {done.manifest.profile} profile "
                  f"({len(done.present)} already here)")
    if show:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            text = banner(session) + " " + describe(rt, session.profile.name)
        try:
            from IPython import get_ipython
            from IPython.display import Markdown, display

            if get_ipython() is None:  # plain Python (a script, `python -c`): display would print the object
                raise ImportError
            display(Markdown(f"> {text}"))
        except ImportError:
            print(text)
    return session


class Source:
    """The source of one satnb function or method, shown as highlighted code in a notebook and the book."""

    def __init__(self, obj) -> None:
        import inspect
        import textwrap

        self.name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
        path = Path(inspect.getsourcefile(obj)).resolve()
        lines, start = inspect.getsourcelines(obj)
        self.file = f"satnb/{path.relative_to(PACKAGE_DIR).as_posix()}" if path.is_relative_to(PACKAGE_DIR) \
            else path.name
        self.lines = (start, start + len(lines) - 1)
        self.code = textwrap.dedent("".join(lines)).rstrip() + "\n"

    @property
    def caption(self) -> str:
        """Where the code lives: file, lines and name."""
        return f"{self.file}, lines {self.lines[0]}-{self.lines[1]}: {self.name}"

    def _repr_html_(self) -> str:
        from html import escape

        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        code = highlight(self.code, PythonLexer(), HtmlFormatter(cssclass="highlight"))
        return (f'<div class="satnb-source"><p style="font-size:85%;margin-bottom:0.2em"><code>'
                f"{escape(self.caption)}</code></p>{code}</div>")

    def _repr_markdown_(self) -> str:
        return f"`{self.caption}`\n\n```python\n{self.code}```\n"

    def __repr__(self) -> str:
        return f"# {self.caption}\n{self.code}"


def show_source(*objs) -> None:
    """Display the code of satnb functions or methods, taken from the source that runs (so text never drifts)."""
    from IPython.display import display

    for obj in objs:
        display(Source(obj))


def run_caption(text: str) -> None:
    """Display a bold line naming the run the next output belongs to (its own output, never merged with print's)."""
    from IPython.display import Markdown, display

    display(Markdown(f"**{text}**"))


@dataclass(frozen=True)
class BesideReference:
    """This build beside the committed reference run: each one's heading, and their records paired by heading."""

    ref: ReferenceRun
    heading: str  # this build's: "this build (quick, 1,000 test images, N = 200)"

    def runs(self, this: T, reference: T) -> dict[str, T]:
        """{this build's heading: this, the reference run's heading: reference} (what the side-by-side tables take)."""
        return {self.heading: this, self.ref.heading: reference}


def beside_reference(session: Session, records: Mapping[str, dict] | None = None) -> BesideReference:
    """Say where the reference run stands (current, stale or absent) and name this build's run beside it."""
    from IPython.display import Markdown, display

    ref = reference_run(session.dataset_name)
    display(Markdown(ref.sentence()))
    heading = run_heading("this build", session.profile.name, records or {}, n_test=len(session.data.y_test))
    return BesideReference(ref, heading)
