import dataclasses
import json

import pytest
import torch

from satnb.core.config import (
    PROFILE_NAMES,
    ConfigError,
    Profile,
    ProtocolSettings,
    ZooSettings,
    get_profile,
)
from satnb.core.environment import get_device
from satnb.core.identity import ModelId


def test_profiles_exist_and_grow():
    sizes = [get_profile(n) for n in PROFILE_NAMES]
    assert [p.name for p in sizes] == list(PROFILE_NAMES)
    # each larger profile attacks more images (the paper's N as a sub-view) and trains on more; from quick up the
    # gradient attacks take every correctly classified test image
    n = [p.protocol.n_subview for p in sizes]
    assert n[0] < n[1] < n[2] <= n[3]
    assert sizes[0].protocol.n_attack == 24 and all(p.protocol.n_attack is None for p in sizes[1:])
    for p in sizes:  # a profile may take fewer PGD steps than the paper (smoke), never too few to reach its eps
        assert all(a.step * a.steps >= a.eps for a in (p.protocol.small, p.protocol.large)), p.name
    for small, big in zip(sizes, sizes[1:]):  # ... on more images in all (epochs x training images)
        assert all(small.train[m].epochs * (small.n_train or 50000) <= big.train[m].epochs * (big.n_train or 50000)
                   for m in small.train)
    paper = get_profile("paper")
    protocol = paper.protocol
    assert (protocol.k, protocol.m, protocol.n_subview) == (75, 300, 1000)
    assert (paper.zoo.strong_opt_binary_steps, paper.zoo.strong_opt_steps) == (10, 500)  # the authors' budget
    assert (protocol.small.eps, protocol.small.step, protocol.small.steps) == (0.03, 0.005, 10)
    assert (protocol.large.eps, protocol.large.step, protocol.large.steps) == (0.06, 0.005, 20)
    assert paper.train["amdim"].epochs == 300 and paper.train["amdim"].lr == 2e-4
    assert paper.sat.batch_size == 100 and paper.sat.lr == 1e-4
    assert not paper.fallback_to_digits


def test_default_and_env(monkeypatch):
    assert get_profile().name == "quick"
    monkeypatch.setenv("SATNB_PROFILE", "Smoke")
    assert get_profile().name == "smoke"


def test_unknown_profile_lists_valid_ones(monkeypatch):
    with pytest.raises(ConfigError, match="smoke, quick, cpu, gpu, paper"):
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


def test_replace_keeps_original_and_takes_group_settings_by_name():
    p = get_profile("smoke")
    q = p.replace(k=3, queries=7, mi_steps=5)
    assert q.protocol.k == 3 and p.protocol.k != 3 and q.zoo.queries == 7 and q.mi_steps == 5
    assert q.protocol == dataclasses.replace(p.protocol, k=3)
    assert q.zoo == dataclasses.replace(p.zoo, queries=7) and q.sat == p.sat
    # a whole group and a setting of it together: the setting applies to the group given
    r = p.replace(protocol=ProtocolSettings(k=9), m=4)
    assert (r.protocol.k, r.protocol.m, r.protocol.n_attack) == (9, 4, ProtocolSettings().n_attack)
    with pytest.raises(ConfigError, match="unknown profile setting 'kk'"):
        p.replace(kk=3)


def test_settings_are_grouped_by_what_reads_them():
    names = {g: {f.name for f in dataclasses.fields(cls)} for g, cls in (("protocol", ProtocolSettings),
                                                                          ("zoo", ZooSettings))}
    own = {f.name for f in dataclasses.fields(Profile)}
    # the names Profile.replace routes are unique: across the groups and against the profile's own
    assert not names["protocol"] & names["zoo"] and not (names["protocol"] | names["zoo"]) & own
    # a results file holds every group as a nested object
    d = get_profile("quick").to_dict()
    assert d["protocol"]["k"] == 75 and d["zoo"]["n_images"] == 50 and d["sat"]["iterations"] == 40
    assert json.loads(json.dumps(d))["protocol"] == d["protocol"] and "k" not in d


def test_bad_thread_count_is_a_clear_error(monkeypatch):
    import satnb

    monkeypatch.setenv("SATNB_THREADS", "two")
    with pytest.raises(ConfigError, match="positive integer.*SATNB_THREADS"):
        satnb.setup("smoke", dataset="digits", show=False)
    monkeypatch.setenv("SATNB_THREADS", "0")
    with pytest.raises(ConfigError, match="positive integer"):
        satnb.setup("smoke", dataset="digits", show=False)


def test_every_cpu_profile_compares_on_one_encoder_and_paper_gets_a_twin():
    for name in ("smoke", "quick", "cpu"):
        p = get_profile(name)
        specs = {(t.encoder, tuple(sorted(t.encoder_kwargs.items()))) for t in p.train.values()}
        assert len(specs) == 1, (name, specs)
        assert p.supervised_twins() == {}
    paper = get_profile("paper")
    twins = paper.supervised_twins()
    assert list(twins) == ["sup-resnet18"] and list(paper.twins()) == [ModelId.pretrained("sup", twin="resnet18")]
    twin, sup = twins["sup-resnet18"], paper.train["sup"]
    assert twin.encoder == paper.train["npid"].encoder == "resnet18"
    # SUP's recipe, on the other encoder
    assert (twin.epochs, twin.lr, twin.optimizer, twin.batch_size) == (sup.epochs, sup.lr, sup.optimizer,
                                                                        sup.batch_size)


