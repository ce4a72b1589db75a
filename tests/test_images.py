"""images.to_rgb: grayscale -> RGB and resizing for pretrained 3-channel backbones."""

from __future__ import annotations

import pytest
import torch

from course_lib.images import to_rgb


def test_to_rgb_shapes_and_errors():
    x = torch.rand(2, 1, 28, 28)
    out = to_rgb(x, 32)
    assert out.shape == (2, 3, 32, 32)
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    assert to_rgb(torch.rand(2, 3, 8, 8)).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="expected images"):
        to_rgb(torch.rand(2, 2, 8, 8))
