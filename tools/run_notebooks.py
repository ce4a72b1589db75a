"""Execute every notebook with nbval, on copies, and print each notebook's runtime.

Usage: python tools/run_notebooks.py [--fake-cuda] notebooks solutions [-- extra pytest args]

``--fake-cuda`` runs every kernel under tests/fakecuda.py's ``fake_cuda()`` (in build/nbval-fakecuda/, quick
profile): the notebooks take their CUDA code paths on the CPU, and a device mix-up fails as on a GPU.

The committed notebooks are never executed in place (that would add outputs and upset Jupytext's
pairing): they are copied to build/nbval/ first.  nbval runs with --nbval-lax (only cells marked
NBVAL_CHECK_OUTPUT compare outputs; every cell must still run without error) and --nbval-current-env.
Each executed notebook, with its outputs, is kept in build/executed/<folder>/ (tools/nbexecuted.py;
build/executed-fakecuda/ with --fake-cuda): `make site` builds the course website from it.
Budgets in the quick profile: 60 s per lesson (notebooks/), 90 s per solution (solutions/); the runtime
table marks a notebook over its budget (a report only: it never fails the run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
    unknown = [a for a in ours if a.startswith("-") or not (ROOT / a).is_dir()]
    if unknown:
        print(f"Not a folder of this repository: {unknown}. Usage: python tools/run_notebooks.py notebooks "
              "solutions [-- extra pytest args]", file=sys.stderr)
        return 2
    folders = ours or ["notebooks", "solutions"]
    shutil.rmtree(build, ignore_errors=True)
    shutil.rmtree(executed, ignore_errors=True)
    copies = []
    for folder in folders:
        for nb in sorted((ROOT / folder).glob("*.ipynb")):
            dest = build / folder / nb.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(nb, dest)
            copies.append(dest)
    if not copies:
        print(f"No notebooks found in {folders}")
        return 1
    timing = build / "timing.json"
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "nbtiming",
           f"--nbtiming-out={timing}", "-p", "nbexecuted", f"--nbexecuted-out={executed}",
           "-o", "cache_dir=build/.pytest_cache", "--rootdir", str(build),
           *map(str, copies), *extra]
    code = subprocess.call(cmd, cwd=ROOT, env=env)
    print_table(json.loads(timing.read_text()) if timing.exists() else {})
    return code


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