def test_cpu_profile_is_full_cifar10_with_the_authors_library():
    p = get_profile("cpu")
    assert p.n_train is None and p.n_test is None and p.n_library == 45000
    assert p.protocol.n_attack is None and p.protocol.n_subview == 1000 and p.protocol.n_attack_opt >= 500
    assert (p.zoo.n_images or p.protocol.n_attack) >= 500
    assert p.train["sup"].label_smoothing == 0 and p.train["sup"].optimizer == "sgd"  # the paper's plain SUP
    assert p.train["sup"].schedule == "onecycle" and p.train["sup"].warmup_epochs > 0


def test_baseline_settings_reject_unknown_optimizer_and_schedule():
    from satnb.core.config import BaselineSettings

    with pytest.raises(ConfigError, match="optimizer"):
        BaselineSettings(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="schedule"):
        BaselineSettings(schedule="step")


def test_committed_recipe_comparison_matches_the_quick_profile():
    """The recipes marked chosen in results/recipes/ are the quick profile's, and the rule picked them."""
    import dataclasses
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "results" / "recipes" / "quick-cifar10.json"
    rec = json.loads(path.read_text())
    quick = get_profile("quick")
    for method in quick.train:
        rows = [r for r in rec["runs"] if r["method"] == method]
        chosen = [r for r in rows if r["chosen"]]
        assert len(chosen) == 1, method
        assert _as_primary(chosen[0]["settings"], method) == dataclasses.asdict(quick.train[method]), method
        previous = next(r for r in rows if r["recipe"].startswith("previous"))
        # the rule: keep the previous recipe unless a candidate's whole interval lies above it
        better = [r for r in rows if r["knn_acc_ci"][0] > previous["knn_acc"]]
        if not better and method != "sup":
            assert chosen[0] is previous, method


def _as_primary(settings: dict, method: str) -> dict:
    """A measured recipe as the primary protocol trains it: SUP without the label smoothing the comparison used."""
    return {**settings, "label_smoothing": 0.0} if method == "sup" else settings


def test_cpu_profile_recipes_are_the_ones_measured_on_its_encoder():
    """results/recipes/quick-cifar10-cpu-encoder.json chose the cpu profile's recipes, on the cpu encoder."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "results" / "recipes" / "quick-cifar10-cpu-encoder.json"
    rec = json.loads(path.read_text())
    cpu = get_profile("cpu")
    for method, settings in cpu.train.items():
        chosen = [r["settings"] for r in rec["runs"] if r["method"] == method and r["chosen"]]
        assert len(chosen) == 1, method
        measured = {k: v for k, v in _as_primary(chosen[0], method).items() if k != "epochs"}
        mine = {k: v for k, v in dataclasses.asdict(settings).items() if k != "epochs"}
        assert measured == mine, method


def test_recipe_table_shows_each_encoder_it_was_measured_on():
    from satnb.report.tables import recipe_comparison

    table = recipe_comparison("quick", "cifar10")
    encoders = set(table.index.get_level_values("encoder"))
    assert encoders == {"AMDIM ndf 16 rkhs 128 depth 1 BN", "AMDIM ndf 32 rkhs 128 depth 1 BN"}
    for enc in encoders:  # one chosen recipe per method and encoder
        chosen = table.loc[enc]
        assert (chosen["chosen"] == "yes").groupby(level="method").sum().eq(1).all(), enc


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_the_primary_sup_is_plain_cross_entropy_in_every_profile(name):
    p = get_profile(name)
    assert p.train["sup"].label_smoothing == 0, f"{name}: the primary SUP must be the paper's plain cross-entropy"
    for twin in p.supervised_twins().values():  # SUP on another encoder is the same primary recipe
        assert twin.label_smoothing == 0


def test_a_comparison_at_the_cpu_scale_marks_the_cpu_recipe_of_today_as_chosen():
    """results/recipes/cpu-*.json (`--profile cpu --epochs N`): its chosen rows are the cpu profile's recipes."""
    import json
    from pathlib import Path

    from satnb.report.tables import recipe_comparison

    paths = sorted((Path(__file__).resolve().parents[1] / "results" / "recipes").glob("cpu-cifar10*.json"))
    table = recipe_comparison("cpu", "cifar10")
    assert (table is None) == (not paths)
    cpu = get_profile("cpu")
    for path in paths:
        rec = json.loads(path.read_text())
        assert rec["profile"] == "cpu" and rec["dataset"]["n_test"] == 10000 and not rec["dataset"]["fallback"]
        for run in rec["runs"]:
            mine = {k: v for k, v in dataclasses.asdict(cpu.train[run["method"]]).items() if k != "epochs"}
            measured = {k: v for k, v in run["settings"].items() if k != "epochs"}
            assert (measured == mine) == run["chosen"], (path.name, run["recipe"])
            assert run["settings"]["epochs"] == (rec["epochs"] or cpu.train[run["method"]].epochs)
