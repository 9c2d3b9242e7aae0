import numpy as np
import pytest
from PIL import Image

from satnb.core.dataset import DataError, stratified_indices
from satnb.core.datasets import load_dataset, load_digits
from satnb.core.image_folder import load_image_folder
from satnb.core.images import to_tensor
from satnb.core.npz import load_npz


def _arrays(n_train=20, n_test=10, shape=(8, 8, 3), n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % n_classes,
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % n_classes,
    }


def _save(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


def test_npz_roundtrip(tmp_path):
    a = _arrays()
    ds = load_npz(_save(tmp_path, **a, classes=np.array(["a", "b", "c"])))
    assert ds.classes == ("a", "b", "c")
    assert ds.x_train.shape == (20, 8, 8, 3) and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_test, a["x_test"])
    assert ds.source.startswith("npz:")


def test_npz_grayscale_becomes_rgb(tmp_path):
    a = _arrays(shape=(8, 8, 1))
    ds = load_npz(_save(tmp_path, **a))
    assert ds.x_train.shape[-1] == 3 and ds.n_classes == 3


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("y_test"), "lacks y_test"),
        (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "must be uint8"),
        (lambda a: a.update(x_train=a["x_train"][..., 0]), "must be NHWC"),
        (lambda a: a.update(x_test=a["x_test"][:, :4]), "same image shape"),
        (lambda a: a.update(y_train=a["y_train"][:5]), "one label per image"),
        (lambda a: a.update(y_train=a["y_train"].astype(np.float64)), "labels must be integers"),
        (lambda a: a.update(y_test=a["y_test"] - 1), "outside 0"),
        (lambda a: a.update(classes=np.array(["a", "b"])), "outside 0..1"),
    ],
)
def test_malformed_npz(tmp_path, change, message):
    a = _arrays()
    change(a)
    with pytest.raises(DataError, match=message):
        load_npz(_save(tmp_path, **a))


def test_unreadable_npz(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(bad)
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")


def test_stratified_subset_keeps_order_and_balance():
    y = np.repeat(np.arange(10), 100)
    idx = stratified_indices(y, 250, seed=1)
    assert len(idx) == 250 and np.all(np.diff(idx) > 0)
    counts = np.bincount(y[idx], minlength=10)
    assert counts.min() >= 24 and counts.max() <= 26
    np.testing.assert_array_equal(idx, stratified_indices(y, 250, seed=1))
    assert not np.array_equal(idx, stratified_indices(y, 250, seed=2))
    with pytest.raises(DataError, match="choose 1..1000"):
        stratified_indices(y, 2000)


def test_to_tensor_range():
    x = to_tensor(np.full((2, 4, 4, 3), 255, dtype=np.uint8))
    assert x.shape == (2, 3, 4, 4) and x.max() == 1.0


def _write_folder(root, names_by_class, size=(6, 6)):
    for split in ("train", "test"):
        for cls, names in names_by_class.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i, n in enumerate(names):
                Image.fromarray(np.full((*size, 3), 10 * i, dtype=np.uint8)).save(d / f"{n}.png")


def test_image_folder_numeric_names_give_official_order(tmp_path):
    _write_folder(tmp_path, {"cat": ["0", "3", "4"], "dog": ["1", "2", "5"]})
    ds = load_image_folder(tmp_path)
    assert ds.classes == ("cat", "dog")
    np.testing.assert_array_equal(ds.y_train, [0, 1, 1, 0, 0, 1])
    again = load_image_folder(tmp_path)  # served from the decoded cache
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_image_folder_other_names_are_interleaved(tmp_path):
    _write_folder(tmp_path, {"a": [f"a{i}" for i in range(20)], "b": [f"b{i}" for i in range(20)]})
    ds = load_image_folder(tmp_path)
    assert set(ds.y_train[:10]) == {0, 1}  # the first images do not all come from one class
    np.testing.assert_array_equal(ds.y_train, load_image_folder(tmp_path).y_train)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no train/ folder"):
        load_image_folder(tmp_path)
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "train" / "a" / "0.png")
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match="lacks the class folder"):
        load_image_folder(tmp_path)


def test_digits_fallback_is_marked(monkeypatch, tmp_path):
    # no SATNB_DATA, an empty cache and no download: nothing to find (an explicit SATNB_DATA without the
    # dataset is an error: tests/test_bad_input.py)
    monkeypatch.delenv("SATNB_DATA", raising=False)
    with pytest.warns(UserWarning, match="falling back to sklearn digits"):
        ds = load_dataset("cifar10", download=False)
    assert ds.fallback and ds.name == "digits" and ds.describe()["fallback"]
    assert ds.x_train.shape[1:] == (32, 32, 3)
    plain = load_digits()
    assert not plain.fallback and len(plain.y_train) + len(plain.y_test) == 1797


