"""Grade every submitted notebook in a folder, each in a sandbox: grades.csv plus one feedback file each.

Usage:
    python tools/grade.py SUBMISSIONS [--out build/grades] [--assignment ex4_kd_grid] [--timeout 300] [--jobs 1]
    python tools/grade.py --check solutions/ex4_kd_grid.ipynb     # one notebook; exit 1 unless full marks
    add --no-sandbox to grade without bubblewrap (unsafe; every feedback file says so)

Each file in SUBMISSIONS (not recursive, dotfiles skipped) is one submission; its name without ``.ipynb``
is the student id.  The assignment comes from ``--assignment``, else from the notebooks' metadata
(``course_exercise``, written by tools/assign.py), else from the file name.  Tests (public + hidden) are
read fresh from ``solutions/<assignment>.py`` (or ``--bundle`` JSON from ``tools/assign.py --bundle``).

Two phases, each in fresh sandboxed processes (tools/sandbox.py, tools/grade_child.py):

1. **run**: the notebook's code cells, in order, re-executed from source (outputs in the file are ignored),
   with a time limit per cell and for the whole notebook.  No test is ever sent to this process.  It gives
   the log (``logs/<id>.log``) and which cells failed.
2. **test**: one new process per test.  It reads its one test, seals itself, loads the notebook's definitions
   (imports, ``def``, ``class``, constant assignments; no other top-level statement runs), runs the test and
   writes one verdict.  A test's score comes only from that verdict.

Every record carries a per-process random key; a record without it, a malformed or unexpected record, or a
second verdict is tampering: the submission scores 0 and its feedback says why.  Whatever else goes wrong
(not a notebook, syntax errors, exceptions, infinite loops, deleted, renamed or reordered cells, a crash)
costs only the parts it breaks and is explained in the feedback; the batch always completes.

Writes ``OUT/grades.csv`` (submission, one column per question, total), ``OUT/feedback/<id>.md`` and the
notebook's own output in ``OUT/logs/<id>.log``.  Neither contains a hidden test's source.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import assign  # noqa: E402
import sandbox  # noqa: E402
from grade_child import is_grader_cell  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).resolve().parent / "grade_child.py"
CHECK_CALL = re.compile(r"""grader\.check\(\s*["'](\w+)["']\s*\)""")
TAMPER = [
    (re.compile(r"^\s*grader\s*=(?!=)(?!\s*Notebook\()", re.M), "reassigns `grader`"),
    (re.compile(r"^\s*(def|class)\s+(check|Notebook|CheckResult)\b", re.M), "redefines a check helper"),
    (re.compile(r"\bexercise_checks\b"), "touches course_lib.exercise_checks"),
    (re.compile(r"^\s*(torch|np|numpy|math|builtins|F|nn)\.[\w.]+\s*=(?!=)", re.M), "overwrites a library function"),
    (re.compile(r"\b(signal|sys\.modules|setattr\(\s*(builtins|torch|math|np))\b"), "touches signals/modules"),
]
STARTUP_S = 45.0  # a test process's allowance for starting Python and the assignment's imports
DEFINITIONS_S = 20.0  # for loading the notebook's definitions in a test process
STOPPED_MAX = 2  # after this many killed test processes in a row, a submission's other tests are not run
LOG_CAP = 1 << 20  # bytes of the notebook's output kept in its log
RECORDS_CAP = 1 << 20
UNSANDBOXED_NOTE = ("**Graded without a sandbox** (the instructor passed `--no-sandbox`): the notebook ran with the "
                    "instructor's permissions, files and network.")
UNDESCRIBED = "an exception of the submission's own class"


@dataclass
class Submission:
    """One file of the submissions folder, read as far as it can be."""

    path: Path
    student: str
    cells: list[str] | None = None  # code cells in submitted order; None when it is not a notebook
    exercise: str | None = None  # from the notebook's metadata
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    student: str
    scores: dict[str, float]
    total: float
    feedback: str
    log: str = ""


@dataclass(frozen=True)
class Runner:
    """How submitted code is run: sandboxed (the default) or not, under which limits."""

    sandboxed: bool = True
    limits: sandbox.Limits = sandbox.Limits()
    timeout: float = 300.0  # the notebook's cells, in all
    cell_timeout: float = 120.0
    test_timeout: float = 20.0
    startup_s: float = STARTUP_S
    definitions_s: float = DEFINITIONS_S


def read_submission(path: Path) -> Submission:
    """Parse a submission; a file that is not a readable notebook keeps ``cells = None`` and a note why."""
    student = path.name[: -len(".ipynb")] if path.name.endswith(".ipynb") else path.name
    sub = Submission(path, student)
    if path.suffix != ".ipynb":
        sub.notes.append(f"`{path.name}` is not a Jupyter notebook (.ipynb): nothing could be graded.")
        return sub
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        cells = [c for c in nb.cells]
        code = ["".join(c.source) if isinstance(c.source, list) else c.source for c in cells if c.cell_type == "code"]
    except Exception as err:  # noqa: BLE001 (any malformed file)
        sub.notes.append(f"`{path.name}` could not be read as a notebook ({type(err).__name__}: "
                         f"{str(err)[:200]}): nothing could be graded.")
        return sub
    try:
        nbformat.validate(nb)
    except Exception:  # noqa: BLE001
        sub.notes.append("The notebook's JSON does not fully follow the nbformat schema; graded anyway.")
    sub.cells, sub.exercise = code, nb.metadata.get("course_exercise")
    if code and all(c.get("execution_count") is None for c in cells if c.cell_type == "code"):
        sub.notes.append("The notebook was submitted without having been run; it was executed for grading.")
    return sub


def structure_notes(sub: Submission, questions: list[str]) -> list[str]:
    """Missing or reordered check cells, and attempts to change the grading."""
    notes = []
    calls = [m.group(1) for c in sub.cells for m in CHECK_CALL.finditer(c)]
    missing = [q for q in questions if q not in calls]
    if missing:
        notes.append(f"The check cell of {', '.join(missing)} is missing (deleted cell?). The hidden and public "
                     "tests were run anyway.")
    seen = [q for q in calls if q in questions]
    if seen != sorted(seen, key=questions.index):
        notes.append("Cells appear reordered; the notebook was run in the order submitted.")
    init = assign.init_cell("x").source.split("\n")
    code = "\n".join(line for c in sub.cells for line in c.split("\n") if line not in init)
    found = [why for pattern, why in TAMPER if pattern.search(code)]
    if found:
        notes.append("The notebook " + "; ".join(found) + ". This has no effect on grading: the tests run from "
                     "the autograder's own copy, in a fresh process, with fresh imports and library functions "
                     "restored.")
    return notes


# --- what the test processes load ---------------------------------------------------------------------------


def _static(node: ast.AST) -> bool:
    """An expression that runs no code of the submission's choosing: literals, names, attributes, operators."""
    if isinstance(node, (ast.Constant, ast.Name)):
        return True
    if isinstance(node, ast.Attribute):
        return _static(node.value)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_static(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or _static(k) for k in node.keys) and all(_static(v) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        return _static(node.operand)
    if isinstance(node, ast.BinOp):
        return _static(node.left) and _static(node.right)
    if isinstance(node, ast.BoolOp):
        return all(_static(v) for v in node.values)
    if isinstance(node, ast.Subscript):
        return _static(node.value) and _static(node.slice)
    if isinstance(node, ast.Slice):
        return all(p is None or _static(p) for p in (node.lower, node.upper, node.step))
    return False


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Assign):
        return all(isinstance(t, ast.Name) for t in node.targets) and _static(node.value)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.value is not None and _static(node.value)
    return False


def definitions(cells: list[str]) -> tuple[list[tuple[int, str]], set[str]]:
    """The top-level definitions of each code cell, as ``(cell number, source)``, and the names that the
    notebook binds only in statements the test processes do not run (for the feedback on ``NameError``)."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    kept, skipped = [], set()
    for number, source in enumerate(cells, 1):
        if is_grader_cell(source):
            continue
        try:
            tree = ast.parse(transform(source))
        except (SyntaxError, ValueError):
            continue  # phase 1 reports the syntax error
        for node in tree.body:
            if _is_definition(node):
                kept.append((number, ast.unparse(node)))
            else:
                skipped |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    defined = {n for _, src in kept for n in _bound_names(src)}
    return kept, skipped - defined


def imported_modules(defs: list[tuple[int, str]]) -> list[str]:
    """Every absolute module an ``import`` in the definitions names (``from a import b``: ``a`` and ``a.b``)."""
    names: list[str] = []
    for _, source in defs:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names += [node.module] + [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
    return list(dict.fromkeys(names))


def _bound_names(source: str) -> set[str]:
    node = ast.parse(source).body[0]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {t.id for t in targets}


# --- running the processes ----------------------------------------------------------------------------------


def _child_env(runner: Runner, home: str) -> dict[str, str]:
    """The environment of a graded process: a throwaway home, the quick profile unless the grader chose, offline."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": "/tmp" if runner.sandboxed else home,
           "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "XDG_CACHE_HOME": f"{home}/.cache", "PYTHONDONTWRITEBYTECODE": "1",
           "COURSE_PROFILE": os.environ.get("COURSE_PROFILE", "quick"), "COURSE_OFFLINE": "1",
           "COURSE_RUN_DIR": f"{home}/runs", "COURSE_DATA_DIR": str(_data_dir())}
    if os.environ.get("COURSE_THREADS"):
        env["COURSE_THREADS"] = os.environ["COURSE_THREADS"]
    return env


def _data_dir() -> Path:
    """The course's data directory as course_lib.config finds it (without importing torch here)."""
    env = os.environ.get("COURSE_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(cache) / "transfer-course" / "data").resolve()


def ensure_cache_dir() -> None:
    """``<data>/cache`` exists, so that the sandbox can give each notebook a private writable view of it."""
    try:
        if _data_dir().is_dir():
            (_data_dir() / "cache").mkdir(exist_ok=True)
    except OSError:
        pass  # a read-only data directory: notebooks then cannot cache anything, as the feedback shows


def _drain(stream, cap: int, into: list[bytes]) -> None:
    """Read ``stream`` to its end, keeping the first ``cap`` bytes (a flood cannot fill the grader's memory)."""
    kept = 0
    while chunk := stream.read(65536):
        if kept < cap:
            into.append(chunk[: cap - kept])
        kept += len(chunk)
    if kept > cap:
        into.append(f"\n[... {kept - cap} more bytes not kept]\n".encode())


def spawn(mode: str, spec: dict, runner: Runner, wall_s: float, keep_output: bool) -> tuple[bytes, bytes, bool]:
    """Run grade_child.py ``mode`` with ``spec``; return (records, output, timed out).  Never raises for
    anything the child does."""
    read_fd, write_fd = os.pipe()
    argv = [sandbox.python(), str(CHILD), mode, str(write_fd)]
    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
        if runner.sandboxed:
            cmd = sandbox.command(argv, _child_env(runner, sandbox.HOME), _data_dir(), runner.limits)
            env, cwd = None, None
        else:
            cmd, env, cwd = argv, _child_env(runner, scratch), scratch
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE if keep_output else subprocess.DEVNULL,
                                stderr=subprocess.STDOUT if keep_output else subprocess.DEVNULL, env=env, cwd=cwd,
                                pass_fds=(write_fd,), start_new_session=True,
                                preexec_fn=sandbox.limits_preexec(runner.limits))
        os.close(write_fd)
        records, output = [], []
        readers = [threading.Thread(target=_drain, args=(os.fdopen(read_fd, "rb"), RECORDS_CAP, records))]
        if keep_output:
            readers.append(threading.Thread(target=_drain, args=(proc.stdout, LOG_CAP, output)))
        for t in readers:
            t.start()
        try:
            proc.stdin.write(json.dumps(spec).encode())
            proc.stdin.close()
        except OSError:
            pass  # the child died before reading its spec: no records, explained by the caller
        timed_out = False
        try:
            proc.wait(timeout=wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for t in readers:
            t.join(timeout=30)
    return b"".join(records), b"".join(output), timed_out


def parse_run_records(raw: bytes, nonce: str, n_cells: int) -> tuple[list[dict], bool, str | None]:
    """Phase 1's records -> (cell records, finished, tampering or None)."""
    cells, done, last = [], False, 0
    text = raw.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines[-1]:
        return cells, done, "a partial record was written to the grader's channel"
    for line in lines[:-1]:
        if not line.startswith(nonce + " "):
            return cells, done, "a record without the grader's key was written to the grader's channel"
        try:
            rec = json.loads(line[len(nonce) + 1:])
        except json.JSONDecodeError:
            return cells, done, "a malformed record was written to the grader's channel"
        if done:
            return cells, done, "a record arrived after the notebook had finished"
        if rec == {"kind": "done"}:
            done = True
        elif (isinstance(rec, dict) and set(rec) == {"kind", "number", "ok", "error", "first_line"}
              and rec["kind"] == "cell" and type(rec["number"]) is int and last < rec["number"] <= n_cells
              and type(rec["ok"]) is bool and isinstance(rec["first_line"], str)
              and (rec["error"] is None) == rec["ok"] and (rec["ok"] or isinstance(rec["error"], str))):
            cells.append(rec)
            last = rec["number"]
        else:
            return cells, done, f"an unexpected record ({str(rec)[:80]}) was written to the grader's channel"
    return cells, done, None


def parse_verdict(raw: bytes, nonce: str) -> tuple[tuple | None, str | None]:
    """A test process's output -> (verdict or None when it wrote nothing, tampering or None)."""
    if not raw:
        return None, None
    text = raw.decode("utf-8", "replace")
    if not (text.startswith(nonce + " ") and text.endswith("\n") and text.count("\n") == 1):
        return None, "the test's channel held something other than the one verdict of the grader"
    try:
        verdict = ast.literal_eval(text[len(nonce) + 1:-1])
    except (ValueError, SyntaxError):
        return None, "a malformed verdict was written to the test's channel"
    ok = (type(verdict) is tuple and len(verdict) == 4 and verdict[0] in ("PASS", "FAIL")
          and (verdict[1] is None or isinstance(verdict[1], str)) and isinstance(verdict[2], str)
          and isinstance(verdict[3], list) and all(isinstance(s, str) for s in verdict[3]))
    return (verdict, None) if ok else (None, "an unexpected verdict was written to the test's channel")


def run_notebook(sub: Submission, runner: Runner) -> tuple[list[dict], str, str | None, str | None]:
    """Phase 1 -> (cell records, log, problem note, tampering)."""
    nonce = secrets.token_hex(16)
    spec = {"cells": sub.cells, "nonce": nonce, "cells_budget": runner.timeout, "cell_timeout": runner.cell_timeout,
            "seccomp": True}
    raw, output, timed_out = spawn("run", spec, runner, runner.timeout + 10.0 + 0.1 * runner.timeout, keep_output=True)
    cells, done, tamper = parse_run_records(raw, nonce, len(sub.cells))
    problem = None
    if timed_out:
        problem = f"The notebook exceeded the time limit of {runner.timeout:g} s and was stopped."
    elif not done and tamper is None:
        problem = "The notebook ended its process early (it exited, crashed or ran out of memory)."
    return cells, output.decode("utf-8", "replace"), problem, tamper


def run_test(defs: list[tuple[int, str]], imports: str, qname: str, number: int, test: dict,
             runner: Runner) -> tuple[tuple | None, str | None, str | None]:
    """Phase 2, one test -> (verdict, problem note, tampering)."""
    nonce = secrets.token_hex(16)
    spec = {"definitions": defs, "imports_of_definitions": imported_modules(defs), "imports": imports,
            "test": test["source"], "test_name": f"<{qname} test {number}>",
            "nonce": nonce, "test_timeout": runner.test_timeout, "definitions_budget": runner.definitions_s,
            "seccomp": True}
    wall = runner.startup_s + runner.definitions_s + runner.test_timeout
    raw, _, timed_out = spawn("test", spec, runner, wall, keep_output=False)
    verdict, tamper = parse_verdict(raw, nonce)
    problem = None
    if verdict is None and tamper is None:
        problem = ("stopped: it ran past the time limit and ignored the signal to stop" if timed_out
                   else "its process ended before it finished (it exited, crashed or ran out of memory)")
    return verdict, problem, tamper


# --- feedback --------------------------------------------------------------------------------------------------


def explain(error: str, skipped: set[str] = frozenset()) -> str:
    m = re.match(r"NameError: name '(\w+)' is not defined", error or "")
    if m and m.group(1) in skipped:
        return (f"{error} — `{m.group(1)}` is set by a top-level statement that the tests do not re-run (only imports, "
                "`def`, `class` and constant assignments are): compute it inside the function that needs it.")
    if m:
        return f"{error} — `{m.group(1)}` is missing: a deleted cell, a renamed function, or a cell that failed?"
    return error


def hidden_failure(verdict: tuple, skipped: set[str], names: set[str]) -> str:
    """What a student may learn of a failed hidden test: the kind of error, never its message (which could carry
    the test's own text), except a NameError's name when it is one of the notebook's own names."""
    etype, message = verdict[1], verdict[2]
    if etype == "TimeLimit":
        return "time limit reached (an infinite loop?)"
    if etype == "Tampering":
        return "the submission changed a library function, module or class during the test"
    if etype == "NameError":
        m = re.match(r"NameError: name '(\w+)' is not defined$", message)
        if m and m.group(1) in names | skipped:
            return explain(message, skipped)
    return etype or UNDESCRIBED


def redact(text: str, secret_lines: list[str]) -> tuple[str, bool]:
    """Replace every hidden-test line (16+ characters) found in ``text``; report whether any was."""
    found = False
    for line in secret_lines:
        if line in text:
            text, found = text.replace(line, "[hidden test line redacted]"), True
    return text, found


@dataclass
class _Run:
    """What running one submission gave: notes for the student, the notebook's cell records and log, tampering
    seen, each test's (verdict, problem) by (question, number), and the names its skipped/kept cells bind."""

    notes: list[str]
    cells: list[dict] = field(default_factory=list)
    log: str = ""
    tampering: list[str] = field(default_factory=list)
    verdicts: dict[tuple[str, int], tuple] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


def _execute(sub: Submission, bundle: dict, auto: dict, runner: Runner) -> _Run:
    """Run the notebook (phase 1), then every test of ``auto`` against its definitions (phase 2)."""
    run = _Run(list(sub.notes))
    if sub.cells is None:
        return run
    if sub.exercise and sub.exercise != bundle["name"]:
        run.notes.append(f"This notebook is exercise `{sub.exercise}`, graded as `{bundle['name']}`.")
    run.notes += structure_notes(sub, list(auto))
    run.cells, run.log, problem, tamper = run_notebook(sub, runner)
    if problem:
        run.notes.append(problem)
    if tamper:
        run.tampering.append(f"while the notebook ran: {tamper}")
    defs, run.skipped = definitions(sub.cells)
    run.names = {n for _, src in defs for n in _bound_names(src)}
    patched = _run_tests(defs, bundle["imports"], auto, runner, run)
    if patched:
        run.notes.append("Loading the notebook's definitions changed " + ", ".join(f"`{p}`" for p in patched[:5])
                         + "; it was undone before each test.")
    return run


def _run_tests(defs: list[tuple[int, str]], imports: str, auto: dict, runner: Runner, run: _Run) -> list[str]:
    """Each test in its own process, into ``run.verdicts`` and ``run.tampering``; returns what loading the
    definitions patched (undone before each test)."""
    patched: list[str] = []
    stopped = 0  # test processes in a row that ignored the time limit and had to be killed
    for qname, q in auto.items():
        for number, test in enumerate(q["tests"], 1):
            if stopped >= STOPPED_MAX:
                run.verdicts[(qname, number)] = (None, f"not run: {STOPPED_MAX} test processes in a row had to be "
                                                       "stopped (code that ignores the time limit?)")
                continue
            verdict, problem, tamper = run_test(defs, imports, qname, number, test, runner)
            stopped = stopped + 1 if problem and problem.startswith("stopped") else 0
            run.verdicts[(qname, number)] = (verdict, problem)
            if tamper:
                run.tampering.append(f"during {qname} test {number}: {tamper}")
            if verdict is not None:
                patched += [p for p in verdict[3] if p not in patched]
    return patched


def _score(sub: Submission, qname: str, q: dict, run: _Run) -> tuple[float, list[str]]:
    """A question's score (its points shared equally by its tests) and one feedback row per test."""
    weight = q["points"] / len(q["tests"])
    got, rows = 0.0, []
    for number, test in enumerate(q["tests"], 1):
        kind = "hidden" if test["hidden"] else "public"
        verdict, problem = run.verdicts.get((qname, number), (None, None))
        if sub.cells is None:
            rows.append(f"- {kind} test {number}: not run (not a notebook)")
        elif verdict is None:
            rows.append(f"- {kind} test {number}: **not scored** — {problem or 'see notes'}")
        elif verdict[0] == "PASS":
            got += weight
            rows.append(f"- {kind} test {number}: passed")
        else:
            hint = f" (hint: {test['failure_message']})" if test.get("failure_message") else ""
            why = hidden_failure(verdict, run.skipped, run.names) if test["hidden"] \
                else explain(verdict[2], run.skipped)
            rows.append(f"- {kind} test {number}: **failed** — {why}{hint}")
    return round(got, 2), rows


def _summary_lines(bundle: dict, auto: dict, scores: dict[str, float], total: float) -> list[str]:
    """The total, the score table, and the questions graded by hand."""
    possible = sum(q["points"] for q in auto.values())
    lines = [f"**Total: {total:g} / {possible:g}**", "", "| question | score | out of |", "|---|---|---|",
             *(f"| {k} | {scores[k]:g} | {q['points']:g} |" for k, q in auto.items()), ""]
    manual = [k for k, q in bundle["questions"].items() if q["manual"]]
    if manual:
        lines += [f"Graded by hand, not included above: {', '.join(manual)}.", ""]
    return lines


def _detail_lines(run: _Run, body: list[str]) -> list[str]:
    """The notes, the cells that failed, and each question's test rows (``body``; withheld after tampering)."""
    lines = ["## Notes", "", *(f"- {n}" for n in run.notes), ""] if run.notes else []
    failed_cells = [r for r in run.cells if not r["ok"]]
    if failed_cells:
        lines += ["## Cells that failed when the notebook was run", "",
                  *(f"- code cell {r['number']} (`{r['first_line']}`): {explain(r['error'])}"
                    for r in failed_cells), ""]
    if run.tampering:
        return lines + ["## Tests", "", "Not reported: the submission tampered with grading.", ""]
    return lines + body


def grade(sub: Submission, bundle: dict, runner: Runner) -> Result:
    """Score one submission; never raises for anything the submission does."""
    auto = {k: q for k, q in bundle["questions"].items() if not q["manual"]}
    run = _execute(sub, bundle, auto, runner)
    scores: dict[str, float] = {}
    body: list[str] = []
    for qname, q in auto.items():
        scores[qname], rows = _score(sub, qname, q, run)
        body += [f"## {qname}: {scores[qname]:g} / {q['points']:g}", "", *rows, ""]
    if run.tampering:
        scores = {q: 0.0 for q in auto}
        run.notes.insert(0, "**Tampering: the submission wrote to the grader's result channels ("
                         + "; ".join(run.tampering[:3]) + "). It scores 0.** Results can only come from the "
                         "grader's own test processes.")
    total = round(sum(scores.values()), 2)
    lines = [f"# {bundle['name']} · feedback for {sub.student}", ""]
    if not runner.sandboxed:
        lines += [UNSANDBOXED_NOTE, ""]
    lines += _summary_lines(bundle, auto, scores, total) + _detail_lines(run, body)
    secret = [s.strip() for q in auto.values() for t in q["tests"] if t["hidden"]
              for s in t["source"].split("\n") if len(s.strip()) >= 16]
    feedback, hit = redact("\n".join(lines), secret)
    log, hit_log = redact(run.log, secret)
    if hit or hit_log:
        feedback += "\n- Some text that matches a hidden test was removed from this feedback or the log.\n"
    return Result(sub.student, scores, total, feedback, log)


def load_bundle(name: str, solutions: Path, bundle_dir: Path | None) -> dict:
    if bundle_dir is not None:
        return json.loads((bundle_dir / f"{name}.json").read_text())
    return assign.parse(solutions / f"{name}.py").bundle()


def pick_assignment(subs: list[Submission], solutions: Path, bundle_dir: Path | None) -> str:
    """The exercise most submissions say they are (metadata, else a file name naming a known exercise)."""
    known = {p.stem for p in (bundle_dir.glob("*.json") if bundle_dir else assign.solution_sources(solutions))}
    votes = Counter()
    for s in subs:
        if s.exercise in known:
            votes[s.exercise] += 1
        else:
            votes.update(k for k in known if k in s.path.name)
    if not votes:
        raise SystemExit(f"cannot tell which exercise these are; pass --assignment (one of {sorted(known)})")
    return votes.most_common(1)[0][0]


def check_runner(runner: Runner) -> None:
    """Stop with how to install a sandbox, unless one works here or the instructor opted out."""
    if runner.sandboxed:
        try:
            sandbox.probe(runner.limits)
        except sandbox.SandboxUnavailable as err:
            raise SystemExit(f"grade: {err}") from None
    else:
        print("grade: WARNING: --no-sandbox: submissions run with your permissions, files and network; "
              "every feedback file says so.", file=sys.stderr)


def grade_folder(folder: Path, out: Path, assignment: str | None = None, solutions: Path = assign.SOLUTIONS,
                 bundle_dir: Path | None = None, runner: Runner = Runner(), jobs: int = 1) -> list[Result]:
    """Grade every file in ``folder``; write grades.csv, feedback/ and logs/ under ``out``."""
    folder, out = Path(folder).resolve(), Path(out).resolve()
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    subs = [read_submission(p) for p in paths]
    name = assignment or pick_assignment(subs, solutions, bundle_dir)
    bundle = load_bundle(name, solutions, bundle_dir)
    check_runner(runner)
    ensure_cache_dir()

    def run(sub: Submission) -> Result:
        try:
            return grade(sub, bundle, runner)
        except Exception as err:  # noqa: BLE001 (a grader bug must not stop the batch)
            zero = {k: 0.0 for k, q in bundle["questions"].items() if not q["manual"]}
            return Result(sub.student, zero, 0.0, f"# {bundle['name']} · feedback for {sub.student}\n\n"
                          f"Internal grading error ({type(err).__name__}: {err}); ask the instructor to grade by hand.")
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        results = list(pool.map(run, subs))
    for sub_dir in ("feedback", "logs"):
        (out / sub_dir).mkdir(parents=True, exist_ok=True)
    questions = [k for k, q in bundle["questions"].items() if not q["manual"]]
    with open(out / "grades.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", *questions, "total"])
        for r in results:
            writer.writerow([r.student, *(f"{r.scores[q]:g}" for q in questions), f"{r.total:g}"])
            (out / "feedback" / f"{r.student}.md").write_text(r.feedback + "\n", encoding="utf-8")
            (out / "logs" / f"{r.student}.log").write_text(r.log, encoding="utf-8")
    return results


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("submissions", nargs="?", type=Path)
    ap.add_argument("--check", type=Path, help="grade this one notebook, print its feedback")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "grades")
    ap.add_argument("--assignment")
    ap.add_argument("--solutions", type=Path, default=assign.SOLUTIONS)
    ap.add_argument("--bundle", type=Path, help="folder of NAME.json bundles (tools/assign.py --bundle)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for running the notebook's cells (default 300)")
    ap.add_argument("--cell-timeout", type=float, default=120)
    ap.add_argument("--test-timeout", type=float, default=20, help="seconds per test (default 20)")
    ap.add_argument("--memory-gb", type=float, default=6, help="address-space limit per process (default 6)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-sandbox", action="store_true",
                    help="UNSAFE: run submissions without bubblewrap, as you; printed in every feedback file")
    args = ap.parse_args(argv)
    limits = sandbox.Limits(cpu_s=int(2 * max(args.timeout, args.test_timeout + DEFINITIONS_S + STARTUP_S)) + 60,
                            memory_bytes=int(args.memory_gb * (1 << 30)))
    runner = Runner(not args.no_sandbox, limits, args.timeout, args.cell_timeout, args.test_timeout)
    if args.check:
        sub = read_submission(args.check.resolve())
        name = args.assignment or pick_assignment([sub], args.solutions, args.bundle)
        bundle = load_bundle(name, args.solutions, args.bundle)
        check_runner(runner)
        ensure_cache_dir()
        result = grade(sub, bundle, runner)
        print(result.feedback)
        possible = sum(q["points"] for q in bundle["questions"].values() if not q["manual"])
        return 0 if result.total == possible else 1
    if args.submissions is None or not args.submissions.is_dir():
        ap.error("SUBMISSIONS must be a folder of notebooks")
    results = grade_folder(args.submissions, args.out, args.assignment, args.solutions, args.bundle, runner, args.jobs)
    print(f"graded {len(results)} submissions -> {args.out / 'grades.csv'}, {args.out / 'feedback'}/, "
          f"{args.out / 'logs'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
