"""Keep the training records of a results file (recipes, per-epoch times, kNN curves) as a longer run.

The reference run's targets chapter (`satnb.report.targets`) reads `results/longer/<profile>-<dataset>.json`
to say what more epochs bought; a results file that a remake replaces keeps its training records there.

    python scripts/keep_training.py results/cpu-cifar10.json results/longer/cpu-cifar10.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def kept(res: dict, source: str, commit: str) -> dict:
    """The training part of a results record, with where it came from."""
    missing = [k for k in ("training", "settings", "dataset", "provenance") if k not in res]
    if missing:
        raise ValueError(f"{source} is not a results file with training records (no {', '.join(missing)}); pass a "
                         "file written by `python -m satnb run`")
    return {"source": {"file": source, "commit": commit}, "profile": res.get("profile"),
            "dataset": res["dataset"], "settings": {"train": res["settings"].get("train")},
            "training": res["training"], "provenance": res["provenance"]}


def main(argv: list[str] | None = None) -> int:
    """Write the training records of SRC (as committed at HEAD) to DEST."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", str(args.src)], capture_output=True,
                            text=True).stdout.strip() or "uncommitted"
    try:
        out = kept(json.loads(args.src.read_text()), str(args.src), commit)
    except (OSError, ValueError) as err:
        print(f"keep_training: {err}", file=sys.stderr)
        return 2
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    args.dest.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"kept the training of {', '.join(out['training'])} from {args.src} ({commit}) in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
