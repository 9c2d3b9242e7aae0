"""Model bundles: the cached artifacts of a profile's run in one archive, to rebuild the book on another machine.

A bundle is a tar archive of ``artifacts/<stage>/<key>/`` folders (settings.json, final.pt, result.json: the
finished stages only) and a ``manifest.json`` naming the profile, the dataset (its fingerprint), the code behind
each stage (`run.stage_fingerprints`), the precision and the sha256 of every file. Importing checks all of it
before a single file reaches the cache: every hash, every member's path and kind, every checkpoint loaded as
tensors only (``weights_only``), the code and the dataset; then it moves the artifacts into the store, where
the book and the CLI find them by their usual keys and train nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import torch

from satnb.core.config import Profile
from satnb.core.dataset import Dataset
from satnb.core.precision import effective_precision
from satnb.core.store import ArtifactError, Store, code_fingerprint, git_commit
from satnb.core.version import __version__
from satnb.experiment.run import stage_fingerprints

FORMAT = 1
MANIFEST = "manifest.json"
FILES = ("settings.json", "final.pt", "result.json")  # what a finished artifact holds (never progress.pt)
MEMBER = re.compile(r"^artifacts/[a-z0-9][a-z0-9._-]*/[0-9a-f]{8,64}/(settings\.json|final\.pt|result\.json)$")


class BundleError(ArtifactError):
    """A bundle that cannot be made or must not be imported; the message names the problem and the fix."""


@dataclass
class Manifest:
    """What a bundle holds and what made it."""

    profile: str
    dataset: dict  # Dataset.describe() of the profile's data: name, source, sizes, fingerprint
    stage_code: dict[str, str]  # stage -> fingerprint of its code (what `satnb report` calls current)
    precision: str  # the precisions the artifacts were computed in ("fp32", "bf16" or both, comma-separated)
    files: dict[str, str] = field(default_factory=dict)  # archive path -> sha256
    satnb_version: str = __version__
    git_commit: str | None = None
    code_fingerprint: str = ""
    created_at: str = ""
    format: int = FORMAT

    @property
    def artifacts(self) -> list[str]:
        """The artifact folders ("artifacts/<stage>/<key>") the bundle holds."""
        return sorted({str(PurePosixPath(p).parent) for p in self.files})


@dataclass
class Imported:
    """What an import did."""

    manifest: Manifest
    added: list[str]  # artifact folders placed into the store
    present: list[str]  # already in the store (left as they were)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_bundle(store: Store, data: Dataset, profile: Profile, out: str | Path,
                  stages: Sequence[str] | None = None) -> Manifest:
    """Write the finished artifacts computed on `data` (the profile's subset) into the archive `out`, with those
    that depend on no dataset (e.g. the mutual-information studies on synthetic Gaussians), which the book reads too.

    `stages` (e.g. ``["train-amdim", "train-sup"]``) keeps only those stages' artifacts; default: all of them.
    """
    out = Path(out)
    fingerprint = data.fingerprint()
    chosen: dict[str, Path] = {}
    precisions: set[str] = set()
    on_data = 0  # the artifacts computed on this data (a bundle of dataset-free studies alone is refused)
    for settings in sorted(store.root.glob("*/*/settings.json")):
        folder = settings.parent
        try:
            meta = json.loads(settings.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("data") not in (fingerprint, "") or (stages and folder.parent.name not in stages):
            continue
        if not ((folder / "final.pt").is_file() or (folder / "result.json").is_file()):
            continue  # an unfinished stage: its progress checkpoint stays on this machine
        precisions.add(str(meta.get("precision")))
        for name in FILES:
            if (folder / name).is_file():
                chosen[f"artifacts/{folder.parent.name}/{folder.name}/{name}"] = folder / name
        on_data += meta.get("data") == fingerprint
    if not on_data:
        which = f" of stage(s) {', '.join(stages)}" if stages else ""
        raise BundleError(f"no finished artifact{which} computed on this data (fingerprint {fingerprint}) is in "
                          f"{store.root}: run the profile first (python -m satnb run --profile {profile.name}) "
                          "or point SATNB_CACHE at the cache that holds it")
    manifest = Manifest(profile=profile.name, dataset=data.describe(), stage_code=stage_fingerprints(),
                        precision=",".join(sorted(precisions)),
                        git_commit=git_commit(), code_fingerprint=code_fingerprint(),
                        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(tmp, "w:gz" if out.name.endswith((".gz", ".tgz")) else "w") as tar:
        for name, path in chosen.items():
            blob = path.read_bytes()
            manifest.files[name] = _sha256(blob)
            _add(tar, name, blob)
        _add(tar, MANIFEST, json.dumps(asdict(manifest), indent=1, sort_keys=True).encode())
    tmp.replace(out)  # a bundle is either whole or absent
    return manifest


def _add(tar: tarfile.TarFile, name: str, blob: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(blob), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(blob))


def _fetch(source: str, folder: Path) -> Path:
    """A local copy of the bundle: the path itself, or an https URL downloaded into `folder`."""
    if source.startswith(("http://", "ftp://")):
        raise BundleError(f"{source}: only https URLs are fetched (an unencrypted download can be altered on the way)")
    if not source.startswith("https://"):
        path = Path(source).expanduser()
        if not path.is_file():
            raise BundleError(f"{source}: no such bundle file; give the path of a file made by "
                              "`python -m satnb bundle export`, or an https URL")
        return path
    target = folder / "download.tar"
    try:
        with urllib.request.urlopen(source, timeout=60) as response, open(target, "wb") as fh:
            shutil.copyfileobj(response, fh)
    except OSError as err:
        raise BundleError(f"{source} could not be downloaded ({err}); check the URL and the network, or download "
                          "it yourself and pass its path") from err
    return target


def _read(path: Path, label: str) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and every member's bytes, after checking each member's name and kind."""
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                name = member.name
                if name != MANIFEST and not MEMBER.match(name):
                    raise BundleError(f"{label} holds {name!r}, which no satnb bundle holds (only {MANIFEST} and "
                                      "artifacts/<stage>/<key>/{settings.json,final.pt,result.json}); refused")
                if not member.isfile():
                    raise BundleError(f"{label}: {name!r} is not a regular file (a link or device); refused")
                if name in blobs:
                    raise BundleError(f"{label} holds {name!r} twice; refused")
                blobs[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise BundleError(f"{label} is not a complete satnb bundle (truncated or not a tar archive: {err}); "
                          "download or copy it again") from err
    if MANIFEST not in blobs:
        raise BundleError(f"{label} has no {MANIFEST}: not a satnb bundle (make one with `python -m satnb bundle "
                          "export`)")
    try:
        raw = json.loads(blobs.pop(MANIFEST))
        if raw.get("format") != FORMAT:
            raise BundleError(f"{label} is bundle format {raw.get('format')}; this satnb reads format {FORMAT}: "
                              "install the satnb version that made it")
        manifest = Manifest(**raw)
    except (ValueError, TypeError, AttributeError) as err:
        raise BundleError(f"{label}: its {MANIFEST} is not a satnb manifest ({err}); refused") from err
    return manifest, blobs


def check_bundle(manifest: Manifest, blobs: dict[str, bytes], label: str, data: Dataset | None = None) -> None:
    """Refuse a bundle whose files, code, data or precision do not match (each message names the difference)."""
    missing = sorted(set(manifest.files) - set(blobs))
    extra = sorted(set(blobs) - set(manifest.files))
    if missing or extra:
        raise BundleError(f"{label}: the archive and its manifest disagree (missing {missing[:3]}, not listed "
                          f"{extra[:3]}); refused: make the bundle again")
    for name, blob in blobs.items():
        if _sha256(blob) != manifest.files[name]:
            raise BundleError(f"{label}: {name} does not match its sha256 in the manifest (altered or corrupted "
                              "on the way); refused: download or copy the bundle again")
    for name, blob in blobs.items():
        if name.endswith(".pt"):
            try:
                torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
            except Exception as err:  # UnpicklingError: an object other than tensors (code would run)
                raise BundleError(f"{label}: {name} holds more than tensors ({type(err).__name__}); a checkpoint "
                                  "is loaded with weights_only and this one would run code: refused") from err
        elif name.endswith(".json"):
            try:
                json.loads(blob)
            except ValueError as err:
                raise BundleError(f"{label}: {name} is not JSON ({err}); refused") from err
    here = stage_fingerprints()
    differ = {s: (fp, here.get(s)) for s, fp in manifest.stage_code.items() if here.get(s) != fp}
    if differ:
        named = ", ".join(f"{s} (bundle {a}, here {b})" for s, (a, b) in differ.items())
        raise BundleError(f"{label} was made by other code in stage(s) {named}; satnb here would not use its "
                          f"artifacts. Check out the commit that made it ({manifest.git_commit or 'not recorded'}, "
                          f"satnb {manifest.satnb_version}) or retrain")
    if data is not None and manifest.dataset.get("fingerprint") != data.fingerprint():
        theirs, ours = manifest.dataset, data.describe()
        raise BundleError(f"{label} was made on other data ({theirs.get('dataset')} from {theirs.get('source')}, "
                          f"{theirs.get('n_train')} / {theirs.get('n_test')} images, fingerprint "
                          f"{theirs.get('fingerprint')}); this profile's data here is {ours['dataset']} from "
                          f"{ours['source']}, {ours['n_train']} / {ours['n_test']} images, fingerprint "
                          f"{ours['fingerprint']}: use the same dataset files (SATNB_DATA) and profile")
    precision = effective_precision("cuda" if torch.cuda.is_available() else "cpu")
    if precision not in manifest.precision.split(","):
        raise BundleError(f"{label} was computed in {manifest.precision} and this machine computes in {precision}; "
                          f"satnb keys artifacts by precision, so none would be used. Import it where "
                          f"{manifest.precision} runs, or export a run made in {precision}")


def import_bundle(source: str | Path, store: Store,
                  data: Dataset | Callable[[Manifest], Dataset] | None = None) -> Imported:
    """Check a bundle (a path or an https URL) and place its artifacts into `store`; refuse it whole otherwise.

    `data` is the data the bundle must have been made on (the profile's subset here), or a function of the
    bundle's manifest that loads it (its profile is known only once the bundle is read); None skips that check.
    """
    with tempfile.TemporaryDirectory(prefix="satnb-bundle-", dir=store.root.parent) as tmp:
        path = _fetch(str(source), Path(tmp))
        manifest, blobs = _read(path, str(source))
        check_bundle(manifest, blobs, str(source), data(manifest) if callable(data) else data)
        added, present = [], []
        for folder in manifest.artifacts:
            stage, key = PurePosixPath(folder).parts[1:]
            target = store.root / stage / key
            if (target / "final.pt").is_file() or (target / "result.json").is_file():
                present.append(folder)
                continue
            staging = Path(tmp) / "staging" / stage / key
            staging.mkdir(parents=True)
            for name in FILES:
                blob = blobs.get(f"{folder}/{name}")
                if blob is not None:
                    (staging / name).write_bytes(blob)
            if target.exists():  # an unfinished stage here: the bundle's finished one replaces it
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staging), str(target))
            added.append(folder)
    return Imported(manifest, added, present)


