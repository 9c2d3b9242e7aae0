"""Datasets as in-memory uint8 arrays: CIFAR-10, STL-10, MNIST, sklearn digits, .npz files, image folders."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import warnings
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from satnb.config import ConfigError, cache_dir, data_env

DATASETS = ("cifar10", "stl10", "mnist", "digits")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
CIFAR10_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR10_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(ValueError):
    """A dataset is missing or malformed; the message names the problem and the fix."""


@dataclass
class Dataset:
    """A labelled image dataset held as uint8 NHWC arrays, with where it really came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str
    fallback: bool = False  # True when a smaller profile fell back to sklearn digits
    x_unlabeled: np.ndarray | None = None
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(self.x_train.shape[1:])

    def fingerprint(self) -> str:
        """Return a short hash of the arrays (a change of data changes it)."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=8)
            for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
                h.update(str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr).data)
            if self.x_unlabeled is not None:
                h.update(str(self.x_unlabeled.shape).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def describe(self) -> dict:
        """Return what a result must record about the data behind it (no path of this machine: see `short_source`)."""
        return {
            "dataset": self.name,
            "source": short_source(self.source),
            "fallback": self.fallback,
            "n_train": int(len(self.y_train)),
            "n_test": int(len(self.y_test)),
            "image_shape": list(self.image_shape),
            "fingerprint": self.fingerprint(),
        }

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> "Dataset":
        """Return a seeded, stratified subset that keeps the dataset's order."""
        tr = stratified_indices(self.y_train, n_train, seed) if n_train else slice(None)
        te = stratified_indices(self.y_test, n_test, seed + 1) if n_test else slice(None)
        return replace(self, x_train=self.x_train[tr], y_train=self.y_train[tr],
                       x_test=self.x_test[te], y_test=self.y_test[te], _fingerprint=None)


def short_source(source: str) -> str:
    """A data source without the folders of the machine that read it ("npz:/home/u/x.npz" -> "npz:x.npz")."""
    kind, sep, where = source.partition(":")
    if not sep or ("/" not in where and "\\" not in where):
        return source
    return f"{kind}:{Path(where).name}"


def profile_subset(full: Dataset, profile) -> Dataset:
    """The profile's seeded, stratified train/test subset (the whole split where the profile asks for more)."""
    n_train = profile.n_train if profile.n_train and profile.n_train < len(full.y_train) else None
    n_test = profile.n_test if profile.n_test and profile.n_test < len(full.y_test) else None
    return full.subset(n_train, n_test, seed=profile.seed)


def stratified_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Return n sorted indices drawn per class in proportion to the class sizes."""
    labels = np.asarray(labels)
    if n <= 0 or n > len(labels):
        raise DataError(f"cannot take a subset of {n} from {len(labels)} samples; choose 1..{len(labels)}")
    if n == len(labels):
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    # hand out the remainder to the classes with the largest fractional parts
    rest = n - quota.sum()
    frac = counts / counts.sum() * n - quota
    quota[np.argsort(-frac, kind="stable")[:rest]] += 1
    chosen = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """Convert uint8 NHWC images to float NCHW in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


_FORMS = "pass uint8 NHWC arrays (as satnb.data loads them) or float NCHW tensors in [0, 1]"


