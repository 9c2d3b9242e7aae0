"""Command line: `python -m satnb run` runs the book's pipeline headless; `python -m satnb report` prints the claims."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import NoReturn

STAGES = ("train", "evaluate", "sat", "baselines", "robustness")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one `satnb: error: ...` line (exit code 2), like satnb's own."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"satnb: error: {message}; see `{self.prog} --help`\n")


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m satnb", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train, attack and evaluate every model of a profile; write a results JSON")
    from satnb.core.config import DEFAULT_PROFILE

    sweep = sub.add_parser("sweep", help="the same run as independent jobs (one stage of one model each) on a cluster "
                                         "through submitit: SLURM job arrays, or local processes")
    _run_arguments(run)
    _run_arguments(sweep)
    sweep.add_argument("--cluster", default=None, choices=("slurm", "local", "debug"),
                       help="submitit executor (default: slurm where srun exists, else local processes)")
    sweep.add_argument("--folder", default="sweep-logs/%j",
                       help="submitit's folder for job pickles and logs (on SLURM: a shared filesystem; default "
                            "%(default)s)")
    sweep.add_argument("--partition", default=None, help="SLURM partition")
    sweep.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per job (default 0)")
    sweep.add_argument("--cpus-per-task", type=int, default=2, help="CPU cores per job (default 2)")
    sweep.add_argument("--timeout-min", type=int, default=240, help="time limit per job in minutes (default 240)")
    sweep.add_argument("--parallelism", type=int, default=None,
                       help="at most this many jobs of a wave at once (SLURM's array throttle)")
    sweep.add_argument("--dry-run", action="store_true", help="print the jobs and submit nothing")
    sweep.add_argument("--jobs", default=None, metavar="NAMES",
                       help="comma-separated job names (as --dry-run prints them, e.g. evaluate:amdim:pixel): submit "
                            "only these, their inputs read from the cache, and write no results file (e.g. to time "
                            "one job with --cluster debug)")
    sweep.add_argument("--collect", action="store_true",
                       help="submit nothing: write the results file from the cache (after a SLURM sweep's jobs end)")
    rep_parser = sub.add_parser("report", help="print the paper-vs-ours table and the claims checklist from results "
                                               "files")
    rep_parser.add_argument("files", nargs="*", help="results JSON files (default: results/*.json)")
    sub.add_parser("profiles", help="list the profiles and what they run")
    from satnb.experiment.bundle import add_arguments as bundle_arguments

    bundle_arguments(sub, DEFAULT_PROFILE)
    return ap


def _run_arguments(run: argparse.ArgumentParser) -> None:
    """The options `run` and `sweep` share: what to run."""
    from satnb.core.config import DEFAULT_PROFILE, PROFILE_NAMES

    run.add_argument("--profile", default=None, help=f"{', '.join(PROFILE_NAMES)} (default: $SATNB_PROFILE or "
                                                     f"{DEFAULT_PROFILE}; `python -m satnb profiles` lists them)")
    run.add_argument("--dataset", default=None, help="cifar10, stl10, mnist, digits (default: the profile's)")
    run.add_argument("--stages", default=None, help=f"comma-separated subset of {','.join(STAGES)} (default: all)")
    run.add_argument("--methods", default=None, help="comma-separated subset of amdim,npid,simclr,sup")
    run.add_argument("--eps-space", default="both", choices=("pixel", "normalized", "both"),
                     help="eps units for the attacks (paper text: pixel; authors' code: normalized)")
    run.add_argument("--out", default=None, help="results file (default: results/<profile>-<dataset>.json)")
    run.add_argument("--force", action="store_true",
                     help="let --out replace a file that is not a satnb results file, a committed results file "
                          "(from a smaller profile, for an explicit --out) or one made from other data (default --out)")
    run.add_argument("--yes", action="store_true",
                     help="go on with the gpu or paper profile on a machine without a GPU (days to weeks of CPU)")
    run.add_argument("--labelled-per-class", type=int, default=None, metavar="N",
                     help="claim 4's label-scarce regime: only N images per class carry labels (the kNN library, "
                          "SUP and AT/MAT/ALP); SSL pretrains on every image, SAT fine-tunes on the library")
    run.add_argument("--seeds", type=int, default=None, metavar="S",
                     help="train the models that enter a verdict from S seeds (0..S-1; default: the profile's, "
                          "quick: 3)")
    run.add_argument("--no-grid", action="store_true",
                     help="judge the primary protocol only (no other guide rule, no zoo per eps convention)")
    run.add_argument("--precision", default=None, choices=("bf16", "fp32"),
                     help="compute precision (default: $SATNB_PRECISION or bf16; fp32 turns mixed precision off)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--threads", default=None,
                     help="torch CPU threads (default: $SATNB_THREADS or torch's choice); use 1 when runs share cores")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input)."""
    from satnb.core.config import ConfigError
    from satnb.core.dataset import DataError
    from satnb.core.store import ArtifactError

    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2, already printed)
        return done.code if isinstance(done.code, int) else 2
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "report":
            return _report(args.files)
        if args.command == "bundle":
            from satnb.experiment.bundle import command

            return command(args)
        from satnb.report.tables import profile_table

        print(profile_table().to_string())
        return 0
    except (ConfigError, DataError, ArtifactError, FileNotFoundError, FloatingPointError) as err:
        print(f"satnb: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # after a progress bar the cursor sits at the end of its line: start the message on a line of its own
        lead = "" if getattr(args, "quiet", True) else "\n"
        print(f"{lead}satnb: interrupted; run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 130


def _prepare(args: argparse.Namespace):
    """What `run` and `sweep` share: the profile with its options, the stages, methods, session and results file."""
    import torch

    from satnb.core.config import METHODS, ConfigError, get_profile
    from satnb.core.environment import cache_dir
    from satnb.core.precision import effective_precision
    from satnb.experiment.session import start

    profile = get_profile(args.profile)
    if args.labelled_per_class is not None:
        if args.labelled_per_class < 1:
            raise ConfigError(f"--labelled-per-class must be a positive integer, got {args.labelled_per_class}")
        profile = profile.replace(labelled_per_class=args.labelled_per_class)
    if args.seeds is not None:
        if args.seeds < 1:
            raise ConfigError(f"--seeds must be a positive number of training seeds, got {args.seeds}; e.g. --seeds 3")
        profile = profile.replace(seeds=tuple(range(args.seeds)))
    if args.no_grid:
        profile = profile.replace(grid=False)
    stages = list(STAGES) if args.stages is None else [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise ConfigError(f"unknown stage(s) {', '.join(bad) or '(none given)'}; valid stages are "
                          f"{', '.join(STAGES)} (comma-separated)")
    methods = list(METHODS) if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ConfigError(f"unknown method(s) {', '.join(bad) or '(none given)'}; valid methods are "
                          f"{', '.join(METHODS)} (comma-separated)")
    if args.stages is not None:
        _check_stages_do_something(stages, methods)
    if args.out is not None and not args.out.strip():
        raise ConfigError("--out is empty; give a results file name such as results/mine.json, or leave --out out "
                          "for the default")
    session = start(profile, args.dataset, threads=args.threads, precision=args.precision)
    device, precision = session.device, session.precision
    if profile.name in ("gpu", "paper") and device.type == "cpu" and not args.yes and \
            getattr(args, "gpus_per_node", 0) == 0:
        epochs = sum(profile.train[m].epochs for m in methods)
        raise ConfigError(f"the {profile.name} profile is sized for a GPU and none is in use (device cpu): it would "
                          f"train {len(methods)} model(s) for {epochs} epochs in all on the full dataset on the CPU, "
                          "days to weeks; pass --yes to run it anyway, or use --profile cpu")
    if args.out is not None:
        _check_writable(Path(args.out))
        _refuse_overwrite(Path(args.out), None, profile.name, args.force)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        full = session.full
    for w in caught:
        print(f"satnb: warning: {w.message}", file=sys.stderr, flush=True)
    scarce = f"-labelled{profile.labelled_per_class}" if profile.labelled_per_class else ""
    out = Path(args.out if args.out is not None else f"results/{profile.name}-{full.name}{scarce}.json")
    if args.out is None and full.fallback:  # a stand-in for missing data: never beside the committed runs
        out = cache_dir() / "results" / out.name
        print(f"satnb: warning: {profile.dataset} was not found, so this run uses the digits fallback; its results "
              f"go to {out}, not results/ (set SATNB_DATA to the real data)", file=sys.stderr, flush=True)
    if args.out is None:
        _refuse_overwrite(out, session.data.describe(), profile.name, args.force)
        _check_writable(out)
    runs_in = effective_precision(device)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 says it
        print(f"[satnb] profile={profile.name} dataset={full.name} ({full.source}) device={device} "
              f"threads={torch.get_num_threads()} precision={runs_in}"
              + ("" if runs_in == precision else f" (asked {precision}: no bf16 kernels here)"), flush=True)
    spaces = ["pixel", "normalized"] if args.eps_space == "both" else [args.eps_space]
    return profile, stages, methods, session, out, spaces


def _run(args: argparse.Namespace) -> int:
    from satnb.core.config import ConfigError
    from satnb.experiment.run import run_experiment
    from satnb.nets.distributed import join, launched, leave

    if launched() and (args.stages or "").replace(" ", "") != "train":
        raise ConfigError("under torchrun only the train stage runs data-parallel: add --stages train, then run the "
                          "other stages in one process (python -m satnb run ...), which reads the trained encoders "
                          "from the cache")
    profile, stages, methods, session, out, spaces = _prepare(args)
    world, session.device = join(session.device)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning  # a cut of m or N during the run reads as the data's warnings do
        results = run_experiment(profile, session.full, device=session.device, stages=stages, methods=methods,
                                 eps_spaces=spaces, progress=not args.quiet and world.primary, store=session.store,
                                 log=_log_line if world.primary else None)
    if world.primary:
        _write_results(results, out, t0)
    leave()  # not on an error: torchrun stops the other ranks, which a barrier here would wait for in vain
    return 0


def _write_results(results: dict, out: Path, t0: float) -> None:
    """Judge the claims and write the results file atomically."""
    from satnb.core.config import ConfigError
    from satnb.core.store import atomic_write_bytes
    from satnb.report.claims import claims_records
    from satnb.report.compact import pack_results
    from satnb.report.record import judged_space

    # verdict, rule and paired differences with their intervals
    results["claims"] = claims_records(results, judged_space(results))
    text = json.dumps(pack_results(results), indent=1, sort_keys=True) + "\n"
    try:
        atomic_write_bytes(out, lambda fh: fh.write(text.encode()))  # a failed write leaves the old file whole
    except OSError as err:
        raise ConfigError(f"cannot write the results file {out} ({err.strerror or err}); it is unchanged. Free "
                          "space there or choose another --out, then run the same command again (every stage is "
                          "cached)") from err
    print(f"[satnb] wrote {out} in {time.perf_counter() - t0:.0f} s", flush=True)


def _sweep(args: argparse.Namespace) -> int:
    from satnb.core.config import ConfigError
    from satnb.experiment.pipeline import Pipeline
    from satnb.experiment.run import collect
    from satnb.experiment.sweep import plan, sweep, sweep_summary

    profile, stages, methods, session, out, spaces = _prepare(args)
    jobs = plan(profile, stages, methods, spaces)
    if args.jobs is not None:
        names = [n.strip() for n in args.jobs.split(",") if n.strip()]
        unknown = [n for n in names if n not in {job.name for job in jobs}]
        if unknown or not names:
            raise ConfigError(f"no job named {', '.join(unknown) or '(none given)'} in this sweep; "
                              f"`python -m satnb sweep --profile {profile.name} --dry-run` lists the job names")
        jobs = [job for job in jobs if job.name in names]
    print(f"[satnb] sweep of {len(jobs)} jobs: {sweep_summary(jobs)}", flush=True)
    if args.dry_run:
        for job in jobs:
            print(f"  {job.name}")
        return 0
    t0 = time.perf_counter()
    if not args.collect:
        try:
            import submitit
        except ImportError as err:
            raise ConfigError("`python -m satnb sweep` submits through submitit, which is not installed: pip install "
                              "'satnb[cluster]' (or pip install submitit)") from err
        executor = submitit.AutoExecutor(folder=args.folder, cluster=args.cluster)
        params = {"timeout_min": args.timeout_min, "cpus_per_task": args.cpus_per_task, "name": "satnb",
                  "gpus_per_node": args.gpus_per_node}
        if args.partition:
            params["slurm_partition"] = args.partition
        if args.parallelism:
            params["slurm_array_parallelism"] = args.parallelism
        executor.update_parameters(**params)
        device = "cuda" if args.gpus_per_node else "cpu"
        done = sweep(profile, session.dataset_name, session.data.fingerprint(), executor, session.store.root, jobs,
                     device=device)
        print(f"[satnb] submitted {done.count} jobs to {executor.cluster} ({done.skipped} already done)", flush=True)
        if args.jobs is not None:  # some jobs only: no results file from them
            print(f"[satnb] {', '.join(job.name for job in jobs)}: "
                  + ("queued" if executor.cluster == "slurm" else f"done in {time.perf_counter() - t0:.0f} s"),
                  flush=True)
            return 0
        if executor.cluster == "slurm":
            print("[satnb] when they have finished: the same command with --collect writes the results file",
                  flush=True)
            return 0
    pipe = Pipeline(profile, session.data, session.store, device=session.device, progress=not args.quiet)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        results = collect(pipe, stages, methods, spaces, log=_log_line)
    _write_results(results, out, t0)
    return 0


def _log_line(line: str) -> None:
    """Print one line of a run's log (a finished model) at once, on stdout (stderr holds only warnings and errors)."""
    print(line, flush=True)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one `satnb: warning: ...` line (no source path or line)."""
    print(f"satnb: warning: {message}", file=sys.stderr, flush=True)


def _committed(path: Path) -> bool:
    """True when path is a file git tracks (a committed reference run); False outside a checkout or without git."""
    import subprocess

    try:
        done = subprocess.run(["git", "ls-files", "--error-unmatch", "--", path.name], cwd=path.parent,
                              capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _refuse_overwrite(out: Path, data: dict | None, profile: str, force: bool) -> None:
    """--out never replaces a file that is not a satnb results file, nor (the default --out) a committed one or one
    made from other data, nor (an explicit --out; `data` None) a committed one from a larger profile, unless forced."""
    from satnb.core.config import PROFILE_NAMES, ConfigError

    if force or not out.is_file():
        return
    fix = "pass --out <another file> to keep it, or --force to replace it"
    committed = _committed(out)
    if committed and data is not None:
        raise ConfigError(f"{out} is a committed reference run and the default --out does not overwrite it; {fix}")
    try:
        res = json.loads(out.read_text())
    except (ValueError, OSError, RecursionError):
        res = None
    old = res.get("dataset") if isinstance(res, dict) else None
    if not isinstance(old, dict):
        raise ConfigError(f"{out} exists and is not a satnb results file; {fix}")
    if committed:
        size = {name: i for i, name in enumerate(PROFILE_NAMES)}
        if size.get(res.get("profile"), len(size)) > size[profile]:
            raise ConfigError(f"{out} is a committed reference run of the {res.get('profile')} profile and this run's "
                              f"profile ({profile}) is smaller; {fix}")
        return
    if data is None:
        return
    if old.get("fingerprint") != data["fingerprint"] or old.get("dataset") != data["dataset"]:
        raise ConfigError(f"{out} holds results made from other data ({old.get('dataset')}, {old.get('source')}, "
                          f"fingerprint {old.get('fingerprint')}; this run: {data['dataset']}, {data['source']}, "
                          f"fingerprint {data['fingerprint']}); {fix}")


def _check_stages_do_something(stages: list[str], methods: list[str]) -> None:
    """Refuse stages that the methods give nothing to do (provenance would list them as run)."""
    from satnb.core.config import ConfigError
    from satnb.core.identity import SSL

    if "baselines" in stages and "sup" not in methods:
        raise ConfigError("--stages baselines fine-tunes the supervised model, which --methods leaves out; add sup "
                          "to --methods or drop baselines from --stages")
    if "sat" in stages and not set(SSL) & set(methods):
        raise ConfigError(f"--stages sat fine-tunes the self-supervised models ({', '.join(SSL)}), which --methods "
                          "leaves out; add one to --methods or drop sat from --stages")


def _check_writable(out: Path) -> None:
    """Fail before a long run, not after it, when the results file cannot be written."""
    from satnb.core.config import ConfigError

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".{out.name}.probe"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write the results file {out} ({err.strerror or err}); choose another --out") from err
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as {out / 'results.json'}")


def _load(path: Path) -> dict:
    """A results file, or a ConfigError that names it and says how to make a valid one."""
    from satnb.core.config import ConfigError
    from satnb.report.record import load_results

    try:
        return load_results(path)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def _report(files: list[str]) -> int:
    from satnb.report.cells import with_intervals
    from satnb.report.claims import assess, seeds
    from satnb.report.cost import cost_text
    from satnb.report.frontier import frontier_text
    from satnb.report.grid import grid_text
    from satnb.report.record import MISSING, freshness, judged_space, worst_case_view
    from satnb.report.tables import paper_table, results_frame
    from satnb.report.targets import targets_text
    from satnb.report.tradeoff import sat_tradeoff

    paths = [Path(f) for f in files] or sorted(Path("results").glob("*.json"))
    if not paths:
        raise FileNotFoundError("no results files given and none in results/; run `python -m satnb run` first")
    for path in paths:
        res = _load(path)
        space = judged_space(res)
        print(f"== {path} (profile {res['profile']}, dataset {res['dataset']['dataset']}, "
              f"{res['dataset'].get('source', MISSING)}; claims judged with eps in {space} units)")
        print(f"   {freshness(res)}")
        table = paper_table(res)
        print(table.to_string() if not table.empty else
              "(nothing to set against paper Table 1: SUP and AMDIM not evaluated, or not the paper's data)")
        print()
        if lines := targets_text(res):
            print("\n".join(lines))
            print()
        frame = results_frame(res, space)
        if not frame.empty:
            cols = ["ACC", "DSR small", "DSR large", "robust small", "robust large"]
            print("95% intervals in brackets; robust = correct and still correct after the attack, over all "
                  "images scanned")
            print(with_intervals(frame.set_index("model"), cols).to_string())
            print()
        worst = assess(worst_case_view(res, space), space) if space in (res.get("robustness") or {}) else None
        for i, claim in enumerate(assess(res, space)):
            print(f"{claim.text}: {claim.verdict.upper()} (the paper's attacks)")
            if worst is not None:
                print(f"   under the worst case of every attack (attack zoo): {worst[i].verdict.upper()}")
            print(f"   rule: {claim.rule}")
            for line in (claim.evidence.split("; ") if claim.evidence else []):
                print(f"   - {line}")
        print()
        print(grid_text(res))
        print()
        trade = sat_tradeoff(res)
        if len(trade):
            print("Claim 2 along each SAT trajectory (the paper's accuracy cost as the limit; paired 95% intervals in "
                  "points against the starting point where the trajectory keeps per-image outcomes):")
            print(trade.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            print()
        for lines in (cost_text(res, seeds(res)), frontier_text(res, seeds(res))):
            if lines:
                print("\n".join(lines))
                print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
