"""pytest plugin for the nbval runs: keep every executed notebook, with the outputs nbval received.

nbval executes each code cell and collects its outputs in ``IPyNbCell.test_outputs`` (to compare them), but
never writes the notebook back.  With ``--nbexecuted-out=DIR`` this plugin copies those outputs into the
notebook nbval read and, at the end of the session, writes ``DIR/<folder>/<name>.ipynb`` (``<folder>`` is the
folder the notebook was collected from, e.g. ``notebooks``).  ``make site`` builds the course website from
these copies, so the site shows the outputs of the run ``make test`` already made.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

_notebooks: dict[Path, nbformat.NotebookNode] = {}  # collected .ipynb path -> the notebook nbval read


def pytest_addoption(parser):
    parser.addoption("--nbexecuted-out", default=None,
                     help="write each notebook nbval executed, with its outputs, under this folder")


def pytest_runtest_teardown(item):
    """After a cell item ran: its outputs (None when nbval skipped it) go into its cell."""
    outputs = getattr(item, "test_outputs", None)
    notebook = getattr(item.parent, "nb", None)
    if notebook is None or not hasattr(item, "cell_num"):  # not an nbval cell item
        return
    _notebooks[Path(item.parent.path)] = notebook
    if outputs is not None:
        item.cell.outputs = copy.deepcopy(outputs)
        item.cell.execution_count = item.cell_num + 1


def executed_path(out: Path, notebook: Path) -> Path:
    """Where the executed copy of ``notebook`` (…/<folder>/<name>.ipynb) goes: ``out/<folder>/<name>.ipynb``."""
    return out / notebook.parent.name / notebook.name


def pytest_sessionfinish(session):
    out = session.config.getoption("--nbexecuted-out")
    if not out:
        return
    for path, notebook in sorted(_notebooks.items()):
        dest = executed_path(Path(out), path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, str(dest))
