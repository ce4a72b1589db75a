"""The benchmark harness (tools/bench.py) and the runtime flag of tools/run_notebooks.py, on tiny inputs."""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402
import microbench  # noqa: E402
import run_notebooks  # noqa: E402


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_extraction_cell_prints_what_the_notebook_recorded(capsys):
    from course_lib import bench_record

    bench_record.clear()
    try:
        bench_record.record("acc", torch.tensor(0.25))
        bench_record.record("grid", {(3.0, 0.5): np.float32(0.75)})
        exec(bench.EXTRACT_CELL, {})
    finally:
        bench_record.clear()
    out = bench.parse_extraction([{"output_type": "stream", "name": "stdout", "text": capsys.readouterr().out}])
    assert out["metrics"] == {"acc": 0.25, "grid": {"3.0 | 0.5": 0.75}} and out["kernel"]["threads"] >= 1
    with pytest.raises(ValueError, match="no 'BENCH_METRICS_JSON=' line"):
        bench.parse_extraction([{"output_type": "stream", "name": "stdout", "text": "hello\n"}])


def test_bench_runs_copies_records_metrics_and_failures(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    good = _notebook(src / "good.ipynb", "import os\nimport course_lib\nx = 0.5 * 3\ncourse_lib.record('x', x)",
                     "cwd = os.getcwd()\nsame_dir = float(cwd == os.path.dirname(os.path.abspath('good.ipynb')))\n"
                     "course_lib.record('profile_len', len(os.environ['COURSE_PROFILE']))\n"
                     "course_lib.record('same_dir', same_dir)")
    bad = _notebook(src / "bad.ipynb", "import course_lib\ncourse_lib.record('y', 1)", "raise RuntimeError('boom')")
    twice = _notebook(src / "twice.ipynb", "import course_lib\ncourse_lib.record('z', 1)\ncourse_lib.record('z', 2)")
    short = _notebook(src / "short.ipynb", "import course_lib\ncourse_lib.record('u', 1)\ncourse_lib.record('w', 2)")
    before = good.read_bytes()
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "notebooks", lambda only=None: [bad, good, twice, short])
    monkeypatch.setattr(bench, "METRICS", {"src/good.ipynb": ("x", "profile_len", "same_dir"), "src/bad.ipynb": ("y",),
                                           "src/twice.ipynb": ("z",), "src/short.ipynb": ("u", "v")})
    monkeypatch.setattr(bench, "SUMMARY", {"lifted": ("src/good.ipynb", "x"), "lost": ("src/bad.ipynb", "y")})
    monkeypatch.delenv("COURSE_BENCH", raising=False)
    out = tmp_path / "results" / "full.json"
    assert bench.bench("full", out) == 1  # three notebooks failed
    assert "COURSE_BENCH" not in os.environ  # set for the kernels only
    res = json.loads(out.read_text())
    g, b = res["notebooks"]["src/good.ipynb"], res["notebooks"]["src/bad.ipynb"]
    assert g["status"] == "ok" and g["metrics"] == {"x": 1.5, "profile_len": 4.0, "same_dir": 1.0}
    assert g["seconds"] > 0 and g["kernel"]["threads"] >= 1
    assert b["status"] == "failed" and "boom" in b["error"] and "\x1b" not in b["error"] and b["metrics"] == {}
    t, s = res["notebooks"]["src/twice.ipynb"], res["notebooks"]["src/short.ipynb"]
    assert t["status"] == "failed" and "'z' recorded twice with different values" in t["error"]
    assert s["status"] == "failed" and "not recorded" in s["error"] and "['v']" in s["error"]
    assert s["metrics"] == {"u": 1.0, "w": 2.0}  # what it did record is kept, beside the error
    assert good.read_bytes() == before  # the committed notebook is never executed in place
    assert (tmp_path / "build" / "bench" / "full" / "src" / "good.ipynb").exists()
    assert res["environment"]["cpu_count"] >= 1 and res["profile"] == "full"
    assert res["lifted"] == 1.5 and res["lost"] is None  # a failed notebook's summary is None, not stale


def _recorded_names(py: Path) -> list[str]:
    """The names of every ``course_lib.record("name", ...)`` call in a notebook's py:percent source."""
    calls = [n for n in ast.walk(ast.parse(py.read_text())) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and n.func.attr == "record"]
    assert all(isinstance(c.args[0], ast.Constant) and isinstance(c.args[0].value, str) for c in calls), py
    return [c.args[0].value for c in calls]


