"""Shared machinery of the benchmarks: options, thread limits, side-by-side timing, records and tables.

Every benchmark compares variants measured in one process, interleaved (each repetition runs every
variant once, in a rotated order) and summarised by the median, so that load from other processes
on the machine affects all variants alike. Its targets are ratios of such medians, never absolute
times. A benchmark module defines ``run(args) -> dict`` (a record, see :func:`record`) and can be
run alone: ``python benchmarks/bench_X.py [--quick] [--threads N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"
OPS = {">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t}


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions (a minute or two)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch / faiss / BLAS threads (default 1: comparable on a shared machine)")
    p.add_argument("--clock", choices=("cpu", "wall"), default=None,
                   help="what the ratios use: this process's CPU time (default with --threads 1: robust to other "
                        "processes on the machine) or wall time (default with more threads)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repetitions per variant (default: per bench)")
    p.add_argument("--json", type=Path, default=None, help="also write this benchmark's record to a JSON file")
    p.add_argument("--save", action="store_true",
                   help="also put this record into benchmarks/results.json (replacing this benchmark's entry)")
    return p


_LIMITS: list[Any] = []  # keeps the threadpoolctl limiter alive
CLOCK = {"name": "cpu"}


def configure(args: argparse.Namespace) -> None:
    """Apply --threads and --clock (every benchmark calls this before measuring)."""
    set_threads(args.threads)
    if getattr(args, "clock", None) is None:
        args.clock = "cpu" if args.threads == 1 else "wall"
    CLOCK["name"] = args.clock


def set_threads(n: int) -> None:
    """Run torch, faiss and every BLAS/OpenMP pool (numpy, scikit-learn) on n threads."""
    if n < 1:
        raise SystemExit(f"--threads must be >= 1, got {n}")
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    _LIMITS[:] = [threadpool_limits(n)]
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


class Samples:
    """Repeated measurements of one variant on both clocks; .value is the median on the chosen clock."""

    def __init__(self) -> None:
        self.cpu: list[float] = []
        self.wall: list[float] = []

    @property
    def primary(self) -> list[float]:
        return self.cpu if CLOCK["name"] == "cpu" else self.wall

    @property
    def value(self) -> float:
        return median(self.primary)

    def scaled(self, factor: float) -> "Samples":
        out = Samples()
        out.cpu, out.wall = [v * factor for v in self.cpu], [v * factor for v in self.wall]
        return out


@contextlib.contextmanager
def timer() -> Iterator[Samples]:
    """Measure one block on both clocks: `with timer() as s: ...`, then s.value."""
    s = Samples()
    w, c = time.perf_counter(), time.process_time()
    try:
        yield s
    finally:
        s.cpu.append(time.process_time() - c)
        s.wall.append(time.perf_counter() - w)


def interleave(variants: dict[str, Callable[[], Any]], repeats: int, warmup: bool = True,
               after: Callable[[str, Any], None] | None = None) -> dict[str, Samples]:
    """Times of each variant over `repeats` interleaved runs (the order rotates every repetition).

    warmup runs every variant once first (untimed). after(name, value) sees each timed run's return value.
    """
    names = list(variants)
    if warmup:
        for name in names:
            variants[name]()
    times = {name: Samples() for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            w, c = time.perf_counter(), time.process_time()
            value = variants[name]()
            times[name].cpu.append(time.process_time() - c)
            times[name].wall.append(time.perf_counter() - w)
            if after is not None:
                after(name, value)
    return times


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def spread(xs: list[float]) -> float:
    """Relative spread (max - min) / median of the repetitions, a noise indicator."""
    m = median(xs)
    return float((max(xs) - min(xs)) / m) if m > 0 and len(xs) > 1 else 0.0


def figure(name: str, value: float | Samples, unit: str = "s", note: str = "") -> dict:
    """A measured figure (no target); Samples give the median on the chosen clock plus both clocks' samples."""
    if isinstance(value, Samples):
        return {"name": name, "value": value.value, "unit": unit, "note": note, "clock": CLOCK["name"],
                "cpu_median": median(value.cpu), "wall_median": median(value.wall),
                "samples": [round(v, 6) for v in value.primary], "spread": round(spread(value.primary), 3)}
    return {"name": name, "value": float(value), "unit": unit, "note": note}


