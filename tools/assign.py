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
``\"\"\" # BEGIN PROMPT`` … ``\"\"\" # END PROMPT``.  In markdown: ``<!-- BEGIN SOLUTION -->`` …
``<!-- END SOLUTION -->``.
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
PROMPT_MARK = re.compile(r'"""\s*#\s*(BEGIN|END) PROMPT')
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


def _strip_solution_line(line: str) -> str | None:
    """``x = f(1)  # SOLUTION`` -> ``x = ...``, ``f(1)  # SOLUTION`` -> ``...``; None for any other line."""
    m = re.fullmatch(r"(\s*)(.*?)\s*#\s*SOLUTION", line)
    if not (m and m.group(2)):
        return None
    lead, code = m.groups()
    lhs = re.match(r"([\w.\[\], ()]+?)\s*(?<![=!<>])=(?!=)", code)
    return f"{lead}{lhs.group(1)} = ..." if lhs else f"{lead}..."


def strip_code(source: str, collected: list[str]) -> str:
    """Student version of one code cell: solution blocks -> ``...``, prompts kept, markers dropped."""
    out: list[str] = []
    in_solution = in_prompt = no_prompt = prompted = False
    indent = ""
    for line in source.split("\n"):
        s = line.strip()
        if prompt := PROMPT_MARK.fullmatch(s):
            in_prompt = prompt.group(1) == "BEGIN"
            prompted = prompted or in_prompt
            continue
        if in_prompt:
            out.append(line)
            continue
        if m := re.fullmatch(r"#\s*BEGIN SOLUTION(\s+NO PROMPT)?", s):
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
        stripped = _strip_solution_line(line)
        if stripped is not None:
            collected.append(line)
            out.append(stripped)
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


@dataclass
class _Walk:
    """What parsing has built so far, cell by cell: the questions, the student cells, the solution lines
    (for the leak test), and which question / TESTS / SOLUTION block is open."""

    name: str
    imports_at: int  # index of the imports cell: the grader's init cell follows it
    questions: dict[str, Question] = field(default_factory=dict)
    cells: list[NotebookNode] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)
    question: Question | None = None
    in_tests: bool = False
    in_solution_cells: bool = False

    def add(self, i: int, cell: NotebookNode, marker: str, conf: dict) -> None:
        """Take cell ``i`` (its raw ``marker`` and YAML ``conf`` as read by ``_raw_marker``)."""
        if marker:
            self._markers[marker](self, conf)
        elif self.in_tests:
            self.test_cell(cell)
        elif self.in_solution_cells:
            self.solution_cell(cell)
        elif not (cell.cell_type == "markdown" and PLACEHOLDER in cell.source):
            self.student_cell(i, cell)

    def begin_question(self, conf: dict) -> None:
        if self.question is not None:
            raise MarkupError("BEGIN QUESTION inside a question")
        qname = str(conf.get("name", ""))
        if not re.fullmatch(r"q\d+", qname) or qname in self.questions:
            raise MarkupError(f"question name must be a new q<N>, got {qname!r}")
        question = Question(qname, conf.get("points", 1), bool(conf.get("manual", False)))
        if not isinstance(question.points, int) or question.points <= 0:
            raise MarkupError(f"{qname}: points must be a positive integer, got {question.points!r}")
        self.questions[qname] = self.question = question

    def end_question(self, conf: dict) -> None:
        if self.question is None or self.in_tests or self.in_solution_cells:
            raise MarkupError("END QUESTION without an open question (or inside TESTS/SOLUTION)")
        if not self.question.manual and not self.question.tests:
            raise MarkupError(f"{self.question.name} has no tests")
        self.question = None

    def begin_tests(self, conf: dict) -> None:
        if self.question is None or self.in_tests:
            raise MarkupError("BEGIN TESTS outside a question")
        self.in_tests = True

    def end_tests(self, conf: dict) -> None:
        if not self.in_tests:
            raise MarkupError("END TESTS without BEGIN TESTS")
        self.in_tests = False
        self.cells.append(new_code_cell(f'grader.check("{self.question.name}")'))

    def begin_solution(self, conf: dict) -> None:
        self.in_solution_cells = True

    def end_solution(self, conf: dict) -> None:
        if not self.in_solution_cells:
            raise MarkupError("END SOLUTION without BEGIN SOLUTION")
        self.in_solution_cells = False

    _markers = {"BEGIN QUESTION": begin_question, "END QUESTION": end_question, "BEGIN TESTS": begin_tests,
                "END TESTS": end_tests, "BEGIN SOLUTION": begin_solution, "END SOLUTION": end_solution}

    def test_cell(self, cell: NotebookNode) -> None:
        """One test case: the cell's code, after an optional TEST CONFIG docstring (hidden, failure_message)."""
        if cell.cell_type != "code":
            raise MarkupError("only code cells (one test case each) may sit between BEGIN/END TESTS")
        m = TEST_CONFIG.match(cell.source)
        tconf = yaml.safe_load(m.group(1)) or {} if m else {}
        source = cell.source[m.end():] if m else cell.source
        if not source.strip():
            raise MarkupError("empty test cell")
        ast.parse(source)
        self.question.tests.append(TestCase(source.strip("\n"), bool(tconf.get("hidden", False)),
                                            str(tconf.get("failure_message", ""))))

    def solution_cell(self, cell: NotebookNode) -> None:
        """A cell between BEGIN/END SOLUTION raw cells: the student gets the answer prompt, or ``...``."""
        self.collected.extend(cell.source.split("\n"))
        if cell.cell_type == "markdown":
            answer = copy.deepcopy(cell)
            answer.source = ANSWER_HERE
            self.cells.append(answer)
        elif cell.cell_type == "code":
            self.cells.append(new_code_cell("..."))

    def student_cell(self, i: int, cell: NotebookNode) -> None:
        """Any other cell, solutions stripped; the Colab badge (cell 0) points at exercises/."""
        student = copy.deepcopy(cell)
        if cell.cell_type == "code":
            student.source = strip_code(cell.source, self.collected)
        elif cell.cell_type == "markdown":
            student.source = strip_markdown(cell.source, self.collected)
            if i == 0:
                student.source = student.source.replace(f"/blob/main/solutions/{self.name}.ipynb",
                                                        f"/blob/main/exercises/{self.name}.ipynb")
        self.cells.append(student)
        if i == self.imports_at:
            self.cells.append(init_cell(self.name))

    def finish(self, filename: str) -> None:
        """Every block closed, and at least one question."""
        if self.question is not None or self.in_tests or self.in_solution_cells:
            raise MarkupError(f"{filename}: unterminated question/tests/solution block at the end")
        if not self.questions:
            raise MarkupError(f"{filename}: no # BEGIN QUESTION")