def test_paper_profile_refuses_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("SATNB_DATA", str(tmp_path))
    with pytest.raises(DataError, match="Set SATNB_DATA"):
        load_dataset("cifar10", fallback=False, download=False)


def test_unknown_dataset_and_missing_path(monkeypatch, tmp_path):
    from satnb.core.config import ConfigError

    with pytest.raises(ConfigError, match="valid datasets are cifar10, stl10, mnist, digits"):
        load_dataset("imagenet")
    monkeypatch.setenv("SATNB_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10")


def test_satnb_data_npz_file(monkeypatch, tmp_path):
    monkeypatch.setenv("SATNB_DATA", str(_save(tmp_path, **_arrays(shape=(32, 32, 3)))))
    ds = load_dataset("cifar10")
    assert ds.source.startswith("npz:") and len(ds.y_train) == 20


def test_stl10_binary_layout(monkeypatch, tmp_path):
    base = tmp_path / "stl10_binary"
    base.mkdir()
    rng = np.random.default_rng(0)
    imgs = {}
    for split, n in (("train", 6), ("test", 4)):
        x = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        imgs[split] = x
        x.transpose(0, 3, 2, 1).tofile(base / f"{split}_X.bin")  # STL-10 stores images column-major
        (np.arange(n) % 10 + 1).astype(np.uint8).tofile(base / f"{split}_y.bin")
    monkeypatch.setenv("SATNB_DATA", str(tmp_path))
    ds = load_dataset("stl10")
    assert ds.x_train.shape == (6, 64, 64, 3) and ds.x_test.shape == (4, 64, 64, 3)
    np.testing.assert_array_equal(ds.y_train, np.arange(6) % 10)
    # resizing keeps the image: compare with a 96->64 resize of the original
    ref = np.asarray(Image.fromarray(imgs["train"][0]).resize((64, 64), Image.BILINEAR)).astype(float)
    assert np.abs(ds.x_train[0].astype(float) - ref).mean() < 25


def test_mnist_from_shared(monkeypatch, shared_data):
    monkeypatch.setenv("SATNB_DATA", str(shared_data))
    ds = load_dataset("mnist")
    assert ds.x_train.shape == (60000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    np.testing.assert_array_equal(ds.y_train[:5], [5, 0, 4, 1, 9])
    np.testing.assert_array_equal(ds.y_test[:5], [7, 2, 1, 0, 4])


@pytest.mark.slow
def test_cifar10_from_shared_archive_official_order(monkeypatch, shared_data):
    monkeypatch.setenv("SATNB_DATA", str(shared_data))
    ds = load_dataset("cifar10")
    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    # the official order's first labels (CIFAR-10 python batches)
    np.testing.assert_array_equal(ds.y_train[:10], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3])
    np.testing.assert_array_equal(ds.y_test[:10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1])
    assert ds.classes[0] == "airplane" and np.bincount(ds.y_test).tolist() == [1000] * 10
    assert "cifar10-jpeg" in ds.source


