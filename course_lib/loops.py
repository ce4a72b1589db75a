"""The generic loops every lesson uses: eval-mode prediction in batches, accuracy, and one fit loop.

* ``predict(fn, x)``: ``fn`` (a module, a module's method, or any callable with ``module=``) over a tensor
  in batches, in eval mode, outputs on the CPU; the module's train/eval mode is restored even on error.
* ``extract(fn, data)``: the same over a labelled ``Dataset`` or ``DataLoader``: (outputs (N, D), labels (N,)).
* ``accuracy(logits, labels)`` and ``evaluate_accuracy(fn, x, labels)``.
* ``fit``: epochs of training with progress bars, a monitored validation metric, patience, and the best
  checkpoint saved atomically (never in the current directory, ERRATA 8.8) and reloaded at the end.
  Losses are averaged per sample, not per batch (ERRATA 8.16).
* ``train_classifier``: ``fit`` with Adam on seeded shuffled tensor batches, no validation.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import config
from .data.cache import atomic_save, atomic_write_text

LossFn = Callable[..., torch.Tensor]
Batches = Callable[[int], Iterable[tuple]]  # epoch -> (x, y, *extra) batches on the model's device


def make_loader(ds: Dataset, batch_size: int = 128, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader whose shuffling order depends only on ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, drop_last=drop_last)


@contextmanager
def eval_mode(module: nn.Module | None) -> Iterator[None]:
    """Eval mode inside the block; the module's previous train/eval mode afterwards, even on error."""
    was = module.training if module is not None else None
    if module is not None:
        module.eval()
    try:
        yield
    finally:
        if module is not None:
            module.train(was)


def _owner(fn: Callable, module: nn.Module | None) -> nn.Module | None:
    """The module whose mode and device a call of ``fn`` depends on: ``module``, ``fn`` or ``fn.__self__``."""
    if module is not None:
        return module
    owner = getattr(fn, "__self__", fn)
    return owner if isinstance(owner, nn.Module) else None


def _device(owner: nn.Module | None, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return config.device_of(owner) if owner is not None else torch.device("cpu")


def _to_cpu(out):
    return tuple(o.float().cpu() for o in out) if isinstance(out, tuple) else out.float().cpu()


def _cat(outs: list):
    return tuple(torch.cat(parts) for parts in zip(*outs)) if isinstance(outs[0], tuple) else torch.cat(outs)


@torch.no_grad()
def predict(fn: Callable, x: torch.Tensor, *, batch_size: int = 500, device: torch.device | str | None = None,
            module: nn.Module | None = None, progress: bool = False, desc: str = "predict"):
    """``fn`` over inputs x (N, ...) in batches, in eval mode: its output (N, ...) as float32 on the CPU.

    ``fn`` is a module, a module's method (``model.features``) or a callable of ``module``; a tuple output
    gives a tuple of tensors.  Batches run on ``device``, by default the module's.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or len(x) == 0:
        raise ValueError(f"x must be a non-empty tensor (N, ...), got {getattr(x, 'shape', type(x))}")
    owner = _owner(fn, module)
    dev = _device(owner, device)
    batches = x.split(batch_size)
    if progress:  # (a disabled tqdm still initialises tqdm's global locks: none unless asked)
        batches = tqdm(batches, desc=desc, leave=False)
    with eval_mode(owner):
        return _cat([_to_cpu(fn(xb.to(dev))) for xb in batches])


@torch.no_grad()
def extract(fn: Callable, data: Dataset | DataLoader, *, batch_size: int = 256,
            device: torch.device | str | None = None, transform: Callable | None = None,
            module: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn(transform(x))`` over a labelled dataset (or loader of (x, y)), in eval mode.

    Returns outputs (N, D) float32 on the CPU (flattened after the batch dimension: features or logits)
    and labels (N,).  This is how frozen features are cached once instead of recomputed every epoch.
    """
    owner = _owner(fn, module)
    dev = _device(owner, device)
    loader = data if isinstance(data, DataLoader) else make_loader(data, batch_size)
    outs, labels = [], []
    with eval_mode(owner):
        for xb, yb in loader:
            xb = xb.to(dev)
            outs.append(fn(transform(xb) if transform is not None else xb).flatten(1).float().cpu())
            labels.append(torch.as_tensor(yb))
    return torch.cat(outs), torch.cat(labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows of logits (N, K) whose argmax equals labels (N,)."""
    labels = torch.as_tensor(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"need logits (N, K) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return (logits.argmax(1) == labels.to(logits.device)).float().mean().item()


def evaluate_accuracy(fn: Callable, x: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 500,
                      module: nn.Module | None = None) -> float:
    """Accuracy of ``fn`` (-> logits (N, K)) on inputs x (N, ...) with labels (N,), in eval mode."""
    return accuracy(predict(fn, x, batch_size=batch_size, module=module), torch.as_tensor(labels).cpu())


@dataclass
class History:
    """One dict per epoch (train_loss, train_acc, val_* metrics, lr, seconds) and the best epoch (1-based)."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    monitor: str | None = None
    run_dir: str = ""

    def __getitem__(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs]

    @property
    def best(self) -> dict:
        if self.best_epoch is None:
            raise ValueError("no best epoch: this run had no validation")
        return self.epochs[self.best_epoch - 1]


def new_run_dir(prefix: str = "run") -> Path:
    """A fresh, unique directory under ``$COURSE_RUN_DIR`` (never the current directory)."""
    root = config.run_dir()
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=root))


