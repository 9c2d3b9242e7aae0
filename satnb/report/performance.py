"""The committed benchmark results (`benchmarks/results.json`) as the tables of the book's Performance page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from satnb.core.environment import shipped
from satnb.core.fingerprint import PACKAGE_DIR
from satnb.report.record import METHOD_NAMES

RESULTS = "benchmarks/results.json"
BOOK_BEGIN = "<!-- book-times: begin (scripts/sync_readme.py writes this from benchmarks/results.json) -->"
BOOK_END = "<!-- book-times: end -->"
BOOK_COMMANDS = {"smoke": "`SATNB_PROFILE=smoke bash scripts/book.sh`", "quick": "`bash scripts/book.sh` (the default)"}


def find_results(name: str = RESULTS) -> Path:
    """The committed benchmark results: searched upwards from the working directory, then from the satnb package."""
    starts = [Path.cwd(), PACKAGE_DIR]
    for start in starts:
        for folder in [start, *start.parents]:
            if (folder / name).is_file():
                return folder / name
    found = shipped(name)  # an installed wheel's copy
    if found is not None and found.is_file():
        return found
    raise FileNotFoundError(f"{name} not found above the working directory or the satnb package, nor installed "
                            "with it; it is committed with the repository: run from a checkout, install satnb "
                            "from its wheel, or create it with `python benchmarks/run_all.py`")


@dataclass
class Benchmarks:
    """One benchmark results file: its records by benchmark and its flat table of measurements."""

    command: str
    records: dict[str, dict]
    table: pd.DataFrame

    @classmethod
    def load(cls, path: str | Path | None = None) -> Benchmarks:
        """Read a results file written by `benchmarks/run_all.py` (default: the committed one)."""
        path = Path(path) if path is not None else find_results()
        data = json.loads(path.read_text())
        return cls(_without_folders(data.get("command", "?")), {r["benchmark"]: r for r in data["benchmarks"]},
                   pd.DataFrame(data["table"]))

    def provenance(self) -> pd.DataFrame:
        """When, where and with which code each benchmark ran."""
        rows = []
        for rec in self.records.values():
            p, s = rec.get("provenance") or {}, rec.get("settings") or {}
            m = p.get("machine") or {}
            load = m.get("load_average_1_5_15")
            rows.append({"benchmark": rec["benchmark"], "measured at (UTC)": _minute(p.get("finished_at")),
                         "git commit": _short_commit(p.get("git_commit")), "code": p.get("code_fingerprint"),
                         "torch": p.get("torch_version"), "cpu": m.get("cpu"), "cores": m.get("cores"),
                         "load (1, 5, 15 min)": ", ".join(f"{x:.2f}" for x in load) if load else "n/a",
                         # None: the benchmark left torch its default threads (the book build, as scripts/book.sh)
                         "threads": "default" if s.get("threads") is None else str(s["threads"]),
                         "clock": s.get("clock"), "quick": rec.get("quick"),
                         "carried over": bool(rec.get("carried_over")),
                         "run time (s)": None if rec.get("seconds") is None else round(float(rec["seconds"]), 1)})
        return pd.DataFrame(rows).set_index("benchmark")

    def targets(self) -> pd.DataFrame:
        """Every target (and error) row, formatted."""
        return show(self.table[self.table["kind"].isin(["target", "error"])])

    def n_met(self) -> tuple[int, int]:
        """(targets met, targets) over the whole file."""
        rows = self.table[self.table["kind"].isin(["target", "error"])]
        return int(rows["passed"].eq(True).sum()), len(rows)

    def of(self, benchmark: str) -> pd.DataFrame:
        """Every row of one benchmark, formatted (empty when it was not measured)."""
        return show(self.table[self.table["benchmark"] == benchmark])

    def sat_phases(self) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """SAT/MAT/ALP seconds per update by phase, and the projected time to each profile's reported point."""
        checks = (self.records.get("sat") or {}).get("checks") or {}
        phases = {name: c["phase_seconds_per_update_wall"] for name, c in checks.items()
                  if isinstance(c, dict) and "phase_seconds_per_update_wall" in c}
        phase_df = pd.DataFrame(phases).T.rename_axis("method").map(lambda s: fmt(s, "s")) if phases else None
        proj = checks.get("projection")
        proj_df = None
        if isinstance(proj, dict):
            proj_df = pd.DataFrame({p: row for p, row in proj.items() if isinstance(row, dict)}).T
            proj_df = proj_df.rename_axis("schedule").round(1)
        return phase_df, proj_df

    def train_throughput(self) -> pd.DataFrame | None:
        """Training images/s per method in fp32 and bf16, their ratio, and the bf16 step's share of the matmul peak."""
        rec = self.records.get("train") or {}
        rows = (rec.get("checks") or {}).get("throughput")
        if not isinstance(rows, dict) or not rows:
            return None
        out = pd.DataFrame([{
            "method": METHOD_NAMES.get(r.get("method"), key), "encoder": r.get("encoder"),
            "fp32 images/s": r.get("fp32_images_per_s"), "bf16 images/s": r.get("bf16_images_per_s"),
            "bf16 / fp32": fmt(r.get("bf16_over_fp32"), "x"), "GFLOP per step": r.get("gflop_per_step"),
            "bf16 GFLOP/s": r.get("bf16_gflops"),
            "% of bf16 peak": _percent(r.get("bf16_fraction_of_bf16_peak")),
        } for key, r in rows.items()])
        return out.set_index(["method", "encoder"])

    def training_step(self) -> pd.DataFrame | None:
        """The training loop's real step per method and encoder: images/s against its variants, peak share, phases."""
        rec = self.records.get("step") or {}
        rows = (rec.get("checks") or {}).get("rows")
        if not isinstance(rows, dict) or not rows:
            return None
        out = []
        for r in rows.values():
            phases = r.get("phases_s") or {}
            total = sum(phases.values()) or float("nan")
            out.append({
                "method": METHOD_NAMES.get(r.get("method"), r.get("method")), "encoder": r.get("encoder"),
                "batch": r.get("batch"), "in the loop": r.get("loop_images_per_s"),
                "images/s": r.get("real_images_per_s"),
                "NCHW aug. (before)": r.get("nchw_images_per_s"),
                "real / before": fmt(r.get("real_over_nchw"), "x"),
                "no aug.": r.get("noaug_images_per_s"),
                "other optimiser": r.get("fused_images_per_s"),
                "% of conv peak": _percent(r.get("fraction_of_conv_peak")),
                **{f"{k} share": _percent(v / total) for k, v in phases.items()},
            })
        return pd.DataFrame(out).set_index(["method", "encoder"])


