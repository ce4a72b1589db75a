"""Choose λ_max for DANN and MMD on the *validation* split of each target, as lessons 04-05 cite.

Usage: COURSE_PROFILE=quick python tools/sweep_adaptation.py [--out build/sweep_adaptation.json]

For every pair (MNIST -> MNIST-M, MNIST -> USPS), method and λ_max, trains ``--seeds`` (default 0-2) with
the lessons' recipe (``digits.RECIPES``: steps, batch 64, the paper's SGD schedule with the recipe's μ_0),
prints mean ± sd target *validation* accuracy, then the λ_max with the best mean.  Using target labels to pick a
hyperparameter is what UDA papers do in practice, and it is optimistic: a real unlabelled target has no validation
labels.
Exercise 3 repeats the DANN sweep on MNIST-M with the cached runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import course_lib
from course_lib import loops
from course_lib.adaptation import digits

GRID = {"dann": (0.03, 0.1, 0.3, 1.0), "mmd": (0.3, 1.0, 3.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/sweep_adaptation.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    cfg = course_lib.setup()
    rows = []
    for target in digits.TARGETS:
        pair = digits.load_pair(target)
        for method, grid in [("source", (0.0,)), *GRID.items()]:
            for lam in grid:
                accs = []
                for seed in args.seeds:
                    model, _ = digits.run(pair, method, lambda_max=lam, seed=seed, device=cfg.device, progress=False,
                                          cache=False, **digits.recipe_args(target, cfg.profile))
                    accs.append(round(loops.evaluate_accuracy(model.classify, *pair.target_val, batch_size=1000), 4))
                a = torch.tensor(accs)
                rows.append({"target": target, "method": method, "lambda_max": lam, "val_acc": accs})
                print(f"{target:8s} {method:7s} λ_max={lam:<4g} val acc {a.mean():.3f} ± {a.std():.3f}  {accs}",
                      flush=True)
    for target in digits.TARGETS:
        for method in GRID:
            cands = [r for r in rows if r["target"] == target and r["method"] == method]
            best = max(cands, key=lambda r: sum(r["val_acc"]) / len(r["val_acc"]))
            edge = " (at the edge of the grid)" if best["lambda_max"] in (GRID[method][0], GRID[method][-1]) else ""
            print(f"chosen: {target} {method} λ_max = {best['lambda_max']:g}{edge}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
