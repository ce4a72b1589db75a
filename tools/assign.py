"""Generate the student exercises from solutions/ (otter-grader's assign markup, read by our own code).

Usage:
    python tools/assign.py                      # every solutions/ex*.py -> exercises/ + public tests
    python tools/assign.py solutions/ex4_kd_grid.py [...]
    python tools/assign.py --check              # exit 1 if exercises/ differs from a fresh generation
    python tools/assign.py --bundle build/autograder   # also write each autograder bundle (all tests) as JSON

For each solution ``solutions/NAME.py`` (a Jupytext py:percent notebook) it writes
* ``exercises/NAME.py`` and ``exercises/NAME.ipynb``: the student version (solutions replaced by ``...``,
  each question's test block replaced by one check cell ``grader.check("qN")``, hidden tests removed, an init
  cell ``grader = Notebook("NAME")`` after the imports cell, the Colab badge pointing at exercises/);
* ``course_lib/exercise_checks/NAME.py``: the public tests only, so that ``grader.check`` works wherever
  course_lib is installed (Colab's setup cell installs it from git; no test files need to travel).
Hidden tests never leave solutions/: ``tools/grade.py`` reads them from there (or from a ``--bundle``).

``exercises/GENERATED.sha256`` (``sha256sum -c`` format) records what was last written.  A generated file
whose content no longer matches it was edited by someone (a student working in the repository): it is never
overwritten.  Generation stops and names it; ``--force`` first moves it aside to ``NAME.mine-<time>.<ext>``.

Markup (otter-grader 7 assign format, v1), as Jupytext raw cells: ``# BEGIN QUESTION`` (YAML: name, points,
manual), ``# BEGIN TESTS`` / ``# END TESTS`` (each code cell between them is one test case; a cell starting
with ``\"\"\" # BEGIN TEST CONFIG`` … ``\"\"\" # END TEST CONFIG`` holding ``hidden: true`` is hidden),
``# END QUESTION``.  In code: ``# BEGIN SOLUTION [NO PROMPT]`` … ``# END SOLUTION``, a trailing ``# SOLUTION``,
``\"\"\" # BEGIN PROMPT`` … ``\"\"\" # END PROMPT``.  In markdown: ``<!-- BEGIN SOLUTION -->`` … ``<!-- END SOLUTION -->``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import pprint
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import yaml
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
CHECKS = ROOT / "course_lib" / "exercise_checks"
MANIFEST = EXERCISES / "GENERATED.sha256"
PLACEHOLDER = "<!-- grader init goes here -->"
ANSWER_HERE = "_Type your answer here, replacing this text._"
CHECK_CELL = re.compile(r"""^\s*grader\.check\(\s*["'](\w+)["']\s*\)\s*$""")
TEST_CONFIG = re.compile(r'^\s*"""\s*#\s*BEGIN TEST CONFIG\s*\n(.*?)\n\s*"""\s*#\s*END TEST CONFIG\s*\n?', re.S)


class MarkupError(ValueError):
    """The solution notebook's assign markup is malformed (the message names the file and cell)."""


@dataclass
class TestCase:
    source: str
    hidden: bool = False
    failure_message: str = ""


@dataclass
class Question:
    name: str
    points: float
    manual: bool = False
    tests: list[TestCase] = field(default_factory=list)


@dataclass
class Assignment:
    """A parsed solution notebook: its questions/tests, the student notebook, and what the grader needs."""

    name: str
    questions: dict[str, Question]
    student: NotebookNode
    imports: str  # the import statements of the imports cell: the grader re-runs them before the tests
    solution_lines: list[str]  # lines inside solution blocks (for the leak test)

    def autograded(self) -> list[Question]:
        return [q for q in self.questions.values() if not q.manual]

    def bundle(self, hidden: bool = True) -> dict:
        """JSON-able description of the tests (all, or public only)."""
        return {"name": self.name, "imports": self.imports,
                "questions": {q.name: {"points": q.points, "manual": q.manual,
                                       "tests": [{"source": t.source, "hidden": t.hidden,
                                                  "failure_message": t.failure_message}
                                                 for t in q.tests if hidden or not t.hidden]}
                              for q in self.questions.values()}}


def strip_code(source: str, collected: list[str]) -> str:
    """Student version of one code cell: solution blocks -> ``...``, prompts kept, markers dropped."""
    out: list[str] = []
    in_solution = in_prompt = False
    no_prompt = prompted = False
    indent = ""
    for line in source.split("\n"):
        s = line.strip()
        if re.fullmatch(r'"""\s*#\s*BEGIN PROMPT', s):
            in_prompt = prompted = True
            continue
        if re.fullmatch(r'"""\s*#\s*END PROMPT', s):
            in_prompt = False
            continue
        if in_prompt:
            out.append(line)
            continue
        m = re.fullmatch(r"#\s*BEGIN SOLUTION(\s+NO PROMPT)?", s)
        if m:
            if in_solution:
                raise MarkupError("nested # BEGIN SOLUTION")
            in_solution, no_prompt = True, bool(m.group(1)) or prompted
            indent = line[: len(line) - len(line.lstrip())]
            continue
        if re.fullmatch(r"#\s*END SOLUTION", s):
            if not in_solution:
                raise MarkupError("# END SOLUTION without # BEGIN SOLUTION")
            if not no_prompt:
                out.append(indent + "...")
            in_solution = prompted = False
            continue
        if in_solution:
            collected.append(line)
            continue
        m = re.fullmatch(r"(\s*)(.*?)\s*#\s*SOLUTION", line)
        if m and m.group(2):
            collected.append(line)
            lead, code = m.groups()
            lhs = re.match(r"([\w.\[\], ()]+?)\s*(?<![=!<>])=(?!=)", code)
            out.append(f"{lead}{lhs.group(1)} = ..." if lhs else f"{lead}...")
            continue
        prompted = False
        out.append(line)
    if in_solution or in_prompt:
        raise MarkupError("unterminated # BEGIN SOLUTION / PROMPT block")
    return "\n".join(out)


def strip_markdown(source: str, collected: list[str]) -> str:
    """<!-- BEGIN SOLUTION --> … <!-- END SOLUTION --> in markdown -> the 'type your answer' prompt."""
    pattern = re.compile(r"<!--\s*BEGIN SOLUTION\s*-->(.*?)<!--\s*END SOLUTION\s*-->", re.S)
    for m in pattern.finditer(source):
        collected.extend(m.group(1).split("\n"))
    return pattern.sub(ANSWER_HERE, source)


def _raw_marker(cell: NotebookNode) -> tuple[str, dict]:
    """('BEGIN QUESTION', {yaml}) for a marker raw cell, ('', {}) otherwise."""
    if cell.cell_type != "raw":
        return "", {}
    lines = cell.source.strip().split("\n")
    head = lines[0].strip().lstrip("#").strip()
    if head not in {"BEGIN QUESTION", "END QUESTION", "BEGIN TESTS", "END TESTS", "BEGIN SOLUTION",
                    "END SOLUTION"}:
        return "", {}
    body = yaml.safe_load("\n".join(lines[1:])) if len(lines) > 1 else None
    return head, body or {}


def _imports_cell(cells: list[NotebookNode]) -> int:
    """Index of the imports cell: the first code cell calling course_lib.setup(), else the first all-import cell."""
    for i, c in enumerate(cells):
        if c.cell_type == "code" and "course_lib.setup()" in c.source:
            return i
    for i, c in enumerate(cells):
        if c.cell_type == "code" and c.source.strip():
            try:
                body = ast.parse(c.source).body
            except SyntaxError:
                continue
            if body and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body):
                return i
    raise MarkupError("no imports cell (a code cell with `cfg = course_lib.setup()`, or only imports)")


def _import_statements(source: str) -> str:
    tree = ast.parse(source)
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def init_cell(name: str) -> NotebookNode:
    return new_code_cell(
        "# The check cells below each question run its public tests; hidden tests are added when it is graded.\n"
        "from course_lib.exercise_checks import Notebook\n\n"
        f"grader = Notebook(\"{name}\")")


def parse(path: Path) -> Assignment:
    """Read a solution notebook (py:percent or ipynb) and build its student version and tests."""
    path = Path(path)
    name = path.stem
    nb = jupytext.read(path)
    where = lambda i: f"{path.name}, cell {i + 1}"  # noqa: E731
    imports_at = _imports_cell(nb.cells)
    questions: dict[str, Question] = {}
    collected: list[str] = []
    cells: list[NotebookNode] = []
    question: Question | None = None
    in_tests = in_solution_cells = False
    for i, cell in enumerate(nb.cells):
        marker, conf = _raw_marker(cell)
        try:
            if marker == "BEGIN QUESTION":
                if question is not None:
                    raise MarkupError("BEGIN QUESTION inside a question")
                qname = str(conf.get("name", ""))
                if not re.fullmatch(r"q\d+", qname) or qname in questions:
                    raise MarkupError(f"question name must be a new q<N>, got {qname!r}")
                question = Question(qname, conf.get("points", 1), bool(conf.get("manual", False)))
                if not isinstance(question.points, int) or question.points <= 0:
                    raise MarkupError(f"{qname}: points must be a positive integer, got {question.points!r}")
                questions[qname] = question
            elif marker == "END QUESTION":
                if question is None or in_tests or in_solution_cells:
                    raise MarkupError("END QUESTION without an open question (or inside TESTS/SOLUTION)")
                if not question.manual and not question.tests:
                    raise MarkupError(f"{question.name} has no tests")
                question = None
            elif marker == "BEGIN TESTS":
                if question is None or in_tests:
                    raise MarkupError("BEGIN TESTS outside a question")
                in_tests = True
            elif marker == "END TESTS":
                if not in_tests:
                    raise MarkupError("END TESTS without BEGIN TESTS")
                in_tests = False
                cells.append(new_code_cell(f'grader.check("{question.name}")'))
            elif marker == "BEGIN SOLUTION":
                in_solution_cells = True
            elif marker == "END SOLUTION":
                if not in_solution_cells:
                    raise MarkupError("END SOLUTION without BEGIN SOLUTION")
                in_solution_cells = False
            elif in_tests:
                if cell.cell_type != "code":
                    raise MarkupError("only code cells (one test case each) may sit between BEGIN/END TESTS")
                m = TEST_CONFIG.match(cell.source)
                tconf = yaml.safe_load(m.group(1)) or {} if m else {}
                source = cell.source[m.end():] if m else cell.source
                if not source.strip():
                    raise MarkupError("empty test cell")
                ast.parse(source)
                question.tests.append(TestCase(source.strip("\n"), bool(tconf.get("hidden", False)),
                                               str(tconf.get("failure_message", ""))))
            elif in_solution_cells:
                collected.extend(cell.source.split("\n"))
                if cell.cell_type == "markdown":
                    answer = copy.deepcopy(cell)
                    answer.source = ANSWER_HERE
                    cells.append(answer)
                elif cell.cell_type == "code":
                    cells.append(new_code_cell("..."))
            elif cell.cell_type == "markdown" and PLACEHOLDER in cell.source:
                continue
            else:
                student = copy.deepcopy(cell)
                if cell.cell_type == "code":
                    student.source = strip_code(cell.source, collected)
                elif cell.cell_type == "markdown":
                    student.source = strip_markdown(cell.source, collected)
                    if i == 0:
                        student.source = student.source.replace(f"/blob/main/solutions/{name}.ipynb",
                                                                f"/blob/main/exercises/{name}.ipynb")
                cells.append(student)
                if i == imports_at:
                    cells.append(init_cell(name))
        except MarkupError as err:
            raise MarkupError(f"{where(i)}: {err}") from None
        except (SyntaxError, yaml.YAMLError) as err:
            raise MarkupError(f"{where(i)}: {type(err).__name__}: {err}") from None
    if question is not None or in_tests or in_solution_cells:
        raise MarkupError(f"{path.name}: unterminated question/tests/solution block at the end")
    if not questions:
        raise MarkupError(f"{path.name}: no # BEGIN QUESTION")
    student = copy.deepcopy(nb)
    for number, cell in enumerate(cells):  # stable ids, so that a regeneration is byte-identical
        cell["id"] = hashlib.sha1(f"{number}\n{cell.source}".encode()).hexdigest()[:8]
    student.cells = cells
    student.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    student.metadata["course_exercise"] = name
    imports = _import_statements(nb.cells[imports_at].source)
    return Assignment(name, questions, student, imports, [l for l in collected if l.strip()])


def public_tests_module(a: Assignment) -> str:
    """Source of course_lib/exercise_checks/NAME.py: the public tests, loaded by ``Notebook(NAME)``."""
    questions = {q.name: {"points": q.points, "tests": [t.source for t in q.tests if not t.hidden]}
                 for q in a.autograded()}
    return (f'"""Public tests of exercises/{a.name}.ipynb.  GENERATED by tools/assign.py from '
            f'solutions/{a.name}.py: do not edit."""\n\n'
            f"QUESTIONS = {pprint.pformat(questions, width=110, sort_dicts=False)}\n")


def outputs(a: Assignment) -> dict[Path, str]:
    """Every file the generation writes for one assignment, with its exact text."""
    return {EXERCISES / f"{a.name}.py": jupytext.writes(a.student, fmt="py:percent"),
            EXERCISES / f"{a.name}.ipynb": jupytext.writes(a.student, fmt="ipynb"),
            CHECKS / f"{a.name}.py": public_tests_module(a)}


def solution_sources(folder: Path | None = None) -> list[Path]:
    return sorted(Path(folder or SOLUTIONS).glob("ex*.py"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest() -> dict[str, str]:
    """Relative path -> sha256 of the text tools/assign.py last wrote there."""
    if not MANIFEST.exists():
        return {}
    return {rel: digest for digest, rel in (line.split("  ", 1) for line in MANIFEST.read_text().splitlines() if line)}


def manifest_text(entries: dict[str, str]) -> str:
    return "".join(f"{digest}  {rel}\n" for rel, digest in sorted(entries.items()))


def edited_by_someone(path: Path, recorded: dict[str, str]) -> bool:
    """True if ``path`` exists and is not byte-for-byte what the generator last wrote there."""
    return path.exists() and recorded.get(str(path.relative_to(ROOT))) != _sha256(path.read_text())


def move_aside(path: Path) -> Path:
    """Keep an edited file as NAME.mine-<time>.<ext> beside it; returns the new path."""
    kept = path.with_name(f"{path.stem}.mine-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
    path.rename(kept)
    return kept


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="*", type=Path, help="solution .py files (default: solutions/ex*.py)")
    ap.add_argument("--check", action="store_true", help="only compare with the files on disk")
    ap.add_argument("--bundle", type=Path, help="also write NAME.json with all tests (hidden ones too) here")
    ap.add_argument("--force", action="store_true",
                    help="move generated files someone edited aside (NAME.mine-<time>.<ext>) instead of stopping")
    args = ap.parse_args(argv)
    recorded = read_manifest()
    manifest = dict(recorded)
    stale = []
    for src in args.sources or solution_sources():
        try:
            a = parse(src)
        except MarkupError as err:
            print(f"markup error: {err}", file=sys.stderr)
            return 2
        if src.resolve().parent != SOLUTIONS:  # e.g. the tests' fixture: validate only, write nothing
            print(f"{a.name}: markup OK (outside solutions/, nothing written)")
            continue
        produced = outputs(a)
        manifest.update({str(path.relative_to(ROOT)): _sha256(text) for path, text in produced.items()})
        changed = {path: text for path, text in produced.items() if not (path.exists() and path.read_text() == text)}
        stale += changed
        if args.check or not changed:
            pass
        elif edited := [p for p in changed if edited_by_someone(p, recorded)]:
            if not args.force:
                print("not overwritten, because someone edited them since they were generated: "
                      + ", ".join(str(p.relative_to(ROOT)) for p in edited)
                      + ".\nCopy your work elsewhere (e.g. my_work/), or rerun with --force to keep each as "
                        "NAME.mine-<time>.<ext> beside the new version.", file=sys.stderr)
                return 3
            for p in edited:
                print(f"kept your edited {p.relative_to(ROOT)} as {move_aside(p).relative_to(ROOT)}")
        if not args.check:
            for path, text in changed.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                print(f"wrote {path.relative_to(ROOT)}")
        if args.bundle:
            args.bundle.mkdir(parents=True, exist_ok=True)
            (args.bundle / f"{a.name}.json").write_text(json.dumps(a.bundle(), indent=1, ensure_ascii=False))
        n_hidden = sum(t.hidden for q in a.questions.values() for t in q.tests)
        print(f"{a.name}: {len(a.questions)} questions, {sum(q.points for q in a.autograded())} autograded points, "
              f"{n_hidden} hidden tests")
    if manifest != recorded:
        stale.append(MANIFEST)
        if not args.check:
            MANIFEST.write_text(manifest_text(manifest))
    if args.check and stale:
        print("stale (run `make exercises`): " + ", ".join(str(p.relative_to(ROOT)) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
