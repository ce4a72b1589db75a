"""README's table of what each notebook downloads on a fresh machine (Colab), per profile.

Usage: python tools/download_table.py [--check]

Reads the items each notebook passes to ``data.profile_note(quick, full=...)`` in its setup cell, sizes
them with ``data.needs`` against an empty data directory, and rewrites the table between the README's
``<!-- downloads:begin -->`` and ``<!-- downloads:end -->`` markers.  ``--check`` exits 1 if it is stale.
"""

from __future__ import annotations

import ast
import sys
import tempfile
from pathlib import Path

from course_lib import data

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN, END = "<!-- downloads:begin -->", "<!-- downloads:end -->"


def notebooks() -> list[Path]:
    return sorted([*ROOT.glob("notebooks/[0-9]*.py"), *ROOT.glob("solutions/ex*.py")])


def note_items(source: str) -> tuple[list[str], list[str]]:
    """The items a notebook passes to ``data.profile_note(quick, full=...)`` (full defaults to quick)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "profile_note":
            quick = ast.literal_eval(node.args[0])
            full = next((ast.literal_eval(k.value) for k in node.keywords if k.arg == "full"), quick)
            return quick, full
    raise ValueError("no data.profile_note(...) call")


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else "< 1 MiB"


def table() -> str:
    rows = ["| notebook | reads | `quick` downloads | `full` downloads |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as empty:
        for path in notebooks():
            quick, full = note_items(path.read_text())
            sizes = [sum(n.bytes or 0 for n in data.needs(items, p, empty)) for p, items in (("quick", quick),
                                                                                            ("full", full))]
            reads = ", ".join(dict.fromkeys([*quick, *full]))
            shown = Path("exercises", path.name) if path.parent.name == "solutions" else path.relative_to(ROOT)
            rows.append(f"| `{shown.with_suffix('.ipynb')}` | {reads} | {_mib(sizes[0])} | "
                        f"{_mib(sizes[1])} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{table()}\n{END}{tail}"
    if "--check" in argv:
        if new != text:
            print("README's download table is stale: run python tools/download_table.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
