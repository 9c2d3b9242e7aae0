"""Artifact cache: checkpoints and results keyed by stage, settings, data and code, with provenance."""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from satnb.core.environment import cache_dir
from satnb.core.fingerprint import PACKAGE_DIR, Code, code_ids, source_fingerprint, take_snapshot
from satnb.core.precision import effective_precision
from satnb.core.version import __version__

take_snapshot()  # read satnb's sources now, at the start of a run: an edit made while it runs cannot change its keys


class ArtifactError(RuntimeError):
    """A stored artifact is unreadable or does not fit; the message says how to recover."""


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Return a hash of all of satnb's source files, read once per process (provenance only; cache keys use
    `source_fingerprint`)."""
    h = hashlib.blake2b(digest_size=8)
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def installed_commit() -> str | None:
    """The commit an installed satnb was built from, as pip records a `pip install git+URL@ref` (PEP 610's
    direct_url.json); None for another kind of install."""
    from importlib import metadata

    try:
        raw = metadata.distribution("satnb").read_text("direct_url.json")
        commit = (json.loads(raw or "{}").get("vcs_info") or {}).get("commit_id")
    except (metadata.PackageNotFoundError, ValueError, OSError):
        return None
    return commit or None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Return the git commit of the checkout satnb runs from, else the one it was installed from (None: unknown)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return installed_commit()
    if out.returncode != 0:
        return installed_commit()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=PACKAGE_DIR, capture_output=True,
                           text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def canonical_json(obj: Any) -> str:
    """Serialise settings in a stable order (the basis of cache keys)."""
    return json.dumps(obj, sort_keys=True, default=_jsonable, separators=(",", ":"))


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.asdict(obj)
    if isinstance(obj, (Path, torch.device, torch.dtype)):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot record {type(obj).__name__} in settings")


def provenance(profile: str | None = None, dataset: dict | None = None, seed: int | None = None,
               wall_time_s: float | None = None, device: str | None = None, code: Code | None = None,
               **extra: Any) -> dict:
    """Return the record attached to every result: code version, environment, data, seed, time.

    With `code` (the functions or classes that computed the result), also the fingerprint of the code
    they reach (its stage key's).
    """
    stage = {} if code is None else {"stage_code": {"entry": code_ids(code), "fingerprint": source_fingerprint(code)}}
    return {
        "satnb_version": __version__,
        "git_commit": git_commit(),
        "code_fingerprint": code_fingerprint(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "threads": torch.get_num_threads(),
        "precision": effective_precision(device or ("cuda" if torch.cuda.is_available() else "cpu")),
        "profile": profile,
        "dataset": dataset,
        "seed": seed,
        "wall_time_s": None if wall_time_s is None else round(float(wall_time_s), 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **stage,
        **extra,
    }


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write a file through a temporary file and a rename, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: give the mode any other new file gets
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@dataclass(frozen=True)
class Artifact:
    """One cached stage: a folder named by the hash of what produced it."""

    stage: str
    key: str
    path: Path

    @property
    def final(self) -> Path:
        return self.path / "final.pt"

    @property
    def progress(self) -> Path:
        return self.path / "progress.pt"

    @property
    def result(self) -> Path:
        return self.path / "result.json"

    def exists(self) -> bool:
        """True when the stage finished (its final checkpoint or its result is there)."""
        return self.final.is_file() or self.result.is_file()


class Store:
    """A directory of artifacts keyed by stage + settings + data fingerprint + code fingerprint."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "artifacts"
        with writable(self.root):
            self.root.mkdir(parents=True, exist_ok=True)

    def artifact(self, stage: str, settings: dict, data_fingerprint: str = "", *, code: Code) -> Artifact:
        """Return the artifact for a stage run with these settings on this data by the code `code` reaches.

        `code` is the function or class (or a tuple of them) that computes the stage, e.g.
        `satnb.nets.pretrain.train`; the key covers the code of every definition it reaches
        (`satnb.core.fingerprint`), not comments, docstrings, or where the definitions live.
        """
        blob = canonical_json({"stage": stage, "settings": settings, "data": data_fingerprint,
                               "precision": effective_precision("cuda" if torch.cuda.is_available() else "cpu"),
                               "code": source_fingerprint(code)})
        key = hashlib.blake2b(blob.encode(), digest_size=10).hexdigest()
        art = Artifact(stage, key, self.root / stage / key)
        if not (art.path / "settings.json").exists():
            with writable(self.root / stage):
                art.path.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(art.path / "settings.json", lambda fh: fh.write(blob.encode()))
        return art

    # checkpoints ---------------------------------------------------------
    def save_checkpoint(self, art: Artifact, state: dict, final: bool = False) -> Path:
        """Save a state dict atomically (final: the finished stage; else: progress for resuming)."""
        path = art.final if final else art.progress
        with writable(art.path.parent):
            atomic_write_bytes(path, lambda fh: torch.save(state, fh))
        if final:
            art.progress.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, art: Artifact, final: bool = True) -> dict | None:
        """Load a checkpoint with `weights_only=True` (never arbitrary code); None when absent."""
        return load_state(art.final if final else art.progress)

    # results -------------------------------------------------------------
    def save_result(self, art: Artifact, result: dict, sort_keys: bool = True) -> Path:
        """Save a JSON result atomically."""
        text = json.dumps(result, indent=2, sort_keys=sort_keys, default=_jsonable)
        with writable(art.path.parent):
            atomic_write_bytes(art.result, lambda fh: fh.write(text.encode()))
        return art.result

    def memo(self, stage: str, settings: dict, compute: Callable[[], Any], data_fingerprint: str = "", *,
             code: Code, **provenance_kw: Any) -> Any:
        """The JSON value of compute() for these settings: loaded when cached, else computed and saved."""
        art = self.artifact(stage, settings, data_fingerprint, code=code)
        cached = self.load_result(art, required=("value",))
        if cached is not None:
            return cached["value"]
        t0 = time.perf_counter()
        value = compute()
        record = {"value": value, "settings": settings,
                  "provenance": provenance(wall_time_s=time.perf_counter() - t0, code=code, **provenance_kw)}
        self.save_result(art, record, sort_keys=False)  # keep the value's key order (a table's columns)
        # hand back what a later, cached call returns (lists for tuples, str keys...), not the raw value
        return json.loads(json.dumps(value, default=_jsonable))

    def memo_state(self, stage: str, settings: dict, compute: Callable[[], dict], data_fingerprint: str = "", *,
                   code: Code) -> dict:
        """The tensor dict compute() returns for these settings: loaded when cached, else computed and saved."""
        art = self.artifact(stage, settings, data_fingerprint, code=code)
        state = self.load_checkpoint(art)
        if state is None:
            state = compute()
            self.save_checkpoint(art, state, final=True)
        return state

    def load_result(self, art: Artifact, required: tuple[str, ...] = (), numbers: tuple[str, ...] = ()) -> dict | None:
        """Load a JSON result; None when absent.

        Like a checkpoint, a result is validated on load: one that is not a non-empty JSON object, lacks a
        key the caller requires (`required`), or holds a non-number under a key that must be a number
        (`numbers`: the stage that reads it knows which), raises ArtifactError naming the folder to
        delete; it is never served as if it were valid.
        """
        if not art.result.is_file():
            return None
        try:
            res = json.loads(art.result.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ArtifactError(f"{art.result} is corrupt ({err}); delete {art.path} to recompute it") from err
        why = None
        if not isinstance(res, dict):
            why = f"it holds a JSON {type(res).__name__}, not an object"
        elif not res:
            why = "it holds an empty object"
        else:
            need = tuple(required) + tuple(k for k in numbers if k not in required)
            missing = [k for k in need if k not in res]
            wrong = [k for k in numbers if k in res and not _is_number(res[k])]
            if missing:
                why = f"it lacks {', '.join(missing)}"
            elif wrong:
                why = ", ".join(f"{k} is {res[k]!r}, not a number" for k in wrong)
        if why:
            raise ArtifactError(f"{art.result} is corrupt ({why}); delete {art.path} to recompute it")
        return res


@contextmanager
def writable(folder: Path) -> Iterator[None]:
    """Turn a cache folder that cannot be written (permissions, a read-only file system) into an ArtifactError."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise ArtifactError(f"cannot write to the cache folder {folder} ({err.strerror}); make it writable "
                            f"(chmod -R u+w {folder}) or set SATNB_CACHE to another folder") from err


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fix(path: Path) -> str:
    """What to do about a bad checkpoint: a progress one restarts the stage, a final one recomputes it."""
    if Path(path).name == "progress.pt":
        return "Delete it to restart the stage."
    return "Delete it to recompute the stage."


def _short(err: BaseException, limit: int = 200, first_line: bool = True) -> str:
    """The gist of an error: its type and first sentence (torch's safe-loader reason, not its advice)."""
    text = str(err).replace("\x1b[1m", "").replace("\x1b[0m", "")
    if "WeightsUnpickler error:" in text:  # torch's advice to pass weights_only=False is not ours to give
        text = text.split("WeightsUnpickler error:", 1)[1]
    if first_line:
        text = next((line.strip() for line in text.splitlines() if line.strip()), "").split(". ")[0].rstrip(".")
    text = " ".join(text.split()) or "empty or truncated file"
    return f"{type(err).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def load_state(path: Path) -> dict | None:
    """Load a torch checkpoint safely (`weights_only=True`); None when the file is absent.

    A corrupt or unsafe file (a truncated write, a pickle that would run code) is never read back
    as valid: it raises ArtifactError naming the file and the fix; a progress checkpoint is not
    skipped silently, since resuming from nothing would hide the damage.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for unsafe content, RuntimeError/EOFError for corrupt files
        raise ArtifactError(f"{path} could not be loaded safely ({_short(err)}); it is corrupt "
                            f"or holds more than tensors. {_fix(path)}") from err
    if not isinstance(state, dict):
        raise ArtifactError(f"{path} holds a {type(state).__name__}, not a satnb checkpoint. {_fix(path)}")
    return state


@contextmanager
def restoring(path: Path) -> Iterator[None]:
    """Turn a checkpoint that does not fit the model (keys, shapes, missing fields) into an ArtifactError."""
    try:
        yield
    except ArtifactError:
        raise
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as err:
        raise ArtifactError(f"{path} does not fit this model ({_short(err, first_line=False)}); it was written "
                            f"for another architecture or settings. {_fix(path)}") from err


@contextmanager
def timed() -> Iterator[dict]:
    """Measure wall time of a block into the yielded dict's `seconds`."""
    box = {"seconds": None}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start
