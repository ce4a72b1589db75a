"""The real exercises through the real grader: every solution scores full marks, every unanswered student
version scores 0, in the sandbox, with the test processes sealed (audit hook, seccomp, module restore).

The notebook phase gets 1 s here (its cells are stopped: they are executed by nbval elsewhere in CI); the
scores come from the test processes, which load the definitions only, so the scores must not depend on it.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import assign  # noqa: E402
import grade  # noqa: E402

SOURCES = assign.solution_sources()


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_solution_full_marks_and_student_zero(src, tmp_path, sandbox_required):
    a = assign.parse(src)
    bundle = a.bundle()
    runner = grade.Runner(timeout=1, test_timeout=60)
    paths = {}
    for name, nb in (("solution", jupytext.read(src)), ("student", a.student)):
        paths[name] = tmp_path / f"{name}.ipynb"
        paths[name].write_text(jupytext.writes(nb, fmt="ipynb"))
    with ThreadPoolExecutor(2) as pool:  # the two gradings at once, as `make grade JOBS=2` would run them
        results = dict(zip(paths, pool.map(lambda p: grade.grade(grade.read_submission(p), bundle, runner),
                                           paths.values())))
    possible = sum(q["points"] for q in bundle["questions"].values() if not q["manual"])
    for name, result in results.items():
        assert result.total == (possible if name == "solution" else 0), result.feedback
        assert "Tampering" not in result.feedback and "not scored" not in result.feedback, result.feedback
