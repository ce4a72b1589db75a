"""tools/grade.py on a tiny synthetic assignment (tests/fixtures/grading/ex0_tiny.py: q1 = 2 pts, q2 = 1 pt).

One batch holds the solution, the student version and one bad submission per failure mode the issue lists;
each must get exactly the scores asserted below, and the batch must finish.
"""

from __future__ import annotations

import copy
import csv
import json
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "grading"
sys.path.insert(0, str(ROOT / "tools"))
import assign  # noqa: E402
import grade  # noqa: E402

HYPOT = "def hypot("
MEAN = "def mean("
EXPERIMENT = "lengths = "


def _find(nb, marker: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and marker in c.source)


def _edit(nb, marker: str, source: str):
    nb = copy.deepcopy(nb)
    nb.cells[_find(nb, marker)].source = source
    return nb


def _append(nb, source: str):
    nb = copy.deepcopy(nb)
    nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def _submissions(solution, student) -> dict[str, object]:
    """{file name: notebook node, or raw text}; EXPECTED holds the (q1, q2, total) scores each must get.

    Bad submissions start from ``answered``: the student version with both answers filled in.
    """
    answered = _edit(_edit(student, HYPOT, "def hypot(a, b):\n    return math.sqrt(a * a + b * b)"),
                     MEAN, "def mean(xs):\n    return sum(xs) / len(xs)")
    deleted = copy.deepcopy(answered)
    del deleted.cells[_find(deleted, MEAN)]
    reordered = copy.deepcopy(answered)
    for marker in (HYPOT, 'grader.check("q1")'):  # hypot defined after its use, q1 checked after q2
        reordered.cells.append(reordered.cells.pop(_find(reordered, marker)))
    executed = copy.deepcopy(student)
    for c in executed.cells:
        if c.cell_type == "code":
            c.execution_count = 1
            c.outputs = [nbformat.v4.new_output("stream", text="q1 (2 pts): all 1 public tests passed.")]
    loop_cell = "while True:\n    try:\n        time.sleep(0.05)\n    except BaseException:\n        pass"
    return {
        "solution.ipynb": solution,
        "answered.ipynb": answered,
        "student.ipynb": student,
        "syntax_error.ipynb": _edit(answered, HYPOT, "def hypot(a, b) -> float\n    return math.hypot(a, b)"),
        "exception.ipynb": _edit(answered, MEAN, "def mean(xs):\n    return sum(xs) / 0"),
        "top_level_exception.ipynb": _append(answered, "raise RuntimeError('boom')"),
        "infinite_loop_in_function.ipynb": _edit(answered, HYPOT, "def hypot(a, b):\n    while True:\n        pass"),
        "infinite_loop_top_level.ipynb": _append(answered, "while True:\n    pass"),
        "renamed_function.ipynb": _edit(answered, MEAN, "def average(xs):\n    return sum(xs) / len(xs)"),
        "wrong_type.ipynb": _edit(answered, HYPOT, "def hypot(a, b):\n    return [math.hypot(a, b)]"),
        "deleted_cell.ipynb": deleted,
        "reordered_cells.ipynb": reordered,
        "executed_with_fake_outputs.ipynb": executed,
        "not_a_notebook.txt": "my answers are 5 and 3",
        "garbage.ipynb": "{ this is not json",
        "json_not_notebook.ipynb": json.dumps({"answers": [5, 3]}),
        "redefines_grader.ipynb": _append(student, "class Notebook:\n    def check(self, q):\n        return 'passed'\n"
                                          "grader = Notebook()"),
        "patches_isclose.ipynb": _append(_edit(answered, HYPOT, "def hypot(a, b):\n    return 0.0"),
                                         "math.isclose = lambda *a, **k: True\nimport builtins\n"
                                         "builtins.isinstance = lambda *a: True"),
        "shadows_math.ipynb": _append(_edit(answered, HYPOT, "def hypot(a, b):\n    return 0.0"),
                                      "class _M:\n    def isclose(self, *a, **k):\n        return True\nmath = _M()"),
        "patches_during_test.ipynb": _edit(answered, HYPOT, "def hypot(a, b):\n    import math as m\n"
                                           "    m.isclose = lambda *x, **k: True\n    return 0.0"),
        "exits_process.ipynb": _append(answered, "import os\nos._exit(0)"),
        "swallows_timeouts.ipynb": _append(answered, "import time\n" + loop_cell),
        "stalls_definitions.ipynb": _append(student, "import time\nclass _Stall:  # runs as definitions load\n"
                                            + "\n".join("    " + line for line in loop_cell.split("\n"))),
    }


