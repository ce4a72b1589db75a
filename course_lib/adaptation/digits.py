"""The digit adaptation benchmarks as tensors: MNIST -> MNIST-M and MNIST -> USPS, all (N, 3, 28, 28).

MNIST and USPS are grayscale (USPS is 16×16): they are repeated to 3 channels and resized to 28×28, so
both pairs share one input format and one network (ERRATA 5.7).  Splits come from ``course_lib.data``:
in ``quick`` they are carved from the official test sets (``data.describe`` says how).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .. import config, data
from ..data.integrity import load_stamped, save_stamped
from ..features import to_rgb
from .dann import DANN
from .train import METHODS, train_adapted

SOURCE = "mnist"
TARGETS = ("mnist_m", "usps")
SIZE = 28


@dataclass
class DigitPair:
    """Images (N, 3, 28, 28) in [0, 1] and labels (N,) for one source -> target pair.

    ``target_train`` labels exist on disk but a UDA method may only use the images; the labels serve
    the train-on-target *oracle*.  ``target_val`` is for choosing hyperparameters, ``target_test`` for
    the reported numbers.
    """

    target: str
    profile: str
    data_dir: Path
    source_train: tuple[torch.Tensor, torch.Tensor]
    source_test: tuple[torch.Tensor, torch.Tensor]
    target_train: tuple[torch.Tensor, torch.Tensor]
    target_val: tuple[torch.Tensor, torch.Tensor]
    target_test: tuple[torch.Tensor, torch.Tensor]


def _split(name: str, split: str, profile: str | None, data_dir: str | Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    ds = data.load(name, split, profile=profile, data_dir=data_dir)
    return to_rgb(ds.images, SIZE).contiguous(), ds.labels


def load_pair(target: str, profile: str | None = None, data_dir: str | Path | None = None) -> DigitPair:
    """MNIST -> ``target`` (``"mnist_m"`` or ``"usps"``) as tensors."""
    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; use one of {TARGETS}")
    get = lambda name, split: _split(name, split, profile, data_dir)
    root = Path(data_dir) if data_dir is not None else config.data_dir()
    return DigitPair(target, config.resolve_profile(profile), root, get(SOURCE, "train"), get(SOURCE, "test"), get(target, "train"),
                     get(target, "val"), get(target, "test"))


CACHE_VERSION = 1


def run(pair: DigitPair, method: str, steps: int, lambda_max: float = 1.0, seed: int = 0,
        device: torch.device | str = "cpu", eval_every: int | None = None, batch_size: int = 64,
        progress: bool = True, cache: bool = True) -> tuple[DANN, list[dict]]:
    """Train a fresh ``DANN`` network on ``pair`` with ``method``; returns (model, history).

    method: ``"source"``, ``"dann"``, ``"mmd"`` (see ``train_adapted``) or ``"oracle"``: supervised
    training on the target's own labelled training split, an upper bound no UDA method is given.
    The weights are initialised from ``torch.manual_seed(seed)``; target *test* accuracy is logged
    ``eval_every`` steps (default: 6 points per run).  With ``cache``, the result is stored in
    ``<data_dir>/cache/digits`` (checksummed), so lesson 05 reuses lesson 04's runs and a re-run
    notebook does not retrain; a cache hit returns exactly what training gave, and either way the
    caller's global RNG is left as it was.  The key holds every setting and ``config.numerics_tag``
    (device, CPU threads), so a run with another thread count trains its own.
    """
    if method not in (*METHODS, "oracle"):
        raise ValueError(f"Unknown method {method!r}; use one of {(*METHODS, 'oracle')}")
    eval_every = eval_every or max(steps // 6, 1)
    lam = 0.0 if method in ("source", "oracle") else lambda_max
    dev = torch.device(device)
    key = (f"{pair.target}_{method}_lam{lam:g}_steps{steps}_bs{batch_size}_every{eval_every}_seed{seed}_"
           f"{pair.profile}_{config.numerics_tag(dev)}")
    path = pair.data_dir / "cache" / "digits" / f"{key}.v{CACHE_VERSION}.pt"
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # the caller's RNG is untouched
        torch.manual_seed(seed)
        model = DANN(10, (3, SIZE, SIZE)).to(dev)
        saved = load_stamped(path) if cache else None
        if saved is not None:
            model.load_state_dict(saved["state_dict"])
            return model, saved["history"]
        source = pair.target_train if method == "oracle" else pair.source_train
        history = train_adapted(model, source, pair.target_train[0], steps, "source" if method == "oracle" else method,
                                batch_size=batch_size, lambda_max=lam, target_test=pair.target_test, seed=seed,
                                progress=progress, eval_every=eval_every)
    if cache:
        save_stamped({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": history}, path)
    return model, history
