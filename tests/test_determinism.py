"""Determinism: a lesson executed twice through tools/bench.py's executor must give exactly the same
asserted metrics, every float compared for equality.

Lesson 00 (about 15 s): data loading and checksums, MNIST-M built from BSDS500 photos, ResNet-20 inference
(test accuracy, per-class recall, the sum of all 10,000 x 10 test logits).  Both runs use the quick profile,
so ``course_lib.setup()`` pins the same CPU thread count.

Training is checked where it runs anyway, instead of executing a training lesson twice here: lessons 04 and 06
each train one run inline and assert that it equals the cached run that tools/warm_caches.py
trained in another process (identical history, or logits within 1e-4, on a CPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402


@pytest.mark.parametrize("notebook", ["notebooks/00_setup_and_data.ipynb"])
def test_a_lesson_gives_identical_metrics_twice(notebook, tmp_path):
    runs = [bench.run_notebook(ROOT / notebook, bench.METRICS[notebook], tmp_path / f"run{i}", "quick")
            for i in range(2)]
    for rec in runs:
        assert rec["status"] == "ok", rec.get("error")
        assert set(rec["metrics"]) == set(bench.METRICS[notebook])  # every metric measured, none skipped
    assert runs[0]["metrics"] == runs[1]["metrics"]  # exact equality of every float, not approximate