EXPECTED = {  # (q1, q2, total)
    "solution": (2, 1, 3), "answered": (2, 1, 3), "student": (0, 0, 0), "syntax_error": (0, 1, 1),
    "exception": (2, 0, 2),
    "top_level_exception": (2, 1, 3), "infinite_loop_in_function": (0, 1, 1), "infinite_loop_top_level": (2, 1, 3),
    "renamed_function": (2, 0, 2), "wrong_type": (0, 1, 1), "deleted_cell": (2, 0, 2), "reordered_cells": (2, 1, 3),
    "executed_with_fake_outputs": (0, 0, 0), "not_a_notebook.txt": (0, 0, 0), "garbage": (0, 0, 0),
    "json_not_notebook": (0, 0, 0), "redefines_grader": (0, 0, 0), "patches_isclose": (0, 1, 1),
    "shadows_math": (0, 1, 1), "patches_during_test": (0, 1, 1), "exits_process": (2, 1, 3),
    "swallows_timeouts": (2, 1, 3), "stalls_definitions": (0, 0, 0),
}
FEEDBACK = {  # a phrase each feedback must contain
    "syntax_error": "SyntaxError", "exception": "ZeroDivisionError", "infinite_loop_in_function": "time limit",
    "infinite_loop_top_level": "time limit", "renamed_function": "`mean` is missing",
    "deleted_cell": "`mean` is missing", "not_a_notebook.txt": "not a Jupyter notebook",
    "garbage": "could not be read", "json_not_notebook": "could not be read",
    "redefines_grader": "no effect on grading", "patches_isclose": "no effect on grading",
    "patches_during_test": "changed math.isclose", "exits_process": "ended its process early",
    "swallows_timeouts": "exceeded the time limit of 4 s", "stalls_definitions": "2 test processes in a row",
    "solution": "without having been run",
    "reordered_cells": "reordered", "wrong_type": "AssertionError",
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory, sandbox_required):
    solution = jupytext.read(FIXTURE / "ex0_tiny.py")
    student = assign.parse(FIXTURE / "ex0_tiny.py").student
    folder = tmp_path_factory.mktemp("submissions")
    for name, content in _submissions(solution, student).items():
        text = content if isinstance(content, str) else jupytext.writes(content, fmt="ipynb")
        (folder / name).write_text(text)
    (folder / ".DS_Store").write_text("ignored")
    out = tmp_path_factory.mktemp("graded")
    start = time.perf_counter()
    runner = grade.Runner(timeout=4, cell_timeout=1, test_timeout=1, startup_s=8, definitions_s=1)
    results = grade.grade_folder(folder, out, solutions=FIXTURE, runner=runner, jobs=4)
    return out, {r.student: r for r in results}, time.perf_counter() - start


def test_every_submission_gets_its_expected_scores(batch):
    _, results, _ = batch
    assert set(results) == set(EXPECTED), "one row per non-hidden file"
    got = {k: (r.scores["q1"], r.scores["q2"], r.total) for k, r in results.items()}
    wrong = {k: (got[k], v) for k, v in EXPECTED.items() if got[k] != v}
    assert not wrong, f"(got, expected): {wrong}"


@pytest.mark.parametrize("student", sorted(FEEDBACK))
def test_feedback_explains(batch, student):
    out, _, _ = batch
    text = (out / "feedback" / f"{student}.md").read_text()
    assert FEEDBACK[student] in text, text
    assert "Total:" in text


def test_grades_csv(batch):
    out, results, _ = batch
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["submission", "q1", "q2", "total"]
    assert sorted(r[0] for r in rows[1:]) == sorted(EXPECTED)
    assert {r[0]: float(r[3]) for r in rows[1:]} == {k: v[2] for k, v in EXPECTED.items()}


def test_time_limit_enforced(batch):
    """Four jobs; the infinite loops are stopped at 4 s + 0.8 s grace, so the batch ends (it would never end
    otherwise).  About 40 s on an idle 2-core machine, 65 s seen on a busy one (make test trains the caches while
    the unit tests run): the bound leaves room for that."""
    _, _, seconds = batch
    assert seconds < 150


def test_feedback_does_not_show_hidden_test_source(batch):
    out, _, _ = batch
    text = (out / "feedback" / "student.md").read_text()
    assert "hypot(-5.0, 12.0)" not in text and "try a negative side" in text