def ratio(name: str, value: float, op: str | None = None, target: float | None = None, note: str = "",
          unit: str = "x") -> dict:
    """A ratio of medians (or, unit "s", an absolute time), with its target (op '>=' or '<=') and pass/fail.

    Without op it is informational: passed is None and it never fails the benchmark.
    """
    out: dict[str, Any] = {"name": name, "value": float(value), "unit": unit, "note": note,
                           "target": None, "passed": None}
    if op is not None:
        out["target"] = f"{op} {_fmt(target, unit)}" if unit != "x" else f"{op} {target:g}"
        out["passed"] = bool(math.isfinite(value) and OPS[op](value, target))
    return out


def machine() -> dict:
    """The CPU, its core count and the load when measured (other processes: see the clock option)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_1_5_15": [round(v, 2) for v in load] if load else None}


def provenance(**extra: Any) -> dict:
    """satnb's provenance record (code version, torch, platform, time) plus the machine."""
    from satnb.core.store import provenance as satnb_provenance

    return satnb_provenance(device="cpu", machine=machine(), **extra)


def record(benchmark: str, title: str, settings: dict, figures: list[dict], ratios: list[dict],
           seconds: float, checks: dict | None = None, notes: str = "") -> dict:
    """What a benchmark's run() returns (and run_all collects into results.json)."""
    return {"benchmark": benchmark, "title": title, "settings": {**settings, "clock": CLOCK["name"]},
            "figures": figures, "ratios": ratios,
            "checks": checks or {}, "seconds": round(float(seconds), 1), "notes": notes,
            "passed": all(r["passed"] for r in ratios if r["passed"] is not None),
            "provenance": provenance(wall_time_s=seconds)}


def keep_other_profiles(new: dict, old: dict | None) -> dict:
    """`new` plus the profiles that `old` (the same benchmark's previous record) measured and `new` did not.

    A book build of smoke alone must not drop quick's figures: each figure, target and check carried over keeps
    when and at which commit it was measured (`measured_at`, `git_commit`). Records without profiles pass as they are.
    """
    profiles = (new.get("settings") or {}).get("profiles")
    if not old or profiles is None or new.get("error"):
        return new
    keep = [p for p in (old.get("settings") or {}).get("profiles") or [] if p not in profiles]
    if not keep:
        return new
    prov = old.get("provenance") or {}
    stamp = {"measured_at": prov.get("finished_at"), "git_commit": prov.get("git_commit")}

    def theirs(name: str) -> bool:
        return name.split(" ", 1)[0] in keep

    def carried(item: dict) -> dict:
        return {**stamp, **item}  # an item carried over before keeps its own stamp

    ratios = [carried(r) for r in old.get("ratios", []) if theirs(r["name"])]
    return {**new, "settings": {**new["settings"], "profiles": [*profiles, *keep]},
            "figures": new["figures"] + [carried(f) for f in old.get("figures", []) if theirs(f["name"])],
            "ratios": new["ratios"] + ratios,
            "checks": {**(new.get("checks") or {}),
                       **{k: carried(v) for k, v in (old.get("checks") or {}).items() if theirs(k)}},
            "passed": bool(new["passed"]) and all(r["passed"] for r in ratios if r["passed"] is not None)}


def save(rec: dict, path: Path = RESULTS) -> None:
    """Put this record into results.json in place of the same benchmark's previous one, and its table with it."""
    data = json.loads(path.read_text()) if path.is_file() else {"benchmarks": []}
    old = next((r for r in data.get("benchmarks", []) if r.get("benchmark") == rec["benchmark"]), None)
    rec = keep_other_profiles(rec, old)
    data["benchmarks"] = [r for r in data.get("benchmarks", []) if r.get("benchmark") != rec["benchmark"]] + [rec]
    data["table"] = flat(data["benchmarks"])  # the rows the Performance chapter reads: never older than the records
    path.write_text(json.dumps(data, indent=1) + "\n")


