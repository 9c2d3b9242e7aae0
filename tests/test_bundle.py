"""Model bundles: a run's artifacts exported, imported into an empty cache and used without training; hostile or
mismatched bundles refused whole, each with a message naming the problem."""

import dataclasses
import io
import json
import tarfile

import pytest
import torch

from satnb.core.store import Store
from satnb.experiment import bundle
from satnb.experiment.bundle import BundleError, export_bundle, import_bundle, import_once
from satnb.experiment.pipeline import Pipeline


@pytest.fixture
def exported(tiny_profile, tiny_data, tmp_path):
    """A bundle of SUP trained by the tiny pipeline in one cache, and of a study that reads no dataset."""
    store = Store(tmp_path / "here" / "artifacts")
    Pipeline(tiny_profile, tiny_data, store, progress=False).train("sup")
    store.save_result(store.artifact("mi-synthetic", {"dim": 2}, "", code=export_bundle), {"mi": 1.0})
    path = tmp_path / "sup.tar"
    manifest = export_bundle(store, tiny_data, tiny_profile, path)
    return path, manifest


def _members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def _write(path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> None:
    with tarfile.open(path, "w") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)


def _rehash(members: dict[str, bytes]) -> dict[str, bytes]:
    """The members with a manifest whose hashes fit them (what an attacker who edits a bundle would do)."""
    manifest = json.loads(members["manifest.json"])
    manifest["files"] = {n: bundle._sha256(b) for n, b in members.items() if n != "manifest.json"}
    return {**members, "manifest.json": json.dumps(manifest).encode()}


def test_round_trip_serves_training_from_the_cache(exported, tiny_profile, tiny_data, tmp_path, monkeypatch):
    path, manifest = exported
    assert manifest.profile == tiny_profile.name and manifest.dataset["fingerprint"] == tiny_data.fingerprint()
    assert any(a.startswith("artifacts/train-sup/") for a in manifest.artifacts)
    assert any(a.startswith("artifacts/mi-synthetic/") for a in manifest.artifacts)  # no dataset: it travels too
    assert all(bundle.MEMBER.match(n) for n in manifest.files)  # finished artifacts only: no progress.pt
    empty = Store(tmp_path / "there" / "artifacts")
    done = import_bundle(path, empty, tiny_data)
    assert sorted(done.added) == manifest.artifacts and done.present == []

    writes = []
    monkeypatch.setattr(Store, "save_checkpoint", lambda self, art, state, final=False: writes.append(art.stage))
    entry = Pipeline(tiny_profile, tiny_data, empty, progress=False).train("sup")
    assert entry.cached and writes == []  # loaded from the imported artifact: no training step, no checkpoint
    here = Pipeline(tiny_profile, tiny_data, Store(path.parent / "here" / "artifacts"), progress=False)
    for name, p in here.train("sup").model.state_dict().items():
        torch.testing.assert_close(entry.model.state_dict()[name], p)
    again = import_bundle(path, empty, tiny_data)  # idempotent: nothing is replaced
    assert again.added == [] and sorted(again.present) == manifest.artifacts


def test_import_once_checks_a_bundle_once_per_cache(exported, tiny_data, tmp_path, monkeypatch):
    path, _ = exported
    store = Store(tmp_path / "there" / "artifacts")
    assert import_once(str(path), store, tiny_data) is not None
    monkeypatch.setattr(bundle, "import_bundle", lambda *a, **k: pytest.fail("imported twice"))
    assert import_once(str(path), store, tiny_data) is None


def test_a_tampered_file_is_refused(exported, tiny_data, tmp_path):
    path, _ = exported
    members = _members(path)
    name = next(n for n in members if n.endswith("final.pt"))
    members[name] = members[name][:-1] + bytes([members[name][-1] ^ 1])
    _write(path, members)
    store = Store(tmp_path / "there" / "artifacts")
    with pytest.raises(BundleError, match="does not match its sha256"):
        import_bundle(path, store, tiny_data)
    assert not list(store.root.glob("*/*"))  # refused whole: nothing reached the cache


def test_a_truncated_archive_is_refused(exported, tiny_data, tmp_path):
    path, _ = exported
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BundleError, match="truncated or not a tar archive|disagree|no manifest.json"):
        import_bundle(path, Store(tmp_path / "there" / "artifacts"), tiny_data)