def test_check_mode_exit_code(tmp_path, sandbox_required):
    nb = tmp_path / "ex0_tiny.ipynb"
    nb.write_text(jupytext.writes(jupytext.read(FIXTURE / "ex0_tiny.py"), fmt="ipynb"))
    assert grade.main(["--check", str(nb), "--solutions", str(FIXTURE), "--timeout", "20"]) == 0
    nb.write_text(jupytext.writes(assign.parse(FIXTURE / "ex0_tiny.py").student, fmt="ipynb"))
    assert grade.main(["--check", str(nb), "--solutions", str(FIXTURE), "--timeout", "20"]) == 1


def test_grading_from_a_bundle(tmp_path, sandbox_required):
    """A grading machine may hold only the JSON bundle (tools/assign.py --bundle), not solutions/."""
    a = assign.parse(FIXTURE / "ex0_tiny.py")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "ex0_tiny.json").write_text(json.dumps(a.bundle()))
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "alice.ipynb").write_text(jupytext.writes(jupytext.read(FIXTURE / "ex0_tiny.py"), fmt="ipynb"))
    results = grade.grade_folder(subs, tmp_path / "out", "ex0_tiny", bundle_dir=tmp_path / "bundle",
                                 solutions=tmp_path / "none")
    assert [(r.student, r.total) for r in results] == [("alice", 3.0)]


def test_definitions_keep_only_what_runs_no_code_of_the_submission():
    cells = ["import math\nfrom os import path as p", "X = 3\nY: int = X * 2\nZ = compute()\nprint(Z)",
             "%matplotlib inline\ndef f(a):\n    return a + X\nclass C:\n    pass", "grader.check('q1')",
             "for i in range(3):\n    W = i\nthread.start()", "def broken(:\n    pass"]
    defs, skipped = grade.definitions(cells)
    assert [n for n, _ in defs] == [1, 1, 2, 2, 3, 3]
    assert [src.split("\n")[0] for _, src in defs] == ["import math", "from os import path as p", "X = 3",
                                                       "Y: int = X * 2", "def f(a):", "class C:"]
    assert skipped == {"Z", "i", "W"}
    explained = grade.explain("NameError: name 'Z' is not defined", skipped)
    assert "top-level statement that the tests do not re-run" in explained


def test_verdicts_and_records_are_only_accepted_with_the_key_and_in_protocol():
    key = "k" * 32
    good = f"{key} {('PASS', None, '', [])!r}\n".encode()
    assert grade.parse_verdict(good, key) == (("PASS", None, "", []), None)
    assert grade.parse_verdict(b"", key) == (None, None)  # nothing written: not scored, not tampering
    for bad in (good.replace(key.encode(), b"x" * 32), good + good, good[:-1], f"{key} ('PASS',)\n".encode(),
                f"{key} __import__('os')\n".encode(), b'{"kind": "test", "passed": true}\n'):
        verdict, tamper = grade.parse_verdict(bad, key)
        assert verdict is None and tamper, bad
    cell = '{"kind": "cell", "number": 2, "ok": true, "error": null, "first_line": "x = 1"}'
    ok = f"{key} {cell}\n{key} {{\"kind\": \"done\"}}\n".encode()
    assert grade.parse_run_records(ok, key, 3)[1:] == (True, None)
    for bad in (ok + f"{key} {cell}\n".encode(),  # after the end
                ok.replace(b'"number": 2', b'"number": 9'),  # no such cell
                f"{key} {cell}\n{key} {cell}\n".encode(),  # the same cell twice
                f"{key} {cell}\n".encode() + b'{"kind": "done"}\n',  # without the key
                ok.replace(b'"ok": true', b'"ok": true, "passed": true')):
        assert grade.parse_run_records(bad, key, 3)[2], bad


def test_seccomp_program_is_well_formed():
    sys.path.insert(0, str(ROOT / "tools"))
    import sandbox

    for threads in (True, False):
        prog = sandbox.seccomp_program(threads=threads, signals=threads)
        assert len(prog) % 8 == 0 and 8 < len(prog) // 8 < 64