def flat(records: list[dict]) -> list[dict]:
    """One row per figure and target of every record (what the book's Performance page shows)."""
    rows = []
    for rec in records:
        when = (rec.get("provenance") or {}).get("finished_at")
        carried = bool(rec.get("carried_over"))
        for item in rec.get("figures", []) + rec.get("ratios", []):
            kind = "target" if item.get("target") else ("ratio" if item["unit"] == "x" else "figure")
            rows.append({"benchmark": rec["benchmark"], "kind": kind, "metric": item["name"], "value": item["value"],
                         "unit": item["unit"], "target": item.get("target"), "passed": item.get("passed"),
                         "note": item.get("note", ""), "measured_at": item.get("measured_at") or when,
                         "carried_over": carried or "measured_at" in item})
        if rec.get("error"):
            rows.append({"benchmark": rec["benchmark"], "kind": "error", "metric": "ERROR", "value": None,
                         "unit": "", "target": None, "passed": False, "note": rec["error"], "measured_at": when,
                         "carried_over": carried})
    return rows


def _fmt(value: float | None, unit: str) -> str:
    if value is None:  # a figure that could not be measured (its note says why)
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    if unit == "x":
        return f"{value:.3f}x"  # 3 decimals: a ratio of 1.996 must not print as 2.00 next to ">= 2 FAIL"
    if unit == "s" and value < 1:
        return f"{value * 1000:.1f} ms"
    if unit == "s" and value >= 120:
        return f"{value / 60:.1f} min"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.4g} {unit}"


def table_rows(rec: dict) -> list[list[str]]:
    """One row per figure and ratio: benchmark, metric, value, target, result."""
    rows = []
    for f in rec["figures"]:
        rows.append([rec["benchmark"], f["name"], _fmt(f["value"], f["unit"]), "", ""])
    for r in rec["ratios"]:
        verdict = "" if r["passed"] is None else ("PASS" if r["passed"] else "FAIL")
        rows.append([rec["benchmark"], r["name"], _fmt(r["value"], r["unit"]), r["target"] or "(info)", verdict])
    if rec.get("error"):
        rows.append([rec["benchmark"], "ERROR", rec["error"][:60], "", "FAIL"])
    return rows


def print_table(rows: list[list[str]], header: tuple = ("bench", "metric", "value", "target", "result")) -> None:
    widths = [max(len(str(r[i])) for r in [list(header)] + rows) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print(line)
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


class NotMeasurableHere(RuntimeError):
    """This machine cannot measure the benchmark (e.g. bf16 with no bf16 kernels): run_all keeps the previous record."""


def main(run: Callable[[argparse.Namespace], dict], description: str,
         extra: Callable[[argparse.ArgumentParser], None] | None = None) -> dict:
    """Parse options, set threads, run one benchmark, print its table (and write --json); exit 1 on a failed target."""
    p = parser(description)
    if extra is not None:
        extra(p)
    args = p.parse_args()
    configure(args)
    rec = run(args)
    rec["quick"] = bool(args.quick)
    print()
    print_table(table_rows(rec))
    print(f"\n{rec['benchmark']}: {rec['seconds']:.0f} s, targets {'passed' if rec['passed'] else 'FAILED'}")
    if args.json is not None:
        args.json.write_text(json.dumps(rec, indent=1))
    if args.save:
        save(rec)
    if not rec["passed"]:
        sys.exit(1)
    return rec


def flops_of(step: Callable[[], Any]) -> int:
    """FLOPs of one call (matrix products and convolutions, forward and backward), by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def log(*parts: object) -> None:
    """Progress line on stderr (the table goes to stdout)."""
    print(*parts, file=sys.stderr, flush=True)
