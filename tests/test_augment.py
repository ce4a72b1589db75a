"""course_lib.augment.XRayAugment: shapes, range, determinism, and no flips."""

from __future__ import annotations

import pytest
import torch

from course_lib.augment import XRayAugment


def _left_bright(n: int = 16, size: int = 28) -> torch.Tensor:
    x = torch.full((n, 1, size, size), 0.2)
    x[..., : size // 3] = 0.9  # a bright band on the image's left: a flip would move it right
    return x


def test_shape_range_and_determinism():
    x = torch.rand(8, 3, 28, 28)
    a = XRayAugment()(x, torch.Generator().manual_seed(0))
    b = XRayAugment()(x, torch.Generator().manual_seed(0))
    c = XRayAugment()(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_zero_strength_is_identity():
    x = torch.rand(4, 1, 28, 28)
    out = XRayAugment(0, 0, 0, 0, 0)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)


def test_never_flips_left_and_right():
    out = XRayAugment()(_left_bright(64), torch.Generator().manual_seed(0))
    left, right = out[..., :9].mean((1, 2, 3)), out[..., -9:].mean((1, 2, 3))
    assert (left > right + 0.4).all()


def test_shift_is_small():
    x = torch.zeros(32, 1, 28, 28)
    x[:, :, 12:16, 12:16] = 1.0  # a small central "finding"
    out = XRayAugment(brightness=0, contrast=0)(x, torch.Generator().manual_seed(0))
    assert (out[:, :, 8:20, 8:20].sum((1, 2, 3)) > 0.8 * 16).all()  # it stays in view, near the centre


@pytest.mark.parametrize("bad", [torch.rand(28, 28), torch.rand(2, 28, 28),
                                 torch.randint(0, 255, (2, 1, 28, 28), dtype=torch.uint8)])
def test_wrong_input_raises_clear_valueerror(bad):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        XRayAugment()(bad)


def test_strengths_that_could_lose_the_finding_are_rejected():
    with pytest.raises(ValueError, match="lung field"):
        XRayAugment(max_translate=0.5)
