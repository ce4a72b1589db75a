"""Cached frozen features and the grayscale -> RGB helper."""

from __future__ import annotations

import pytest
import torch

from course_lib import features
from course_lib.data import ImageDataset
from course_lib.models import cifar_resnet


def test_to_rgb_shapes_and_errors():
    x = torch.rand(2, 1, 28, 28)
    out = features.to_rgb(x, 32)
    assert out.shape == (2, 3, 32, 32)
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    assert features.to_rgb(torch.rand(2, 3, 8, 8)).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="expected images"):
        features.to_rgb(torch.rand(2, 2, 8, 8))


def test_extract_matches_a_direct_forward_and_restores_mode():
    torch.manual_seed(0)
    model = cifar_resnet(20, pretrained=False).train()
    ds = ImageDataset((torch.rand(10, 1, 28, 28) * 255).to(torch.uint8), torch.arange(10) % 2, ["a", "b"])
    f, y = features.extract(model.features, ds, batch_size=4, transform=lambda x: features.to_rgb(x, 32))
    assert f.shape == (10, 64) and torch.equal(y, ds.labels) and model.training
    model.eval()
    with torch.no_grad():
        direct = model.features(features.to_rgb(ds.images, 32))
    assert torch.allclose(f, direct, atol=1e-5)
