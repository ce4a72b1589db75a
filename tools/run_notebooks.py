"""Execute every notebook with nbval, on copies, and print each notebook's runtime.

Usage: python tools/run_notebooks.py [--fake-cuda] [--jobs K] notebooks solutions [-- extra pytest args]

``--fake-cuda`` runs every kernel under tests/fakecuda.py's ``fake_cuda()`` (in build/nbval-fakecuda/, quick
profile): the notebooks take their CUDA code paths on the CPU, and a device mix-up fails as on a GPU.

The committed notebooks are never executed in place (that would add outputs and upset Jupytext's
pairing): they are copied to build/nbval/ first.  nbval runs with --nbval-lax (only cells marked
NBVAL_CHECK_OUTPUT compare outputs; every cell must still run without error) and --nbval-current-env.
Each executed notebook, with its outputs, is kept in build/executed/<folder>/ (tools/nbexecuted.py;
build/executed-fakecuda/ with --fake-cuda): `make site` builds the course website from it.
``--jobs K`` runs K notebooks at a time (one pytest run each, longest first by the last 1-thread bench,
results/quick-threads1.json; each run's output is printed when it ends), every kernel pinned to
``cores // K`` CPU threads through ``$COURSE_THREADS`` (and the BLAS/OpenMP thread variables numpy and
scikit-learn read) unless that is set: K kernels never oversubscribe the cores (every claim holds at
1 and 2 threads: tools/bench.py runs both).  ``make test`` uses 2.
Budgets in the quick profile: 60 s per lesson (notebooks/), 90 s per solution (solutions/); the runtime
table marks a notebook over its budget (a report only: it never fails the run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "nbval"
BUDGETS_S = {"notebooks": 60.0, "solutions": 90.0}  # quick profile, per notebook


def main(argv: list[str]) -> int:
    ours, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    if any(a in ("-h", "--help") for a in ours):
        print(__doc__)
        return 0
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tools")}
    build = BUILD
    if "--fake-cuda" in ours:  # every kernel poses as a CUDA machine (tests/fakecuda.py), in the quick profile
        ours = [a for a in ours if a != "--fake-cuda"]
        env.update(COURSE_FAKE_CUDA="1", COURSE_PROFILE=env.get("COURSE_PROFILE", "quick"),
                   PYTHONPATH=f"{ROOT / 'tests' / 'fakecuda_site'}{os.pathsep}{env['PYTHONPATH']}")
        build = BUILD.with_name("nbval-fakecuda")
    executed = build.with_name(build.name.replace("nbval", "executed"))
    jobs, ours = take_jobs(ours)
    if jobs is None:
        print("--jobs needs a positive integer, e.g. --jobs 2", file=sys.stderr)
        return 2
    unknown = [a for a in ours if a.startswith("-") or not (ROOT / a).is_dir()]
    if unknown:
        print(f"Not a folder of this repository: {unknown}. Usage: python tools/run_notebooks.py notebooks "
              "solutions [-- extra pytest args]", file=sys.stderr)
        return 2
    folders = ours or ["notebooks", "solutions"]
    copies = fresh_copies(folders, build, executed)
    if not copies:
        print(f"No notebooks found in {folders}")
        return 1
    if jobs > 1:
        return run_parallel(longest_first(copies), build, executed, extra, cpu_share(env, jobs), jobs)
    timing = build / "timing.json"
    code = subprocess.call(_pytest(copies, build, executed, timing, "build/.pytest_cache", extra), cwd=ROOT, env=env)
    print_table(json.loads(timing.read_text()) if timing.exists() else {})
    return code


def cpu_share(env: dict[str, str], jobs: int) -> dict[str, str]:
    """``env`` for one of ``jobs`` kernels running at once: cores // jobs CPU threads for torch
    (``COURSE_THREADS``) and for numpy / scikit-learn's BLAS; a value already in ``env`` wins."""
    threads = env.get("COURSE_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    return {**dict.fromkeys(("COURSE_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"),
                            threads), **env}


def fresh_copies(folders: list[str], build: Path, executed: Path) -> list[Path]:
    """Empty ``build`` and ``executed``, then copy every notebook of ``folders`` to ``build/<folder>/``."""
    shutil.rmtree(build, ignore_errors=True)
    shutil.rmtree(executed, ignore_errors=True)
    copies = []
    for folder in folders:
        for nb in sorted((ROOT / folder).glob("*.ipynb")):
            copies.append(build / folder / nb.name)
            copies[-1].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(nb, copies[-1])
    return copies


def take_jobs(args: list[str]) -> tuple[int | None, list[str]]:
    """(K from ``--jobs K``, default 1; None if K is not a positive integer) and the other arguments."""
    if "--jobs" not in args:
        return 1, args
    i = args.index("--jobs")
    k = args[i + 1] if i + 1 < len(args) else ""
    return (int(k) if k.isdigit() and int(k) > 0 else None), args[:i] + args[i + 2:]


def _pytest(copies: list[Path], build: Path, executed: Path, timing: Path, cache: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "nbtiming",
            f"--nbtiming-out={timing}", "-p", "nbexecuted", f"--nbexecuted-out={executed}",
            "-o", f"cache_dir={cache}", "--rootdir", str(build), *map(str, copies), *extra]


def longest_first(copies: list[Path]) -> list[Path]:
    """``copies`` sorted by their seconds in the last 1-thread bench (results/quick-threads1.json), unknown last."""
    bench = ROOT / "results" / "quick-threads1.json"
    rows = json.loads(bench.read_text()).get("notebooks", {}) if bench.exists() else {}
    return sorted(copies, key=lambda c: float(rows.get(f"{c.parent.name}/{c.name}", {}).get("seconds") or 0.0),
                  reverse=True)


def run_parallel(copies: list[Path], build: Path, executed: Path, extra: list[str], env: dict, jobs: int) -> int:
    """One pytest run per notebook, ``jobs`` at a time; each run's output is printed whole when it ends."""
    lock, times, codes = threading.Lock(), {}, []

    def one(copy: Path) -> None:
        timing = build / f"timing-{copy.parent.name}-{copy.stem}.json"
        cache = str(build.parent / f".pytest_cache-{copy.parent.name}-{copy.stem}")
        done = subprocess.run(_pytest([copy], build, executed, timing, cache, extra), cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with lock:
            print(done.stdout, flush=True)
            codes.append(done.returncode)
            times.update(json.loads(timing.read_text()) if timing.exists() else {})

    threads = env.get("COURSE_THREADS", "unset")
    print(f"{len(copies)} notebooks, {jobs} at a time, COURSE_THREADS={threads} per kernel", flush=True)
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, copies))
    print_table(times)
    return next((c for c in codes if c), 0)


def budget_flag(name: str, seconds: float) -> str:
    """The marker "  OVER 60 s budget" for a lesson ("notebooks/x.ipynb") over budget (90 s: solutions), else ""."""
    budget = BUDGETS_S.get(name.split("/")[0])
    return f"  OVER {budget:.0f} s budget" if budget is not None and seconds > budget else ""


def print_table(times: dict[str, dict]) -> None:
    print("\nNotebook runtimes (seconds, kernel start included; budgets: lessons 60 s, solutions 90 s)")
    print(f"{'notebook':<48} {'seconds':>8}  status")
    for name, row in sorted(times.items()):
        print(f"{name:<48} {row['seconds']:>8.1f}  {row['outcome']}{budget_flag(name, row['seconds'])}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
