"""Image-folder datasets (`train/<class>/*`, `test/<class>/*`) and their .tar.gz archives, decoded once into a cache.

An archive is decoded straight from its compressed stream, one image after another: nothing is extracted to disk.
Decoding the 60 000 small CIFAR-10 JPEGs (about 0.1 ms each) in one thread measured faster than in a pool of 4
threads on 2 cores, and reading the archive once is faster than writing and listing 60 000 files.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path, PurePosixPath

import numpy as np

from satnb.core.dataset import DataError, Dataset
from satnb.core.environment import cache_dir
from satnb.core.npz import load_npz

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


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
    key = _content_key(root, files, seed)
    cached = cache_dir() / "decoded" / f"{root.name}-{key}.npz"
    with _cache_lock(cached.name):
        for stale in cached.parent.glob(f".{cached.name}.*.tmp"):  # a killed decode's half-written file
            stale.unlink(missing_ok=True)
        if not cached.is_file():
            _decode_tree(files, cached, classes, root, seed)
    ds = load_npz(cached, name or root.name, where=root)
    return replace(ds, source=f"image-folder:{root}")


def _content_key(root: Path, files: dict, seed: int) -> str:
    """Hash of every image's bytes, name and label: an image edited in place gives a new key (and a new decode)."""
    h = hashlib.blake2b(repr(seed).encode(), digest_size=8)
    skip = len(str(root)) + 1
    for items in files.values():
        h.update(repr([(str(p)[skip:], y) for p, y in items]).encode())
        for p, _ in items:
            try:
                with open(p, "rb") as fh:
                    data = fh.read()
            except OSError as err:  # a symlink loop, a dangling link, no permission
                raise DataError(f"{p} cannot be read ({err.strerror or err}); replace or delete it") from err
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()


def _decode_tree(files: dict, cached: Path, classes: list[str], root: Path, seed: int) -> None:
    """Decode every image of both splits, in the fixed order, into one cached .npz."""
    arrays = {}
    for split, items in files.items():
        items = _fixed_order(items, seed)
        arrays[f"x_{split}"] = _decode([p for p, _ in items], root / split)
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


def _decode(paths: list[Path], where: Path) -> np.ndarray:
    return _stack([_read_image(p, p) for p in paths], where)


def _read_image(source, shown: object) -> np.ndarray:
    """One image as uint8 HWC RGB; `source` a path or a file object, `shown` what an error names."""
    from PIL import Image

    try:
        with Image.open(source) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # PIL's ways to fail
        raise DataError(f"{shown} is not a readable image, corrupt or truncated ({err}); replace or delete it") from err


def _stack(images: list[np.ndarray], where: object) -> np.ndarray:
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(f"{where}: images have different sizes {sorted(shapes)[:3]}...; resize them to one shape")
    return np.stack(images)


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise _disk_full(path.parent, "the decoded images") from err
        raise


def _disk_full(where: Path, what: str) -> DataError:
    return DataError(f"the disk is full: no space left in {where} for {what}; free space there or point "
                     "SATNB_CACHE at a disk with room (the data itself is fine)")


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


def load_image_archive(archive: str | Path, name: str | None = None, seed: int = 0) -> Dataset:
    """Load a .tar.gz image-folder archive (`train/<class>/*`, `test/<class>/*`, maybe in one top folder), decoded
    once from the archive into the cache, keyed by the archive's bytes (a copy or a new modification time reuses it)."""
    archive = Path(archive)
    cached = decoded_file(archive, seed)
    if not cached.is_file():
        with _cache_lock(cached.name):
            for stale in cached.parent.glob(f".{cached.name}.*.tmp"):  # a killed decode's half-written file
                stale.unlink(missing_ok=True)
            if not cached.is_file():
                _decode_archive(archive, cached, seed)
    ds = load_npz(cached, name or archive.name.split(".")[0], where=archive)
    return replace(ds, source=f"image-folder-archive:{archive}")


def decoded_file(archive: Path, seed: int = 0) -> Path:
    """Where `load_image_archive` keeps the archive's decoded arrays (named by its bytes, not its path)."""
    content = archive_name(archive)
    key = hashlib.blake2b(f"{seed!r}:archive:{content}".encode(), digest_size=8).hexdigest()
    return cache_dir() / "decoded" / f"{content}-{key}.npz"


