"""Course-wide settings: the profile, the device, the data directory and the seed.

Every notebook starts with ``cfg = course_lib.setup()``.  The same notebook then runs in two
profiles:

* ``quick``: a 2-core CPU (and CI).  Small, deterministic splits carved from the offline mirror,
  few epochs; each lesson is sized for at most 60 s, each exercise solution for 90 s.  On a CPU, torch
  uses ``QUICK_THREADS`` (2) threads whatever the core count, because float sums, and so the printed
  numbers, depend on the thread count: a laptop with 8 cores then prints what CI prints.
  ``$COURSE_THREADS`` overrides it.
* ``full``: a Colab GPU.  Official splits, downloaded when missing, real training budgets.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PROFILES = ("quick", "full")
QUICK_THREADS = 2  # the CI machine's core count: the README's numbers were measured with it


@dataclass(frozen=True)
class Config:
    """What a lesson needs to know about where and how it runs."""

    profile: str
    device: torch.device
    data_dir: Path
    run_dir: Path
    seed: int
    threads: int  # torch CPU threads; pinned in quick on a CPU (see the module docstring)

    @property
    def quick(self) -> bool:
        return self.profile == "quick"

    def pick(self, quick, full):
        """Return ``quick`` or ``full`` for the active profile, e.g. ``cfg.pick(2, 30)`` epochs."""
        return quick if self.quick else full

    def summary(self) -> str:
        return (f"course_lib: profile={self.profile} device={self.device} seed={self.seed} "
                f"threads={self.threads} data_dir={self.data_dir} torch={torch.__version__}")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/transfer-course`` (``~/.cache/transfer-course`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "transfer-course"


def data_dir() -> Path:
    """The data directory: ``$COURSE_DATA_DIR``, else ``<cache>/data``."""
    env = os.environ.get("COURSE_DATA_DIR")
    return Path(env).expanduser() if env else default_cache_dir() / "data"


def run_dir() -> Path:
    """Where checkpoints and histories go: ``$COURSE_RUN_DIR``, else ``<cache>/runs``."""
    env = os.environ.get("COURSE_RUN_DIR")
    return Path(env).expanduser() if env else default_cache_dir() / "runs"


def device_of(module: torch.nn.Module) -> torch.device:
    """Where ``module`` computes: the device of its first parameter or buffer (the CPU if it has none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_profile(profile: str | None = None) -> str:
    """``profile`` if given, else ``$COURSE_PROFILE``, else ``full`` with CUDA and ``quick`` without."""
    chosen = profile or os.environ.get("COURSE_PROFILE") or ("full" if torch.cuda.is_available() else "quick")
    chosen = chosen.strip().lower()
    if chosen not in PROFILES:
        raise ValueError(f"Unknown profile {chosen!r}; use one of {PROFILES} "
                         f"(argument `profile` or environment variable COURSE_PROFILE).")
    return chosen


def cpu_threads(profile: str, device: torch.device) -> int | None:
    """Threads to pin: ``$COURSE_THREADS`` if set, else ``QUICK_THREADS`` for quick on a CPU, else None (torch's
    default)."""
    env = os.environ.get("COURSE_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"COURSE_THREADS={env!r} is not a positive integer; unset it or use e.g. 2.")
        return int(env)
    return QUICK_THREADS if profile == "quick" and device.type == "cpu" else None


@contextmanager
def one_thread_on_cpu(device: torch.device | str) -> Iterator[None]:
    """Run a block with one torch thread when ``device`` is a CPU (the runs whose caches every thread count
    shares: the zoo, ``label_curves``), and restore the thread count afterwards, even on an exception."""
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def one_thread_tag(device: torch.device | str) -> str:
    """The cache tag of work run under ``one_thread_on_cpu``: ``"cpu1t"`` on a CPU, else the device type
    (``"cuda"``), so one cache serves every thread count."""
    dev = torch.device(device)
    return "cpu1t" if dev.type == "cpu" else dev.type


def settings_digest(settings: dict, ignore: tuple[str, ...] = ()) -> str:
    """10 hex digits of the sha256 of ``settings`` (JSON, sorted keys) without the keys in ``ignore``: a
    cache key for what fixes a run's numbers."""
    kept = {k: v for k, v in settings.items() if k not in ignore}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:10]


def numerics_tag(device: torch.device | str = "cpu") -> str:
    """What, besides the seed and settings, fixes a trained model's exact numbers: ``"cpu2t"`` (CPU, 2 torch
    threads) or ``"cuda"``.  Caches of trained models put it in their key, so a cache hit returns what a
    fresh run here would give."""
    dev = torch.device(device)
    return f"cpu{torch.get_num_threads()}t" if dev.type == "cpu" else dev.type


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a rerun prints the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def setup(profile: str | None = None, seed: int = 0, verbose: bool = True) -> Config:
    """Pick the profile and device, pin the CPU threads (quick), seed everything and print a one-line summary."""
    chosen, device = resolve_profile(profile), default_device()
    threads = cpu_threads(chosen, device)
    if threads is not None:
        torch.set_num_threads(threads)
    cfg = Config(profile=chosen, device=device, data_dir=data_dir(), run_dir=run_dir(), seed=int(seed),
                 threads=torch.get_num_threads())
    seed_everything(cfg.seed)
    if verbose:
        print(cfg.summary())
    return cfg
