"""Small functions: none in course_lib/ or tools/ is longer than MAX_LINES lines, docstring excluded.

The lines of a function run from its ``def`` to its last line, nested functions included (these are also
measured on their own).  ALLOWED lists the functions still too long, each with its length today: the list
may only shrink, so an entry that is fixed (or gone) must be removed, and a listed function may not grow.
Run ``python tests/test_style.py`` to print every function over the limit.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 40
ALLOWED: dict[str, int] = {}  # "path::qualified name": lines today, for a function not yet split


def function_lengths(source: str) -> dict[str, int]:
    """Qualified name (``Class.method``, ``outer.inner``) -> lines from ``def`` to the end, minus its docstring."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = 0
                first = child.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                        and isinstance(first.value.value, str):
                    doc = first.end_lineno - first.lineno + 1
                lengths[prefix + child.name] = child.end_lineno - child.lineno + 1 - doc
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def all_lengths() -> dict[str, int]:
    """``path::name`` -> length, for every function in course_lib/ and tools/."""
    files = sorted((ROOT / "course_lib").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
    return {f"{path.relative_to(ROOT)}::{name}": n
            for path in files for name, n in function_lengths(path.read_text()).items()}


def test_function_lengths_counts_lines_without_the_docstring():
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_LINES))
    source = ('class A:\n    def f(self):\n        """Doc\n\n        more."""\n' + body
              + "def g():\n    def inner():\n        return 1\n    return inner\n")
    assert function_lengths(source) == {"A.f": MAX_LINES + 1, "g": 4, "g.inner": 2}


def test_no_long_functions_but_the_allowed_ones():
    lengths = all_lengths()
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES and name not in ALLOWED}
    assert not too_long, f"functions over {MAX_LINES} lines (split them into small helpers): {too_long}"
    stale = {name: lengths.get(name) for name, n in ALLOWED.items() if lengths.get(name, 0) <= MAX_LINES}
    assert not stale, f"now short enough, or gone: remove from ALLOWED {stale}"
    grown = {name: lengths[name] for name, n in ALLOWED.items() if lengths.get(name, 0) > n}
    assert not grown, f"allowed long functions may only shrink: {grown} (ALLOWED has {ALLOWED})"


if __name__ == "__main__":
    for name, n in sorted(all_lengths().items(), key=lambda item: -item[1]):
        if n > MAX_LINES:
            print(f"{n:4d}  {name}")


def test_readme_architecture_names_every_module():
    """The README's Architecture table lists every course_lib module and adaptation submodule by name."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    names = {p.stem for p in (ROOT / "course_lib").glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in (ROOT / "course_lib").iterdir() if (p / "__init__.py").exists()} - {"exercise_checks"}
    names |= {p.stem for p in (ROOT / "course_lib" / "adaptation").glob("*.py") if p.stem != "__init__"}
    missing = sorted(n for n in names if f"`{n}`" not in table)
    assert not missing, f"README's Architecture section does not mention {missing}"
