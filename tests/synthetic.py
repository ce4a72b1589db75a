"""Synthetic data for unit tests only (lessons use real data)."""

from __future__ import annotations

import torch


def bright_square(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 3, 32, 32) in [0, 0.9] and labels (n,): class 1 has a bright square, class 0 does not."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 3, 32, 32, generator=g) * 0.3
    x[y == 1, :, 8:24, 8:24] += 0.6
    return x, y
