"""The reference run's stage log: its rows, each stage's total wall time, and the README's table of them.

`scripts/reference_run.sh` appends one row per stage it ran (or per job it ran ahead of its stage) to
results/<profile>-<dataset>.stages.tsv: the stage, its seconds, when it finished, the commit, the
threads. A stage resumed across sessions has several rows, marked after its name: "(interrupted)"
(a signal), "(failed)", "(stopped)" (killed outright, logged from its heartbeat at the next start,
to within a minute) or "(job <name>)" (one job run ahead of its stage). A stage's wall time is the
sum of its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGE_ORDER = ("train", "sat", "baselines", "evaluate", "robustness", "proxy")
HEADER = "stage\tseconds\tfinished_at\tgit_commit\tthreads"
BEGIN = "<!-- stage-times: begin (scripts/sync_readme.py writes this) -->"
END = "<!-- stage-times: end -->"


@dataclass(frozen=True)
class LogRow:
    """One row of the stage log."""

    stage: str
    how: str  # "" (finished), "interrupted", "failed", "stopped" or "job <name>"
    seconds: float
    finished_at: str
    commit: str
    threads: str


def parse(text: str) -> list[LogRow]:
    """The rows of a stage log's text (its header line first); a malformed row raises, naming its line."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise ValueError(f"a stage log starts with the header {HEADER!r}; got {lines[:1]!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        cols = line.split("\t")
        if len(cols) != 5:
            raise ValueError(f"line {number} of the stage log has {len(cols)} columns, not 5: {line!r}")
        name, _, how = cols[0].partition(" (")
        try:
            seconds = float(cols[1])
        except ValueError:
            raise ValueError(f"line {number} of the stage log: seconds {cols[1]!r} is not a number") from None
        rows.append(LogRow(name, how.removesuffix(")"), seconds, cols[2], cols[3], cols[4]))
    return rows


def load(path: Path) -> list[LogRow]:
    """The rows of the stage log at `path` ([] where there is none)."""
    return parse(path.read_text()) if path.is_file() else []


def totals(rows: list[LogRow]) -> dict[str, float]:
    """Each stage's wall time: the sum of its rows."""
    out: dict[str, float] = {}
    for r in rows:
        out[r.stage] = out.get(r.stage, 0.0) + r.seconds
    return out


def _duration(seconds: float) -> str:
    short = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
    return f"{short} ({seconds:,.0f} s)"


def markdown(rows: list[LogRow]) -> str:
    """The README's stage table: per stage its wall time, its rows (and how the stopped ones ended), code, last row."""
    if not rows:
        return "No stage of the remake has been logged yet.\n"
    stages = sorted({r.stage for r in rows}, key=lambda s: (STAGE_ORDER.index(s) if s in STAGE_ORDER else 99, s))
    out = ["| stage | wall time (sum of its rows) | rows | commits | last row finished |", "|---|---|---|---|---|"]
    for stage in stages:
        mine = [r for r in rows if r.stage == stage]
        kinds: dict[str, int] = {}
        for r in mine:
            kind = "job" if r.how.startswith("job ") else (r.how or "finished")
            kinds[kind] = kinds.get(kind, 0) + 1
        how = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
        commits = ", ".join(dict.fromkeys(r.commit for r in mine))
        out.append(f"| {stage} | {_duration(sum(r.seconds for r in mine))} | {len(mine)} ({how}) | {commits} "
                   f"| {mine[-1].finished_at} |")
    out.append(f"| all logged | {_duration(sum(r.seconds for r in rows))} | {len(rows)} | | |")
    return "\n".join(out) + "\n"