def train_epoch(forward: Callable, batches: Iterable[tuple], loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                scheduler=None) -> dict[str, float]:
    """One pass of SGD over ``batches`` of (x, y, *extra); ``loss_fn(forward(x), y, *extra)``.

    The loss is a scalar tensor or a NamedTuple of them whose first field is minimised (all fields are
    logged).  ``scheduler``, if given, steps after every batch.  Returns per-sample means: ``train_loss``
    (or each field) and ``train_acc``.
    """
    sums: dict[str, float] = {}
    correct = seen = 0
    for x, y, *extra in batches:
        logits = forward(x)
        out = loss_fn(logits, y, *extra)
        parts = out._asdict() if hasattr(out, "_asdict") else {"train_loss": out}
        optimizer.zero_grad(set_to_none=True)
        next(iter(parts.values())).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    if seen == 0:
        raise ValueError("an epoch with no batches: the training set is empty (or smaller than the batch size)")
    return {**{k: v / seen for k, v in sums.items()}, "train_acc": correct / seen}


def _loader_batches(loader: DataLoader, device: torch.device) -> Batches:
    return lambda epoch: ((x.to(device), torch.as_tensor(y).to(device)) for x, y in loader)


def _loader_validate(model: nn.Module, loader: DataLoader, loss_fn: LossFn) -> Callable[[], dict]:
    def validate() -> dict[str, float]:
        logits, labels = extract(model, loader)
        return {"val_loss": loss_fn(logits, labels).item(), "val_acc": accuracy(logits, labels)}
    return validate


class _Best:
    """Tracks the monitored metric: saves the best weights atomically, counts epochs without improvement."""

    def __init__(self, model: nn.Module, ckpt: Path, monitor: str):
        self.model, self.ckpt, self.monitor = model, ckpt, monitor
        self.sign = -1.0 if monitor.endswith("loss") else 1.0
        self.value, self.stale = -float("inf"), 0

    def update(self, row: dict, history: History) -> None:
        if self.monitor not in row:
            raise ValueError(f"monitor {self.monitor!r} is not among the validation metrics {sorted(row)}")
        if self.sign * row[self.monitor] > self.value:
            self.value, self.stale, history.best_epoch = self.sign * row[self.monitor], 0, row["epoch"]
            atomic_save(self.model.state_dict(), self.ckpt)
        else:
            self.stale += 1


