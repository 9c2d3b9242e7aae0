"""Image-folder datasets (`train/<class>/*`, `test/<class>/*`) and their .tar.gz archives, decoded once into a cache."""

from __future__ import annotations

import errno
import hashlib
import os
import tarfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from satnb.core.dataset import DataError, Dataset
from satnb.core.environment import cache_dir
from satnb.core.npz import load_npz

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def load_image_folder(root: str | Path, name: str | None = None, seed: int = 0) -> Dataset:
    """Load a `train/<class>/*`, `test/<class>/*` tree (torchvision ImageFolder layout), cached as .npz."""
    root = Path(root)
    extraction = _our_extraction(root)
    key = _archive_key(extraction, seed) if extraction is not None else None
    if key is not None:  # satnb's own extraction of an archive: keyed by the archive, not listed again
        cached = cache_dir() / "decoded" / f"{root.name}-{key}.npz"
        if cached.is_file():
            return replace(load_npz(cached, name or root.name, where=root), source=f"image-folder:{root}")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{root} has no {split}/ folder; an image folder needs train/<class>/* and "
                            "test/<class>/*")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root / 'train'} holds no class folders; expected train/<class>/<image>")
    files = {s: _list_split(root / s, classes) for s in ("train", "test")}
    key = key or _content_key(root, files, seed)
    cached = cache_dir() / "decoded" / f"{root.name}-{key}.npz"
    with _cache_lock(cached.name):
        for stale in cached.parent.glob(f".{cached.name}.*.tmp"):  # a killed decode's half-written file
            stale.unlink(missing_ok=True)
        if not cached.is_file():
            _decode_tree(files, cached, classes, root, seed)
    ds = load_npz(cached, name or root.name, where=root)
    return replace(ds, source=f"image-folder:{root}")


def _archive_key(extraction: Path, seed: int) -> str:
    """The key of a tree satnb extracted from an archive: the extraction's name holds the archive's name, size
    and content hash, so every notebook's setup need not list and read all 60 000 CIFAR-10 files again."""
    return hashlib.blake2b(f"{seed!r}:archive:{extraction.name}".encode(), digest_size=8).hexdigest()


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


def _our_extraction(root: Path) -> Path | None:
    """The folder `extract_archive` made (complete) that holds `root`, else None (a user's own tree)."""
    extracted = (cache_dir() / "extracted").resolve()
    for folder in (root, root.parent):
        folder = folder.resolve()
        if folder.parent == extracted and (folder / ".complete").is_file():
            return folder
    return None


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
    from PIL import Image

    def read(p: Path) -> np.ndarray:
        try:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # PIL's ways to fail
            raise DataError(f"{p} is not a readable image, corrupt or truncated ({err}); replace or delete it") from err

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        images = list(pool.map(read, paths, chunksize=256))
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


def extract_archive(archive: str | Path) -> Path:
    """Extract a .tar.gz image-folder archive into the cache (once per content) and return the tree's root."""
    archive = Path(archive)
    dest = extraction_folder(archive)
    with _cache_lock(dest.name):
        _extract_once(archive, dest)
    return _tree_root(dest)


def extraction_folder(archive: Path) -> Path:
    """Where `extract_archive` puts an archive: named by its size and a hash of its bytes, so a copy of the same
    archive (a new modification time: re-provisioned, copied, touched) reuses the extraction and its decoded
    images, and an archive with other bytes never does."""
    st = archive.stat()
    return cache_dir() / "extracted" / f"{archive.name.split('.')[0]}-{st.st_size}-{_digest(archive, st)}"


def _digest(archive: Path, st: os.stat_result) -> str:
    """The archive's content hash, remembered per (size, modification time, inode): read in full once per version."""
    memo = cache_dir() / "extracted" / ".digests" / hashlib.blake2b(
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
            if isinstance(err, OSError) and err.errno == errno.ENOSPC:
                raise _disk_full(dest.parent, f"the images extracted from {archive}") from err
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
