"""Pretrained CIFAR-10 ResNets (He et al. 2016, option-A shortcuts), weights from akamaster/pytorch_resnet_cifar10.

The network normalises its own input: feed it the float tensors in [0, 1] that
``course_lib.data.load("cifar10", ...)`` returns, never pre-normalised ones.  Stages are named like
torchvision's ResNets (``conv1``, ``bn1``, ``layer1``..``layer3``, ``fc``) so that freezing and
discriminative learning rates work the same way on both.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import config
from .data.files import ensure

CIFAR_MEAN = (0.485, 0.456, 0.406)  # the statistics these checkpoints were trained with
CIFAR_STD = (0.229, 0.224, 0.225)
CHECKPOINTS = {20: "resnet20-12fca82f.th", 32: "resnet32-d509ac18.th",
               44: "resnet44-014dd654.th", 56: "resnet56-4bfd9763.th"}
PUBLISHED_TOP1 = {20: 91.73, 32: 92.63, 44: 93.10, 56: 93.39}  # upstream README, % on the 10,000 test images


class Normalize(nn.Module):
    """(x - mean) / std per channel; x: (N, 3, H, W) in [0, 1].  Buffers are not saved in checkpoints."""

    def __init__(self, mean=CIFAR_MEAN, std=CIFAR_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"expected images (N, {self.mean.shape[1]}, H, W), got {tuple(x.shape)}; "
                             "repeat grayscale input to 3 channels with x.expand(-1, 3, -1, -1)")
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """Two 3x3 convs; the shortcut subsamples and zero-pads channels when the shape changes (option A)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pad = (c_out - c_in) // 2 if (stride != 1 or c_in != c_out) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images: (N, 3, 32, 32) in [0, 1] -> logits (N, num_classes)."""

    def __init__(self, depth: int = 20, num_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, ...), got {depth}")
        n = (depth - 2) // 6
        self.normalize = Normalize()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, n, 1)
        self.layer2 = self._stage(16, 32, n, 2)
        self.layer3 = self._stage(32, 64, n, 2)
        self.fc = nn.Linear(64, num_classes)
        self.depth = depth
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @staticmethod
    def _stage(c_in: int, c_out: int, n: int, stride: int) -> nn.Sequential:
        return nn.Sequential(*[BasicBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(n)])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: (N, 3, H, W) -> (N, 64) after global average pooling."""
        x = F.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def load_cifar_state_dict(depth: int, data_dir=None) -> dict[str, torch.Tensor]:
    """The checksum-verified upstream checkpoint, with ``module.`` stripped and ``linear`` renamed ``fc``."""
    if depth not in CHECKPOINTS:
        raise ValueError(f"pretrained weights exist for depths {sorted(CHECKPOINTS)}, not {depth}")
    root = data_dir if data_dir is not None else config.data_dir()
    path = ensure(root, f"checkpoints/{CHECKPOINTS[depth]}", f"resnet{depth}")
    raw = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("module.").replace("linear.", "fc.", 1): v for k, v in raw.items()}


def cifar_resnet(depth: int = 20, pretrained: bool = True, num_classes: int = 10, data_dir=None) -> CifarResNet:
    """A CIFAR-10 ResNet; ``pretrained`` loads the mirrored weights (91.7-93.4% top-1 on CIFAR-10 test).

    With ``num_classes != 10`` the backbone keeps its pretrained weights and gets a new, randomly
    initialised ``fc`` head.
    """
    model = CifarResNet(depth, 10)
    if pretrained:
        model.load_state_dict(load_cifar_state_dict(depth, data_dir), strict=True)
    if num_classes != 10:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model
