"""Every lesson is a Jupytext pair: the py:percent source and an .ipynb with identical cells and no outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "exercises", "solutions")
PAIRS = [p for f in FOLDERS for p in sorted((ROOT / f).glob("*.py"))]
NOTEBOOKS = [p for f in FOLDERS for p in sorted((ROOT / f).glob("*.ipynb"))]
BADGE = re.compile(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/main/(\S+?\.ipynb)")


def test_there_are_lessons():
    assert (ROOT / "notebooks" / "00_setup_and_data.py").exists()


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_every_ipynb_has_its_source(nb):
    assert nb.with_suffix(".py").exists(), f"{nb} has no py:percent source"


@pytest.mark.parametrize("src", PAIRS, ids=lambda p: p.name)
def test_pair_cells_identical_and_no_outputs(src):
    nb_path = src.with_suffix(".ipynb")
    assert nb_path.exists(), f"{src} has no paired .ipynb (Colab cannot open .py): run `make sync`"
    text = jupytext.read(src)
    assert text.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    committed = json.loads(nb_path.read_text())
    nb = jupytext.read(nb_path)
    cells = lambda n: [(c.cell_type, c.source) for c in n.cells]
    assert cells(text) == cells(nb), f"{nb_path} differs from {src}: run `make sync`"
    for cell in committed["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{nb_path}: strip outputs"


@pytest.mark.parametrize("src", [p for p in PAIRS if p.parent.name == "notebooks"], ids=lambda p: p.name)
def test_lesson_opening_cells(src):
    """Title, a Colab badge pointing at this very notebook, the profiles note, the guarded setup cell, then
    setup() with the printed note of what this profile reads and downloads."""
    cells = jupytext.read(src).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    badge = BADGE.search(cells[0].source)
    assert badge and badge.group(2) == f"notebooks/{src.stem}.ipynb"
    assert cells[1].cell_type == "markdown" and cells[1].source.startswith("**Profiles.**")
    assert 'course_lib.setup("quick")' in cells[1].source
    setup = cells[2].source
    assert 'find_spec("course_lib") is None' in setup and badge.group(1) in setup
    assert "torch" in setup and "-c" in setup, "the install must be constrained to the runtime's torch"
    assert "cfg = course_lib.setup()" in cells[3].source and "profile_note(" in cells[3].source
