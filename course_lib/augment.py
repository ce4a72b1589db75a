"""Augmentation for chest X-rays, on batches of tensors (no PIL round trip, ERRATA 8.13).

What the chapter's pipeline did (§5.1, ERRATA 8.14) and why this one differs:

* no horizontal flip: the heart sits on the patient's left, so a flipped film is an anatomically
  different (dextrocardia-like) image, and laterality of a finding is part of the label's meaning;
* no ``RandomResizedCrop(scale=(0.08, 1))``: a crop keeping 8% of the film can cut the opacity out;
  instead a small random rotation, translation and zoom that keep the whole lung field in view;
* intensity jitter (brightness / contrast) for exposure differences between machines.

``XRayAugment()(x, generator)`` maps (N, C, H, W) in [0, 1] to the same shape, seeded by ``generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class XRayAugment:
    """Random affine (rotation, translation, zoom) per image, then brightness/contrast jitter.

    max_rotate: degrees; max_translate: fraction of the side (0.07 of 28 px ≈ 2 px); max_zoom: a zoom
    factor in [1 − z, 1 + z]; brightness: added offset in [−b, b]; contrast: factor in [1 − c, 1 + c]
    around the image mean.  Pixels moved in from outside copy the border.  Output is clamped to [0, 1].
    """

    max_rotate: float = 10.0
    max_translate: float = 0.07
    max_zoom: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.1

    def __post_init__(self):
        if min(self.max_rotate, self.max_translate, self.max_zoom, self.brightness, self.contrast) < 0 \
                or self.max_translate > 0.2 or self.max_zoom > 0.2:
            raise ValueError("augmentation strengths must be >= 0, with translation and zoom <= 0.2 "
                             "so that the lung field stays in view")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"expected float images (N, C, H, W) in [0, 1], got {x.dtype} {tuple(x.shape)}")
        n = len(x)

        def uniform(scale: float) -> torch.Tensor:  # (N,) in [-scale, scale], drawn on the CPU
            return ((torch.rand(n, generator=generator) * 2 - 1) * scale).to(x.device)

        angle = uniform(math.radians(self.max_rotate))
        zoom = 1 + uniform(self.max_zoom)
        tx, ty = uniform(2 * self.max_translate), uniform(2 * self.max_translate)  # grid units span 2
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        contrast = (1 + uniform(self.contrast)).view(n, 1, 1, 1)
        bright = uniform(self.brightness).view(n, 1, 1, 1)
        return ((out - mean) * contrast + mean + bright).clamp(0, 1)