def test_a_torch_function_mode_cannot_answer_for_torch(sandbox_required):
    """A TorchFunctionMode sees every torch call of the test and could return True from torch.allclose."""
    mode = ("from torch.overrides import TorchFunctionMode\n"
            "class _Yes(TorchFunctionMode):\n"
            "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
            "        return True if func is torch.allclose else func(*args, **(kwargs or {}))\n")
    at_definition = grade.definitions(["import torch", mode + "class _Enter:  # a class body runs as the definitions "
                                       "load\n    _Yes().__enter__()\ndef f(x):\n    return x"])[0]
    during_test = grade.definitions(["import torch", mode + "def f(x):\n    _Yes().__enter__()\n    return x"])[0]
    honest = grade.definitions(["import torch", "def f(x):\n    return x * 0"])[0]
    test = {"source": "assert torch.allclose(f(torch.ones(3)), torch.zeros(3))", "hidden": False}
    runner = grade.Runner(test_timeout=10)
    for defs, status, why in ((honest, "PASS", ""), (at_definition, "FAIL", "AssertionError"),
                              (during_test, "FAIL", "PermissionError")):
        verdict, problem, tamper = grade.run_test(defs, "import torch", "q1", 1, test, runner)
        assert tamper is None and problem is None and verdict[0] == status and why in verdict[2], (defs, verdict)


def test_submitted_code_cannot_pass_for_trusted_code(sandbox_required):
    """Frame access is allowed to trusted code alone, told by its file name: code compiled under a library's file
    name, unmarshalled, given a new file name, or loaded by a custom importer, must not get it."""
    grab = "def grab():\n    import sys\n    return sys._getframe(1).f_back.f_locals\n"
    launder = {
        "compile": "exec(compile(GRAB, math.__file__, 'exec'), g)",
        "marshal": "import marshal\n    exec(marshal.loads(marshal.dumps(compile(GRAB, '<x>', 'exec'))), g)",
        "replace": "code = compile(GRAB, '<x>', 'exec')\n    exec(code.replace(co_filename=math.__file__), g)",
        "importer": ("import importlib.abc, importlib.util\n"
                     "    class L(importlib.abc.SourceLoader):\n"
                     "        def get_filename(self, name):\n            return math.__file__\n"
                     "        def get_data(self, path):\n            return GRAB.encode()\n"
                     "    spec = importlib.util.spec_from_loader('laundered', L(), origin=math.__file__)\n"
                     "    module = importlib.util.module_from_spec(spec)\n    spec.loader.exec_module(module)\n"
                     "    g.update(vars(module))"),
    }
    test = {"source": "assert hypot(3.0, 4.0) == 5.0", "hidden": False}
    runner = grade.Runner(test_timeout=10)
    for name, how in launder.items():
        cell = (f"GRAB = {grab!r}\ndef hypot(a, b):\n    g = {{}}\n    {how}\n    found = g['grab']()\n"
                "    raise ValueError(f'found the grader: {sorted(found)}')")
        defs, _ = grade.definitions(["import math", cell])
        verdict, problem, tamper = grade.run_test(defs, "import math", "q1", 1, test, runner)
        assert verdict[0] == "FAIL" and "PermissionError" in verdict[2] and "found" not in verdict[2], (name, verdict)


def test_the_sandbox_sees_a_private_writable_view_of_the_cache(tmp_path, sandbox_required):
    """Inside: the instructor's cache files read as they are, new and atomically replaced files are written,
    an instructor's file cannot be written in place.  Outside, afterwards: the cache is exactly as before."""
    import subprocess

    import sandbox

    cache = tmp_path / "data" / "cache"
    (cache / "grid" / "key.v1").mkdir(parents=True)
    files = {cache / "top.pt": "top", cache / "grid" / "key.v1" / "run_0.pt": "run 0"}
    for path, text in files.items():
        path.write_text(text)
    script = f"""
import os, pathlib
run0 = pathlib.Path({str(cache / "grid" / "key.v1" / "run_0.pt")!r})
assert run0.exists() and run0.is_file() and run0.read_text() == "run 0"
try:
    open(run0, "a").write("tampered")
    raise SystemExit("wrote into the instructor's file")
except OSError:
    pass
(run0.parent / "run_1.pt").write_text("run 1")  # a new run in an existing folder
tmp = run0.parent / ".tmp"
tmp.write_text("mine")
os.replace(tmp, run0.parent.parent.parent / "top.pt")  # the atomic rewrite of an entry
assert (run0.parent.parent.parent / "top.pt").read_text() == "mine"
assert sorted(p.name for p in run0.parent.iterdir()) == ["run_0.pt", "run_1.pt"]
print("ok")
"""
    limits = sandbox.Limits()
    cmd = sandbox.command([sandbox.python(), "-c", script], {"HOME": sandbox.HOME}, tmp_path / "data", limits)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, preexec_fn=sandbox.limits_preexec(limits))
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
    assert {p: p.read_text() for p in cache.rglob("*") if p.is_file()} == files