def archive_name(archive: Path) -> str:
    """The archive's name, size and content hash: a copy of the same archive (a new modification time:
    re-provisioned, copied, touched) reuses its decoded images, and an archive with other bytes never does."""
    st = archive.stat()
    return f"{archive.name.split('.')[0]}-{st.st_size}-{_digest(archive, st)}"


def _digest(archive: Path, st: os.stat_result) -> str:
    """The archive's content hash, remembered per (size, modification time, inode): read in full once per version."""
    memo = cache_dir() / "decoded" / ".digests" / hashlib.blake2b(
        f"{archive.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}".encode(), digest_size=8).hexdigest()
    try:
        return memo.read_text().strip()
    except OSError:
        pass
    h = hashlib.blake2b(digest_size=8)
    try:
        with open(archive, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as err:
        raise DataError(f"{archive} cannot be read ({err.strerror or err}); check its permissions or copy it "
                        "again") from err
    digest = h.hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(digest + "\n")
        os.replace(tmp, memo)
    except OSError:  # a read-only or full cache: the digest is only a shortcut
        pass
    return digest


def _decode_archive(archive: Path, cached: Path, seed: int) -> None:
    """Decode every image of both splits from the archive's stream, in the fixed order, into one cached .npz
    (the same arrays, in the same order, as the tree the archive holds, loaded by `load_image_folder`)."""
    images: dict[PurePosixPath, np.ndarray] = {}
    dirs: set[PurePosixPath] = set()
    try:
        with tarfile.open(archive) as tar:
            for m in tar:
                path = PurePosixPath(m.name)  # "./train/x" is train/x
                if m.isdir():
                    dirs.add(path)
                elif path.suffix.lower() in IMAGE_SUFFIXES and 3 <= len(path.parts) <= 4:
                    f = tar.extractfile(m)
                    if f is None:
                        raise DataError(f"{archive}: {path} is not a file; replace it with the image")
                    # PIL reads in small pieces: from memory, not through the decompressing stream
                    images[path] = _read_image(io.BytesIO(f.read()), f"{archive}: {path}")
    except (tarfile.TarError, OSError, EOFError, KeyError, zlib.error) as err:  # KeyError: a dangling link
        why = "it is truncated" if isinstance(err, EOFError) else f"{type(err).__name__}: {err}"
        raise DataError(f"{archive} is not a readable tar archive ({why}); re-download or re-create it") from err
    for p in list(images):
        dirs.update(p.parents)
    top = PurePosixPath()
    if PurePosixPath("train") not in dirs:  # the tree may sit in one top folder
        tops = {p.parts[0] for p in dirs if p.parts}
        if len(tops) == 1 and PurePosixPath(*tops, "train") in dirs:
            top = PurePosixPath(*tops)
    arrays = {}
    for split in ("train", "test"):
        if top / split not in dirs:
            raise DataError(f"{archive} has no {split}/ folder; an image-folder archive needs train/<class>/* and "
                            "test/<class>/*")
    classes = sorted(p.name for p in dirs if p.parent == top / "train")
    if not classes:
        raise DataError(f"{archive}: train/ holds no class folders; expected train/<class>/<image>")
    in_folder: dict[PurePosixPath, list[PurePosixPath]] = {}
    for p in images:
        in_folder.setdefault(p.parent, []).append(p)
    for split in ("train", "test"):
        items = []
        for label, cls in enumerate(classes):
            if top / split / cls not in dirs:
                raise DataError(f"{archive}: {split}/ lacks the class folder {cls!r} that train/ has; both splits "
                                "need the same classes")
            items += [(p, label) for p in sorted(in_folder.get(top / split / cls, []), key=lambda p: p.name)]
        if not items:
            raise DataError(f"{archive}: {split}/ holds no images ({', '.join(IMAGE_SUFFIXES)})")
        items = _fixed_order(items, seed)
        arrays[f"x_{split}"] = _stack([images[p] for p, _ in items], f"{archive}: {split}/")
        arrays[f"y_{split}"] = np.array([y for _, y in items], dtype=np.int64)
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(f"{archive}: train and test images differ in size; resize them to one shape")
    _atomic_savez(cached, classes=np.array(classes), **arrays)
