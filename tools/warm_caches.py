"""Train what the lessons share and cache it, before the notebooks run (``make test`` and ``make bench`` call it).

Usage: python tools/warm_caches.py [--profile quick|full] [--workers K]

Today that is ``strategy_grid.grid`` (freezing strategies against label budgets, lesson 02 and Exercise 2),
``kd_curves.runs`` (distillation with a transfer set and the T × α grid, lesson 06 and Exercise 4),
``meta_grid.runs`` (ProtoNet, MAML and meta-distillation on Omniglot, lesson 07 and Exercise 5),
``adaptation.digits.experiments`` (source-only, BatchNorm-only, DANN, MMD and train-on-target runs, lessons 04–05 and
Exercise 3),
the zoo's sources and their outputs on the ranking targets (``zoo.outputs``, lesson 01 and Exercise 1) and
``label_curves.transfer_vs_scratch``, the transfer-vs-scratch experiment that lessons 02 and 08 read.  On a CPU
both use one thread per run, so K processes (default: one per core, at most 4) work on disjoint shards in parallel.
What is cached already is skipped; the wall time is printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch

from course_lib import config, kd_curves, label_curves, meta_grid, strategy_grid, zoo
from course_lib.adaptation import digits


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--shard", type=int, nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    profile, device = config.resolve_profile(args.profile), config.default_device()
    if args.shard:
        i, k = args.shard
        strategy_grid.grid(profile, device, progress=False, shard=(i, k))
        kd_curves.runs(profile, device, progress=False, shard=(i, k))
        meta_grid.runs(profile, device, progress=False, shard=(i, k))
        digits.experiments(profile, device, progress=False, shard=(i, k))
        for name in list(zoo.SOURCES)[i::k]:
            zoo.outputs(name, profile, device=device, progress=False)
        label_curves.transfer_vs_scratch(profile, device, progress=False, shard=tuple(args.shard))
        return 0
    workers = args.workers or (1 if device.type != "cpu" else max(1, min(4, os.cpu_count() or 1)))
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--profile", profile, "--shard", str(i), str(workers)])
             for i in range(workers)]
    if any(p.wait() for p in procs):
        print("warm_caches: a worker failed", file=sys.stderr)
        return 1
    runs = label_curves.transfer_vs_scratch(profile, device, progress=False)
    cells = strategy_grid.grid(profile, device, progress=False)
    kd_runs = kd_curves.runs(profile, device, progress=False)
    meta_runs = meta_grid.runs(profile, device, progress=False)
    digit_runs = digits.experiments(profile, device, progress=False)
    for name in zoo.SOURCES:
        zoo.outputs(name, profile, device=device, progress=False)
    print(f"warm_caches: {len(cells)} strategy-grid runs, {len(kd_runs)} distillation runs, "
          f"{len(meta_runs)} few-shot runs, {len(digit_runs)} digit-adaptation runs, "
          f"{len(zoo.SOURCES)} zoo sources' outputs and "
          f"transfer vs scratch, {len(runs)} runs cached ({profile}, {device.type}, "
          f"{workers} worker(s)) in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main(sys.argv[1:]))
