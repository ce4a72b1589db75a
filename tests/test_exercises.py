"""exercises/ is a fresh, leak-free generation from solutions/, and its check cells work.

* exercises/ and course_lib/exercise_checks/ equal what tools/assign.py generates now (no stale or extra file);
* no solution line and no hidden test appears in anything a student receives (found by reading the solution
  source line by line, independently of the generator);
* the student version runs up to its last check cell without error, and every test (public and hidden) fails
  on it: it scores 0 on every autograded part; the solution's functions pass every test: full marks;
* the markup parser rejects malformed sources with the file and cell named.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import assign  # noqa: E402
from course_lib.exercise_checks import Notebook  # noqa: E402

SOURCES = assign.solution_sources()
FIXTURE = ROOT / "tests" / "fixtures" / "grading" / "ex0_tiny.py"
ALL = SOURCES + [FIXTURE]
TRIVIAL = {"pass", "else:", "try:", "except ValueError:", "...", "return", '"""', ")", "]", "}"}


@pytest.fixture(scope="module")
def parsed():
    return {src.stem: assign.parse(src) for src in ALL}


def test_there_are_exercises():
    assert (ROOT / "solutions" / "ex4_kd_grid.py").exists()


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_generation_is_fresh(src, parsed):
    for path, text in assign.outputs(parsed[src.stem]).items():
        assert path.exists() and path.read_text() == text, f"{path} is stale: run `make exercises`"


def test_no_extra_generated_files():
    names = {s.stem for s in SOURCES}
    exercises = ROOT / "exercises"
    generated = {p.stem for p in exercises.glob("*.py")} | {p.stem for p in exercises.glob("*.ipynb")}
    checks = {p.stem for p in (ROOT / "course_lib" / "exercise_checks").glob("*.py")} - {"__init__"}
    assert generated == names and checks == names


def _secret_lines(src: Path, also: list[str] = ()) -> set[str]:
    """Lines of solution blocks and hidden tests (read from the raw text, plus ``also``: the parser's own
    list of solution lines) that appear nowhere else in the source."""
    secret, public = set(), set()
    cells = re.split(r"^# %%.*$", src.read_text(), flags=re.M)
    for cell in cells:
        hidden = re.search(r'"""\s*# BEGIN TEST CONFIG(.*?)"""\s*# END TEST CONFIG', cell, re.S)
        hidden = hidden and "hidden: true" in hidden.group(1)
        in_solution = False
        for line in cell.split("\n"):
            s = line.strip()
            if re.fullmatch(r"# BEGIN SOLUTION( NO PROMPT)?", s):
                in_solution = True
            elif s == "# END SOLUTION":
                in_solution = False
            elif in_solution or hidden or s.endswith("# SOLUTION"):
                secret.add(re.sub(r"\s*# SOLUTION$", "", s))
            else:
                public.add(s)
    secret |= {line.strip() for line in also}
    return {s for s in secret - public if len(s) > 6 and s not in TRIVIAL and not s.startswith("#")
            and "TEST CONFIG" not in s and not s.startswith(("hidden:", "failure_message:"))}


@pytest.mark.parametrize("src", ALL, ids=lambda p: p.stem)
def test_no_solution_or_hidden_test_leaks(src, parsed):
    a = parsed[src.stem]
    secret = _secret_lines(src, a.solution_lines)
    assert secret, "the leak check found no solution lines at all"
    shipped = [c.source for c in a.student.cells] + [t for q in a.bundle(hidden=False)["questions"].values()
                                                     for t in (x["source"] for x in q["tests"])]
    if src in SOURCES:  # also read the committed files themselves
        shipped += [(ROOT / "exercises" / f"{a.name}.py").read_text()]
        cells = json.loads((ROOT / "exercises" / f"{a.name}.ipynb").read_text())["cells"]
        shipped += ["".join(c["source"]) for c in cells]
        module = importlib.import_module(f"course_lib.exercise_checks.{a.name}")
        shipped += [t for q in module.QUESTIONS.values() for t in q["tests"]]
    lines = {line.strip() for text in shipped for line in text.split("\n")}
    leaked = sorted(secret & lines)
    assert not leaked, f"{src.name}: solution/hidden lines in the student version: {leaked}"


