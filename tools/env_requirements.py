"""Print the `pip:` list of environment.yml as a requirements file (stdlib only: runs before any install).

Usage: python3 tools/env_requirements.py [environment.yml] > requirements.txt
"""

from __future__ import annotations

import sys
from pathlib import Path


def pip_requirements(path: Path) -> list[str]:
    """The entries of the ``- pip:`` block, in order."""
    reqs, in_pip, pip_indent = [], False, 0
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        if item == "- pip:":
            in_pip, pip_indent = True, indent
        elif in_pip and indent > pip_indent and item.startswith("- "):
            reqs.append(item[2:].strip())
        elif in_pip and indent <= pip_indent:
            in_pip = False
    if not reqs:
        raise SystemExit(f"{path}: no `- pip:` block found")
    return reqs


if __name__ == "__main__":
    print("\n".join(pip_requirements(Path(sys.argv[1] if len(sys.argv) > 1 else "environment.yml"))))
