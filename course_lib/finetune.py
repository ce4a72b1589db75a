"""Freezing and discriminative learning rates for backbones with named stages.

A backbone with named stages is a CIFAR ResNet from ``course_lib.models`` or a torchvision ResNet:
``conv1``/``bn1`` (the *stem*), ``layer1``..``layerK``, and the head ``fc``.  ``stages(model)`` lists
them from input to output; ``freeze`` and ``param_groups`` both work on that list, so no parameter is
ever forgotten (ERRATA 3.1: the chapter's groups leave out the stem) and no name is matched by
substring (ERRATA 2.4).  ``split_frozen`` cuts a frozen model into a trunk whose output can be cached
once (exact: a frozen trunk computes the same thing every epoch) and the trainable top.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import CifarResNet

STRATEGIES = ("all", "partial", "none")


@dataclass
class Stage:
    name: str
    modules: list[nn.Module]

    def parameters(self):
        for m in self.modules:
            yield from m.parameters()


def stages(model: nn.Module) -> list[Stage]:
    """``[stem, layer1, ..., layerK, head]`` of a ResNet-style model (CIFAR or torchvision)."""
    missing = [a for a in ("conv1", "bn1", "layer1", "fc") if not hasattr(model, a)]
    if missing:
        raise ValueError(f"{type(model).__name__} has no named stages (missing {missing}); expected a ResNet with "
                         "conv1, bn1, layer1..layerK and fc, like course_lib.models.cifar_resnet or torchvision's")
    layers, k = [], 1
    while hasattr(model, f"layer{k}"):
        layers.append(Stage(f"layer{k}", [getattr(model, f"layer{k}")]))
        k += 1
    return [Stage("stem", [model.conv1, model.bn1]), *layers, Stage("head", [model.fc])]


# ------------------------------------------------------------------ BatchNorm that stays in eval mode
class _EvalOnly:
    """Mixin: ``train(True)`` is ignored, so running statistics never change (ERRATA 2.2)."""

    def train(self, mode: bool = True):
        return super().train(False)


class FrozenBatchNorm1d(_EvalOnly, nn.BatchNorm1d):
    pass


class FrozenBatchNorm2d(_EvalOnly, nn.BatchNorm2d):
    pass


class FrozenBatchNorm3d(_EvalOnly, nn.BatchNorm3d):
    pass


_FROZEN = {nn.BatchNorm1d: FrozenBatchNorm1d, nn.BatchNorm2d: FrozenBatchNorm2d, nn.BatchNorm3d: FrozenBatchNorm3d}
_THAWED = {v: k for k, v in _FROZEN.items()}


def set_bn_frozen(module: nn.Module, frozen: bool) -> None:
    """Switch every BatchNorm inside ``module`` to (or back from) a class whose ``train()`` keeps eval mode.

    Only the class changes: weights, buffers and the ``state_dict`` stay exactly the same.
    """
    for m in module.modules():
        if frozen and type(m) in _FROZEN:
            m.__class__ = _FROZEN[type(m)]
            m.train(False)
        elif not frozen and type(m) in _THAWED:
            m.__class__ = _THAWED[type(m)]


# ------------------------------------------------------------------ freezing
def freeze(model: nn.Module, strategy: str | int) -> nn.Module:
    """Freeze the lower stages of ``model`` in place and return it.

    strategy: ``"all"`` trains only the head (feature extraction); ``"partial"`` also the last stage
    (the chapter's layer4+fc); ``"none"`` trains everything; an int ``k`` trains the top ``k`` backbone
    stages plus the head.  Frozen stages get ``requires_grad=False`` *and* BatchNorm layers that stay
    in eval mode, so a train-mode forward pass cannot change their running statistics.
    """
    parts = stages(model)
    backbone = parts[:-1]
    if isinstance(strategy, bool) or not isinstance(strategy, (str, int)):
        raise ValueError(f"strategy must be one of {STRATEGIES} or an int, got {strategy!r}")
    if isinstance(strategy, str):
        if strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy {strategy!r}; use one of {STRATEGIES} or a number of stages")
        k = {"all": 0, "partial": 1, "none": len(backbone)}[strategy]
    else:
        if not 0 <= strategy <= len(backbone):
            raise ValueError(f"{type(model).__name__} has {len(backbone)} backbone stages; "
                             f"cannot train the top {strategy}")
        k = strategy
    for i, stage in enumerate(parts):
        trainable = i >= len(backbone) - k
        for m in stage.modules:
            m.requires_grad_(trainable)
            set_bn_frozen(m, not trainable)
    return model


def param_table(model: nn.Module) -> list[dict]:
    """One row per stage: ``{"stage", "trainable", "total"}`` parameter counts, plus a total row."""
    rows = [{"stage": s.name, "trainable": sum(p.numel() for p in s.parameters() if p.requires_grad),
             "total": sum(p.numel() for p in s.parameters())} for s in stages(model)]
    rows.append({"stage": "total", "trainable": sum(r["trainable"] for r in rows),
                 "total": sum(r["total"] for r in rows)})
    return rows


# ------------------------------------------------------------------ discriminative learning rates
def discriminative_lrs(n_groups: int, base_lr: float, factor: float = 2.6) -> list[float]:
    """LRs from the lowest group to the head: the head gets ``base_lr``, each lower one ``/ factor``.

    ``factor=2.6`` is ULMFiT's heuristic (Howard & Ruder 2018), tuned there for an AWD-LSTM.
    """
    if n_groups < 1 or base_lr <= 0 or factor < 1:
        raise ValueError(f"need n_groups >= 1, base_lr > 0 and factor >= 1; got {n_groups}, {base_lr}, {factor}")
    return [base_lr / factor ** (n_groups - 1 - i) for i in range(n_groups)]


def param_groups(model: nn.Module, base_lr: float, factor: float = 2.6) -> list[dict]:
    """Optimizer groups, one per stage with trainable parameters, from the stem up to the head.

    Every parameter with ``requires_grad=True`` lands in exactly one group; anything else (a
    parameter outside the named stages, or one shared between stages) raises ``ValueError``.
    """
    parts = [(s.name, [p for p in s.parameters() if p.requires_grad]) for s in stages(model)]
    parts = [(name, ps) for name, ps in parts if ps]
    lrs = discriminative_lrs(len(parts), base_lr, factor)
    groups = [{"params": ps, "lr": lr, "name": name} for (name, ps), lr in zip(parts, lrs)]
    seen: dict[int, str] = {}
    for g in groups:
        for p in g["params"]:
            if id(p) in seen:
                raise ValueError(f"a parameter is in both {seen[id(p)]!r} and {g['name']!r}")
            seen[id(p)] = g["name"]
    left_out = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if left_out:
        raise ValueError(f"trainable parameters outside every stage would never be updated: {left_out[:5]}")
    return groups


# ------------------------------------------------------------------ caching a frozen trunk
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
                         "use finetune.freeze")
    mods = [_Stem(model)] + [m for s in parts[1:-1] for m in s.modules]
    cut = trainable.index(True)
    tail = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.fc]
    return nn.Sequential(model.normalize, *mods[:cut]), nn.Sequential(*mods[cut:], *tail)
