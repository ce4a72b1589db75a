"""Benchmark harness: execute every lesson and solution notebook, record wall time and key metrics.

Usage:
    python tools/bench.py [--profile quick|full] [--out results/<profile>.json] [--only SUBSTRING ...]
    python tools/bench.py --readme [--results results/quick.json] [--readme-out results/README_results.md]

Each notebook is executed as a *copy* (build/bench/<profile>/<folder>/<name>.ipynb; the committed file is
never touched) with nbclient, the kernel's working directory being the copy's folder and COURSE_PROFILE set
to the profile.  After its last cell one extra cell runs in the same kernel: it evaluates the expressions
listed for that notebook in METRICS below and prints them as JSON (numbers become floats, tensors and arrays
lists, dict keys strings, tuple keys "a | b").  A notebook that fails (a cell error, a timeout, a metric
that cannot be evaluated) is recorded with its error; the others still run and the command exits 1.

--readme renders a Markdown "Results" table (measured numbers beside the papers', labelled as the papers')
from a results file into results/README_results.md.  Only numbers present in the results file are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # run_notebooks, for the budget flag
FOLDERS = ("notebooks", "solutions")
MARKER = "BENCH_METRICS_JSON="

# notebook (relative to the repository) -> {metric name: Python expression evaluated in the notebook's kernel}
METRICS: dict[str, dict[str, str]] = {
    "notebooks/00_setup_and_data.ipynb": {
        "resnet20_cifar10_test_acc": "acc20",
        "resnet20_per_class_recall": "np.diag(cm)",
        "resnet20_logit_sum": "logits.double().sum()",  # a checksum of all 10,000 x 10 test logits
    },
    "notebooks/01_transferability.ipynb": {
        "probe_auc": "{k: r['auc'] for k, r in probes.items()}",
        "probe_acc": "{k: r['acc'] for k, r in probes.items()}",
        "zoo_finetuned_test_auc": "{n: results[n]['test AUC'] for n in SOURCES}",
        "zoo_kendall_tau": "{m: t[0] for m, t in taus.items()}",
        "zoo_weighted_tau": "{m: t[1] for m, t in taus.items()}",
    },
    "notebooks/02_freezing.ipynb": {
        "bn_trap_cifar_acc_before": "before_acc",
        "bn_trap_cifar_acc_after": "after_acc",
        "strategy_test_acc_mean": "{k: sum(v) / len(v) for k, v in results.items()}",
        # timings measured inside the notebook (not deterministic)
        "seconds_backbone_every_epoch": "t_live",
        "seconds_cached_features": "t_cached",
    },
    "notebooks/03_discriminative_lr.ipynb": {
        "lr_range_steepest": "steepest",
        "lr_range_min10": "min10",
        "test_acc_mean": "{m: v.mean() for m, v in acc.items()}",
        "test_auc_mean": "{m: v.mean() for m, v in auc.items()}",
        "test_acc_per_seed": "acc",
    },
    "notebooks/04_dann.ipynb": {
        "mnist_m_source_only": "src_acc",
        "mnist_m_dann": "dann_acc",
        "mnist_m_train_on_target": "oracle_acc",
        "mnist_m_proxy_a_distance": "pad",
        "mnist_m_dann_domain_acc": "dom_acc",
        "usps_source_only": "us_src",
        "usps_dann": "us_dann",
        "usps_train_on_target": "us_oracle",
    },
    "notebooks/05_mmd.ipynb": {
        "target_test_acc": "final",
        "mmd_test_p_value": "{k: t.p_value for k, t in tests.items()}",
    },
    "notebooks/06_knowledge_distillation.ipynb": {
        "table": "{n: {k: v for k, v in r.items() if k != 'seconds'} for n, r in table.items()}",
        "compression": "compression",
        "few_labels_test_acc": "few_acc",
        "few_labels_gain": "gain",
        "few_labels_gap_closed": "closed",
    },
    "notebooks/07_meta_distillation.ipynb": {
        "five_way_acc_mean": "{k: v[0] for k, v in summary.items()}",
        "five_way_acc_ci95": "{k: v[1] for k, v in summary.items()}",
        "kd_pretraining_losses": "kd_losses",
    },
    "notebooks/08_medical_pipeline.ipynb": {
        "pneumonia_test": "{k: r.row() for k, r in reports.items()}",
        "breast_test": "{k: r.row() for k, r in b_reports.items()}",
        "logme_pretrained": "logme_pre",
        "logme_random": "logme_rand",
        "teacher_student_param_ratio": "n_teacher / n_student",
    },
    "solutions/ex1_transferability.ipynb": {
        "probe_auc_mean": "auc_all.mean()",
        "kendall_tau_mean": "{s: v.mean() for s, v in taus.items()}",
        "weighted_tau_mean": "{s: v.mean() for s, v in wtaus.items()}",
    },
    "solutions/ex2_strategies_vs_size.ipynb": {
        "test_auc_mean": "{k: v[0] for k, v in summary.items()}",
        "partial_minus_discriminative": "gap",
    },
    "solutions/ex3_dann_sweep.ipynb": {
        "target_val_acc": "val_acc",
        "target_test_acc": "test_acc",
        "proxy_a_distance": "pad",
        "domain_head_acc": "head_acc",
        "chosen_lambda_max": "best",
        "chosen_test_acc": "best_test",
    },
    "solutions/ex4_kd_grid.ipynb": {
        "val_acc": "val_acc",
        "chosen": "chosen",
        "chosen_test_acc": "test_acc",
        "scratch_val_acc": "scratch_val",
        "teacher_train_acc": "teacher_train_acc",
    },
    "solutions/ex5_meta_distillation.ipynb": {
        "five_way_acc_mean": "{k: v[0] for k, v in summary.items()}",
        "five_way_acc_ci95": "{k: v[1] for k, v in summary.items()}",
    },
}

EXTRACT_CELL = '''\
import json as _bench_json, numbers as _bench_numbers, os as _bench_os, platform as _bench_platform

def _bench_conv(v):
    """float, or a list / dict of them; tensors and arrays through .tolist(); dict keys as strings."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        v = v.tolist()
    if isinstance(v, _bench_numbers.Real):
        return float(v)
    if isinstance(v, dict):
        return {(" | ".join(map(str, k)) if isinstance(k, tuple) else str(k)): _bench_conv(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_bench_conv(x) for x in v]
    raise TypeError(f"not a number, list or dict of numbers: {type(v).__name__}")

_bench_out = {"metrics": {}, "errors": {}, "kernel": {"python": _bench_platform.python_version()}}
try:
    import torch as _bench_torch
    _bench_out["kernel"].update(torch=_bench_torch.__version__, threads=_bench_torch.get_num_threads(),
                                 cuda=_bench_torch.cuda.is_available())
except ImportError:
    pass
for _bench_name, _bench_expr in %(exprs)r.items():
    try:
        _bench_out["metrics"][_bench_name] = _bench_conv(eval(_bench_expr))
    except Exception as _bench_err:
        _bench_out["errors"][_bench_name] = f"{_bench_expr!r}: {type(_bench_err).__name__}: {_bench_err}"
print(%(marker)r + _bench_json.dumps(_bench_out))
'''


def extraction_source(exprs: dict[str, str]) -> str:
    """Source of the cell appended to a notebook copy: prints MARKER + JSON of the evaluated ``exprs``."""
    return EXTRACT_CELL % {"exprs": dict(exprs), "marker": MARKER}


def parse_extraction(outputs: list[dict]) -> dict:
    """The JSON printed by the extraction cell, from that cell's nbformat outputs."""
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    for line in text.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise ValueError(f"no {MARKER!r} line in the extraction cell's output: {text[-500:]!r}")


def run_notebook(src: Path, exprs: dict[str, str], workdir: Path, profile: str = "quick",
                 timeout: int = 1800) -> dict:
    """Execute a copy of ``src`` in ``workdir`` plus the extraction cell; return one result record.

    Record: notebook, status ("ok" or "failed"), seconds (wall time, kernel start included), metrics, kernel
    (python / torch / threads / cuda as seen inside the kernel), error (only when failed).
    """
    import nbformat
    from nbclient import NotebookClient

    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / src.name
    shutil.copyfile(src, copy)
    nb = nbformat.read(copy, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(extraction_source(exprs)))
    record: dict = {"notebook": src.name, "status": "ok", "seconds": None, "metrics": {}}
    saved = os.environ.get("COURSE_PROFILE")
    os.environ["COURSE_PROFILE"] = profile
    t0 = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}})
        client.execute()
        out = parse_extraction(nb.cells[-1].get("outputs", []))
        record["metrics"], record["kernel"] = out["metrics"], out["kernel"]
        if out["errors"]:
            record["status"], record["error"] = "failed", "metric extraction: " + "; ".join(out["errors"].values())
    except Exception as err:  # a failing notebook is a result, not a crash of the harness
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # the traceback's terminal colours
        record["status"], record["error"] = "failed", f"{type(err).__name__}: {text[-3000:]}"
    finally:
        record["seconds"] = round(time.perf_counter() - t0, 2)
        if saved is None:
            os.environ.pop("COURSE_PROFILE", None)
        else:
            os.environ["COURSE_PROFILE"] = saved
    nbformat.write(nb, copy)  # the executed copy, outputs included, for inspection
    return record


def environment() -> dict:
    """Where the numbers were measured: versions, device, CPU count and threads, commit."""
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip())
    except OSError:
        commit, dirty = "", False
    return {"date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(),
            "platform": platform.platform(), "torch": torch.__version__,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "commit": commit, "uncommitted_changes": dirty}


def notebooks(only: list[str] | None = None) -> list[Path]:
    """Every lesson (notebooks/*.ipynb) and solution (solutions/ex*.ipynb), optionally filtered by substring."""
    found = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("ex*.ipynb"))
    return [p for p in found if not only or any(s in p.name for s in only)]


def bench(profile: str, out: Path, only: list[str] | None = None, timeout: int = 1800) -> int:
    """Run the notebooks one after the other, writing ``out`` after each; 1 if any failed."""
    results = {"profile": profile, "environment": environment(), "notebooks": {}}
    build = ROOT / "build" / "bench" / profile
    for src in notebooks(only):
        key = src.relative_to(ROOT).as_posix()
        print(f"{key} ...", flush=True)
        rec = run_notebook(src, METRICS.get(key, {}), build / src.parent.name, profile, timeout)
        results["notebooks"][key] = rec
        tail = f": ...{rec['error'][-300:]}" if "error" in rec else ""
        print(f"  {rec['status']} in {rec['seconds']:.1f} s{tail}", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    failed = [k for k, r in results["notebooks"].items() if r["status"] != "ok"]
    print(f"\nwrote {out}; {len(results['notebooks']) - len(failed)} ok, {len(failed)} failed {failed or ''}")
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------------- README table
def _get(results: dict, notebook: str, *path: str):
    """A measured value, or None when the notebook failed or did not record it."""
    v = results.get("notebooks", {}).get(notebook, {}).get("metrics", {})
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return None
        v = v[p]
    return v


def _fmt(v, spec: str = ".3f") -> str:
    return "not measured" if v is None else format(v, spec)


# (experiment, notebook, measured-cell template with {metric/path} fields and a format, the paper's numbers)
ROWS = [
    ("DANN, MNIST → MNIST-M, target test accuracy (lesson 04)", "notebooks/04_dann.ipynb",
     "source-only {mnist_m_source_only:.3f} / DANN {mnist_m_dann:.3f} / train on target {mnist_m_train_on_target:.3f}",
     "Ganin et al. 2016: 0.5225 / 0.7666 / 0.9596"),
    ("Knowledge distillation, CIFAR-10 test accuracy, ResNet-56 teacher (lesson 06)",
     "notebooks/06_knowledge_distillation.ipynb",
     "teacher {table/teacher ResNet-56/test acc:.3f}; student alone {table/student, scratch/test acc:.3f}, "
     "distilled {table/student, distilled/test acc:.3f}; with 10% of the labels: alone "
     "{few_labels_test_acc/scratch, few labels:.3f}, distilled {few_labels_test_acc/distilled, few labels:.3f}",
     "Hinton et al. 2015, MNIST (another task): 146 → 74 test errors (small net alone → distilled)"),
    ("PneumoniaMNIST test AUC / ACC (lesson 08)", "notebooks/08_medical_pipeline.ipynb",
     "fine-tuned {pneumonia_test/fine-tuned/auc:.3f} / {pneumonia_test/fine-tuned/acc:.3f}; "
     "from scratch {pneumonia_test/scratch/auc:.3f} / {pneumonia_test/scratch/acc:.3f}",
     "MedMNIST v2, ResNet-18 (28 px) from scratch: 0.944 / 0.854"),
    ("BreastMNIST test AUC / ACC (lesson 08)", "notebooks/08_medical_pipeline.ipynb",
     "fine-tuned {breast_test/transfer: fine-tuned/auc:.3f} / {breast_test/transfer: fine-tuned/acc:.3f}; "
     "from scratch {breast_test/from scratch/auc:.3f} / {breast_test/from scratch/acc:.3f}",
     "MedMNIST v2, ResNet-18 (28 px) from scratch: 0.901 / 0.863"),
    ("Transferability scores vs fine-tuned AUC over the 6-model zoo, weighted Kendall τ (lesson 01)",
     "notebooks/01_transferability.ipynb",
     "LogME {zoo_weighted_tau/LogME:+.3f}, LEEP {zoo_weighted_tau/LEEP:+.3f}",
     "LogME paper: scores judged by weighted τ over 10+ model zoos; TLlib's re-run: LEEP τ −0.26 on Aircraft"),
    ("Omniglot 5-way 1-shot / 5-shot accuracy, MAML (lesson 07)", "notebooks/07_meta_distillation.ipynb",
     "{five_way_acc_mean/MAML | 1:.3f} / {five_way_acc_mean/MAML | 5:.3f}",
     "Finn et al. 2017 (full Omniglot, 60,000 meta-steps): 0.987 / 0.999"),
]


def _measured(results: dict, notebook: str, template: str) -> str:
    """``template`` filled from ``notebook``'s metrics; "not measured (...)" when it did not run cleanly."""
    rec = results.get("notebooks", {}).get(notebook)
    if rec is None:
        return "not measured (not run)"
    if rec.get("status") != "ok":
        return "not measured (the notebook failed)"
    parts = re.split(r"\{([^{}]+):([^{}:]+)\}", template)  # text, path, spec, ..., text (keys may hold ':')
    out = parts[0]
    for i in range(1, len(parts), 3):
        out += _fmt(_get(results, notebook, *parts[i].split("/")), parts[i + 1]) + parts[i + 2]
    return out


def render_readme(results: dict) -> str:
    """Markdown "Results" section: measured numbers (from ``results``) beside the papers' (labelled as such)."""
    from run_notebooks import budget_flag

    env = results.get("environment", {})
    profile = results.get("profile", "?")
    lines = ["## Results", "",
             f"Measured by `make bench PROFILE={profile}` on {env.get('device', '?')} "
             f"({env.get('cpu_count', '?')} CPUs, torch {env.get('torch', '?')}, {env.get('date_utc', '?')} UTC). "
             "The papers' numbers are theirs, with their own data size, networks and training length: "
             "they are context, not targets.", "",
             "| experiment | measured | the paper's |", "|---|---|---|"]
    lines += [f"| {label} | {_measured(results, nb, template)} | {paper} |" for label, nb, template, paper in ROWS]
    lines += ["", "Seconds: wall time of each notebook, kernel start included, with the course's caches in "
              "`$COURSE_DATA_DIR/cache` warm (lessons 04 and 05 and Exercise 3 reuse cached digit-adaptation runs; "
              "the model zoo is cached too). Budgets: lessons 90 s, solutions 120 s.", "",
              "| notebook | seconds | status |", "|---|---:|---|"]
    for name, rec in results.get("notebooks", {}).items():
        flag = budget_flag(name, rec["seconds"]).strip() if rec.get("seconds") is not None else ""
        lines.append(f"| {name} | {_fmt(rec.get('seconds'), '.0f')} | {rec.get('status')}"
                     f"{' (' + flag + ')' if flag else ''} |")
    lines += ["", f"Regenerate: `make bench PROFILE={profile}` (writes results/{profile}.json and this table, "
              f"results/README_results.md).", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=os.environ.get("COURSE_PROFILE", "quick"), choices=("quick", "full"))
    ap.add_argument("--out", type=Path, help="results file (default results/<profile>.json)")
    ap.add_argument("--only", nargs="*", help="run only notebooks whose file name contains one of these")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    ap.add_argument("--readme", action="store_true", help="render the Markdown results table instead of running")
    ap.add_argument("--results", type=Path, help="results file to render (default results/<profile>.json)")
    ap.add_argument("--readme-out", type=Path, default=ROOT / "results" / "README_results.md")
    args = ap.parse_args(argv)
    if args.readme:
        src = args.results or ROOT / "results" / f"{args.profile}.json"
        args.readme_out.parent.mkdir(parents=True, exist_ok=True)
        args.readme_out.write_text(render_readme(json.loads(src.read_text())))
        print(f"wrote {args.readme_out} from {src}")
        return 0
    return bench(args.profile, args.out or ROOT / "results" / f"{args.profile}.json", args.only, args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