def import_once(source: str, store: Store, data: Dataset | Callable[[Manifest], Dataset] | None = None
                ) -> Imported | None:
    """`import_bundle` unless this cache already imported this bundle (same path, size and time, or same URL).

    What a notebook's setup calls when SATNB_BUNDLE names a bundle: each chapter starts with it, and the bundle
    is checked and placed once, not once per chapter. None when it was already imported.
    """
    path = Path(source).expanduser()
    key = source if source.startswith("https://") or not path.is_file() else \
        f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}"
    ledger = store.root.parent / "bundles-imported.json"
    try:
        done = json.loads(ledger.read_text()) if ledger.is_file() else []
    except ValueError:
        done = []
    if key in done:
        return None
    imported = import_bundle(source, store, data)
    ledger.write_text(json.dumps([*done, key], indent=1))
    return imported


def add_arguments(sub, default_profile: str) -> None:
    """The command line's `bundle export` and `bundle import` (`python -m satnb bundle ...`)."""
    bundle = sub.add_parser("bundle", help="move trained models between machines: export a run's cached artifacts "
                                           "into one archive, import one into this cache")
    bsub = bundle.add_subparsers(dest="action", required=True)
    exp = bsub.add_parser("export", help="write the finished artifacts of a profile's run into an archive")
    exp.add_argument("--profile", default=None, help="the profile whose run to export (default: $SATNB_PROFILE or "
                                                     f"{default_profile})")
    exp.add_argument("--dataset", default=None, help="the dataset it ran on (default: the profile's)")
    exp.add_argument("--stages", default=None, help="comma-separated artifact stages to keep, e.g. "
                                                    "train-amdim,train-sup (default: every stage)")
    exp.add_argument("--out", default=None, help="the archive (default: satnb-<profile>-<dataset>.tar; "
                                                 "a name ending in .gz compresses)")
    imp = bsub.add_parser("import", help="check a bundle (path or https URL) and place its artifacts in the cache")
    imp.add_argument("source", help="a bundle file made by `python -m satnb bundle export`, or an https URL")
    imp.add_argument("--dataset", default=None, help="the dataset here to check it against (default: the "
                                                     "bundle's profile's)")


