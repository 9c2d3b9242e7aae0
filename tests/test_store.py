import json
import pickle
import tempfile
from pathlib import Path

import pytest
import torch

from satnb.core.store import (
    ArtifactError,
    Store,
    atomic_write_bytes,
    canonical_json,
    load_state,
    provenance,
)

CODE = "satnb.knn.classifier:KNN"  # the definition whose code a test stage depends on ("module:name" or the object)


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "artifacts")


def test_key_changes_with_settings_data_and_code(store):
    base = store.artifact("train", {"epochs": 3, "lr": 1e-3}, "data-a", code=CODE)
    assert base.key == store.artifact("train", {"lr": 1e-3, "epochs": 3}, "data-a", code=CODE).key  # order-free
    assert base.key != store.artifact("train", {"epochs": 4, "lr": 1e-3}, "data-a", code=CODE).key
    assert base.key != store.artifact("train", {"epochs": 3, "lr": 1e-3}, "data-b", code=CODE).key
    other = "satnb.nets.pretrain:train"
    assert base.key != store.artifact("train", {"epochs": 3, "lr": 1e-3}, "data-a", code=other).key
    assert base.key != store.artifact("eval", {"epochs": 3, "lr": 1e-3}, "data-a", code=CODE).key
    assert base.key == Store(store.root).artifact("train", {"epochs": 3, "lr": 1e-3}, "data-a", code=CODE).key


def test_cache_miss_then_hit(store):
    art = store.artifact("train", {"epochs": 1}, "d", code=CODE)
    assert not art.exists() and store.load_checkpoint(art) is None
    state = {"w": torch.arange(3.0), "epoch": 1}
    store.save_checkpoint(art, state, final=True)
    again = store.artifact("train", {"epochs": 1}, "d", code=CODE)
    assert again.exists()
    loaded = store.load_checkpoint(again)
    assert torch.equal(loaded["w"], state["w"]) and loaded["epoch"] == 1
    assert not store.artifact("train", {"epochs": 2}, "d", code=CODE).exists()


def test_progress_checkpoint_removed_when_final(store):
    art = store.artifact("train", {}, "d", code=CODE)
    store.save_checkpoint(art, {"epoch": 1})
    assert store.load_checkpoint(art, final=False) == {"epoch": 1} and not art.exists()
    store.save_checkpoint(art, {"epoch": 2}, final=True)
    assert store.load_checkpoint(art, final=False) is None and art.exists()


def test_results_are_json(store):
    art = store.artifact("eval", {"k": 75}, "d", code=CODE)
    store.save_result(art, {"acc": 0.5, "provenance": provenance(profile="smoke", seed=1, wall_time_s=1.23456)})
    res = store.load_result(art)
    assert res["acc"] == 0.5 and res["provenance"]["seed"] == 1 and res["provenance"]["wall_time_s"] == 1.235
    assert json.loads(art.result.read_text())["acc"] == 0.5
    art.result.write_text("{broken")
    with pytest.raises(ArtifactError, match="delete"):
        store.load_result(art)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, lambda fh: fh.write(b"good"))

    def crash(fh):
        fh.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, crash)
    assert path.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": _Evil()}, path)
    with pytest.raises(ArtifactError, match="could not be loaded safely"):
        load_state(path)
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(ArtifactError):
        load_state(path)


def test_truncated_checkpoint_is_an_error(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"w": torch.randn(100)}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ArtifactError, match="corrupt"):
        load_state(path)


def test_provenance_fields():
    p = provenance(profile="quick", dataset={"dataset": "digits"}, seed=3, wall_time_s=2.0)
    for key in ("satnb_version", "git_commit", "code_fingerprint", "torch_version", "device", "profile",
                "dataset", "seed", "wall_time_s"):
        assert key in p
    assert canonical_json({"b": 1, "a": 2}) == '{"a":2,"b":1}'


def test_memo_computes_once_and_returns_the_same_value_cold_and_warm(store):
    calls = []

    def compute():
        calls.append(1)
        return {"dsr": (0.5, 0.25), "per_class": {3: 0.1}}

    cold = store.memo("study", {"n": 10}, compute, "d", code=CODE, profile="smoke", seed=0)
    warm = store.memo("study", {"n": 10}, compute, "d", code=CODE, profile="smoke", seed=0)
    assert len(calls) == 1
    assert cold == warm == {"dsr": [0.5, 0.25], "per_class": {"3": 0.1}}  # JSON types both times
    other = store.memo("study", {"n": 11}, compute, "d", code=CODE)
    assert len(calls) == 2 and other == cold
    record = store.load_result(store.artifact("study", {"n": 10}, "d", code=CODE))
    assert record["provenance"]["profile"] == "smoke" and record["provenance"]["wall_time_s"] is not None
    assert record["settings"] == {"n": 10}


def test_memo_saves_nothing_when_compute_raises(store):
    def broken():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        store.memo("study", {"n": 1}, broken, code=CODE)
    assert store.memo("study", {"n": 1}, lambda: 7, code=CODE) == 7


def test_a_read_only_stage_folder_is_named_with_the_fix(store, monkeypatch):
    locked = store.root / "train"
    locked.mkdir(parents=True)
    real_mkdir, real_mkstemp = Path.mkdir, tempfile.mkstemp

    def mkdir(self, *args, **kwargs):  # root ignores permission bits: refuse as a read-only folder would
        if locked in (self, *self.parents):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(ArtifactError, match=f"cannot write to the cache folder {locked} .Permission denied.; make it "
                                            f"writable .chmod -R u.w {locked}. or set SATNB_CACHE"):
        store.artifact("train", {"epochs": 1}, code=CODE)
    art = store.artifact("evaluate", {"k": 1}, code=CODE)
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", k.get("dir"))) if k.get("dir") == art.path else real_mkstemp(*a, **k))
    with pytest.raises(ArtifactError, match=f"cannot write to the cache folder {art.path.parent}"):
        store.save_result(art, {"value": 1})
    with pytest.raises(ArtifactError, match="or set SATNB_CACHE to another folder"):
        store.save_checkpoint(art, {"w": torch.zeros(1)}, final=True)
