"""Image conversion between datasets: grayscale digits and X-rays into the 3-channel input a pretrained net expects."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_rgb(x: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """(N, 1 or 3, H, W) -> (N, 3, size, size): grayscale repeated to 3 channels, resized bilinearly."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 1 or 3, H, W), got {tuple(x.shape)}")
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x