class Payload:
    def __reduce__(self):
        return (print, ("this would run on import",))


def test_a_pickle_payload_is_refused_even_with_matching_hashes(exported, tiny_data, tmp_path):
    path, _ = exported
    members = _members(path)
    name = next(n for n in members if n.endswith("final.pt"))
    buf = io.BytesIO()
    torch.save({"model": Payload()}, buf)
    members[name] = buf.getvalue()
    _write(path, _rehash(members))
    with pytest.raises(BundleError, match="holds more than tensors"):
        import_bundle(path, Store(tmp_path / "there" / "artifacts"), tiny_data)


@pytest.mark.parametrize("evil", ["../outside.json", "/etc/cron.d/x", "artifacts/train-sup/abcdef0123/run.sh"])
def test_members_outside_a_bundles_layout_are_refused(exported, tiny_data, tmp_path, evil):
    path, _ = exported
    _write(path, _rehash({**_members(path), evil: b"x"}))
    with pytest.raises(BundleError, match="which no satnb bundle holds"):
        import_bundle(path, Store(tmp_path / "there" / "artifacts"), tiny_data)


def test_links_are_refused(exported, tiny_data, tmp_path):
    path, _ = exported
    _write(path, _members(path), links=("artifacts/train-sup/abcdef0123/result.json",))
    with pytest.raises(BundleError, match="not a regular file"):
        import_bundle(path, Store(tmp_path / "there" / "artifacts"), tiny_data)


def test_other_code_other_data_and_other_precision_are_named(exported, tiny_data, tmp_path):
    path, _ = exported
    members = _members(path)
    manifest = json.loads(members["manifest.json"])
    store = Store(tmp_path / "there" / "artifacts")
    _write(path, {**members, "manifest.json": json.dumps({**manifest, "stage_code": {
        **manifest["stage_code"], "train": "0000000000000000"}, "git_commit": "abc1234"}).encode()})
    with pytest.raises(BundleError, match=r"other code in stage\(s\) train \(bundle 0000000000000000.*abc1234"):
        import_bundle(path, store, tiny_data)
    other = dataclasses.replace(tiny_data, y_test=tiny_data.y_test[::-1].copy(), _fingerprint=None)
    _write(path, members)
    with pytest.raises(BundleError, match="made on other data .* fingerprint"):
        import_bundle(path, store, other)
    _write(path, {**members, "manifest.json": json.dumps({**manifest, "precision": "bf16-elsewhere"}).encode()})
    with pytest.raises(BundleError, match="computed in bf16-elsewhere and this machine computes in"):
        import_bundle(path, store, tiny_data)


def test_export_without_artifacts_says_what_to_run(tiny_profile, tiny_data, tmp_path):
    store = Store(tmp_path / "artifacts")
    with pytest.raises(BundleError, match="python -m satnb run --profile smoke"):
        export_bundle(store, tiny_data, tiny_profile, tmp_path / "b.tar")
    store.save_result(store.artifact("mi-synthetic", {"dim": 2}, "", code=export_bundle), {"mi": 1.0})
    with pytest.raises(BundleError, match="no finished artifact computed on this data"):  # a dataset-free study alone
        export_bundle(store, tiny_data, tiny_profile, tmp_path / "b.tar")


def test_only_https_or_a_file(tmp_path):
    with pytest.raises(BundleError, match="only https URLs"):
        import_bundle("http://example.org/b.tar", Store(tmp_path / "artifacts"))
    with pytest.raises(BundleError, match="no such bundle file"):
        import_bundle(str(tmp_path / "missing.tar"), Store(tmp_path / "artifacts"))


def test_cli_bundle_errors_are_one_line(capsys, tmp_path, monkeypatch):
    from satnb.__main__ import main

    monkeypatch.setenv("SATNB_CACHE", str(tmp_path / "empty-cache"))  # no run of any profile in it

    assert main(["bundle", "import", str(tmp_path / "missing.tar")]) == 2
    assert "no such bundle file" in capsys.readouterr().err
    assert main(["bundle", "export", "--profile", "smoke", "--out", str(tmp_path / "b.tar")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("satnb: error: no finished artifact") and "python -m satnb run --profile smoke" in err
    assert main(["bundle"]) == 2 and "satnb: error:" in capsys.readouterr().err
