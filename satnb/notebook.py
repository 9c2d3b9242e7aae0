"""What every notebook's setup cell calls: profile, device, data, provenance banner."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from satnb.config import Profile, get_device, get_profile, parse_threads
from satnb.data import Dataset, load_dataset, profile_subset
from satnb.store import Store, provenance

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass
class Session:
    """The profile, device, artifact store and (lazily) the dataset a notebook works with."""

    profile: Profile
    device: torch.device
    store: Store
    dataset_name: str
    _data: Dataset | None = field(default=None, repr=False)

    @property
    def data(self) -> Dataset:
        """The profile's subset of the resolved dataset (loaded once)."""
        if self._data is None:
            full = load_dataset(self.dataset_name, fallback=self.profile.fallback_to_digits)
            self._data = profile_subset(full, self.profile)
        return self._data

    def provenance(self, **extra) -> dict:
        """Return the provenance record for a result computed in this session."""
        return provenance(profile=self.profile.name, dataset=self.data.describe(), seed=self.profile.seed,
                          device=str(self.device), **extra)

    def banner(self) -> str:
        """Return a one-paragraph Markdown banner naming the data and profile behind every number."""
        d = self.data.describe()
        warn = ""
        if d["fallback"]:
            warn = (f"**Warning: {self.dataset_name} was not found, so every number below comes from sklearn's "
                    "8x8 digits upscaled to 32x32 (set `SATNB_DATA`).** ")
        elif "cifar10-jpeg" in d["source"] or "image-folder" in d["source"] and d["dataset"] == "cifar10":
            warn = "CIFAR-10 rebuilt from JPEG copies (mild artefacts, PSNR ~30 dB): comparable in kind, " \
                   "not to the decimal, with published CIFAR-10 numbers. "
        p = provenance()
        return (f"{warn}Profile **{self.profile.name}**, dataset **{d['dataset']}** ({d['n_train']} train / "
                f"{d['n_test']} test images, from `{d['source']}`), seed {self.profile.seed}, device "
                f"{self.device} ({p['precision']}), satnb {p['satnb_version']} (code {p['code_fingerprint']}, commit "
                f"{p['git_commit'] or 'n/a'}), torch {p['torch_version']}.")


def setup(profile: str | None = None, dataset: str | None = None, show: bool = True) -> Session:
    """Pick the profile and device, open the artifact store and show the provenance banner."""
    from satnb.plots import set_theme

    prof = get_profile(profile)
    threads = os.environ.get("SATNB_THREADS")
    if threads:
        torch.set_num_threads(parse_threads(threads))
    set_theme()
    device = get_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN picks the fastest convolution once
    session = Session(prof, device, Store(), dataset or prof.dataset)
    if show:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            text = session.banner()
        try:
            from IPython.display import Markdown, display

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