@pytest.mark.parametrize("src", ALL, ids=lambda p: p.stem)
def test_student_structure(src, parsed):
    a = parsed[src.stem]
    cells = a.student.cells
    assert "/blob/main/solutions/" not in cells[0].source
    init = [i for i, c in enumerate(cells) if c.cell_type == "code" and f'grader = Notebook("{a.name}")' in c.source]
    assert len(init) == 1 and cells[init[0] - 1].cell_type == "code", "one init cell, right after the imports cell"
    checks = [m.group(1) for c in cells for m in re.finditer(r'grader\.check\("(\w+)"\)', c.source)]
    assert checks == [q.name for q in a.questions.values() if not q.manual]
    assert all("TEST CONFIG" not in c.source and c.cell_type != "raw" for c in cells)
    assert a.student.metadata["course_exercise"] == a.name


def _run_until_last_check(nb, name: str, checks: bool = True) -> tuple[dict, list]:
    """Execute a notebook's code cells in order up to its last check cell; return namespace and check results.

    ``checks=False`` skips the init and check cells (the test fixture has no public-test module in course_lib).
    """
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    last = max(i for i, s in enumerate(cells) if "grader.check(" in s)
    env: dict = {"__name__": "__main__"}
    results = []
    for source in cells[: last + 1]:
        if source.strip().startswith("grader.check("):
            if checks:
                results.append(eval(source.strip(), env))
        elif checks or "grader = Notebook(" not in source:
            exec(compile(source, f"<{name}>", "exec"), env)
    return env, results


def _all_tests(a: assign.Assignment):
    return [(q.name, i, t) for q in a.autograded() for i, t in enumerate(q.tests, 1)]


@pytest.mark.parametrize("src", ALL, ids=lambda p: p.stem)
def test_student_version_runs_and_scores_zero(src, parsed):
    a = parsed[src.stem]
    env, results = _run_until_last_check(a.student, a.name, checks=src in SOURCES)
    assert len(results) == (len(a.autograded()) if src in SOURCES else 0)
    assert all(not r.passed for r in results), "a check cell passes on the unanswered version"
    passed = []
    for qname, i, test in _all_tests(a):
        try:
            exec(test.source, dict(env))
            passed.append(f"{qname} test {i}")
        except Exception:
            pass
    assert not passed, f"{a.name}: tests pass on the unanswered student version: {passed}"


@pytest.mark.parametrize("src", ALL, ids=lambda p: p.stem)
def test_solution_passes_every_test(src, parsed):
    a = parsed[src.stem]
    solution = jupytext.read(src)
    solution.cells = [c for c in solution.cells if c.cell_type != "raw"]
    env: dict = {"__name__": "__main__"}
    last = max(i for i, c in enumerate(solution.cells) if c.source in {t.source for _, _, t in _all_tests(a)}
               or "TEST CONFIG" in c.source)
    for c in solution.cells[: last + 1]:
        if c.cell_type == "code" and "TEST CONFIG" not in c.source:
            exec(compile(c.source, f"<{a.name}>", "exec"), env)
    for qname, i, test in _all_tests(a):
        exec(compile(test.source, f"<{qname} test {i}>", "exec"), dict(env))
    if src in SOURCES:
        checks = Notebook(a.name).check_all(env)
        assert all(r.passed for r in checks), [repr(r) for r in checks if not r.passed]