def test_every_notebook_records_exactly_the_metrics_the_bench_expects():
    assert set(bench.METRICS) == {p.relative_to(ROOT).as_posix() for p in bench.notebooks()}
    for nb, expected in bench.METRICS.items():
        names = _recorded_names(ROOT / nb.replace(".ipynb", ".py"))
        assert expected and len(set(expected)) == len(expected), nb
        assert sorted(names) == sorted(expected), (nb, set(names) ^ set(expected))  # each once, none unexpected


def test_summary_lifts_only_expected_metrics():
    for spec in bench.SUMMARY.values():
        for nb, metric in [spec] if isinstance(spec, tuple) else spec:
            assert metric in bench.METRICS[nb], (nb, metric)


def _results(status_04: str = "ok") -> dict:
    return {"profile": "quick", "environment": {"device": "cpu", "cpu_count": 2, "torch": "2.x", "date_utc": "d"},
            "notebooks": {
                "notebooks/04_dann.ipynb": {"status": status_04, "seconds": 50.4, "metrics": {
                    "mnist_m_source_only": 0.4321, "mnist_m_dann": 0.5432, "mnist_m_train_on_target": 0.9123,
                    "mnist_m": {"bn_only": 0.4765}, "mnist_m_gain": {"dann - bn_only": [0.0667, 0.0222]}}},
                "notebooks/07_meta_distillation.ipynb": {"status": "ok", "seconds": 95.0, "metrics": {
                    "omniglot_5way": {"MAML": {"1": [0.6111, 0.01], "5": [0.7222, 0.01]}}}},
                "notebooks/08_medical_pipeline.ipynb": {"status": "ok", "seconds": 44.0, "metrics": {
                    "breast_test": {"transfer: fine-tuned": {"auc": 0.8811, "acc": 0.8522}}}}}}


def test_readme_table_prints_measured_numbers_beside_the_papers():
    md = bench.render_readme(_results())
    dann = next(line for line in md.splitlines() if line.startswith("| DANN"))
    assert "0.432" in dann and "0.543" in dann and "0.912" in dann and "BN only 0.476" in dann
    assert "DANN − BN only +0.067 ± 0.022" in dann and "0.5225 / DANN 0.7666 / train on target 0.9596" in dann
    assert "MAML 0.611 / 0.722" in md and "0.987 / 0.999" in md and "146 → 74" in md
    assert "fine-tuned 0.881 / 0.852; from scratch not measured / not measured" in md  # a key holding ':'
    assert "| notebooks/04_dann.ipynb | 50 | ok |" in md and "make bench PROFILE=quick" in md
    assert "| notebooks/07_meta_distillation.ipynb | 95 | ok (OVER 60 s budget) |" in md
    kd = next(line for line in md.splitlines() if line.startswith("| Knowledge"))
    assert "not measured" in kd  # lesson 06 absent: no number printed for it


def test_readme_table_puts_a_second_thread_count_in_its_own_column():
    main, alt = _results(), _results()
    main["environment"] = {"torch_threads": 2, "COURSE_THREADS": None}
    alt["environment"] = {"torch_threads": 2, "COURSE_THREADS": "1", "commit": "abcdef123", "date_utc": "d"}
    alt["notebooks"]["notebooks/04_dann.ipynb"]["metrics"]["mnist_m_dann"] = 0.6
    md = bench.render_readme(main, alt)
    assert "| experiment | measured (2 threads) | measured (COURSE_THREADS=1) | the paper's |" in md
    dann = next(line for line in md.splitlines() if line.startswith("| DANN"))
    assert "DANN 0.543" in dann and "DANN 0.600" in dann
    assert "commit abcdef1" in md and "yet 1 of the 12 measured numbers differ" in md
    assert "measured (COURSE_THREADS=1)" not in bench.render_readme(main)


def test_readme_table_never_prints_a_failed_notebooks_numbers():
    md = bench.render_readme(_results(status_04="failed"))
    dann = next(line for line in md.splitlines() if line.startswith("| DANN"))
    assert "0.432" not in dann and "0.543" not in dann and "not measured (the notebook failed)" in dann


