"""pytest plugin for the nbval runs: the time of every notebook, and a longer wait for a cell's last output.

* The setup/call/teardown time of every nbval cell item is summed per notebook file (``--nbtiming-out``).
* nbval waits a hard-coded 5 s for each output message that follows a cell's reply (nbval issue #231).
  On a busy 2-core machine the kernel's output thread can fall that far behind a cell that drew many
  progress bars, and the cell then fails although it ran; a clean-clone CI run failed Exercise 3 this
  way. ``OUTPUT_TIMEOUT_S`` replaces the 5 s; a kernel that really stops talking still fails, later.
"""

from __future__ import annotations

import json
from pathlib import Path

_times: dict[str, dict] = {}
OUTPUT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's IPyNbCell
            item.output_timeout = OUTPUT_TIMEOUT_S


def pytest_addoption(parser):
    parser.addoption("--nbtiming-out", default=None, help="write per-notebook seconds to this JSON file")


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    name = "/".join(Path(path).parts[-2:])
    row = _times.setdefault(name, {"seconds": 0.0, "outcome": "passed"})
    row["seconds"] += report.duration
    if report.failed:
        row["outcome"] = "FAILED"


def pytest_sessionfinish(session):
    out = session.config.getoption("--nbtiming-out")
    if out:
        Path(out).write_text(json.dumps(_times, indent=1))
