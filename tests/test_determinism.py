"""Determinism: lesson 00 (the cheapest lesson: 11 s alone) executed twice through tools/bench.py's executor
must give exactly the same metrics (ResNet-20 test accuracy, per-class recall, the sum of all 10,000 x 10
test logits), every float compared for equality.  The lessons that train are not run here: two runs of any
of them would take this test far over its 90 s budget on 2 CPU cores."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402

NOTEBOOK = "notebooks/00_setup_and_data.ipynb"


def test_lesson_00_gives_identical_metrics_twice(tmp_path):
    runs = [bench.run_notebook(ROOT / NOTEBOOK, bench.METRICS[NOTEBOOK], tmp_path / f"run{i}", "quick")
            for i in range(2)]
    for rec in runs:
        assert rec["status"] == "ok", rec.get("error")
        assert set(rec["metrics"]) == set(bench.METRICS[NOTEBOOK])  # every metric measured, none skipped
    assert runs[0]["metrics"] == runs[1]["metrics"]  # exact equality of every float, not approximate