def check_images(images: object, arrays: bool = True) -> None:
    """Raise ConfigError unless images are uint8 NHWC numpy arrays (when `arrays`) or float NCHW tensors in [0, 1].

    The message names the shape, dtype or range it got and what to pass instead.
    """
    forms = _FORMS if arrays else "pass float NCHW tensors in [0, 1] (satnb.data.to_tensor converts uint8 NHWC arrays)"
    if isinstance(images, np.ndarray):
        shape = tuple(images.shape)
        if not arrays:
            raise ConfigError(f"images are a numpy {images.dtype} array of shape {shape}; {forms}")
        if images.dtype != np.uint8:
            hint = (" (float NCHW in [0, 1]: torch.from_numpy(x); float NHWC in [0, 1]: "
                    "torch.from_numpy(x).permute(0, 3, 1, 2))") if np.issubdtype(images.dtype, np.floating) else ""
            raise ConfigError(f"images are a numpy {images.dtype} array of shape {shape}; {forms}{hint}")
        if images.ndim != 4 or shape[-1] not in (1, 3):
            raise ConfigError(f"images are a uint8 array of shape {shape}, not NHWC (N, H, W, 1 or 3); {forms}"
                              + ("; add a batch dimension with x[None] for one image" if images.ndim == 3 else ""))
        return
    if not isinstance(images, torch.Tensor):
        raise ConfigError(f"images are a {type(images).__name__}; {forms}")
    shape = tuple(images.shape)
    if not images.is_floating_point():
        nhwc = images.ndim == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3)
        fix = "x.permute(0, 3, 1, 2).float() / 255" if nhwc else "x.float() / 255"
        raise ConfigError(f"images are a {images.dtype} tensor of shape {shape}; {forms} (convert with {fix})")
    if images.ndim != 4:
        raise ConfigError(f"images are a float tensor of shape {shape}, not NCHW (N, C, H, W); {forms}"
                          + ("; add a batch dimension with x[None] for one image" if images.ndim == 3 else ""))
    if shape[1] not in (1, 3) and shape[-1] in (1, 3):
        raise ConfigError(f"images are a float tensor of shape {shape}, which looks NHWC; {forms} "
                          "(convert with x.permute(0, 3, 1, 2))")
    if images.numel():
        lo, hi = float(images.detach().min()), float(images.detach().max())
        if lo < 0 or hi > 1:
            why = " (they look like 0..255: divide by 255)" if lo >= 0 and hi <= 255 else (
                " (pass unnormalised images: the model normalises internally)")
            raise ConfigError(f"images must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]{why}; {forms}")


# ---------------------------------------------------------------- .npz files

