"""Datasets from .npz files, and the checks of images, labels and classes every loaded dataset passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from satnb.core.dataset import DataError, Dataset

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CLASSES = 1000


def load_npz(path: str | Path, name: str | None = None, where: object = None) -> Dataset:
    """Load an .npz with uint8 NHWC x_train/x_test, integer y_train/y_test and optional classes.

    Messages name `where` (default: the file), so a decoded image folder's problems name the folder, not its cache.
    """
    path = Path(path)
    where = path if where is None else where
    if not path.is_file():
        raise DataError(f"{path} does not exist; point SATNB_DATA (or --dataset) at an existing .npz file")
    arrays = _read_arrays(path)
    missing = [k for k in _NPZ_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{where} lacks {', '.join(missing)}; an .npz dataset needs {', '.join(_NPZ_KEYS)}")
    x_tr, y_tr, x_te, y_te = (arrays[k] for k in _NPZ_KEYS)
    for key, x in (("x_train", x_tr), ("x_test", x_te)):
        _check_images(where, key, x)
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(f"{where}: train images are {x_tr.shape[1:]} but test images are {x_te.shape[1:]}; "
                        "both splits need the same image shape")
    classes = tuple(str(c) for c in arrays["classes"].reshape(-1)) if "classes" in arrays else None
    if classes is not None and len(classes) > MAX_CLASSES:
        raise DataError(f"{where}: classes holds {len(classes)} names; satnb takes at most {MAX_CLASSES} classes")
    y_tr = _check_labels(where, "y_train", y_tr, len(x_tr), classes)
    y_te = _check_labels(where, "y_test", y_te, len(x_te), classes)
    if classes is None:
        classes = tuple(str(c) for c in range(int(max(y_tr.max(), y_te.max())) + 1))
    _check_classes(where, classes, y_tr)
    return Dataset(name or path.stem, _rgb(x_tr), y_tr, _rgb(x_te), y_te, classes, source=f"npz:{path}")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the file; a corrupt file or one holding pickled objects is one DataError."""
    try:
        z = np.load(path, allow_pickle=False)
        if isinstance(z, np.ndarray):
            raise DataError(f"{path} holds a single array, not the named arrays of an .npz; save it with "
                            f"numpy.savez(path, {', '.join(f'{k}=...' for k in _NPZ_KEYS)})")
        with z:
            return {k: z[k] for k in z.files}
    except DataError:
        raise
    except ValueError as err:
        if "Object arrays" not in str(err):
            raise _corrupt(path, err) from err
        raise DataError(f"{path} holds object (pickled) arrays, which satnb never loads; re-save it with "
                        "numpy.savez from plain arrays (uint8 images, integer labels, a str classes array)") from err
    except Exception as err:  # zipfile/zlib/OSError/EOFError: all mean the file is unreadable
        raise _corrupt(path, err) from err


def _corrupt(path: Path, err: Exception) -> DataError:
    # numpy's own message for a file that is neither zip nor .npy advises loading it "unsafely": never pass it on
    return DataError(f"{path} is not a readable .npz file: it is corrupt or not a plain numpy array file "
                     f"({type(err).__name__}); re-save it with numpy.savez")


def _check_images(where: object, key: str, x: np.ndarray) -> None:
    if np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.integer) and not np.isfinite(x).all():
        raise DataError(f"{where}: {key} holds NaN or infinite values; images must be uint8 in 0..255 "
                        "(fix or drop the images with NaN/inf before converting them)")
    if x.dtype != np.uint8:
        raise DataError(f"{where}: {key} has dtype {x.dtype}; images must be uint8 in 0..255 ({_uint8_advice(x)})")
    if x.ndim == 3:
        raise DataError(f"{where}: {key} has shape {x.shape}, grey images without a channel axis; images must be "
                        "NHWC with 1 or 3 channels: add the axis with x[..., None]")
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{where}: {key} has shape {x.shape}; images must be NHWC with 1 or 3 channels")


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
    """Every class needs training images (the kNN draws m guide samples per class), two or more distinct names."""
    if len(classes) < 2:
        raise DataError(f"{where}: holds {len(classes)} class; a classifier needs at least 2 classes")
    names, counts = np.unique(np.array(classes), return_counts=True)
    if (counts > 1).any():
        twice = ", ".join(repr(str(n)) for n in names[counts > 1][:5])
        raise DataError(f"{where}: class names {twice} appear more than once; give every class its own name")
    counts = np.bincount(y_train, minlength=len(classes))
    empty = [str(classes[i]) for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(f"{where}: class(es) {', '.join(empty[:5])}{'...' if len(empty) > 5 else ''} have no "
                        "training image; give every class training images or drop it from the classes")


def _check_labels(where: object, key: str, y: np.ndarray, n: int, classes: tuple | None) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: {key} has dtype {y.dtype}; labels must be integers 0..n_classes-1")
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{where}: {key} has shape {y.shape} but there are {n} images; need one label per image")
    if n == 0:
        raise DataError(f"{where}: {key} is empty; each split needs at least one image")
    top = len(classes) - 1 if classes is not None else MAX_CLASSES - 1
    if y.min() < 0 or y.max() > top:
        raise DataError(f"{where}: {key} holds labels {int(y.min())}..{int(y.max())}, outside 0..{top}; labels must "
                        f"be 0..C-1 with C <= {MAX_CLASSES} classes: fix the labels or the classes array")
    return y.astype(np.int64)


def _rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