def _student_notebook(nb: NotebookNode, cells: list[NotebookNode], name: str) -> NotebookNode:
    """The solution notebook's metadata with the student ``cells``, each with a stable id (so that a
    regeneration is byte-identical)."""
    student = copy.deepcopy(nb)
    for number, cell in enumerate(cells):
        cell["id"] = hashlib.sha1(f"{number}\n{cell.source}".encode()).hexdigest()[:8]
    student.cells = cells
    student.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    student.metadata["course_exercise"] = name
    return student


def parse(path: Path) -> Assignment:
    """Read a solution notebook (py:percent or ipynb) and build its student version and tests."""
    path = Path(path)
    nb = jupytext.read(path)
    walk = _Walk(path.stem, _imports_cell(nb.cells))
    for i, cell in enumerate(nb.cells):
        marker, conf = _raw_marker(cell)
        try:
            walk.add(i, cell, marker, conf)
        except MarkupError as err:
            raise MarkupError(f"{path.name}, cell {i + 1}: {err}") from None
        except (SyntaxError, yaml.YAMLError) as err:
            raise MarkupError(f"{path.name}, cell {i + 1}: {type(err).__name__}: {err}") from None
    walk.finish(path.name)
    imports = _import_statements(nb.cells[walk.imports_at].source)
    return Assignment(walk.name, walk.questions, _student_notebook(nb, walk.cells, walk.name), imports,
                      [line for line in walk.collected if line.strip()])


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


def _arguments(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="*", type=Path, help="solution .py files (default: solutions/ex*.py)")
    ap.add_argument("--check", action="store_true", help="only compare with the files on disk")
    ap.add_argument("--bundle", type=Path, help="also write NAME.json with all tests (hidden ones too) here")
    ap.add_argument("--force", action="store_true",
                    help="move generated files someone edited aside (NAME.mine-<time>.<ext>) instead of stopping")
    return ap.parse_args(argv)


def _make_room(changed: dict[Path, str], recorded: dict[str, str], force: bool) -> bool:
    """False (and why, on stderr) if a file to rewrite was edited since it was generated, unless ``force``
    moves each such file aside."""
    edited = [p for p in changed if edited_by_someone(p, recorded)]
    if edited and not force:
        print("not overwritten, because someone edited them since they were generated: "
              + ", ".join(str(p.relative_to(ROOT)) for p in edited)
              + ".\nCopy your work elsewhere (e.g. my_work/), or rerun with --force to keep each as "
                "NAME.mine-<time>.<ext> beside the new version.", file=sys.stderr)
        return False
    for p in edited:
        print(f"kept your edited {p.relative_to(ROOT)} as {move_aside(p).relative_to(ROOT)}")
    return True


def _write(changed: dict[Path, str]) -> None:
    for path, text in changed.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")


def _summary(a: Assignment) -> str:
    n_hidden = sum(t.hidden for q in a.questions.values() for t in q.tests)
    return (f"{a.name}: {len(a.questions)} questions, {sum(q.points for q in a.autograded())} autograded points, "
            f"{n_hidden} hidden tests")


def main(argv: list[str]) -> int:
    args = _arguments(argv)
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
        if not args.check and changed:
            if not _make_room(changed, recorded, args.force):
                return 3
            _write(changed)
        if args.bundle:
            args.bundle.mkdir(parents=True, exist_ok=True)
            (args.bundle / f"{a.name}.json").write_text(json.dumps(a.bundle(), indent=1, ensure_ascii=False))
        print(_summary(a))
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
