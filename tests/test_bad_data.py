"""Bad data, second round: edited images are re-read, a file is CIFAR-10 only when it is, one clear error for each."""

from __future__ import annotations

import errno
import gzip
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import image_tree
from PIL import Image

from satnb.__main__ import main
from satnb.core.dataset import DataError
from satnb.core.datasets import CIFAR10_CLASSES, load_dataset
from satnb.core.image_folder import load_image_archive, load_image_folder
from satnb.core.npz import load_npz


def _npz(path: Path, n_classes: int = 3, shape: tuple = (32, 32, 3), **extra) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (30, *shape), dtype=np.uint8), "y_train": np.arange(30) % n_classes,
              "x_test": rng.integers(0, 256, (10, *shape), dtype=np.uint8), "y_test": np.arange(10) % n_classes}
    np.savez(path, **{**arrays, **extra})
    return path


def _tree(root: Path, classes: list[str], n: int = 2) -> Path:
    return image_tree(root, classes, n, base=40)


def _fails(capsys, argv: list[str], *fragments: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("satnb: warning:")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("satnb: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_images_edited_in_place_are_read_again(tmp_path):
    tree = _tree(tmp_path / "pets", ["cat", "dog"])
    before = load_image_folder(tree)
    for png in tree.rglob("*.png"):
        st = png.stat()
        Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(png)
        os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old times
    after = load_image_folder(tree)
    assert after.fingerprint() != before.fingerprint()
    assert not after.x_train.any() and not after.x_test.any()


@pytest.mark.parametrize("route", ["path", "cli"])
def test_a_file_called_cifar10_is_cifar10_only_when_it_is(monkeypatch, tmp_path, capsys, route):
    three = _npz(tmp_path / "cifar10.npz")
    if route == "path":
        with pytest.raises(DataError, match="found as CIFAR-10 but holds 3 classes"):
            load_dataset(str(three))
    else:
        _fails(capsys, ["run", "--profile", "smoke", "--quiet", "--dataset", str(three)],
               "found as CIFAR-10 but holds 3 classes", "rename it")
    (tmp_path / "ten").mkdir()
    small = _npz(tmp_path / "ten" / "cifar10.npz", n_classes=10, shape=(8, 8, 3))
    monkeypatch.setenv("SATNB_DATA", str(small))
    with pytest.raises(DataError, match="found as CIFAR-10 but holds 10 classes .* of 8x8 images, not 10 of 32x32"):
        load_dataset("cifar10")
    monkeypatch.delenv("SATNB_DATA")
    ten = _npz(small, n_classes=10)
    assert load_dataset(str(ten)).classes == CIFAR10_CLASSES


@pytest.mark.parametrize("label", [2 ** 40, 5000])
def test_a_huge_label_is_refused_before_anything_is_allocated(tmp_path, label):
    y = np.arange(30) % 3
    y[0] = label
    with pytest.raises(DataError, match="outside 0..999; labels must be 0..C-1 with C <= 1000"):
        load_npz(_npz(tmp_path / "d.npz", y_train=y))


def _corrupt_npz(path: Path) -> Path:
    data = bytearray(_npz(path).read_bytes())
    data[100:4000] = bytes(3900)
    path.write_bytes(bytes(data))
    return path


def _nan_npz(path: Path) -> Path:
    x = np.random.default_rng(0).random((30, 32, 32, 3)).astype(np.float32)
    x[3, 0, 0, 0] = np.nan
    return _npz(path, x_train=x)


@pytest.mark.parametrize("make, fragments", [
    (lambda p: _npz(p, shape=(28, 28)), ["grey images without a channel axis", "x[..., None]"]),
    (lambda p: _npz(p, shape=(28, 28, 1)), ["images are 28x28", "np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))"]),
    (lambda p: _npz(p, shape=(8, 8, 3)), ["images are 8x8", "resize them to 32x32"]),
    (lambda p: (p.write_bytes(b"not a zip file"), p)[1], ["not a readable .npz file: it is corrupt", "numpy.savez"]),
    (_corrupt_npz, ["not a readable .npz file: it is corrupt", "numpy.savez"]),
    (lambda p: (np.save(p.with_suffix(".npy"), np.zeros(3)), p.with_suffix(".npy").rename(p))[1],
     ["holds a single array", "numpy.savez(path, x_train=..."]),
    (_nan_npz, ["x_train holds NaN or infinite values"]),
    (lambda p: _npz(p, n_classes=10, classes=np.array(["a"] * 10)), ["class names 'a' appear more than once"]),
])
def test_bad_npz_is_one_line(tmp_path, capsys, make, fragments):
    path = make(tmp_path / "mine.npz")
    with pytest.raises(DataError) as err:
        load_dataset(str(path))
    assert "allow_pickle" not in str(err.value) and "convert with" not in str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value)
    _fails(capsys, ["run", "--profile", "smoke", "--quiet", "--dataset", str(path)], *fragments)


def test_an_explicit_path_wins_over_satnb_data(monkeypatch, tmp_path):
    monkeypatch.setenv("SATNB_DATA", str(tmp_path / "elsewhere"))
    assert load_dataset(str(_npz(tmp_path / "mine.npz"))).name == "mine"
    assert load_dataset(str(_tree(tmp_path / "pets", ["cat", "dog"]))).name == "pets"


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("spoil, fragment", [
    (lambda p: p.write_bytes(b"garbage"), "is not a readable image"),
    (lambda p: p.write_bytes(_png_bytes()[:200]), "is not a readable image"),
    (lambda p: (p.unlink(), os.symlink(p.name, p)), "cannot be read (Too many levels of symbolic links)"),
])
def test_a_bad_image_is_named(tmp_path, spoil, fragment):
    tree = _tree(tmp_path / "pets", ["cat", "dog"])
    bad = tree / "train" / "dog" / "1.png"
    spoil(bad)
    with pytest.raises(DataError, match="replace or delete it") as err:
        load_image_folder(tree)
    assert str(err.value).startswith(f"{bad} ") and fragment in str(err.value)


def test_an_image_folder_error_names_the_folder_not_the_cache(tmp_path):
    tree = _tree(tmp_path / "pets", ["cat"])
    with pytest.raises(DataError, match="at least 2 classes") as err:
        load_image_folder(tree)
    assert str(err.value).startswith(f"{tree}: ") and "decoded" not in str(err.value)


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_mnist_is_one_error(monkeypatch, tmp_path, gz):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    end = ".gz" if gz else ""
    for split, n in (("train", 6), ("t10k", 4)):
        _idx(raw / f"{split}-images-idx3-ubyte{end}", np.zeros((n, 28, 28)))
        _idx(raw / f"{split}-labels-idx1-ubyte{end}", np.arange(n))
    monkeypatch.setenv("SATNB_DATA", str(tmp_path))
    assert load_dataset("mnist").x_train.shape == (6, 32, 32, 3)
    images = raw / f"train-images-idx3-ubyte{end}"
    images.write_bytes(images.read_bytes()[:-40])
    with pytest.raises(DataError, match="is truncated or not an MNIST idx file .*re-download MNIST"):
        load_dataset("mnist")


def test_a_full_disk_says_so_and_where(monkeypatch, tmp_path):
    from satnb.core.environment import cache_dir

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    tree = _tree(tmp_path / "pets", ["full", "disk"])  # images no other test decodes (the cache is shared)
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="pets")
    monkeypatch.setattr(np, "savez", full)
    for load in (lambda: load_image_folder(tree), lambda: load_image_archive(archive)):
        with pytest.raises(DataError, match=f"the disk is full: no space left in {cache_dir() / 'decoded'} "
                                            ".*SATNB_CACHE"):
            load()
    assert not list((cache_dir() / "decoded").glob(".*.tmp"))  # no half-written file is left
