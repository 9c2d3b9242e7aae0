"""core.runs.Run: a resumable stage checkpoints after its units and resumes from them; a rank that does not write
(a data-parallel run's ranks other than 0) reads the writer's checkpoints and never writes one."""

import torch
from torch import nn

from satnb.core.runs import Run, unit_seed
from satnb.core.store import Store


def _unit(model: nn.Linear):
    def unit(t: int) -> dict:
        with torch.no_grad():
            model.weight += 1.0
        return {"loss": float(t)}
    return unit


def _run(store: Store, model: nn.Linear, writes: bool = True) -> Run:
    return Run(store, "test-run", {"what": "units"}, code=unit_seed, keep={"model": model}, writes=writes)


def test_a_reader_never_writes_and_resumes_from_the_writers_checkpoint(tmp_path):
    store = Store(tmp_path / "store")
    reader_model = nn.Linear(2, 2, bias=False)
    reader = _run(store, reader_model, writes=False)
    p = reader.run(2, _unit(reader_model), progress=False)
    reader.finish(p)
    assert p.done == 2 and not any(f.is_file() for f in (tmp_path / "store").rglob("*.pt"))
    assert reader.cached() is None  # nothing was written, so nothing is finished

    writer_model = nn.Linear(2, 2, bias=False)
    start = writer_model.weight.detach().clone()
    writer = _run(store, writer_model)
    writer.run(1, _unit(writer_model), progress=False)  # the writer's checkpoint after unit 1 (of 3)
    resumed_model = nn.Linear(2, 2, bias=False)
    resumed = _run(store, resumed_model, writes=False)
    p = resumed.run(3, _unit(resumed_model), progress=False)
    assert p.done == 3 and [h["epoch"] for h in p.history] == [1, 2, 3]
    assert torch.equal(resumed_model.weight, start + 3.0)  # unit 1 restored from the writer, units 2 and 3 run here
    assert resumed.cached() is None  # the reader still wrote nothing
