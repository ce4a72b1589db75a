"""Grade every submitted notebook in a folder, without Docker: grades.csv plus one feedback file each.

Usage:
    python tools/grade.py SUBMISSIONS [--out build/grades] [--assignment ex4_kd_grid] [--timeout 300] [--jobs 1]
    python tools/grade.py --check solutions/ex4_kd_grid.ipynb     # one notebook; exit 1 unless full marks

Each file in SUBMISSIONS (not recursive, dotfiles skipped) is one submission; its name without ``.ipynb``
is the student id.  The assignment comes from ``--assignment``, else from the notebooks' metadata
(``course_exercise``, written by tools/assign.py), else from the file name.  Tests (public + hidden) are
read fresh from ``solutions/<assignment>.py`` (or ``--bundle`` JSON from ``tools/assign.py --bundle``).

Every submission runs in its own subprocess (tools/grade_child.py) under a time limit, with a limit per
cell and per test too, and is re-executed from its source (outputs in the file are ignored).  Whatever
goes wrong (not a notebook, syntax errors, exceptions, infinite loops, deleted, renamed or reordered
cells, an attempt to redefine the grading helpers) costs only the parts it breaks and is explained in
the student's feedback file; the batch always completes.

Writes ``OUT/grades.csv`` (submission, one column per question, total), ``OUT/feedback/<id>.md`` and the
submission's own output in ``OUT/logs/<id>.log``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import assign  # noqa: E402

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
                     "the autograder's own copy, with fresh imports and library functions restored.")
    return notes


def run_submission(sub: Submission, bundle: dict, timeout: float, cell_timeout: float, test_timeout: float,
                   log_path: Path) -> tuple[list[dict], str | None]:
    """Execute the submission's cells and the tests in a subprocess; return its records and a failure note."""
    n_tests = sum(len(q["tests"]) for q in bundle["questions"].values())
    reserve = min(0.25 * timeout, n_tests * test_timeout)
    spec = {"cells": sub.cells, "imports": bundle["imports"],
            "questions": {k: q for k, q in bundle["questions"].items() if not q["manual"]},
            "cells_budget": timeout - reserve, "cell_timeout": cell_timeout, "test_timeout": test_timeout,
            "log": str(log_path)}
    env = {"COURSE_PROFILE": "quick", **os.environ, "MPLBACKEND": "Agg"}  # quick unless the grader chose
    problem = None
    with tempfile.TemporaryDirectory(prefix="grade-") as work:
        proc = subprocess.Popen([sys.executable, str(CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, cwd=work, env=env, start_new_session=True, text=True)
        try:
            out, _ = proc.communicate(json.dumps(spec), timeout=timeout + min(10.0, 0.2 * timeout))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            problem = f"The submission exceeded the time limit of {timeout:g} s and was stopped."
    records = []
    for line in out.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if problem is None and not any(r.get("kind") == "done" for r in records):
        problem = f"The submission ended the grading process early (exit code {proc.returncode})."
    return records, problem


def explain(error: str) -> str:
    m = re.match(r"NameError: name '(\w+)' is not defined", error or "")
    if m:
        return f"{error} — `{m.group(1)}` is missing: a deleted cell, a renamed function, or a cell that failed?"
    return error


def grade(sub: Submission, bundle: dict, timeout: float, cell_timeout: float, test_timeout: float,
          log_dir: Path) -> Result:
    """Score one submission; never raises for anything the submission does."""
    auto = {k: q for k, q in bundle["questions"].items() if not q["manual"]}
    scores = {q: 0.0 for q in auto}
    lines = [f"# {bundle['name']} · feedback for {sub.student}", ""]
    notes, records, problem = list(sub.notes), [], None
    if sub.cells is not None:
        if sub.exercise and sub.exercise != bundle["name"]:
            notes.append(f"This notebook is exercise `{sub.exercise}`, graded as `{bundle['name']}`.")
        notes += structure_notes(sub, list(auto))
        log_dir.mkdir(parents=True, exist_ok=True)
        records, problem = run_submission(sub, bundle, timeout, cell_timeout, test_timeout,
                                          log_dir / f"{sub.student}.log")
        if problem:
            notes.append(problem)
    tests = {(r["question"], r["number"]): r for r in records if r.get("kind") == "test"}
    body = []
    for qname, q in auto.items():
        weight = q["points"] / len(q["tests"])
        got = 0.0
        rows = []
        for number, test in enumerate(q["tests"], 1):
            r = tests.get((qname, number))
            kind = "hidden" if test["hidden"] else "public"
            if r is None:
                rows.append(f"- {kind} test {number}: not run ({'not a notebook' if sub.cells is None else 'see notes'})")
            elif r["passed"]:
                got += weight
                rows.append(f"- {kind} test {number}: passed")
            else:
                extra = f" (hint: {r['failure_message']})" if r.get("failure_message") else ""
                rows.append(f"- {kind} test {number}: **failed** — {explain(r['error'])}{extra}")
        scores[qname] = round(got, 2)
        body += [f"## {qname}: {scores[qname]:g} / {q['points']:g}", "", *rows, ""]
    total = round(sum(scores.values()), 2)
    possible = sum(q["points"] for q in auto.values())
    lines += [f"**Total: {total:g} / {possible:g}**", "", "| question | score | out of |", "|---|---|---|",
              *(f"| {k} | {scores[k]:g} | {q['points']:g} |" for k, q in auto.items()), ""]
    manual = [k for k, q in bundle["questions"].items() if q["manual"]]
    if manual:
        lines += [f"Graded by hand, not included above: {', '.join(manual)}.", ""]
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    failed_cells = [r for r in records if r.get("kind") == "cell" and not r["ok"]]
    if failed_cells:
        lines += ["## Cells that failed when the notebook was run", "",
                  *(f"- code cell {r['number']} (`{r['first_line']}`): {explain(r['error'])}" for r in failed_cells), ""]
    lines += body
    return Result(sub.student, scores, total, "\n".join(lines))


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


def grade_folder(folder: Path, out: Path, assignment: str | None = None, solutions: Path = assign.SOLUTIONS,
                 bundle_dir: Path | None = None, timeout: float = 300, cell_timeout: float = 120,
                 test_timeout: float = 20, jobs: int = 1) -> list[Result]:
    """Grade every file in ``folder``; write grades.csv, feedback/ and logs/ under ``out``."""
    paths = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
    subs = [read_submission(p) for p in paths]
    name = assignment or pick_assignment(subs, solutions, bundle_dir)
    bundle = load_bundle(name, solutions, bundle_dir)

    def run(sub: Submission) -> Result:
        try:
            return grade(sub, bundle, timeout, cell_timeout, test_timeout, out / "logs")
        except Exception as err:  # noqa: BLE001 (a grader bug must not stop the batch)
            zero = {k: 0.0 for k, q in bundle["questions"].items() if not q["manual"]}
            return Result(sub.student, zero, 0.0, f"# {bundle['name']} · feedback for {sub.student}\n\n"
                          f"Internal grading error ({type(err).__name__}: {err}); ask the instructor to grade by hand.")
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        results = list(pool.map(run, subs))
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    questions = [k for k, q in bundle["questions"].items() if not q["manual"]]
    with open(out / "grades.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", *questions, "total"])
        for r in results:
            writer.writerow([r.student, *(f"{r.scores[q]:g}" for q in questions), f"{r.total:g}"])
            (out / "feedback" / f"{r.student}.md").write_text(r.feedback + "\n", encoding="utf-8")
    return results


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("submissions", nargs="?", type=Path)
    ap.add_argument("--check", type=Path, help="grade this one notebook, print its feedback")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "grades")
    ap.add_argument("--assignment")
    ap.add_argument("--solutions", type=Path, default=assign.SOLUTIONS)
    ap.add_argument("--bundle", type=Path, help="folder of NAME.json bundles (tools/assign.py --bundle)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per submission (default 300)")
    ap.add_argument("--cell-timeout", type=float, default=120)
    ap.add_argument("--test-timeout", type=float, default=20)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    limits = dict(timeout=args.timeout, cell_timeout=args.cell_timeout, test_timeout=args.test_timeout)
    if args.check:
        sub = read_submission(args.check)
        name = args.assignment or pick_assignment([sub], args.solutions, args.bundle)
        bundle = load_bundle(name, args.solutions, args.bundle)
        with tempfile.TemporaryDirectory() as logs:
            result = grade(sub, bundle, log_dir=Path(logs), **limits)
        print(result.feedback)
        possible = sum(q["points"] for q in bundle["questions"].values() if not q["manual"])
        return 0 if result.total == possible else 1
    if args.submissions is None or not args.submissions.is_dir():
        ap.error("SUBMISSIONS must be a folder of notebooks")
    results = grade_folder(args.submissions, args.out, args.assignment, args.solutions, args.bundle,
                           jobs=args.jobs, **limits)
    print(f"graded {len(results)} submissions -> {args.out / 'grades.csv'}, {args.out / 'feedback'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
