"""pytest plugin: sum the setup/call/teardown time of every nbval cell item per notebook file."""

from __future__ import annotations

import json
from pathlib import Path

_times: dict[str, dict] = {}


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