def book_markdown(bench: Benchmarks) -> str:
    """The README's book build times: each profile's cold and warm build, its targets and its chapters' seconds."""
    rec = bench.records.get("book")
    if not rec:
        return "The book's build has not been measured (`python benchmarks/run_all.py --only book --book`).\n"
    checks, targets = rec.get("checks") or {}, {r["name"]: r for r in rec.get("ratios") or [] if r.get("target")}
    p = rec.get("provenance") or {}
    machine = (p.get("machine") or {}).get("cpu") or "?"
    lines = [f"Measured by `benchmarks/bench_book.py` at {_minute(p.get('finished_at'))} UTC, commit "
             f"{_short_commit(p.get('git_commit'))}, on {machine} (torch's default threads; "
             f"{'carried over from an earlier run' if rec.get('carried_over') else 'this results file'}):", "",
             "| book | cold cache | warm cache | targets |", "|---|---|---|---|"]
    chapters: dict[str, dict[str, float]] = {}
    for profile in (rec.get("settings") or {}).get("profiles") or []:
        cells = []
        for state in ("cold", "warm"):
            run = checks.get(f"{profile} {state}") or {}
            wall = run.get("wall_s")
            ok = "" if run.get("exit_code") == 0 else f", exit {run.get('exit_code')}"
            cells.append("n/a" if wall is None else f"{wall / 60:.1f} min ({wall:.0f} s{ok})")
            for chapter, sec in (run.get("notebook_seconds") or {}).items():
                chapters.setdefault(chapter, {})[f"{profile} {state}"] = sec
        aims = []
        for state in ("cold", "warm"):
            t = targets.get(f"{profile} book, {state} (wall)")
            if t:
                aims.append(f"{state} {t['target']}: {'met' if t['passed'] else 'not met'}")
        # a profile carried over from an earlier measurement says when and at which commit it was measured
        stamp = next((c for k, c in checks.items() if k.split(" ", 1)[0] == profile and c.get("measured_at")), None)
        when = f" (measured {_minute(stamp['measured_at'])} UTC, commit {_short_commit(stamp.get('git_commit'))})" \
            if stamp else ""
        lines.append(f"| {profile}: {BOOK_COMMANDS.get(profile, profile)}{when} | {cells[0]} | {cells[1]} | "
                     f"{'; '.join(aims) or 'none'} |")
    if chapters:
        runs = sorted({r for secs in chapters.values() for r in secs},
                      key=lambda r: (r.split()[0] != "smoke", r.split()[1] != "cold"))
        lines += ["", "Seconds per chapter (the build's own timing, about 1 s resolution):", "",
                  "| chapter | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
        lines += [f"| {chapter} | " + " | ".join(f"{secs[r]:.0f}" if r in secs else "-" for r in runs) + " |"
                  for chapter, secs in chapters.items()]
    return "\n".join(lines) + "\n"


def _minute(stamp: str | None) -> str:
    """An ISO time stamp to the minute ("2026-12-05 11:39"), "n/a" when missing."""
    return "n/a" if not stamp else stamp.replace("T", " ")[:16]


def _short_commit(commit: str | None) -> str:
    """A git commit as its first 10 hex digits, keeping a "+dirty" mark."""
    if not commit:
        return "n/a"
    head, plus, rest = commit.partition("+")
    return head[:10] + plus + rest


def _percent(fraction) -> str:
    return "n/a" if fraction is None or fraction != fraction else f"{100 * fraction:.1f}%"


def _without_folders(command: str) -> str:
    """A command line with each absolute path cut to its file name (no folder of the measuring machine on a page)."""
    return " ".join(Path(w).name if w.startswith("/") else w for w in command.split())


def fmt(value, unit: str) -> str:
    """Seconds as ms / s / min, ratios as 1.23x, anything else with its unit."""
    if value is None or value != value:
        return "n/a"
    if unit == "x":
        return f"{value:.3f}x"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else (f"{value:.2f} s" if value < 120 else f"{value / 60:.1f} min")
    return f"{value:.4g} {unit}"


def verdict(passed) -> str:
    """pass / FAIL for a target, blank for an informational row."""
    return "" if passed is None or passed != passed else ("pass" if passed else "FAIL")


def show(rows: pd.DataFrame) -> pd.DataFrame:
    """Benchmark rows as a readable table: value with its unit, target, pass/FAIL, note."""
    out = pd.DataFrame({
        "benchmark": rows["benchmark"], "metric": rows["metric"],
        "value": [fmt(v, u) for v, u in zip(rows["value"], rows["unit"])],
        "target": rows["target"].fillna(""), "result": [verdict(p) for p in rows["passed"]],
        "note": rows["note"].fillna(""),
    })
    return out.reset_index(drop=True)