def test_readme_table_marks_a_single_missing_metric():
    res = _results()
    del res["notebooks"]["notebooks/07_meta_distillation.ipynb"]["metrics"]["omniglot_5way"]["MAML"]["5"]
    maml = next(line for line in bench.render_readme(res).splitlines() if line.startswith("| Omniglot"))
    assert "MAML 0.611 / not measured;" in maml


@pytest.mark.parametrize("name, seconds, flagged", [
    ("notebooks/04_dann.ipynb", 60.5, "OVER 60 s budget"), ("notebooks/04_dann.ipynb", 59.9, ""),
    ("solutions/ex3_dann_sweep.ipynb", 80.0, ""), ("solutions/ex3_dann_sweep.ipynb", 90.1, "OVER 90 s budget")])
def test_runtime_table_flags_notebooks_over_budget(capsys, name, seconds, flagged):
    run_notebooks.print_table({name: {"seconds": seconds, "outcome": "passed"}})
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith(name) and (flagged in row if flagged else "OVER" not in row)


def test_microbench_baseline_agrees_with_course_lib_and_peak_memory_sees_an_allocation():
    from course_lib import adaptation

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 8, generator=g), torch.randn(30, 8, generator=g) + 0.5
    assert torch.isclose(microbench.chapter_mmd(x, y, 2.0), adaptation.mmd2(x, y, "rbf", 2.0, unbiased=False))
    seconds, peak, out = microbench.measure(lambda: torch.ones(64, 2 ** 18).sum(), repeats=2)  # 64 MiB buffer
    assert seconds > 0 and out == 64 * 2 ** 18
    if microbench.STATUS.exists():
        assert 60 < peak < 200, peak


def test_only_matching_nothing_is_an_error_and_a_partial_run_keeps_the_full_results(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "notebooks", lambda only=None: [])
    assert bench.main(["--only", "no_such_lesson"]) == 2
    ran = {}
    monkeypatch.setattr(bench, "bench", lambda profile, out, only, timeout: ran.update(out=out) or 0)
    assert bench.main(["--profile", "quick", "--only", "04_dann"]) == 0
    assert ran["out"] == tmp_path / "build" / "bench" / "quick-only.json"  # not results/quick.json
    assert bench.main(["--profile", "quick"]) == 0 and ran["out"] == tmp_path / "results" / "quick.json"


def test_run_notebooks_rejects_unknown_folders_and_prints_help(capsys):
    assert run_notebooks.main(["--help"]) == 0 and "Usage" in capsys.readouterr().out
    assert run_notebooks.main(["no_such_folder"]) == 2
    assert run_notebooks.main(["-x"]) == 2  # pytest options go after "--"
    assert "Not a folder" in capsys.readouterr().err


def test_microbench_feature_cache_and_input_pipeline_run_and_compare_like_with_like(fake_mirror):
    cached = microbench.bench_cached_features(n_images=24, epochs=2, batch=8, dataset="breastmnist")
    assert cached["images"] == 24 and cached["speedup"] > 0 and cached["max_abs_head_weight_diff"] <= 1e-4
    loader = microbench.bench_input_pipeline(n_images=16, batch=8, dataset="breastmnist")
    assert loader["output"] == [3, 224, 224] and loader["images_per_s_tensor_batches"] > 0


def test_microbench_stops_when_the_cached_head_differs(fake_mirror, monkeypatch):
    real = microbench._epochs
    calls = []

    def drift(head, inputs, y, epochs, batch, feature_fn=None):  # the second (cached) run trains one epoch more
        calls.append(1)
        return real(head, inputs, y, epochs + len(calls) - 1, batch, feature_fn)

    monkeypatch.setattr(microbench, "_epochs", drift)
    with pytest.raises(RuntimeError, match="different head"):
        microbench.bench_cached_features(n_images=24, epochs=2, batch=8, dataset="breastmnist")


