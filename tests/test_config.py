import pytest
import torch

from satnb.config import PROFILE_NAMES, ConfigError, get_device, get_profile


def test_profiles_exist_and_grow():
    sizes = [get_profile(n) for n in PROFILE_NAMES]
    assert [p.name for p in sizes] == list(PROFILE_NAMES)
    # each larger profile attacks more images and trains longer
    assert sizes[0].n_attack < sizes[1].n_attack < sizes[2].n_attack <= sizes[3].n_attack
    for small, big in zip(sizes, sizes[1:]):
        assert all(small.train[m].epochs <= big.train[m].epochs for m in small.train)
    paper = get_profile("paper")
    assert (paper.k, paper.m, paper.n_attack) == (75, 300, 1000)
    assert (paper.small.eps, paper.small.step, paper.small.steps) == (0.03, 0.005, 10)
    assert (paper.large.eps, paper.large.step, paper.large.steps) == (0.06, 0.005, 20)
    assert paper.train["amdim"].epochs == 300 and paper.train["amdim"].lr == 2e-4
    assert paper.sat.batch_size == 100 and paper.sat.lr == 1e-4
    assert not paper.fallback_to_digits


def test_default_and_env(monkeypatch):
    assert get_profile().name == "quick"
    monkeypatch.setenv("SATNB_PROFILE", "Smoke")
    assert get_profile().name == "smoke"


def test_unknown_profile_lists_valid_ones(monkeypatch):
    with pytest.raises(ConfigError, match="smoke, quick, cpu, paper"):
        get_profile("tiny")
    monkeypatch.setenv("SATNB_PROFILE", "huge")
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        get_profile()


def test_device(monkeypatch):
    monkeypatch.setenv("SATNB_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    monkeypatch.setenv("SATNB_DEVICE", "banana")
    with pytest.raises(ConfigError, match="not a torch device"):
        get_device()
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="SATNB_DEVICE=cpu"):
            get_device("cuda")


def test_replace_keeps_original():
    p = get_profile("smoke")
    q = p.replace(k=3)
    assert q.k == 3 and p.k != 3


def test_bad_thread_count_is_a_clear_error(monkeypatch):
    import satnb

    monkeypatch.setenv("SATNB_THREADS", "two")
    with pytest.raises(ConfigError, match="positive integer.*SATNB_THREADS"):
        satnb.setup("smoke", dataset="digits", show=False)
    monkeypatch.setenv("SATNB_THREADS", "0")
    with pytest.raises(ConfigError, match="positive integer"):
        satnb.setup("smoke", dataset="digits", show=False)
