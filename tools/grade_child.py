"""The processes that run submitted code for tools/grade.py (inside the sandbox; not for direct use).

    python grade_child.py run  FD    # phase 1: the notebook's cells, in order (no test is ever in this process)
    python grade_child.py test FD    # phase 2: one test against the notebook's definitions

Both read a JSON spec on stdin, read it to the end and close it before any submitted code runs, and write
records to file descriptor FD, each line starting with the spec's ``nonce``.  The parent treats anything else
on FD (a line without the nonce, a malformed or unexpected record, a second verdict) as tampering.

``run``: executes the code cells in an IPython shell (magics work), each under its own time limit; an error in
one cell does not stop the next.  Records: one ``cell`` record per cell, then ``done``.  Its stdout and stderr
are the notebook's log.  Seccomp: no new process (threads allowed).

``test``: loads the trusted prelude (the assignment's imports, and ``cfg``), compiles the test, snapshots every
module and class, then seals the process (seccomp: no process, thread or signal handler; an audit hook: no
frame, traceback-frame, garbage-collector or ctypes access, no tracing, no new code objects, nothing under
/proc) and only then executes the submission's definitions (imports, ``def``, ``class``, constant assignments:
chosen by the parent) and the test.  What the definitions patched is restored before the test; a test during
which a module or class changes fails.  One verdict record, then ``os._exit``.  Its stdout/stderr go nowhere.
"""

from __future__ import annotations

import builtins
import gc
import json
import os
import signal
import sys
import time
import traceback
import types

GRADER_LINE_PREFIXES = ("grader.check(", "from course_lib.exercise_checks import Notebook", "grader = Notebook(")
IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}
FRAME_ATTRS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"}
DENIED = {"sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile",
          "sys.addaudithook", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "code.__new__",
          "os.kill", "os.killpg", "signal.pthread_kill"}
DENIED_PREFIXES = ("ctypes.", "sys.monitoring", "socket.", "subprocess.", "os.fork", "os.exec", "os.posix_spawn",
                   "os.spawn", "os.system")


class TimeLimit(BaseException):
    """Raised by the alarm when a cell or a test runs past its limit (BaseException: harder to swallow)."""


def _alarm(_signum, _frame):
    raise TimeLimit()