def command(args) -> int:
    """Run `python -m satnb bundle export|import` (argparse namespace from `add_arguments`); the exit code."""
    from satnb.core.config import get_profile
    from satnb.core.dataset import profile_subset
    from satnb.experiment.session import start

    if args.action == "export":  # every artifact computed on the profile's data (its --labelled-per-class runs too)
        profile = get_profile(args.profile)
        session = start(profile, args.dataset, progress=False)
        stages = None if args.stages is None else [s.strip() for s in args.stages.split(",") if s.strip()]
        out = Path(args.out or f"satnb-{profile.name}-{session.full.name}.tar")
        manifest = export_bundle(session.store, session.data, profile, out, stages)
        size = out.stat().st_size / 2**20
        print(f"[satnb] wrote {out}: {len(manifest.artifacts)} artifacts, {size:.1f} MiB (profile {profile.name}, "
              f"{session.full.name}, fingerprint {manifest.dataset['fingerprint']}, {manifest.precision})")
        return 0
    store = Store()

    def data(manifest):  # the bundle's profile and dataset, as they resolve here
        session = start(get_profile(manifest.profile), args.dataset or manifest.dataset.get("dataset"),
                        progress=False, store=store)
        return profile_subset(session.full, session.profile)

    done = import_bundle(args.source, store, data)
    print(f"[satnb] imported {len(done.added)} artifacts of the {done.manifest.profile} profile into "
          f"{store.root} ({len(done.present)} were already there); the book and `python -m satnb run "
          f"--profile {done.manifest.profile}` now read them instead of training")
    return 0
