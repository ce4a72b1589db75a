"""tools/nbtiming.py: nbval cells get a longer output timeout, and notebook times are summed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def test_nbval_cells_get_the_longer_output_timeout_and_times_are_written(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("print(x + 1)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    (tmp_path / "conftest.py").write_text(
        "def pytest_collection_finish(session):\n"
        "    import json, pathlib\n"
        "    pathlib.Path('timeouts.json').write_text(json.dumps([i.output_timeout for i in session.items]))\n")
    timing = tmp_path / "timing.json"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "nbtiming",
                          "--nbval-lax", "--nbval-current-env", f"--nbtiming-out={timing}", "tiny.ipynb"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "tools")})
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads((tmp_path / "timeouts.json").read_text()) == [60, 60]
    times = json.loads(timing.read_text())
    (name, row), = times.items()
    assert name.endswith("tiny.ipynb") and row["outcome"] == "passed" and row["seconds"] > 0