def test_concurrent_loads_of_one_archive(tmp_path):
    """Two processes resolving the same archive at once both get the whole dataset."""
    import subprocess
    import sys
    import tarfile

    tree = tmp_path / "tree"
    _write_folder(tree, {"cat": [str(i) for i in range(0, 40, 2)], "dog": [str(i) for i in range(1, 40, 2)]})
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree / "train", arcname="train")
        tar.add(tree / "test", arcname="test")
    code = ("from satnb.core.image_folder import load_image_archive; "
            f"ds = load_image_archive({str(archive)!r}); print(len(ds.y_train), len(ds.y_test))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.split() == ["40", "40"]


def test_one_data_rule_satnb_data_else_the_folder_beside_the_repository(monkeypatch, tmp_path):
    """The CLI, the book and the scripts read data by one rule (`environment.data_env`)."""
    from satnb.core import environment

    beside = environment.REPOSITORY.parent / "shared" / "data"
    monkeypatch.setattr(environment, "SHARED_DATA", beside)
    assert environment.data_env() == (beside if beside.is_dir() else None)
    monkeypatch.setattr(environment, "SHARED_DATA", tmp_path / "absent")
    assert environment.data_env() is None
    monkeypatch.setenv("SATNB_DATA", str(tmp_path))
    assert environment.data_env() == tmp_path  # SATNB_DATA wins
    # the scripts (book, tests, lab) export the same folder
    env_sh = (environment.REPOSITORY / "scripts" / "_env.sh").read_text()
    assert "$(cd .. && pwd)/shared/data" in env_sh


def test_an_archive_is_keyed_by_its_bytes_and_decoded_once(monkeypatch, tmp_path):
    """A notebook's setup does not read the archive again once it is decoded; an archive is known by its bytes: a
    new modification time is the same dataset, other bytes a new one."""
    import os
    import tarfile

    from satnb.core import image_folder
    from satnb.core.image_folder import load_image_archive

    def pack(tree, archive):
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(tree / "train", arcname="train")
            tar.add(tree / "test", arcname="test")

    tree, archive = tmp_path / "tree", tmp_path / "pets.tar.gz"
    _write_folder(tree, {"cat": ["0", "2"], "dog": ["1", "3"]})
    pack(tree, archive)
    first = load_image_archive(archive)
    opened = []
    real_open = tarfile.open

    def counting_open(*args, **kwargs):
        opened.append(args)
        return real_open(*args, **kwargs)

    with monkeypatch.context() as m:  # undoes only this patch (not the test's private cache)
        m.setattr(image_folder.tarfile, "open", counting_open)
        again = load_image_archive(archive)
        # the same bytes with a new modification time (a copy, a re-provisioned folder): not decoded again
        st = archive.stat()
        os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        touched = load_image_archive(archive)
    assert again.fingerprint() == touched.fingerprint() == first.fingerprint() and not opened
    assert not (image_folder.cache_dir() / "extracted").exists()  # nothing is written to disk but the arrays

    # the archive re-made with other pixels, even with the old size and modification time: decoded anew
    st = archive.stat()
    for png in tree.rglob("*.png"):
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(png)
    pack(tree, archive)
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = load_image_archive(archive)
    assert changed.fingerprint() != first.fingerprint() and not changed.x_train.any()


@pytest.mark.parametrize("names, top", [({"cat": ["0", "3", "4"], "dog": ["1", "2", "5"]}, None),
                                        ({"a": [f"a{i}" for i in range(12)], "b": [f"b{i}" for i in range(9)]},
                                         "pets"),
                                        ({"x": ["10", "2", "33"], "y": ["1", "21"]}, ".")])
def test_an_archive_decodes_to_the_tree_it_packs(tmp_path, names, top):
    """The archive's arrays, labels, classes and order are the tree's (`load_image_folder`), whether the tree sits at
    the archive's top, in one folder, or under "./"."""
    import tarfile

    from satnb.core.image_folder import load_image_archive

    tree = tmp_path / "tree"
    _write_folder(tree, names)
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("test", "train"):  # members in another order than the tree's listing
            tar.add(tree / split, arcname=split if top is None else f"{top}/{split}")
    packed, listed = load_image_archive(archive, "pets", seed=3), load_image_folder(tree, "pets", seed=3)
    assert packed.classes == listed.classes == tuple(sorted(names))
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(packed, k), getattr(listed, k))
    assert packed.source == f"image-folder-archive:{archive}"


def test_an_archive_without_the_layout_says_what_is_missing(tmp_path):
    import tarfile

    from satnb.core.image_folder import load_image_archive

    tree = tmp_path / "tree"
    _write_folder(tree, {"cat": ["0"], "dog": ["1"]})
    for members, why in (([("train", "train")], "has no test/ folder"),
                         ([("train", "train"), ("test/cat", "test/cat")], "test/ lacks the class folder 'dog'")):
        archive = tmp_path / f"bad{len(members)}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for src, arc in members:
                tar.add(tree / src, arcname=arc)
        with pytest.raises(DataError, match=f"{archive.name}.*{why}"):
            load_image_archive(archive)


def test_a_bad_member_of_an_archive_is_named(tmp_path):
    """A corrupt image or a link to nothing inside an archive: the error names the archive and the member."""
    import io
    import tarfile

    from satnb.core.image_folder import load_image_archive

    tree = tmp_path / "tree"
    _write_folder(tree, {"cat": ["0"], "dog": ["1"]})
    (tree / "train" / "dog" / "1.png").write_bytes(b"not a png")
    archive = tmp_path / "corrupt.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree / "train", arcname="train")
        tar.add(tree / "test", arcname="test")
    with pytest.raises(DataError, match="corrupt.tar.gz: train/dog/1.png is not a readable image"):
        load_image_archive(archive)

    archive = tmp_path / "dangling.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree / "test", arcname="train")
        tar.add(tree / "test", arcname="test")
        link = tarfile.TarInfo("train/cat/9.png")
        link.type, link.linkname = tarfile.SYMTYPE, "nowhere.png"
        tar.addfile(link, io.BytesIO(b""))
    with pytest.raises(DataError, match="dangling.tar.gz is not a readable tar archive"):
        load_image_archive(archive)