def test_compare_lists_every_number_that_differs_and_skips_timings(tmp_path, capsys):
    a = {"environment": {"torch_threads": 2}, "notebooks": {
        "n/x.ipynb": {"metrics": {"acc": 0.5, "grid": {"T=1": [0.1, 0.2]}, "seconds_cached": 3.0}},
        "n/y.ipynb": {"metrics": {"auc": 0.9}}}}
    b = {"environment": {"torch_threads": 1}, "notebooks": {
        "n/x.ipynb": {"metrics": {"acc": 0.5, "grid": {"T=1": [0.1, 0.25]}, "seconds_cached": 9.0}}}}
    assert bench.compare(a, b) == [("n/x.ipynb: grid/T=1[1]", 0.2, 0.25), ("n/y.ipynb: auc", 0.9, None)]
    assert bench.compare(a, a) == []
    for name, r in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(r))
    assert bench.main(["--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    out = capsys.readouterr().out
    assert "+0.0500" in out and "missing on one side" in out and "2 measured numbers differ" in out
    assert bench.main(["--compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0


def test_executor_handles_widgets_timeouts_and_a_dead_kernel(tmp_path):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        widget_cell = ("import ipywidgets as W\nout = W.Output()\ns = W.FloatSlider()\n"
                       "with out:\n    out.clear_output(wait=True)\n    print('inside')\n"
                       "display(W.VBox([s, out]))\nprint('done')")
        outs = bench.execute_cell(km, kc, widget_cell, timeout=30)
        assert any(o.get("text") == "done\n" for o in outs if o.output_type == "stream")
        with pytest.raises(bench.CellError, match="timed out after 2 s"):
            bench.execute_cell(km, kc, "import time\ntime.sleep(60)", timeout=2)
        assert bench.execute_cell(km, kc, "print(1 + 1)", timeout=30)[0]["text"] == "2\n"  # interrupted, alive
        with pytest.raises(bench.CellError, match="ZeroDivisionError"):
            bench.execute_cell(km, kc, "1 / 0", timeout=30)
        with pytest.raises(bench.CellError, match="kernel died"):
            bench.execute_cell(km, kc, "import os\nos._exit(1)", timeout=30)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_environment_records_the_commit_and_ignores_the_benchs_own_results(tmp_path, monkeypatch):
    import subprocess

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "quick.json").write_text("{}")
    (tmp_path / "lesson.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "init")
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    (tmp_path / "results" / "quick.json").write_text('{"new": 1}')  # written by the bench itself
    env = bench.environment()
    assert len(env["commit"]) == 40 and env["uncommitted_changes_outside_results"] is False
    (tmp_path / "lesson.py").write_text("x = 2\n")
    assert bench.environment()["uncommitted_changes_outside_results"] is True


def test_readme_results_table_is_the_one_the_committed_results_files_give():
    results, alt, micro = bench.load_results("quick")
    readme = (ROOT / "README.md").read_text()
    block = readme.split(bench.BEGIN)[1].split(bench.END)[0].strip("\n").splitlines()
    assert block == bench.results_block(results, alt, micro), "README.md is stale: run tools/bench.py --readme"
    for r in (results, alt):  # lesson 00 says every assertion held in both runs
        assert len(r["notebooks"]) == len(bench.notebooks()) and all(
            n["status"] == "ok" for n in r["notebooks"].values())


def test_splice_replaces_only_the_marked_block_and_needs_the_markers():
    text = f"intro\n{bench.BEGIN}\nold table\n{bench.END}\noutro\n"
    assert bench.splice_readme(text, ["new", "table"]) == f"intro\n{bench.BEGIN}\nnew\ntable\n{bench.END}\noutro\n"
    with pytest.raises(ValueError, match="exactly one"):
        bench.splice_readme("no markers here", ["x"])


def test_microbench_sentence_reports_the_measured_ratios():
    micro = {"threads": 1, "date_utc": "d", "cached_features": {"speedup": 5.25}, "input_pipeline": {"speedup": 2.04},
             "mmd": [{"n": 256, "d": 256, "speedup": 8.0, "peak_mib_chapter": 128.0, "peak_mib_course_lib": 4.0},
                     {"n": 2048, "d": 256, "speedup": 17.64, "peak_mib_chapter": 8192.0, "peak_mib_course_lib": 80.0}]}
    text = bench._micro_sentence(micro)
    assert "(1 thread, d UTC)" in text and "8× / 18× faster" in text and "N = 256 / 2048" in text
    assert "32–102× less peak memory" in text and "ratio at N = 256 is the steadier one" in text
    assert "(8192 vs 80 MiB at N = 2048)" in text and "5.2× faster" in text and "2.0× more images" in text
    assert "float64 reference" not in text  # not measured in this file
    for row, err in zip(micro["mmd"], (3e-7, 6e-7)):
        row.update(rel_err_course_lib=err, rel_err_chapter=err * 40)
    text = bench._micro_sentence(micro)
    assert "within 6.0e-07 of a float64 reference (the chapter's float32 mean: up to 2.4e-05)" in text


def test_readme_table_reads_list_entries_and_the_transfer_vs_scratch_row():
    res = _results()
    curve = {str(n): {"transfer": [0.95, 0.01], "scratch": [0.93, 0.02], "gap": [0.02 + n / 1e6, 0.011]}
             for n in (32, 100, 316, 1000, 4708)}
    res["notebooks"]["notebooks/02_freezing.ipynb"] = {"status": "ok", "seconds": 50.0,
                                                       "metrics": {"transfer_vs_scratch": curve}}
    row = next(line for line in bench.render_readme(res).splitlines()
               if line.startswith("| PneumoniaMNIST test AUC, transfer"))
    assert "+0.020 ± 0.011 / +0.020 ± 0.011 / +0.025 ± 0.011" in row and "transfer 0.950, scratch 0.930" in row
    assert bench._get(res, "notebooks/02_freezing.ipynb", "transfer_vs_scratch", "32", "gap", "2") is None
    assert bench._get(res, "notebooks/02_freezing.ipynb", "transfer_vs_scratch", "32", "gap", "1") == 0.011


def test_summary_value_lifts_one_metric_or_merges_several():
    nbs = {"a.ipynb": {"metrics": {"m": {"x": 1.0}, "s": 2.0}}, "b.ipynb": {"metrics": {"m": {"y": 3.0}}},
           "bad.ipynb": {"status": "failed", "metrics": {}}}
    assert bench.summary_value(nbs, ("a.ipynb", "s")) == 2.0
    assert bench.summary_value(nbs, [("a.ipynb", "m"), ("b.ipynb", "m")]) == {"x": 1.0, "y": 3.0}
    assert bench.summary_value(nbs, [("a.ipynb", "m"), ("bad.ipynb", "m")]) is None  # never half a merge
    assert bench.summary_value(nbs, [("a.ipynb", "m"), ("missing.ipynb", "m")]) is None


def test_run_notebooks_jobs_option_is_parsed_and_checked():
    assert run_notebooks.take_jobs(["notebooks"]) == (1, ["notebooks"])
    assert run_notebooks.take_jobs(["--jobs", "2", "notebooks", "solutions"]) == (2, ["notebooks", "solutions"])
    assert run_notebooks.take_jobs(["notebooks", "--jobs", "0"])[0] is None
    assert run_notebooks.take_jobs(["--jobs"])[0] is None
    assert run_notebooks.main(["--jobs", "two", "notebooks"]) == 2


def test_cpu_share_splits_the_cores_between_kernels_and_keeps_what_is_set(monkeypatch):
    monkeypatch.setattr(run_notebooks.os, "cpu_count", lambda: 8)
    vars_ = ("COURSE_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    assert {k: run_notebooks.cpu_share({"A": "1"}, 4)[k] for k in vars_} == dict.fromkeys(vars_, "2")
    assert run_notebooks.cpu_share({}, 16)["COURSE_THREADS"] == "1"  # never zero threads
    mine = run_notebooks.cpu_share({"COURSE_THREADS": "3", "MKL_NUM_THREADS": "5"}, 2)
    assert (mine["COURSE_THREADS"], mine["OMP_NUM_THREADS"], mine["MKL_NUM_THREADS"]) == ("3", "3", "5")


def test_run_notebooks_in_parallel_times_every_notebook_and_reports_a_failure(tmp_path, capsys):
    copies = []
    for name, code in (("a", "x = 1"), ("b", "raise ValueError('broken on purpose')"), ("c", "print(2)")):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        copies.append(tmp_path / "build" / "lessons" / f"{name}.ipynb")
        copies[-1].parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, copies[-1])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tools")}
    code = run_notebooks.run_parallel(copies, tmp_path / "build", tmp_path / "executed", [], env, 2)
    out = capsys.readouterr().out
    assert code != 0 and "broken on purpose" in out
    for name, outcome in (("a", "passed"), ("b", "FAILED"), ("c", "passed")):
        assert re.search(rf"lessons/{name}\.ipynb\s+[\d.]+\s+{outcome}", out), out
    assert sorted(p.name for p in (tmp_path / "executed").rglob("*.ipynb")) == ["a.ipynb", "b.ipynb", "c.ipynb"]
