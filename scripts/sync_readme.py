"""Write the README's generated sections from their one sources: the known differences from the paper
(`satnb.report.differences`), the reference run's stage times (`satnb.report.stagelog`, from
results/cpu-cifar10.stages.tsv) and the book's build times (`satnb.report.performance`, from
benchmarks/results.json).

    python scripts/sync_readme.py          # rewrite the sections in place; prints whether each changed
    python scripts/sync_readme.py --check  # exit 1 when a section of the README differs from its source
    python scripts/sync_readme.py --supersede train  # the stage starts again from nothing (its cache was lost
                                                     # or its code changed): its rows so far stop counting
"""

import argparse
import sys
from pathlib import Path

from satnb.report import performance, stagelog
from satnb.report.differences import BEGIN, END, known_differences, readme_section, with_readme_section

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
STAGE_LOG = ROOT / "results" / "cpu-cifar10.stages.tsv"
BENCHMARKS = ROOT / "benchmarks" / "results.json"


def sections() -> dict[str, tuple[str, str, str]]:
    """Each generated section: name -> (begin marker, end marker, text from its source)."""
    return {"known differences": (BEGIN, END, known_differences()),
            "stage times": (stagelog.BEGIN, stagelog.END, stagelog.markdown(stagelog.load(STAGE_LOG))),
            "book build times": (performance.BOOK_BEGIN, performance.BOOK_END,
                                 performance.book_markdown(performance.Benchmarks.load(BENCHMARKS)))}


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or --check) the README's generated sections; 0 when they are current."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when a section is out of date")
    parser.add_argument("--supersede", metavar="STAGE", action="append", default=[],
                        help="mark the stage's logged rows superseded first (it starts again from nothing)")
    args = parser.parse_args(argv)
    if args.supersede and args.check:
        parser.error("--supersede changes the stage log; it cannot go with --check")
    for stage in args.supersede:
        try:
            STAGE_LOG.write_text(stagelog.supersede(STAGE_LOG.read_text(), stage))
        except (ValueError, FileNotFoundError) as err:
            parser.error(f"--supersede {stage}: {err}")
        print(f"{STAGE_LOG.name}: the rows of stage {stage} so far are superseded")
    text, stale = README.read_text(), []
    for name, (begin, end, section) in sections().items():
        if readme_section(text, begin, end) == section:
            print(f"README.md: {name} are current")
            continue
        stale.append(name)
        if not args.check:
            text = with_readme_section(text, section, begin, end)
            print(f"README.md: {name} rewritten")
    if stale and args.check:
        print(f"README.md: {', '.join(stale)} differ from their source; run python scripts/sync_readme.py",
              file=sys.stderr)
        return 1
    if stale:
        README.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