def _arm(seconds: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


def _error_line(err: BaseException) -> str:
    if isinstance(err, TimeLimit):
        return "TimeLimit: time limit reached (an infinite loop?)"
    return traceback.format_exception_only(type(err), err)[-1].strip()[:500]


def is_grader_cell(source: str) -> bool:
    """Empty cells, comments, the init cell and the check cells: the grader runs the tests itself."""
    lines = [s.strip() for s in source.split("\n")]
    return all(not s or s.startswith("#") or s.startswith(GRADER_LINE_PREFIXES) for s in lines)


def read_spec() -> dict:
    """The whole spec from stdin; stdin is then /dev/null (nothing more can arrive there)."""
    spec = json.loads(sys.stdin.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return spec


def run_cells(spec: dict, fd: int) -> None:
    """Phase 1: every code cell, in order, with its own time limit; a ``cell`` record each, then ``done``."""
    write, dumps, nonce, leave = os.write, json.dumps, spec["nonce"], os._exit

    def emit(**record) -> None:
        write(fd, f"{nonce} {dumps(record)}\n".encode())

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no sqlite history in the (throwaway) home
    shell = InteractiveShell.instance(config=config, colors="nocolor")
    signal.signal(signal.SIGALRM, _alarm)
    if spec["seccomp"]:
        import sandbox
        sandbox.install_seccomp(threads=True, signals=True)
    deadline = time.monotonic() + spec["cells_budget"]
    for number, source in enumerate(spec["cells"], 1):
        if is_grader_cell(source):
            continue
        first = source.strip().split("\n")[0][:80]
        left = deadline - time.monotonic()
        if left <= 0:
            emit(kind="cell", number=number, ok=False, first_line=first,
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
        emit(kind="cell", number=number, ok=error is None, error=None if error is None else _error_line(error),
             first_line=first)
    emit(kind="done")
    sys.stdout.flush()
    sys.stderr.flush()
    leave(0)


class Guard:
    """Every loaded module's and mutable class's attributes, ``sys.modules`` and ``gc.callbacks``, as they were
    before any submitted code ran; ``restore`` puts them back and names what had changed."""

    MISSING = object()

    def __init__(self):
        self.modules = dict(sys.modules)
        self.callbacks = list(gc.callbacks)
        self.builtin_names = set(vars(builtins))
        self.saved: list[tuple[object, dict, bool]] = []
        seen: set[int] = set()
        for mod in list(self.modules.values()):
            if not isinstance(mod, types.ModuleType) or id(mod) in seen:
                continue
            seen.add(id(mod))
            attrs = dict(vars(mod))
            self.saved.append((mod, attrs, True))
            for value in attrs.values():
                flags = getattr(value, "__flags__", 0) if isinstance(value, type) else 0
                # heap types that are not immutable: the classes Python code can patch
                if flags & (1 << 9) and not flags & (1 << 8) and id(value) not in seen:
                    seen.add(id(value))
                    self.saved.append((value, dict(vars(value)), False))

    def restore(self) -> list[str]:
        changed = []
        modules = sys.modules
        for name, mod in self.modules.items():
            if modules.get(name, self.MISSING) is not mod:
                changed.append(f"sys.modules[{name!r}]")
                modules[name] = mod
        if list(gc.callbacks) != self.callbacks:
            changed.append("gc.callbacks")
            gc.callbacks[:] = self.callbacks
        for obj, attrs, is_module in self.saved:
            current = vars(obj)
            where = getattr(obj, "__name__", "?")
            for key, value in attrs.items():
                if current.get(key, self.MISSING) is not value:
                    changed.append(f"{where}.{key}")
                    try:
                        setattr(obj, key, value)
                    except (AttributeError, TypeError):
                        pass
            # new class attributes change behaviour (a __bool__ added to torch.Tensor); new module attributes
            # only when they shadow a builtin (a module's functions would find it first)
            extra = [k for k in list(current) if k not in attrs and (not is_module or k in self.builtin_names)]
            for key in extra:
                changed.append(f"{where}.{key}")
                try:
                    delattr(obj, key)
                except (AttributeError, TypeError):
                    pass
        return changed


def _trusted_prefixes() -> tuple[str, ...]:
    """Where trusted code lives: the Python installation, the environment, course_lib and this folder."""
    here = os.path.dirname(os.path.abspath(__file__))
    course_lib = os.path.dirname(os.path.abspath(sys.modules["course_lib"].__file__)) if "course_lib" in sys.modules else None
    roots = {sys.prefix, sys.base_prefix, os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), here, course_lib}
    return tuple(sorted(r.rstrip("/") + "/" for r in roots if r)) + ("<frozen ",)


def _audit_hook(trusted: tuple[str, ...], test_file: str):
    """Deny frame, tracing, garbage-collector, ctypes, code-object and /proc access, and new processes or hooks,
    whenever submitted code is on the stack: any frame whose code is neither a file of ``trusted`` nor the test
    itself (whose name holds the process's key).  Trusted code on its own (``typing`` reading its caller's
    frame during an ``isinstance``) keeps working."""
    busy = [False]
    getframe = sys._getframe

    def submitted_code_on_stack() -> bool:
        frame = getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if name != test_file and not name.startswith(trusted):
                return True
            frame = frame.f_back
        return False

    def hook(event: str, args: tuple) -> None:
        if busy[0]:
            return  # the hook's own frame walk
        sensitive = (event in DENIED or event.startswith(DENIED_PREFIXES)
                     or (event == "object.__getattr__" and args[1] in FRAME_ATTRS)
                     or (event == "object.__setattr__" and args[1] == "__code__")
                     or (event == "open" and isinstance(args[0], (str, bytes))
                         and os.fsdecode(args[0]).startswith(("/proc", "/dev/mem"))))
        if not sensitive:
            return
        busy[0] = True
        try:
            deny = submitted_code_on_stack()
        finally:
            busy[0] = False
        if deny:
            raise PermissionError(f"{event} is not allowed for submitted code while grading")
    return hook


def run_test(spec: dict, fd: int) -> None:
    """Phase 2: the prelude, a snapshot, the seal, the definitions, then one test; one verdict record."""
    write, leave, as_str, nonce = os.write, os._exit, str.__str__, spec["nonce"]
    trusted: dict = {"__name__": "__grader__"}
    exec(spec["imports"], trusted)
    if "course_lib" in trusted:
        trusted["cfg"] = trusted["course_lib"].setup(verbose=False)
    if "torch" in sys.modules:  # one thread: the sealed process may not start new ones; warm autograd up
        torch = sys.modules["torch"]
        torch.set_num_threads(1)
        warm = torch.ones(4, 4, requires_grad=True)
        (warm @ warm).sum().backward()
    test_file = f"{spec['test_name']} {nonce}"  # unguessable: submitted code cannot pose as the test
    test_code = compile(spec["test"], test_file, "exec")
    definitions = [(n, compile(source, f"<cell {n}>", "exec")) for n, source in spec["definitions"]]
    builtin_exceptions = frozenset(v for v in vars(builtins).values() if isinstance(v, type) and issubclass(v, BaseException))
    guard = Guard()
    restore, gc_disable = guard.restore, gc.disable
    signal.signal(signal.SIGALRM, _alarm)
    if spec["seccomp"]:
        import sandbox
        sandbox.install_seccomp(threads=False, signals=False)
    sys.addaudithook(_audit_hook(_trusted_prefixes(), test_file))

    namespace = {k: v for k, v in trusted.items() if not k.startswith("__")}
    namespace.update(__name__="__main__", __builtins__=builtins)
    deadline = time.monotonic() + spec["definitions_budget"]
    for _number, code in definitions:
        try:
            _arm(deadline - time.monotonic())
            exec(code, namespace)
        except BaseException:  # noqa: BLE001 (phase 1 reports the cell's error; its later names are missing)
            pass
        finally:
            _disarm()
    at_definition = restore()

    env = {k: v for k, v in namespace.items() if not k.startswith("_") and k not in IPYTHON_NAMES}
    env.update({k: v for k, v in trusted.items() if not k.startswith("__")})  # the assignment's names win
    env.update(__name__="__grader__", __builtins__=builtins)
    error = None
    try:
        _arm(spec["test_timeout"])
        exec(test_code, env)
    except BaseException as err:  # noqa: BLE001 (a submission may raise anything, even SystemExit)
        error = err
    finally:
        _disarm()
    gc_disable()
    during = restore()
    etype, message = None, ""
    if error is not None:
        try:
            etype = type(error).__name__ if type(error) in builtin_exceptions or isinstance(error, TimeLimit) else None
            message = as_str(_error_line(error))[:500]
        except BaseException:  # noqa: BLE001 (a __str__ that raises, or worse)
            message = "the exception could not be described"
    if during and error is None:
        etype, message = "Tampering", "the submission changed " + ", ".join(during[:5]) + " during the test"
    verdict = ("PASS" if error is None and not during else "FAIL", etype, message,
               [as_str(s) for s in at_definition[:5]])
    write(fd, f"{nonce} {verdict!r}\n".encode())
    leave(0)


def main() -> None:
    mode, fd = sys.argv[1], int(sys.argv[2])
    spec = read_spec()
    if mode == "run":
        run_cells(spec, fd)
    elif mode == "test":
        run_test(spec, fd)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
