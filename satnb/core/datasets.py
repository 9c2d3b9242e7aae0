"""The named datasets (CIFAR-10, STL-10, MNIST, sklearn digits), their classes and statistics, and `load_dataset`."""

from __future__ import annotations

import gzip
import math
import warnings
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from satnb.core.config import ConfigError
from satnb.core.dataset import DataError, Dataset, stratified_indices
from satnb.core.environment import cache_dir, data_env
from satnb.core.image_folder import load_image_archive, load_image_folder
from satnb.core.npz import load_npz

DATASETS = ("cifar10", "stl10", "mnist", "digits")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
DIGIT_CLASSES = tuple(str(i) for i in range(10))
# what a dataset named after a known one must be: its title, class names and image side (as its loader gives it)
_KNOWN = {"cifar10": ("CIFAR-10", CIFAR10_CLASSES, 32), "stl10": ("STL-10", STL10_CLASSES, 64),
          "mnist": ("MNIST", DIGIT_CLASSES, 32), "digits": ("digits", DIGIT_CLASSES, 32)}
IMAGE_SIDES = (32, 64)  # the sizes the encoders take (AMDIM's two architectures)
CIFAR10_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR10_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)


def load_digits(seed: int = 0) -> Dataset:
    """sklearn's bundled 8x8 digits upscaled to 32x32x3 (the offline fallback), 75/25 stratified split."""
    from sklearn.datasets import load_digits as _digits

    d = _digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).repeat(1, 1, 1, 3).numpy()
    y = d.target.astype(np.int64)
    test = np.zeros(len(y), dtype=bool)
    test[stratified_indices(y, len(y) // 4, seed)] = True
    return Dataset("digits", x[~test], y[~test], x[test], y[test], DIGIT_CLASSES,
                   source="sklearn.datasets.load_digits (bundled)")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise _bad_idx(path, "the gzip stream is cut short or corrupt") from err
    if len(data) < 4 or data[:3] != b"\0\0\x08" or not 1 <= data[3] <= 3:
        raise _bad_idx(path, "no idx header")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != 4 + 4 * ndim + math.prod(shape):
        raise _bad_idx(path, f"{len(data)} bytes where its header promises {4 + 4 * ndim + math.prod(shape)}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _bad_idx(path: Path, why: str) -> DataError:
    return DataError(f"{path} is truncated or not an MNIST idx file ({why}); delete it and re-download MNIST "
                     "(or set SATNB_DATA to a folder with the four complete idx files)")


def _mnist_from(folder: Path) -> Dataset | None:
    raw = folder / "MNIST" / "raw" if (folder / "MNIST" / "raw").is_dir() else folder
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
    found = []
    for n in names:
        hits = [raw / n, raw / f"{n}.gz"]
        hit = next((h for h in hits if h.is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    xtr, ytr, xte, yte = (_read_idx(p) for p in found)
    for x, y, split in ((xtr, ytr, "train"), (xte, yte, "t10k")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise _bad_idx(raw, f"{split} images of shape {x.shape} but {y.shape} labels")
    pad = ((0, 0), (2, 2), (2, 2))
    xtr, xte = (np.repeat(np.pad(x, pad)[..., None], 3, axis=-1) for x in (xtr, xte))
    return Dataset("mnist", xtr, ytr.astype(np.int64), xte, yte.astype(np.int64), DIGIT_CLASSES,
                   source=f"mnist-idx:{raw}")


def _cifar10_from(folder: Path) -> Dataset | None:
    if (folder / "cifar-10-batches-py").is_dir():
        from torchvision.datasets import CIFAR10

        tr, te = (CIFAR10(str(folder), train=t, download=False) for t in (True, False))
        return Dataset("cifar10", tr.data, np.array(tr.targets, dtype=np.int64), te.data,
                       np.array(te.targets, dtype=np.int64), CIFAR10_CLASSES,
                       source=f"torchvision-cifar10:{folder}")
    for candidate in (folder / "cifar10", folder / "cifar10-jpeg", folder):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return _checked(load_image_folder(candidate, "cifar10"), candidate)
    archives = sorted(folder.glob("cifar10*.tar.gz"))
    if archives:
        return _checked(load_image_archive(archives[0], "cifar10"), archives[0])
    return None


def _checked(ds: Dataset, where: Path) -> Dataset:
    """Return ds with a known dataset's class names if named after it (refused unless it fits), of an encoder's size."""
    # a cifar10.npz or a folder cifar10/ is set against the paper's CIFAR-10 numbers: only if it has CIFAR-10's shape
    h, w = ds.image_shape[:2]
    if ds.name in _KNOWN:
        title, classes, side = _KNOWN[ds.name]
        if ds.n_classes != len(classes) or (h, w) != (side, side):
            raise DataError(f"{where} was found as {title} but holds {ds.n_classes} classes "
                            f"({', '.join(ds.classes[:5])}{'...' if ds.n_classes > 5 else ''}) of {h}x{w} images, "
                            f"not {len(classes)} of {side}x{side}; rename it (a name not starting with {ds.name}) "
                            "to load it as your own dataset under its own name")
        ds = replace(ds, classes=classes)
    if h != w or h not in IMAGE_SIDES:
        fix = ("pad them to 32x32 with np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))) as the MNIST loader does"
               if (h, w) == (28, 28) else "resize them to 32x32 (or 64x64), e.g. with PIL's Image.resize")
        raise DataError(f"{where}: images are {h}x{w}, but the encoders take 32x32 or 64x64 images; {fix}")
    return ds


def _stl10_from(folder: Path, with_unlabeled: bool = False) -> Dataset | None:
    base = folder / "stl10_binary" if (folder / "stl10_binary").is_dir() else folder
    needed = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"]
    if not all((base / n).is_file() for n in needed):
        return None
    xtr, xte = (_stl_images(base / n) for n in ("train_X.bin", "test_X.bin"))
    ytr, yte = (np.fromfile(base / n, dtype=np.uint8).astype(np.int64) - 1 for n in ("train_y.bin", "test_y.bin"))
    for n, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        if len(x) != len(y):
            raise DataError(f"{base}: {n}_X.bin holds {len(x)} images but {n}_y.bin {len(y)} labels; "
                            "re-download STL-10")
    unl = _stl_images(base / "unlabeled_X.bin") if with_unlabeled and (base / "unlabeled_X.bin").is_file() else None
    return Dataset("stl10", xtr, ytr, xte, yte, STL10_CLASSES, source=f"stl10-binary:{base}", x_unlabeled=unl)


def _stl_images(path: Path, size: int = 64) -> np.ndarray:
    """Read STL-10's column-major 96x96 binary and resize to size x size."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % (3 * 96 * 96):
        raise DataError(f"{path} has {raw.size} bytes, not a multiple of 3*96*96; the file is truncated")
    x = raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
    if size == 96:
        return np.ascontiguousarray(x)
    out = []
    for i in range(0, len(x), 2048):
        t = torch.from_numpy(np.ascontiguousarray(x[i:i + 2048])).permute(0, 3, 1, 2).float()
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
        out.append(t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


_FROM_FOLDER = {"cifar10": _cifar10_from, "mnist": _mnist_from, "stl10": _stl10_from}
_LAYOUTS = {"cifar10": "cifar-10-batches-py/, cifar10/ or cifar10-jpeg/ with train/ and test/, train/ and test/, "
                       "or cifar10*.tar.gz",
            "mnist": "MNIST/raw/ or the four idx files (train-images-idx3-ubyte[.gz], ...)",
            "stl10": "stl10_binary/ with train_X.bin, train_y.bin, test_X.bin, test_y.bin"}


def _download(name: str, folder: Path) -> Dataset | None:
    """Fetch the official files with torchvision; None when there is no network."""
    from torchvision import datasets as tvd

    folder.mkdir(parents=True, exist_ok=True)
    try:
        if name == "cifar10":
            tvd.CIFAR10(str(folder), train=True, download=True)
            tvd.CIFAR10(str(folder), train=False, download=True)
        elif name == "mnist":
            tvd.MNIST(str(folder), train=True, download=True)
            tvd.MNIST(str(folder), train=False, download=True)
        elif name == "stl10":
            tvd.STL10(str(folder), split="train", download=True)
    except Exception as err:  # URLError, socket errors, checksum errors: all mean "no usable download"
        warnings.warn(f"could not download {name} ({type(err).__name__}: {err})", stacklevel=3)
        return None
    return _FROM_FOLDER[name](folder)


def load_dataset(name: str = "cifar10", fallback: bool = True, download: bool = True) -> Dataset:
    """Resolve a dataset: `SATNB_DATA`, then the cache directory, then a torchvision download.

    When all fail, fall back to sklearn digits (marked `fallback=True`) if `fallback`,
    else raise an error that says what to set.
    """
    key = name.strip().lower()
    if key == "digits":
        return load_digits()
    env = data_env()
    if key not in _FROM_FOLDER:
        path = Path(name).expanduser()  # an explicit path wins over SATNB_DATA
        if path.suffix == ".npz":
            return _checked(load_npz(path), path)
        if path.is_dir():
            return _checked(load_image_folder(path), path)
        raise ConfigError(f"unknown dataset {name!r}; valid datasets are {', '.join(DATASETS)}, "
                          "or the path of an .npz file / image folder")
    tried = []
    if env is not None:
        if not env.exists():
            raise DataError(f"SATNB_DATA={env} does not exist; set it to a data directory or an .npz file")
        if env.is_file():
            # a file named after the dataset (cifar10-jpeg.tar.gz) is that dataset; any other is the user's
            # own, which keeps its own name, classes and statistics (never CIFAR-10's, nor its results file)
            own = not env.name.lower().startswith(key)
            name = env.name.split(".")[0] if own else key
            if env.suffix == ".npz":
                ds = load_npz(env, name)
            elif env.name.endswith((".tar.gz", ".tgz", ".tar")):
                ds = load_image_archive(env, name)
            else:
                raise DataError(f"SATNB_DATA={env} is a file but neither .npz nor a .tar.gz image-folder archive")
            return _checked(ds, env)
        ds = _FROM_FOLDER[key](env)
        if ds is not None:
            return ds
        half = " (it has train/ but no test/)" if (env / "train").is_dir() and not (env / "test").is_dir() else ""
        raise DataError(f"SATNB_DATA={env} holds no {key}{half}; looked for {_LAYOUTS[key]}. Set SATNB_DATA to a "
                        f"folder holding {key}, to an .npz file or image-folder archive, or unset it to use the "
                        "cache, a download or the digits fallback")
    local = cache_dir() / "data" / key
    if local.is_dir():
        ds = _FROM_FOLDER[key](local)
        if ds is not None:
            return ds
    tried.append(str(local))
    if download:
        ds = _download(key, local)
        if ds is not None:
            return ds
        tried.append("torchvision download")
    if fallback:
        warnings.warn(f"{key} not found ({'; '.join(tried)}); falling back to sklearn digits. "
                      f"Set SATNB_DATA to a folder holding {key} to use the real data.", stacklevel=2)
        return replace(load_digits(), fallback=True)
    raise DataError(f"{key} not found (tried {'; '.join(tried)}). Set SATNB_DATA to a folder holding it "
                    f"(e.g. the folder with cifar10-jpeg.tar.gz, cifar-10-batches-py, MNIST/raw or stl10_binary) "
                    f"or to an .npz file, or give this machine network access for the download.")