def load_npz(path: str | Path, name: str | None = None) -> Dataset:
    """Load an .npz with uint8 NHWC x_train/x_test, integer y_train/y_test and optional classes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; point SATNB_DATA (or --dataset) at an existing .npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as err:  # zipfile/ValueError/OSError: all mean the file is unreadable
        raise DataError(f"{path} is not a readable .npz file ({err}); re-save it with numpy.savez") from err
    missing = [k for k in _NPZ_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; an .npz dataset needs {', '.join(_NPZ_KEYS)}")
    x_tr, y_tr, x_te, y_te = (arrays[k] for k in _NPZ_KEYS)
    for key, x in (("x_train", x_tr), ("x_test", x_te)):
        if x.dtype != np.uint8:
            raise DataError(f"{path}: {key} has dtype {x.dtype}; images must be uint8 in 0..255 "
                            f"({_uint8_advice(x)})")
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise DataError(f"{path}: {key} has shape {x.shape}; images must be NHWC with 1 or 3 channels")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(f"{path}: train images are {x_tr.shape[1:]} but test images are {x_te.shape[1:]}; "
                        "both splits need the same image shape")
    classes = tuple(str(c) for c in arrays["classes"]) if "classes" in arrays else None
    y_tr = _check_labels(path, "y_train", y_tr, len(x_tr), classes)
    y_te = _check_labels(path, "y_test", y_te, len(x_te), classes)
    if classes is None:
        classes = tuple(str(c) for c in range(int(max(y_tr.max(), y_te.max())) + 1))
    _check_classes(path, classes, y_tr)
    return Dataset(name or path.stem, _rgb(x_tr), y_tr, _rgb(x_te), y_te, classes, source=f"npz:{path}")


def _uint8_advice(x: np.ndarray) -> str:
    """How to convert non-uint8 images: the formula depends on whether they hold 0..1 or 0..255."""
    if x.size and np.issubdtype(x.dtype, np.number):
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        if 0 <= lo and hi <= 1:
            return f"they hold {lo:.3g}..{hi:.3g}: convert with (x * 255).round().astype(np.uint8)"
        if 0 <= lo and hi <= 255:
            return f"they hold {lo:.3g}..{hi:.3g}: convert with x.round().astype(np.uint8)"
        return f"they hold {lo:.3g}..{hi:.3g}: rescale them to 0..255, then .round().astype(np.uint8)"
    return "convert them to uint8 in 0..255"


def _check_classes(where: object, classes: tuple, y_train: np.ndarray) -> None:
    """Every class needs training images (the kNN draws m guide samples per class), and there must be two."""
    if len(classes) < 2:
        raise DataError(f"{where}: holds {len(classes)} class; a classifier needs at least 2 classes")
    counts = np.bincount(y_train, minlength=len(classes))
    empty = [str(classes[i]) for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(f"{where}: class(es) {', '.join(empty[:5])}{'...' if len(empty) > 5 else ''} have no "
                        "training image; give every class training images or drop it from the classes")


def _check_labels(path: Path, key: str, y: np.ndarray, n: int, classes: tuple | None) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: {key} has dtype {y.dtype}; labels must be integers 0..n_classes-1")
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: {key} has shape {y.shape} but there are {n} images; need one label per image")
    if n == 0:
        raise DataError(f"{path}: {key} is empty; each split needs at least one image")
    if y.min() < 0 or (classes is not None and y.max() >= len(classes)):
        top = f"{len(classes) - 1}" if classes is not None else "n_classes-1"
        raise DataError(f"{path}: {key} holds labels {int(y.min())}..{int(y.max())}, outside 0..{top}; "
                        "fix the labels or the classes array")
    return y.astype(np.int64)


def _rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


# ---------------------------------------------------------------- image folders

def load_image_folder(root: str | Path, name: str | None = None, seed: int = 0) -> Dataset:
    """Load a `train/<class>/*`, `test/<class>/*` tree (torchvision ImageFolder layout), cached as .npz."""
    root = Path(root)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{root} has no {split}/ folder; an image folder needs train/<class>/* and "
                            "test/<class>/*")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root / 'train'} holds no class folders; expected train/<class>/<image>")
    files = {s: _list_split(root / s, classes) for s in ("train", "test")}
    sig = hashlib.blake2b(repr((str(root.resolve()), [(str(p), y) for s in files.values() for p, y in s])).encode(),
                          digest_size=8).hexdigest()
    cached = cache_dir() / "decoded" / f"{root.name}-{sig}.npz"
    with _cache_lock(cached.name):
        for stale in cached.parent.glob(f".{cached.name}.*.tmp"):  # a killed decode's half-written file
            stale.unlink(missing_ok=True)
        if not cached.is_file():
            _decode_tree(files, cached, classes, root, seed)
    ds = load_npz(cached, name or root.name)
    return replace(ds, source=f"image-folder:{root}")


def _decode_tree(files: dict, cached: Path, classes: list[str], root: Path, seed: int) -> None:
    """Decode every image of both splits, in the fixed order, into one cached .npz."""
    arrays = {}
    for split, items in files.items():
        items = _fixed_order(items, seed)
        arrays[f"x_{split}"] = _decode([p for p, _ in items])
        arrays[f"y_{split}"] = np.array([y for _, y in items], dtype=np.int64)
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(f"{root}: train and test images differ in size; resize them to one shape")
    _atomic_savez(cached, classes=np.array(classes), **arrays)


def _list_split(split_dir: Path, classes: list[str]) -> list[tuple[Path, int]]:
    items = []
    for label, cls in enumerate(classes):
        d = split_dir / cls
        if not d.is_dir():
            raise DataError(f"{split_dir} lacks the class folder {cls!r} that train/ has; "
                            "both splits need the same classes")
        items += [(p, label) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise DataError(f"{split_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return items


def _fixed_order(items: list[tuple[Path, int]], seed: int) -> list[tuple[Path, int]]:
    """Order by the number in the file names when all are numbers, else a seeded interleaving."""
    if all(p.stem.isdigit() for p, _ in items):
        return sorted(items, key=lambda it: int(it[0].stem))
    perm = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in perm]


def _decode(paths: list[Path]) -> np.ndarray:
    from PIL import Image

    def read(p: Path) -> np.ndarray:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        images = list(pool.map(read, paths, chunksize=256))
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(f"images have different sizes {sorted(shapes)[:3]}...; resize them to one shape")
    return np.stack(images)


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _cache_lock(name: str) -> Iterator[None]:
    """Serialise cache writers across processes (two runs may extract or decode the same data at once)."""
    path = cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            import fcntl
        except ImportError:  # no fcntl (Windows): no cross-process lock
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def extract_archive(archive: str | Path) -> Path:
    """Extract a .tar.gz image-folder archive into the cache (once) and return the tree's root."""
    archive = Path(archive)
    stat = archive.stat()
    dest = cache_dir() / "extracted" / f"{archive.name.split('.')[0]}-{stat.st_size}-{int(stat.st_mtime)}"
    with _cache_lock(dest.name):
        _extract_once(archive, dest)
    return _tree_root(dest)