def fit(model: nn.Module, train: DataLoader | Batches, val: DataLoader | Callable[[], dict] | None = None,
        epochs: int = 1, *, loss_fn: LossFn = F.cross_entropy, optimizer: torch.optim.Optimizer | None = None,
        forward: Callable | None = None, scheduler=None, step_scheduler: bool = False, monitor: str = "val_acc",
        patience: int | None = None, run_dir: str | Path | None = None, name: str = "best",
        overwrite: bool = False, progress: bool = True, desc: str = "epochs") -> History:
    """Train ``model`` for up to ``epochs`` epochs; with ``val``, keep and reload the best epoch by ``monitor``.

    train: a DataLoader of (x, y), or ``epoch -> batches`` of (x, y, *extra) already on the model's device.
    val: a DataLoader (-> val_loss, val_acc) or a callable returning a dict of ``val_*`` metrics.  A monitor
    ending in "loss" is minimised, any other maximised; ``patience`` epochs without improvement stop early.
    With ``val``, ``run_dir/{name}.pt`` (the best weights, never overwritten unless ``overwrite``) and
    ``run_dir/{name}_history.json`` are written; ``run_dir`` defaults to a new directory under
    ``$COURSE_RUN_DIR``.  ``scheduler`` steps once per epoch, or per batch with ``step_scheduler``.
    Adam (lr 1e-3) on the trainable parameters by default.  Ends in eval mode.
    """
    device = config.device_of(model)
    batches = _loader_batches(train, device) if isinstance(train, DataLoader) else train
    validate = _loader_validate(model, val, loss_fn) if isinstance(val, DataLoader) else val
    optimizer = optimizer or torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = History(monitor=monitor if validate else None)
    best = None
    if validate is not None:
        run_dir = Path(run_dir) if run_dir is not None else new_run_dir(name)
        best = _Best(model, _checkpoint(run_dir, name, overwrite), monitor)
        history.run_dir = str(run_dir)
    for epoch in tqdm(range(1, epochs + 1), desc=desc, leave=False, disable=not progress):
        start = time.perf_counter()
        model.train()
        row = {"epoch": epoch, **train_epoch(forward or model, batches(epoch), loss_fn, optimizer,
                                             scheduler if step_scheduler else None)}
        if scheduler is not None and not step_scheduler:
            scheduler.step()
        row.update(validate() if validate is not None else {})
        history.epochs.append({**row, "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - start})
        if best is not None:
            best.update(row, history)
            atomic_write_text(json.dumps(asdict(history), indent=1), run_dir / f"{name}_history.json")
            if patience is not None and best.stale >= patience:
                break
    if best is not None:
        model.load_state_dict(torch.load(best.ckpt, map_location=device, weights_only=True))  # ERRATA 8.8
    model.eval()
    return history


def _checkpoint(run_dir: Path, name: str, overwrite: bool) -> Path:
    """``run_dir/{name}.pt``, refusing the current directory and an existing checkpoint (unless ``overwrite``)."""
    if run_dir.resolve() == Path.cwd().resolve():
        raise ValueError("run_dir must not be the current directory (ERRATA 8.8); use loops.new_run_dir()")
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / f"{name}.pt"
    if ckpt.exists() and not overwrite:
        raise FileExistsError(f"{ckpt} already exists; pass overwrite=True or choose another run_dir.")
    return ckpt


def shuffled(n: int, batch_size: int, gen: torch.Generator, drop_last: bool = False) -> list[torch.Tensor]:
    """Index batches of one random permutation of range(n) drawn from ``gen`` (the last partial one kept
    unless ``drop_last``)."""
    order = torch.randperm(n, generator=gen)
    return list((order[: n - n % batch_size] if drop_last else order).split(batch_size))


def train_classifier(module: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, epochs: int,
                     lr: float | list[dict], batch_size: int = 64, seed: int = 0, progress: bool = True,
                     desc: str = "train") -> History:
    """Adam on cross-entropy over ``inputs`` (N, ...) -> logits (N, K), no validation; one row per epoch.

    ``lr`` is one learning rate for every trainable parameter, or Adam parameter groups.  The batch
    order depends only on ``seed``; inputs stay on their device, each batch moves to the module's.
    """
    if len(inputs) != len(labels) or len(inputs) == 0:
        raise ValueError(f"need as many labels as inputs (> 0), got {len(inputs)} and {len(labels)}")
    params = lr if isinstance(lr, list) else [{"params": [p for p in module.parameters() if p.requires_grad],
                                               "lr": lr}]
    device = config.device_of(module)
    gen = torch.Generator().manual_seed(seed)
    batches = lambda epoch: ((inputs[i].to(device), labels[i].to(device))
                             for i in shuffled(len(inputs), batch_size, gen))
    return fit(module, batches, None, epochs, optimizer=torch.optim.Adam(params), progress=progress, desc=desc)
