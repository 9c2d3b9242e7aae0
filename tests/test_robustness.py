"""The attack zoo on a tiny pipeline: every attack's outcome, a worst case no weaker than any, cached, re-judged."""

import numpy as np
import pytest
import torch

from satnb.core import stats
from satnb.core.config import AttackSettings, ProtocolSettings, ZooSettings
from satnb.core.store import Store
from satnb.experiment.pipeline import Pipeline
from satnb.experiment.studies import Studies
from satnb.knn.classifier import KNN
from satnb.nets.normalize import Normalize
from satnb.protocol.zoo import ATTACKS, attack_zoo
from satnb.report import claims
from satnb.report.record import worst_case_view


@pytest.fixture(scope="module")
def zoo(tiny_profile, tiny_data, tmp_path_factory):
    """The attack zoo of SUP and SimCLR on the tiny profile (its first 25 attacked images), once for the module."""
    root = tmp_path_factory.mktemp("zoo")
    pipe = Pipeline(tiny_profile, tiny_data, Store(root), progress=False)
    return pipe, root, {n: Studies(pipe).robustness(n) for n in ("sup", "simclr")}


def test_worst_case_is_no_weaker_than_any_attack(zoo):
    _, _, records = zoo
    for rec in records.values():
        for setting in ("small", "large"):
            rows = rec["settings"][setting]["attacks"]
            assert list(rows) == list(ATTACKS)
            worst = stats.unpack_bits(rows["worst case"]["survived"])
            for name, row in rows.items():
                assert row["dsr_ci"][0] <= row["dsr"] <= row["dsr_ci"][1]
                assert np.all(worst <= stats.unpack_bits(row["survived"])), name  # survives all => survives each
            assert rows["worst case"]["dsr"] <= min(r["dsr"] for r in rows.values())
            assert set(rows["black-box"]["dsr_by_queries"]) == {"10", "30", "60"}  # the whole budget too
        assert rec["min_norm"]["opt_n"] == 6 and 0 <= rec["min_norm"]["opt_success"] <= 1


def test_zoo_is_cached_and_worst_case_claims_are_judged(zoo, monkeypatch):
    from satnb.experiment import studies

    pipe, root, records = zoo
    monkeypatch.setattr(studies, "attack_zoo", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    warm = Studies(Pipeline(pipe.profile, pipe.data, Store(root), progress=False))
    assert warm.robustness("sup")["settings"] == records["sup"]["settings"]
    res = {"profile": "smoke", "dataset": {"dataset": "digits", "source": "test"},
           "evaluation": {"pixel": {n: warm.evaluate(n) for n in ("sup", "simclr")}},
           "robustness": {"pixel": records}}
    view = worst_case_view(res)
    for n in ("sup", "simclr"):
        assert view["evaluation"]["pixel"][n]["dsr_small"] <= res["evaluation"]["pixel"][n]["dsr_small"] + 1e-12
    assert len(claims.assess(view)) == 4  # the paper's claims re-judged under the worst case


class Projected(torch.nn.Module):
    """A fixed random projection of 1x4x4 images to 32 features: a tiny encoder with gradients and a normalisation."""

    def __init__(self) -> None:
        super().__init__()
        self.normalize = Normalize((0.5,), (0.25,))
        self.proj = torch.nn.Linear(16, 32)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(32, 16, generator=torch.Generator().manual_seed(1)))
            self.proj.bias.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(self.normalize(x).flatten(1)))


def test_zoo_outcomes_do_not_depend_on_the_global_rng():
    g = torch.Generator().manual_seed(0)
    x_lib, x_test = torch.rand(24, 1, 4, 4, generator=g), torch.rand(60, 1, 4, 4, generator=g)
    model = Projected().eval()
    rule = lambda x: (x.flatten(1)[:, :8].mean(1) * 3).long().clamp(0, 2)  # noqa: E731
    knn = KNN(k=5, n_classes=3).fit(model.features(x_lib).detach(), rule(x_lib))
    protocol = ProtocolSettings(k=5, m=5, n_attack=40, n_attack_opt=3, opt_binary_steps=2, opt_steps=5,
                                small=AttackSettings(0.15, 0.03, 5), large=AttackSettings(0.2, 0.04, 5))
    zoo = ZooSettings(queries=20, restarts=2, steps_factor=2)
    runs = []
    for disturb in (0, 123):
        torch.manual_seed(disturb)
        torch.rand(1000)  # what earlier stages or cache hits leave in the global RNG
        out = attack_zoo(model, knn, x_test, rule(x_test), protocol, zoo, progress=False)
        runs.append({s: {a: r["survived"] for a, r in v["attacks"].items()} for s, v in out["settings"].items()})
    assert runs[0] == runs[1]