def _extract_once(archive: Path, dest: Path) -> None:
    import shutil

    # under the lock no other extraction of this archive runs: a leftover .tmp folder is from a failed or
    # killed one (kill -9 skips every cleanup), so remove it before trying again
    for stale in dest.parent.glob(f"{dest.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    if not (dest / ".complete").exists():
        tmp = dest.with_name(dest.name + f".{os.getpid()}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            shutil.rmtree(tmp, ignore_errors=True)
            why = "it is truncated" if isinstance(err, EOFError) else f"{type(err).__name__}: {err}"
            raise DataError(f"{archive} is not a readable tar archive ({why}); re-download or re-create it") from err
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / ".complete").touch()
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)


def _tree_root(path: Path) -> Path:
    """Find the folder that holds train/ and test/ (the archive may wrap it in one folder)."""
    if (path / "train").is_dir():
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / "train").is_dir():
        return subdirs[0]
    raise DataError(f"{path} holds no train/ and test/ folders; an image-folder archive needs that layout")


# ---------------------------------------------------------------- named datasets

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
    return Dataset("digits", x[~test], y[~test], x[test], y[test], tuple(str(i) for i in range(10)),
                   source="sklearn.datasets.load_digits (bundled)")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


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
    pad = ((0, 0), (2, 2), (2, 2))
    xtr, xte = (np.repeat(np.pad(x, pad)[..., None], 3, axis=-1) for x in (xtr, xte))
    return Dataset("mnist", xtr, ytr.astype(np.int64), xte, yte.astype(np.int64),
                   tuple(str(i) for i in range(10)), source=f"mnist-idx:{raw}")


def _cifar10_from(folder: Path) -> Dataset | None:
    if (folder / "cifar-10-batches-py").is_dir():
        from torchvision.datasets import CIFAR10

        tr, te = (CIFAR10(str(folder), train=t, download=False) for t in (True, False))
        return Dataset("cifar10", tr.data, np.array(tr.targets, dtype=np.int64), te.data,
                       np.array(te.targets, dtype=np.int64), CIFAR10_CLASSES,
                       source=f"torchvision-cifar10:{folder}")
    for candidate in (folder / "cifar10", folder / "cifar10-jpeg", folder):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return _as_cifar10(load_image_folder(candidate, "cifar10"), candidate)
    archives = sorted(folder.glob("cifar10*.tar.gz"))
    if archives:
        ds = load_image_folder(extract_archive(archives[0]), "cifar10")
        return _as_cifar10(replace(ds, source=f"image-folder-archive:{archives[0]}"), archives[0])
    return None


def _as_cifar10(ds: Dataset, where: Path) -> Dataset:
    """A tree or archive found as CIFAR-10 gets CIFAR-10's class names, provided it has its 10 classes."""
    if ds.n_classes != len(CIFAR10_CLASSES):
        raise DataError(f"{where} was found as CIFAR-10 but holds {ds.n_classes} classes "
                        f"({', '.join(ds.classes[:5])}{'...' if ds.n_classes > 5 else ''}), not 10; rename it "
                        "(a name not starting with cifar10) to load it as your own dataset under its own name")
    return replace(ds, classes=CIFAR10_CLASSES)


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
        if env is None and Path(name).suffix == ".npz":
            return load_npz(name)
        if env is None and Path(name).is_dir():
            return load_image_folder(name)
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
                ds = replace(load_image_folder(extract_archive(env), name), source=f"image-folder-archive:{env}")
            else:
                raise DataError(f"SATNB_DATA={env} is a file but neither .npz nor a .tar.gz image-folder archive")
            return _as_cifar10(ds, env) if key == "cifar10" and not own else ds
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
