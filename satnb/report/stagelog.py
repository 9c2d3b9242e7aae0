"""The reference run's stage log: its rows, each stage's total wall time, and the README's table of them.

`scripts/reference_run.sh` appends one row per stage it ran (or per job it ran ahead of its stage) to
results/<profile>-<dataset>.stages.tsv: the stage, its seconds, when it finished, the commit, the
threads. A stage resumed across sessions has several rows, marked after its name: "(interrupted)"
(a signal), "(failed)", "(stopped)" (killed outright, logged from its heartbeat at the next start,
to within a minute) or "(job <name>)" (one job run ahead of its stage). A stage's wall time is the
sum of its rows. A stage that must start again from nothing (its cache lost, or its code changed) has its
earlier rows marked superseded ("train (stopped; superseded)", by `supersede`): they stay in the log and the
README's table, but no longer count in the stage's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGE_ORDER = ("train", "sat", "baselines", "evaluate", "robustness", "proxy")
HEADER = "stage\tseconds\tfinished_at\tgit_commit\tthreads"
BEGIN = "<!-- stage-times: begin (scripts/sync_readme.py writes this) -->"
END = "<!-- stage-times: end -->"
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class LogRow:
    """One row of the stage log."""

    stage: str
    how: str  # "" (finished), "interrupted", "failed", "stopped" or "job <name>"; "...; superseded" or "superseded"
    seconds: float
    finished_at: str
    commit: str
    threads: str

    @property
    def superseded(self) -> bool:
        """Whether a later start of the stage from nothing replaced this row's work."""
        return self.how.rpartition("; ")[2] == SUPERSEDED

    @property
    def kind(self) -> str:
        """How the row's run ended: "finished", "interrupted", "failed", "stopped" or "job"."""
        how = self.how.removesuffix(SUPERSEDED).removesuffix("; ")
        return "job" if how.startswith("job ") else (how or "finished")


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
    """Each stage's wall time: the sum of its rows that no later start superseded."""
    out: dict[str, float] = {}
    for r in rows:
        if not r.superseded:
            out[r.stage] = out.get(r.stage, 0.0) + r.seconds
    return out


def supersede(text: str, stage: str) -> str:
    """The stage log's text with every row of `stage` so far marked superseded (the stage starts from nothing)."""
    rows = parse(text)
    if stage not in {r.stage for r in rows}:
        raise ValueError(f"the stage log has no row of stage {stage!r}; its stages: "
                         f"{', '.join(dict.fromkeys(r.stage for r in rows)) or 'none'}")
    lines = text.splitlines()
    for i, r in enumerate(rows, start=1):
        if r.stage == stage and not r.superseded:
            name = f"{stage} ({r.how}; {SUPERSEDED})" if r.how else f"{stage} ({SUPERSEDED})"
            lines[i] = "\t".join([name, *lines[i].split("\t")[1:]])
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    short = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
    return f"{short} ({seconds:,.0f} s)"


def _cells(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(rows: list[LogRow]) -> str:
    """The README's stage table: per stage its wall time, its rows (and how the stopped ones ended), code, last row."""
    if not rows:
        return "No stage of the remake has been logged yet.\n"
    stages = sorted({r.stage for r in rows}, key=lambda s: (STAGE_ORDER.index(s) if s in STAGE_ORDER else 99, s))
    out = ["| stage | wall time (sum of its rows) | rows | commits | last row finished | superseded rows |",
           "|---|---|---|---|---|---|"]
    for stage in stages:
        mine = [r for r in rows if r.stage == stage and not r.superseded]
        old = [r for r in rows if r.stage == stage and r.superseded]
        kinds: dict[str, int] = {}
        for r in mine:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        how = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
        commits = ", ".join(dict.fromkeys(r.commit for r in mine))
        gone = f"{len(old)}: {_duration(sum(r.seconds for r in old))}" if old else ""
        out.append(_cells(stage, _duration(sum(r.seconds for r in mine)) if mine else "no row since",
                          f"{len(mine)} ({how})" if mine else "0", commits, mine[-1].finished_at if mine else "", gone))
    current = [r for r in rows if not r.superseded]
    old_seconds = sum(r.seconds for r in rows if r.superseded)
    out.append(_cells("all logged", _duration(sum(r.seconds for r in current)), str(len(current)), "", "",
                      _duration(old_seconds) if len(current) < len(rows) else ""))
    return "\n".join(out) + "\n"
