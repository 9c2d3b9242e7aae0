"""Run every benchmark, print one table and write benchmarks/results.json.

    python benchmarks/run_all.py [--quick] [--threads N] [--book [--profiles smoke,quick]] [--only knn,sat]

The book build (bench_book.py) is slow and runs only with --book; SUP's time to accuracy (bench_tta.py, about
45 minutes of training) only with --only tta. Without them, their entries of the previous results.json are kept
(marked carried_over), as is every benchmark left out by --only.
Each record carries its own provenance (code version, machine, load, time). Exit status 1 when a
target fails or a benchmark raises.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RESULTS,
    NotMeasurableHere,
    configure,
    flat,
    keep_other_profiles,
    log,
    parser,
    print_table,
    provenance,
    table_rows,
)

BENCHMARKS = {"knn": "bench_knn", "attack": "bench_attack", "opt_attack": "bench_opt_attack", "sat": "bench_sat",
              "train": "bench_train", "step": "bench_step", "tta": "bench_tta", "book": "bench_book"}
SLOW = ("tta", "book")  # run only when asked: --only tta (about 45 min of training), --book


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--book", action="store_true", help="also build the book (slow: minutes per profile)")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    p.add_argument("--out", type=Path, default=RESULTS, help="where to write the results (default %(default)s)")
    importlib.import_module("bench_book").options(p)
    importlib.import_module("bench_tta").options(p)
    args = p.parse_args()
    configure(args)
    names = [n for n in BENCHMARKS if n not in SLOW or (n == "book" and args.book)]
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - set(BENCHMARKS)
        if unknown:
            raise SystemExit(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
        names = [n for n in BENCHMARKS if n in wanted]
    t0 = time.perf_counter()
    records, skipped = [], []
    for name in names:
        log(f"=== {name}")
        t1 = time.perf_counter()
        try:
            rec = importlib.import_module(BENCHMARKS[name]).run(args)
        except NotMeasurableHere as why:  # this machine cannot measure it: the previous record stays
            log(f"=== {name}: not measured here ({why}); its previous record is kept")
            skipped.append(name)
            continue
        except Exception as err:  # one failing benchmark must not hide the others' figures
            traceback.print_exc()
            rec = {"benchmark": name, "title": name, "settings": {}, "figures": [], "ratios": [], "checks": {},
                   "seconds": round(time.perf_counter() - t1, 1), "passed": False,
                   "error": f"{type(err).__name__}: {err}", "provenance": provenance()}
        rec["quick"] = bool(args.quick)
        records.append(rec)
        log(f"=== {name}: {rec['seconds']:.0f} s, {'passed' if rec['passed'] else 'FAILED'}")
    wall = time.perf_counter() - t0
    previous = json.loads(args.out.read_text()).get("benchmarks", []) if args.out.is_file() else []
    before = {r.get("benchmark"): r for r in previous}
    records = [keep_other_profiles(r, before.get(r["benchmark"])) for r in records]
    done = {r["benchmark"] for r in records}
    kept = [dict(r, carried_over=True) for r in previous if r.get("benchmark") not in done]
    order = list(BENCHMARKS)
    everything = sorted(records + kept, key=lambda r: order.index(r["benchmark"]) if r["benchmark"] in order else 99)
    rows = [row for rec in everything for row in table_rows(rec)]
    print()
    print_table(rows)
    passed = all(r["passed"] for r in records) and not skipped
    carried = f"; carried over: {', '.join(r['benchmark'] for r in kept)}" if kept else ""
    print(f"\n{len(records)} benchmarks in {wall:.0f} s ({wall / 60:.1f} min); targets "
          f"{'all passed' if passed else 'NOT all passed'}{carried}")
    out = {
        "command": "python benchmarks/run_all.py " + " ".join(sys.argv[1:]),
        "quick": bool(args.quick), "threads": args.threads, "clock": args.clock,
        "wall_seconds": round(wall, 1), "passed": passed,
        "provenance": provenance(wall_time_s=wall),
        "table": flat(everything),
        "benchmarks": everything,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    log(f"wrote {args.out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
