"""Command line: `python -m satnb run` runs the book's pipeline headless; `python -m satnb report` prints the claims."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

STAGES = ("train", "evaluate", "sat", "baselines")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m satnb", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train, attack and evaluate every model of a profile; write a results JSON")
    run.add_argument("--profile", default=None, help="smoke, quick, cpu or paper (default: $SATNB_PROFILE or quick)")
    run.add_argument("--dataset", default=None, help="cifar10, stl10, mnist, digits (default: the profile's)")
    run.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    run.add_argument("--methods", default=None, help="comma-separated subset of amdim,npid,simclr,sup")
    run.add_argument("--eps-space", default="both", choices=("pixel", "normalized", "both"),
                     help="eps units for the attacks (paper text: pixel; authors' code: normalized)")
    run.add_argument("--out", default=None, help="results file (default: results/<profile>-<dataset>.json)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--threads", type=int, default=int(os.environ.get("SATNB_THREADS", 0)) or None,
                     help="torch CPU threads (default: $SATNB_THREADS or torch's choice); use 1 when runs share cores")
    rep = sub.add_parser("report", help="print the paper-vs-ours table and the claims checklist from results files")
    rep.add_argument("files", nargs="*", help="results JSON files (default: results/*.json)")
    sub.add_parser("profiles", help="list the profiles and what they run")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input)."""
    from satnb.config import ConfigError
    from satnb.data import DataError
    from satnb.store import ArtifactError

    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            return _report(args.files)
        from satnb.report import profile_table

        print(profile_table().to_string())
        return 0
    except (ConfigError, DataError, ArtifactError, FileNotFoundError) as err:
        print(f"satnb: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import torch

    from satnb.config import METHODS, ConfigError, get_device, get_profile
    from satnb.data import load_dataset
    from satnb.results import run_experiment

    profile = get_profile(args.profile)
    if args.threads:
        torch.set_num_threads(args.threads)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ConfigError(f"unknown stage(s) {', '.join(bad)}; valid stages are {', '.join(STAGES)}")
    methods = list(METHODS) if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown method(s) {', '.join(bad)}; valid methods are {', '.join(METHODS)}")
    dataset = args.dataset or profile.dataset
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        full = load_dataset(dataset, fallback=profile.fallback_to_digits)
    device = get_device()
    print(f"[satnb] profile={profile.name} dataset={full.name} ({full.source}) device={device} "
          f"threads={torch.get_num_threads()}", flush=True)
    spaces = ["pixel", "normalized"] if args.eps_space == "both" else [args.eps_space]
    t0 = time.perf_counter()
    results = run_experiment(profile, full, device=device, stages=stages, methods=methods, eps_spaces=spaces,
                             progress=not args.quiet)
    out = Path(args.out or f"results/{profile.name}-{full.name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"[satnb] wrote {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


def _report(files: list[str]) -> int:
    from satnb.report import claims_table, load_results, paper_table

    paths = [Path(f) for f in files] or sorted(Path("results").glob("*.json"))
    if not paths:
        raise FileNotFoundError("no results files given and none in results/; run `python -m satnb run` first")
    for path in paths:
        res = load_results(path)
        print(f"== {path} (profile {res['profile']}, dataset {res['dataset']['dataset']}, "
              f"{res['dataset']['source']})")
        print(paper_table(res).to_string())
        print()
        print(claims_table(res).to_string())
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
