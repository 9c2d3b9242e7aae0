"""Rewrite every notebook's Colab install line: `repository.url` from _config.yml at the release tag `v<version>` of
pyproject.toml (the one place each is set), so a notebook installs the version it belongs to."""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Update notebooks/*.ipynb in place; print what changed."""
    url = re.search(r"^\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(), flags=re.M)
    if not url:
        print("no repository.url in _config.yml", file=sys.stderr)
        return 2
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    if not version:
        print("no version in pyproject.toml", file=sys.stderr)
        return 2
    url = f"{url.group(1)}@v{version.group(1)}"
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        changed = False
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            new = re.sub(r"satnb @ git\+\S+?\"", f'satnb @ git+{url}"', src)
            if new != src:
                cell["source"] = new.splitlines(keepends=True)
                changed = True
        if changed:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
