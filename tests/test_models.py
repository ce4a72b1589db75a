"""CIFAR ResNets: architecture, self-normalisation, checkpoint loading and new heads."""

from __future__ import annotations

import pytest
import torch

from course_lib import models


@pytest.mark.parametrize("depth,blocks", [(20, 3), (32, 5), (44, 7), (56, 9)])
def test_shapes_and_depth(depth, blocks):
    m = models.cifar_resnet(depth, pretrained=False).eval()
    x = torch.rand(2, 3, 32, 32)
    assert m(x).shape == (2, 10) and m.features(x).shape == (2, 64)
    assert len(m.layer1) == blocks
    convs = sum(isinstance(mod, torch.nn.Conv2d) for mod in m.modules())
    assert convs + 1 == depth  # 6n+1 convs plus the fc layer


def test_bad_depth_and_bad_input_are_clear_errors():
    with pytest.raises(ValueError, match="6n\\+2"):
        models.CifarResNet(21)
    with pytest.raises(ValueError, match="pretrained weights exist"):
        models.cifar_resnet(110, pretrained=True)
    m = models.cifar_resnet(20, pretrained=False)
    with pytest.raises(ValueError, match="repeat grayscale"):
        m(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        m(torch.rand(3, 32, 32))


def test_model_normalises_its_own_input():
    m = models.cifar_resnet(20, pretrained=False).eval()
    x = torch.rand(4, 3, 32, 32)
    mean = torch.tensor(models.CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models.CIFAR_STD).view(1, 3, 1, 1)
    assert torch.allclose(m.normalize(x), (x - mean) / std)
    assert "normalize.mean" not in m.state_dict()  # never saved into or expected from checkpoints


def test_pretrained_loads_upstream_format_strictly(fake_mirror):
    m = models.cifar_resnet(20, pretrained=True)
    raw = torch.load(fake_mirror / "checkpoints/resnet20-12fca82f.th", weights_only=True)["state_dict"]
    assert torch.equal(m.conv1.weight, raw["module.conv1.weight"])
    assert torch.equal(m.fc.weight, raw["module.linear.weight"])


def test_new_head_keeps_backbone(fake_mirror):
    ref = models.cifar_resnet(20, pretrained=True)
    m = models.cifar_resnet(20, pretrained=True, num_classes=2)
    for (k, a), (_, b) in zip(ref.state_dict().items(), m.state_dict().items()):
        if not k.startswith("fc."):
            assert torch.equal(a, b), k
    assert m.fc.out_features == 2 and m.eval()(torch.rand(3, 3, 32, 32)).shape == (3, 2)


def test_corrupted_checkpoint_is_refused(fake_mirror):
    from course_lib.data.integrity import ChecksumError

    path = fake_mirror / "checkpoints/resnet20-12fca82f.th"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ChecksumError, match="resnet20-12fca82f.th"):
        models.cifar_resnet(20)
