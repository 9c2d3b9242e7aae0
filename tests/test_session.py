"""One start-up for the CLI and the notebooks: the session decides threads, precision, progress and the store."""

import pytest
import torch

import satnb.experiment.session as session_mod
from satnb.__main__ import main
from satnb.core.checks import parse_switch
from satnb.core.config import ConfigError
from satnb.core.precision import get_precision
from satnb.experiment.pipeline import Pipeline
from satnb.experiment.session import start


class Started(Exception):
    """Raised by a stand-in for `start` once it has recorded its call."""


def test_the_cli_and_the_notebooks_start_through_one_function(monkeypatch):
    from satnb.notebook import display

    calls = []

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        raise Started

    monkeypatch.setattr(session_mod, "start", recording)
    monkeypatch.setattr(display, "start", recording)
    with pytest.raises(Started):
        main(["run", "--profile", "smoke", "--threads", "1", "--precision", "fp32", "--quiet"])
    with pytest.raises(Started):
        display.setup("smoke", show=False)
    assert len(calls) == 2
    assert calls[0][1]["threads"] == "1" and calls[0][1]["precision"] == "fp32"


def test_start_sets_threads_precision_and_progress(monkeypatch, tmp_path):
    monkeypatch.setenv("SATNB_PROGRESS", "0")
    s = start("smoke", threads=2, precision="fp32")
    assert torch.get_num_threads() == 2 and s.precision == "fp32" == get_precision()
    assert s.progress is False and Pipeline.from_session(s).progress is False
    monkeypatch.setenv("SATNB_PROGRESS", "1")
    assert start("smoke").progress is True
    assert start("smoke", progress=False).progress is False


@pytest.mark.parametrize("value, expected", [("1", True), ("on", True), ("TRUE", True), ("0", False), ("off", False)])
def test_switches_read_on_and_off(value, expected):
    assert parse_switch(value, "SATNB_PROGRESS") is expected


def test_a_bad_progress_switch_names_the_variable_and_the_fix(monkeypatch):
    monkeypatch.setenv("SATNB_PROGRESS", "maybe")
    with pytest.raises(ConfigError, match=r"SATNB_PROGRESS must be 1 or 0 .*'maybe'.*SATNB_PROGRESS=0"):
        start("smoke")