def test_check_cell_reports_failures_and_passes():
    nb = Notebook("ex4_kd_grid")
    import torch

    bad = nb.check("q2", {"select_best": lambda d: None, "torch": torch})
    assert not bad.passed and "Test 1" in repr(bad) and "expected (3, 0.5)" in repr(bad)
    good = nb.check("q2", {"select_best": lambda d: max(d, key=d.get)})
    assert good.passed and "all 1 public tests passed" in repr(good)
    with pytest.raises(ValueError, match="no question"):
        nb.check("q9")
    with pytest.raises(ValueError, match="no public tests"):
        Notebook("ex99_missing")


def _source(question_yaml: str, body: str, tests: str = "assert f() == 1") -> str:
    return ("# %%\nimport math\n\n# %% [raw]\n# # BEGIN QUESTION\n" + question_yaml + "\n\n# %%\n" + body +
            "\n# %% [raw]\n# # BEGIN TESTS\n\n# %%\n" + tests + "\n\n# %% [raw]\n# # END TESTS\n\n"
            "# %% [raw]\n# # END QUESTION\n")


@pytest.mark.parametrize("text, message", [
    (_source("# name: q1\n# points: 1", "def f():\n    # BEGIN SOLUTION\n    return 1\n"), "unterminated"),
    (_source("# name: q1\n# points: 0", "def f():\n    return 1\n"), "positive integer"),
    (_source("# name: question one\n# points: 1", "def f():\n    return 1\n"), "q<N>"),
    (_source("# name: q1\n# points: 1", "def f():\n    return 1\n", tests="assert f( == 1"), "SyntaxError"),
    ("# %%\nimport math\n\n# %% [raw]\n# # BEGIN TESTS\n", "outside a question"),
    ("# %%\nimport math\n", "no # BEGIN QUESTION"),
])
def test_markup_errors(tmp_path, text, message):
    src = tmp_path / "ex9_broken.py"
    src.write_text(text)
    with pytest.raises(assign.MarkupError, match=re.escape(message)) as err:
        assign.parse(src)
    assert "ex9_broken.py" in str(err.value)


def test_solution_line_rules():
    collected: list[str] = []
    out = assign.strip_code("x = compute(1)  # SOLUTION\nfoo(2)  # SOLUTION\nkeep = 3", collected)
    assert out == "x = ...\n...\nkeep = 3" and len(collected) == 2
    out = assign.strip_code('    # BEGIN SOLUTION NO PROMPT\n    y = 1\n    # END SOLUTION\n    """ # BEGIN PROMPT\n'
                            '    y = ...\n    """ # END PROMPT', [])
    assert out == "    y = ..."


def test_generation_never_overwrites_an_edited_exercise(tmp_path, monkeypatch, capsys):
    """A student who works in exercises/ keeps their work: generation stops, or --force moves it aside."""
    for name, value in {"ROOT": tmp_path, "SOLUTIONS": tmp_path / "solutions", "EXERCISES": tmp_path / "exercises",
                        "CHECKS": tmp_path / "checks", "MANIFEST": tmp_path / "exercises" / "GENERATED.sha256"}.items():
        monkeypatch.setattr(assign, name, value)
    (tmp_path / "solutions").mkdir()
    src = tmp_path / "solutions" / "ex0_tiny.py"
    src.write_text((ROOT / "tests" / "fixtures" / "grading" / "ex0_tiny.py").read_text())
    assert assign.main([]) == 0 and assign.main(["--check"]) == 0
    student = tmp_path / "exercises" / "ex0_tiny.ipynb"
    work = student.read_text().replace('"source": []', '"source": ["my answer"]', 1) + "\n"
    student.write_text(work)
    src.write_text(src.read_text() + "\n# %% [markdown]\n# A new closing remark.\n")  # the instructor edits
    assert assign.main([]) == 3
    assert student.read_text() == work and "ex0_tiny.ipynb" in capsys.readouterr().err
    assert assign.main(["--force"]) == 0
    kept = list((tmp_path / "exercises").glob("ex0_tiny.mine-*.ipynb"))
    assert len(kept) == 1 and kept[0].read_text() == work
    assert "A new closing remark." in student.read_text() and assign.main(["--check"]) == 0
