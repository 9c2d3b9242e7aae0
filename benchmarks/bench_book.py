"""Wall time of building the book (``jupyter-book build book/``) cold and warm, per profile.

Cold: a fresh, empty SATNB_CACHE, so every dataset is decoded and every model trained, attacked and
evaluated from scratch (as in CI). Warm: the same cache again, so satnb serves every stage from its
artifact cache and the build only re-executes the notebooks around it. The build is the README's book
command itself, ``bash scripts/book.sh`` (no progress bars, SATNB_DATA=../shared/data when that folder
exists), with this Python's venv and ``--path-output`` into a temporary folder, so it never touches the
repository's own book/_build. It is slow: run_all.py runs it only with --book.

Targets (absolute, not ratios): smoke <= 3 min cold; quick <= 12 min cold and <= 2 min warm (issue "Training at
the machine's limit").
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, figure, log, main, ratio, record

EXECUTED = re.compile(r"notebooks/(\S+)\.ipynb: Executed notebook in ([0-9.]+) seconds")
TARGETS = {("smoke", "cold"): 3 * 60, ("quick", "cold"): 12 * 60, ("quick", "warm"): 2 * 60}


def build(profile: str, cache: Path, out: Path, log_path: Path, threads: int | None) -> tuple[float, float, int]:
    """Build the book once; returns (wall seconds, children CPU seconds, exit code)."""
    # book.sh's own defaults decide the rest (SATNB_PROGRESS=0, SATNB_DATA); only the venv is this Python's
    env = dict(os.environ, SATNB_PROFILE=profile, SATNB_CACHE=str(cache), SATNB_VENV=sys.prefix)
    env.pop("SATNB_THREADS", None)
    env.pop("SATNB_PROGRESS", None)
    if threads is not None:
        env["SATNB_THREADS"] = str(threads)
    cmd = ["bash", "scripts/book.sh", "--path-output", str(out)]  # after book.sh's own `build book/ --all`
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log_path, "w") as fh:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rc


def run(args) -> dict:
    t_start = time.perf_counter()
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    figures, ratios, checks = [], [], {}
    root = Path(tempfile.mkdtemp(prefix="satnb-bench-book-"))
    try:
        for profile in profiles:
            cache = root / f"cache-{profile}"
            walls = {}
            for state in ("cold", "warm"):
                # a fresh output folder each time: Sphinx would otherwise skip the unchanged pages
                out, log_path = root / f"out-{profile}-{state}", root / f"{profile}-{state}.log"
                log(f"[book] building the {profile} book, {state} cache (log: {log_path})")
                wall, cpu, rc = build(profile, cache, out, log_path, args.book_threads)
                walls[state] = wall
                text = log_path.read_text(errors="replace")
                tail = text.splitlines()[-15:]
                pages = {m.group(1): float(m.group(2)) for m in EXECUTED.finditer(text)}
                checks[f"{profile} {state}"] = {"exit_code": rc, "wall_s": round(wall, 1),
                                                "children_cpu_s": round(cpu, 1), "notebook_seconds": pages,
                                                "load_average_after": list(os.getloadavg()), "log_tail": tail}
                log(f"[book] {profile} {state}: {wall:.0f} s wall, {cpu:.0f} s CPU, exit {rc}")
                if rc != 0:
                    raise RuntimeError(f"the {profile} book build ({state}) failed with exit code {rc}; "
                                       f"last lines:\n" + "\n".join(tail))
                if not pages:
                    raise RuntimeError(f"the {profile} build ({state}) executed no notebook; see {log_path}")
                figures.append(figure(f"{profile} book, {state} cache (wall)", wall, "s",
                                      note=f"{len(pages)} notebooks executed"))
                figures.append(figure(f"{profile} book, {state} cache (CPU time of the build)", cpu, "s",
                                      note="user + system time of all the build's processes"))
                limit = TARGETS.get((profile, state))
                if limit is not None:
                    ratios.append(ratio(f"{profile} book, {state} (wall)", wall, "<=", limit, unit="s",
                                        note="absolute target (wall clock on this machine)"))
            ratios.append(ratio(f"{profile} book, cold / warm", walls["cold"] / walls["warm"],
                                note="what satnb's artifact cache saves (informational)"))
    finally:
        if args.keep:
            log(f"[book] kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    settings = {"profiles": profiles, "command": "bash scripts/book.sh --path-output <tmp>",
                "SATNB_DATA": str(ROOT.parent / "shared" / "data"), "SATNB_THREADS": args.book_threads}
    return record("book", "Book build time, cold and warm cache", settings, figures, ratios,
                  time.perf_counter() - t_start, checks,
                  notes="wall clock of whole builds: unlike the other benchmarks, affected by other processes")


def options(p) -> None:
    p.add_argument("--profiles", default="smoke", help="comma-separated profiles to build (default smoke; "
                   "e.g. smoke,quick)")
    p.add_argument("--book-threads", type=int, default=None,
                   help="SATNB_THREADS for the notebooks (default: unset, as in scripts/book.sh)")
    p.add_argument("--keep", action="store_true", help="keep the temporary caches, outputs and logs")


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0], options)
