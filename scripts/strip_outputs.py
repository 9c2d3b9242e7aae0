"""Git's clean filter for the notebooks: a notebook on stdin, the same notebook without outputs on stdout.

`scripts/setup.sh` installs it (`git config filter.satnb-strip-outputs.clean`), and `.gitattributes` applies it to
`notebooks/*.ipynb`, so what JupyterLab's autosave writes into a notebook (outputs, execution counts) never
reaches a commit, while the file on disk keeps them. Standard library only: git runs it with any python3.
"""

from __future__ import annotations

import json
import sys


def stripped(text: str) -> str:
    """The notebook JSON `text` with every code cell's outputs and execution count cleared, in the repo's layout."""
    nb = json.loads(text)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    """Filter stdin to stdout; text that is not a notebook passes through unchanged (git must never lose it)."""
    text = sys.stdin.read()
    try:
        out = stripped(text)
    except (ValueError, AttributeError, TypeError):
        out = text
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
