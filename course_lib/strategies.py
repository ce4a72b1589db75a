"""Feature extraction vs fine-tuning under a label budget: the helpers of lesson 02.

* ``balanced_subset`` draws a labelled training set of a given size (nested as the size grows).
* ``regroup`` turns a labelling into a new task (e.g. CIFAR-10 classes -> animals vs vehicles).
* ``split_frozen`` cuts a frozen CIFAR ResNet into a frozen *trunk* and a trainable *top*, so the
  trunk's output can be cached once: training the top on cached activations is exact, because a
  frozen trunk (``requires_grad=False`` and eval-mode BatchNorm) computes the same thing every epoch.
* ``train_classifier`` / ``accuracy``: a small, seeded training loop on tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .finetune import stages
from .models import CifarResNet


def balanced_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``n`` examples, ``n // K`` per class (the first ``n % K`` classes get one more).

    labels: (N,) ints in ``0..K-1``.  For a fixed seed the subsets are nested: the first ``n`` of a
    larger draw, class by class, so a learning curve adds labels instead of redrawing them.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got {tuple(labels.shape)}")
    k = int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=k)
    per_class = [n // k + (c < n % k) for c in range(k)]
    short = [c for c in range(k) if per_class[c] > counts[c]]
    if n < k or short:
        raise ValueError(f"cannot draw {n} balanced labels from {k} classes with counts {counts.tolist()}")
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(k):
        idx = torch.nonzero(labels == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class[c]]])
    return torch.cat(picks).sort().values


def regroup(labels: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Map old labels to new ones: old label ``c`` becomes ``g`` when ``c in groups[g]``.

    labels: (N,) ints.  Every label present must be in exactly one group (else ``ValueError``).
    """
    labels = torch.as_tensor(labels)
    flat = [c for g in groups for c in g]
    if len(flat) != len(set(flat)):
        raise ValueError(f"a class appears in two groups: {groups}")
    table = torch.full((max(flat + [int(labels.max())]) + 1,), -1, dtype=torch.long)
    for g, members in enumerate(groups):
        table[list(members)] = g
    out = table[labels]
    if (out < 0).any():
        raise ValueError(f"labels {sorted(set(labels[out < 0].tolist()))} are in no group of {groups}")
    return out


class _Stem(nn.Module):
    def __init__(self, model: CifarResNet):
        super().__init__()
        self.conv1, self.bn1 = model.conv1, model.bn1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv1(x)))


def split_frozen(model: CifarResNet) -> tuple[nn.Sequential, nn.Sequential]:
    """``(trunk, top)`` with ``top(trunk(x)) == model(x)``; trunk = the frozen stages, top = the rest.

    Both share the model's modules (training ``top`` trains ``model``).  The frozen stages must be a
    prefix of ``[stem, layer1, ..., head]``, as ``finetune.freeze`` makes them.  For ResNet-20 with
    ``freeze(model, "partial")``: trunk (N, 3, 32, 32) -> (N, 32, 16, 16), top -> logits (N, K).
    """
    if not isinstance(model, CifarResNet):
        raise ValueError(f"split_frozen needs a course_lib CifarResNet, got {type(model).__name__}")
    parts = stages(model)
    trainable = [any(p.requires_grad for p in s.parameters()) for s in parts]
    if not trainable[-1] or trainable != sorted(trainable):
        raise ValueError("the frozen stages must be a prefix of the network with a trainable head; "
                         "use course_lib.finetune.freeze")
    mods = [_Stem(model)] + [m for s in parts[1:-1] for m in s.modules]
    cut = trainable.index(True)
    tail = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.fc]
    return nn.Sequential(model.normalize, *mods[:cut]), nn.Sequential(*mods[cut:], *tail)


def train_classifier(module: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, epochs: int,
                     lr: float | list[dict], batch_size: int = 64, seed: int = 0, progress: bool = True,
                     desc: str = "train") -> list[float]:
    """Adam on cross-entropy over ``inputs`` (N, ...) -> logits (N, K); returns the loss per epoch.

    ``lr`` is one learning rate for every trainable parameter, or Adam parameter groups.  The batch
    order depends only on ``seed``; inputs stay on their device, each batch moves to the module's.
    """
    if len(inputs) != len(labels) or len(inputs) == 0:
        raise ValueError(f"need as many labels as inputs (> 0), got {len(inputs)} and {len(labels)}")
    params = lr if isinstance(lr, list) else [{"params": [p for p in module.parameters() if p.requires_grad],
                                               "lr": lr}]
    opt = torch.optim.Adam(params)
    device = next(module.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    module.train()
    losses = []
    for _ in tqdm(range(epochs), desc=desc, leave=False, disable=not progress):
        total = 0.0
        for batch in torch.randperm(len(inputs), generator=gen).split(batch_size):
            x, y = inputs[batch].to(device), labels[batch].to(device)
            loss = F.cross_entropy(module(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        losses.append(total / len(inputs))
    return losses


@torch.no_grad()
def logits_of(module: nn.Module, inputs: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, ...) -> logits (N, K) on the CPU, in eval mode (the module's mode is restored)."""
    was = module.training
    module.eval()
    device = next(module.parameters()).device
    out = torch.cat([module(x.to(device)).float().cpu() for x in inputs.split(batch_size)])
    module.train(was)
    return out


def accuracy(module: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of ``labels`` (N,) that ``module`` predicts on ``inputs`` (N, ...)."""
    return (logits_of(module, inputs, batch_size).argmax(1) == torch.as_tensor(labels).cpu()).float().mean().item()
