"""Frozen features, computed once: a frozen backbone gives the same output every epoch, so training a
head on cached features is exact and several times faster than a forward pass per epoch."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from . import config
from .train import make_loader


def to_rgb(x: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """(N, 1 or 3, H, W) -> (N, 3, size, size): grayscale repeated to 3 channels, resized bilinearly."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 1 or 3, H, W), got {tuple(x.shape)}")
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


@torch.no_grad()
def extract(fn: Callable[[torch.Tensor], torch.Tensor], ds: Dataset, batch_size: int = 256,
            device: torch.device | str | None = None,
            transform: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``fn(transform(x))`` for a whole dataset in eval mode: (N, D) float32 on the CPU, labels (N,).

    ``fn`` is a module or a module's method; it runs on ``device``, by default the module's.
    """
    module = getattr(fn, "__self__", fn)
    if device is None:
        device = config.device_of(module) if isinstance(module, torch.nn.Module) else torch.device("cpu")
    was_training = getattr(module, "training", None)
    if was_training is not None:
        module.eval()
    feats, labels = [], []
    for x, y in make_loader(ds, batch_size):
        x = x.to(device)
        if transform is not None:
            x = transform(x)
        feats.append(fn(x).flatten(1).float().cpu())
        labels.append(torch.as_tensor(y))
    if was_training:
        module.train()
    return torch.cat(feats), torch.cat(labels)
