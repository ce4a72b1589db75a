"""A small fit/evaluate loop: progress bars, a per-epoch history, and the best checkpoint reloaded.

``fit`` saves the best model (by a validation metric) atomically into a run directory (never the
current directory) and returns the model *with the best weights loaded*, fixing ERRATA 8.8.
Losses are averaged per sample, not per batch (ERRATA 8.16).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import config
from .data.cache import atomic_save, atomic_write_text

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_loader(ds: Dataset, batch_size: int = 128, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader whose shuffling order depends only on ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, drop_last=drop_last)


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device | str | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) and labels (N,) for a whole loader, in eval mode, on the CPU."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for x, y in loader:
        logits.append(model(x.to(device)).float().cpu())
        labels.append(torch.as_tensor(y))
    model.train(was_training)
    return torch.cat(logits), torch.cat(labels)


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device | str | None = None,
             loss_fn: LossFn = F.cross_entropy) -> dict[str, float]:
    """``{"loss": mean per-sample loss, "acc": accuracy}`` over a loader."""
    logits, labels = predict(model, loader, device)
    return {"loss": loss_fn(logits, labels).item(), "acc": (logits.argmax(1) == labels).float().mean().item()}


@dataclass
class History:
    """One dict per epoch (train_loss, train_acc, val_loss, val_acc, lr, seconds) and the best epoch."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    monitor: str = "val_acc"
    run_dir: str = ""

    def __getitem__(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs]

    @property
    def best(self) -> dict:
        return self.epochs[self.best_epoch - 1]


def new_run_dir(prefix: str = "run") -> Path:
    """A fresh, unique directory under ``$COURSE_RUN_DIR`` (never the current directory)."""
    root = config.run_dir()
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=root))


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, epochs: int,
        optimizer: torch.optim.Optimizer | None = None, scheduler=None, loss_fn: LossFn = F.cross_entropy,
        device: torch.device | str | None = None, run_dir: str | Path | None = None,
        monitor: str = "val_acc", overwrite: bool = False, progress: bool = True) -> tuple[nn.Module, History]:
    """Train for ``epochs`` epochs, keep the best epoch by ``monitor`` and return it.

    The returned model holds the weights of the best epoch (higher val_acc, or lower val_loss when
    ``monitor="val_loss"``).  ``run_dir`` receives ``best.pt`` and ``history.json``; by default a new
    directory under ``$COURSE_RUN_DIR``.  An existing ``best.pt`` is never overwritten unless
    ``overwrite=True``.  ``scheduler`` (if any) is stepped once per epoch.
    """
    if monitor not in ("val_acc", "val_loss"):
        raise ValueError(f"monitor must be 'val_acc' or 'val_loss', got {monitor!r}")
    device = torch.device(device) if device is not None else config.default_device()
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir("fit")
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "best.pt"
    if ckpt.exists() and not overwrite:
        raise FileExistsError(f"{ckpt} already exists; pass overwrite=True or choose another run_dir.")
    model.to(device)
    optimizer = optimizer or torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = History(monitor=monitor, run_dir=str(run_dir))
    sign = 1.0 if monitor == "val_acc" else -1.0
    best = -float("inf")
    for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=not progress):
        start, total, correct, seen = time.perf_counter(), 0.0, 0, 0
        model.train()
        for x, y in tqdm(train_loader, desc=f"epoch {epoch}", leave=False, disable=not progress):
            x, y = x.to(device), torch.as_tensor(y).to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        if scheduler is not None:
            scheduler.step()
        val = evaluate(model, val_loader, device, loss_fn)
        row = {"epoch": epoch, "train_loss": total / max(seen, 1), "train_acc": correct / max(seen, 1),
               "val_loss": val["loss"], "val_acc": val["acc"], "lr": optimizer.param_groups[0]["lr"],
               "seconds": time.perf_counter() - start}
        history.epochs.append(row)
        if sign * row[monitor] > best:
            best, history.best_epoch = sign * row[monitor], epoch
            atomic_save(model.state_dict(), ckpt)
        atomic_write_text(json.dumps(asdict(history), indent=1), run_dir / "history.json")
    model.load_state_dict(torch.load(ckpt, map_location=device, weights_only=True))
    return model, history
