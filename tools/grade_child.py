"""The grading subprocess for one submission (started by tools/grade.py; not for direct use).

Reads a JSON spec on stdin: the submission's code cells, the assignment's import statements and tests
(hidden ones too), and the time limits.  It executes the cells in order in an IPython shell (magics work,
each cell under its own time limit, an error in one cell does not stop the next), then runs every test in
a fresh namespace: the submission's variables, with the assignment's own imports re-run on top (a student's
``torch = ...`` does not reach the tests) and pristine builtins.  Functions and classes of the modules the
tests use (``torch.allclose``, ``math.isclose``, ``builtins.isinstance``, ``torch.Tensor`` methods …) are
snapshotted before the submission runs and restored before each test; a test during which the submission
changes one of them fails.  The submission's own check cells and ``grader`` are never used.

Results go out as JSON lines on a private copy of the original stdout, one line per cell and per test, as
they happen, so a submission that kills its process or runs out of time still keeps what was measured.
The submission's own output goes to the log file named in the spec.
"""

from __future__ import annotations

import builtins
import json
import math
import operator
import os
import re
import signal
import sys
import time
import traceback
import types

# Lines of the generated init and check cells (and blank or comment lines): such cells are not run.
GRADER_LINE = re.compile(r"""^\s*(grader\.check\(\s*["']\w+["']\s*\)|from course_lib\.exercise_checks import Notebook"""
                         r"""|grader = Notebook\(["']\w+["']\)|#.*)?\s*$""")
IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


class TimeLimit(BaseException):
    """Raised by the alarm when a cell or a test runs past its limit (BaseException: harder to swallow)."""


def _alarm(_signum, _frame):
    raise TimeLimit()


def _arm(seconds: float) -> None:
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


def _error_line(err: BaseException) -> str:
    if isinstance(err, TimeLimit):
        return "TimeLimit: time limit reached (an infinite loop?)"
    return traceback.format_exception_only(type(err), err)[-1].strip()[:500]


class Guard:
    """Snapshot of the callables/classes held by the modules and classes the tests rely on."""

    def __init__(self, namespace: dict):
        objs: list = [builtins, math, operator]
        objs += [v for v in namespace.values() if isinstance(v, types.ModuleType)]
        for extra in ("torch.testing", "numpy.testing", "torch.nn.functional"):
            if extra in sys.modules:
                objs.append(sys.modules[extra])
        if "torch" in sys.modules:
            objs.append(sys.modules["torch"].Tensor)
        self.saved = []
        for obj in {id(o): o for o in objs}.values():
            keep = {k: v for k, v in vars(obj).items()
                    if callable(v) or isinstance(v, (type, types.ModuleType, staticmethod, classmethod, property))}
            self.saved.append((obj, keep))

    def restore(self) -> list[str]:
        """Put every snapshotted attribute back; return the names that had been changed."""
        changed = []
        for obj, keep in self.saved:
            current = vars(obj)
            for key, value in keep.items():
                if current.get(key, Guard) is not value:
                    changed.append(f"{getattr(obj, '__name__', obj)}.{key}")
                    try:
                        setattr(obj, key, value)
                    except (AttributeError, TypeError):
                        pass
        return changed


def main() -> int:
    spec = json.load(sys.stdin)
    results = os.fdopen(os.dup(1), "w", buffering=1)
    log = open(spec["log"], "w", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)

    def emit(**record) -> None:
        results.write(json.dumps(record) + "\n")
        results.flush()

    scratch: dict = {}
    exec(spec["imports"], scratch)  # the assignment's imports, loaded before any student code
    guard = Guard(scratch)

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no sqlite history in ~/.ipython for graded code
    shell = InteractiveShell.instance(config=config, colors="nocolor")
    deadline = time.monotonic() + spec["cells_budget"]
    for number, source in enumerate(spec["cells"], 1):
        if all(GRADER_LINE.match(line) for line in source.split("\n")):
            continue  # empty cells, the init and check cells: the grader runs the tests itself
        left = deadline - time.monotonic()
        if left <= 0:
            emit(kind="cell", number=number, ok=False, first_line=source.strip().split("\n")[0][:80],
                 error="not run: the time limit for running the notebook was used up")
            continue
        error = None
        try:
            _arm(min(spec["cell_timeout"], left))
            result = shell.run_cell(source, store_history=False)
            _disarm()
            error = result.error_before_exec or result.error_in_exec
        except BaseException as err:  # noqa: BLE001 (fired outside the user's code, or IPython itself broken)
            error = err
        finally:
            _disarm()
            guard.restore()  # whatever the cell patched (builtins.isinstance …) is undone before the next one
        emit(kind="cell", number=number, ok=error is None, error=None if error is None else _error_line(error),
             first_line=source.strip().split("\n")[0][:80])

    base = {k: v for k, v in shell.user_ns.items() if not k.startswith("_") and k not in IPYTHON_NAMES}
    exec(spec["imports"], base)
    base.update(__builtins__=builtins, __name__="__grader__")
    for qname, question in spec["questions"].items():
        for number, test in enumerate(question["tests"], 1):
            guard.restore()
            error = None
            try:
                _arm(spec["test_timeout"])
                exec(compile(test["source"], f"<{qname} test {number}>", "exec"), dict(base))
            except BaseException as err:  # noqa: BLE001 (a submission may raise anything, even SystemExit)
                error = _error_line(err)
            finally:
                _disarm()
            tampered = guard.restore()
            if tampered and error is None:
                error = "the submission changed " + ", ".join(tampered[:5]) + " during the test (not allowed)"
            emit(kind="test", question=qname, number=number, hidden=test["hidden"], passed=error is None,
                 error=error, failure_message=test.get("failure_message", ""))
    emit(kind="done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
