"""tools/build_site.py's choices (which executed copies, what the web copy of a notebook holds) and
tools/nbexecuted.py (the nbval run keeps each executed notebook).  The site itself:
tests/browser/test_site_in_browser.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402
from nbexecuted import executed_path  # noqa: E402

LESSONS = ["00_a.ipynb", "01_b.ipynb"]


def _repo(tmp_path: Path) -> Path:
    """A repository with two lessons and no executed copies."""
    for name in LESSONS:
        (tmp_path / "notebooks").mkdir(exist_ok=True)
        (tmp_path / "notebooks" / name).write_text("{}")
    return tmp_path


def _executed(folder: Path, names: list[str], mtime: float | None = None) -> Path:
    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / "notebooks" / name).write_text("{}")
        if mtime is not None:
            os.utime(folder / "notebooks" / name, (mtime, mtime))
    return folder


def test_no_executed_copies_is_a_clear_error_that_says_how_to_make_them(tmp_path):
    root = _repo(tmp_path)
    _executed(root / "build" / "executed", LESSONS[:1])  # a partial run is not enough
    with pytest.raises(build_site.SiteError) as err:
        build_site.select_source(root)
    message = str(err.value)
    assert "build/executed: missing 01_b.ipynb" in message
    assert "make test" in message and "make bench" in message and "run_notebooks.py" in message


def test_build_site_exits_2_with_the_message(tmp_path, monkeypatch, capsys):
    select, root = build_site.select_source, _repo(tmp_path)
    monkeypatch.setattr(build_site, "select_source", lambda: select(root))
    assert build_site.main([]) == 2
    assert "make site: no executed copy of every lesson" in capsys.readouterr().err


def test_the_nbval_run_comes_first_then_the_newest_bench(tmp_path):
    root = _repo(tmp_path)
    now = time.time()
    old = _executed(root / "build" / "bench" / "full", LESSONS, now - 3600)
    new = _executed(root / "build" / "bench" / "quick", LESSONS, now)
    assert build_site.select_source(root) == new
    os.utime(old / "notebooks" / LESSONS[0], (now + 60, now + 60))
    assert build_site.select_source(root) == old
    executed = _executed(root / "build" / "executed", LESSONS, now - 7200)
    assert build_site.select_source(root) == executed


def _output(text: str, widget: bool) -> dict:
    data = {"text/plain": text}
    if widget:
        data[build_site.WIDGET] = {"model_id": "x", "version_major": 2, "version_minor": 0}
    return {"output_type": "display_data", "metadata": {}, "data": data}


def test_web_copy_freezes_widgets_serves_the_badge_locally_and_drops_the_bench_cell():
    bar = _output("epochs:   0%|          | 0/5 [00:00<?, ?it/s]", widget=True)
    panel = _output("VBox(children=(FloatSlider(value=1.0),))", widget=True)
    figure = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}
    nb = {"metadata": {"widgets": {}}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": [f'<a href="x"><img src="{build_site.COLAB_BADGE}"/></a>']},
        {"cell_type": "code", "metadata": {}, "source": "f()", "outputs": [bar, panel, figure]},
        {"cell_type": "code", "metadata": {}, "source": build_site.BENCH_CELL + "\n", "outputs": []}]}
    web = build_site.prepare_notebook(nb)
    assert len(web["cells"]) == 2 and "widgets" not in web["metadata"]
    assert "colab.research.google.com" not in web["cells"][0]["source"]
    assert "../_static/colab-badge.svg" in web["cells"][0]["source"]
    outputs = web["cells"][1]["outputs"]
    assert [list(o["data"]) for o in outputs] == [["text/markdown"], ["image/png", "text/plain"]]
    assert outputs[0]["data"]["text/markdown"] == build_site.WIDGET_NOTE


def test_nbval_run_writes_the_executed_notebook_with_its_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# tiny"), nbformat.v4.new_code_cell("x = 41"),
                nbformat.v4.new_code_cell("print(x + 1)\nx + 2")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "lessons").mkdir()
    nbformat.write(nb, tmp_path / "lessons" / "tiny.ipynb")
    out = tmp_path / "executed"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "nbexecuted",
                          "--nbval-lax", "--nbval-current-env", f"--nbexecuted-out={out}", "lessons/tiny.ipynb"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "tools")})
    assert run.returncode == 0, run.stdout + run.stderr
    saved = json.loads(executed_path(out, tmp_path / "lessons" / "tiny.ipynb").read_text())
    nbformat.validate(nbformat.from_dict(saved))
    code = [c for c in saved["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == [1, 2] and code[0]["outputs"] == []
    stream, result = code[1]["outputs"]
    assert "".join(stream["text"]) == "42\n" and "".join(result["data"]["text/plain"]) == "43"
