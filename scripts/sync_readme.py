"""Write the README's "Known differences from the paper" section from `satnb.report.differences` (its one source).

    python scripts/sync_readme.py          # rewrite the section in place; prints whether it changed
    python scripts/sync_readme.py --check  # exit 1 when the README's section differs from the source
"""

import argparse
import sys
from pathlib import Path

from satnb.report.differences import known_differences, readme_section, with_readme_section

README = Path(__file__).resolve().parents[1] / "README.md"


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or --check) the README's known-differences section; 0 when it is current."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the section is out of date")
    args = parser.parse_args(argv)
    text, section = README.read_text(), known_differences()
    if readme_section(text) == section:
        print("README.md: known differences are current")
        return 0
    if args.check:
        print("README.md: known differences differ from satnb.report.differences; run python scripts/sync_readme.py",
              file=sys.stderr)
        return 1
    README.write_text(with_readme_section(text, section))
    print("README.md: known differences rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
