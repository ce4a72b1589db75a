"""Domain-adversarial training (Ganin & Lempitsky 2015; Ganin et al., JMLR 2016).

A feature extractor G_f feeds a label classifier G_y and, through a gradient reversal layer, a domain
classifier G_d.  Minimising the domain loss trains G_d to tell source from target while the reversed
gradient pushes G_f towards features G_d cannot separate.  Fixes over the chapter's §3.2 code: λ grows
with progress over *iterations* (ERRATA 4.4), the feature extractor works for 28×28 and 32×32 input
(4.2) and domain labels are made on the batch's device (4.3).  The training loop, which cycles the
shorter domain instead of truncating the epoch (4.5), is ``adaptation.train.train_adapted``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


class GradReverse(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the incoming gradient by ``-alpha``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.alpha * grad, None


def grad_reverse(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Gradient reversal: ``y = x`` but ``dL/dx = -alpha * dL/dy``."""
    return GradReverse.apply(x, float(alpha))


def _check_progress(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"progress must be in [0, 1] (iterations done / total iterations), got {p}")
    return p


def dann_lambda(progress: float, gamma: float = 10.0, lambda_max: float = 1.0) -> float:
    """The paper's schedule λ(p) = λ_max · (2 / (1 + exp(-γ p)) - 1), p = progress over iterations."""
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * _check_progress(progress))) - 1.0)


def dann_lr(progress: float, lr0: float = 0.01, alpha: float = 10.0, beta: float = 0.75) -> float:
    """The paper's annealing μ_p = μ_0 / (1 + α p)^β (0.01 -> 0.00166 over training)."""
    return lr0 / (1.0 + alpha * _check_progress(progress)) ** beta


class DANN(nn.Module):
    """The paper's MNIST architecture; the flatten size is computed from ``input_shape``.

    forward(x (N, C, H, W), alpha) -> (class logits (N, K), domain logits (N, 2), features (N, D)).
    """

    def __init__(self, num_classes: int = 10, input_shape: tuple[int, int, int] = (3, 28, 28), hidden: int = 100):
        super().__init__()
        c, h, w = input_shape
        if h < 16 or w < 16:
            raise ValueError(f"input must be at least 16x16, got {input_shape}")
        self.input_shape = tuple(input_shape)
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 5), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 48, 5), nn.BatchNorm2d(48), nn.Dropout2d(0.2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten())
        with torch.no_grad():
            dim = self.features.eval()(torch.zeros(1, c, h, w)).shape[1]
        self.features.train()
        self.classifier = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                        nn.Linear(hidden, num_classes))
        self.domain = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.feature_dim = dim

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"this DANN was built for input {self.input_shape}, got {tuple(x.shape[1:])}")
        return x

    def forward(self, x: torch.Tensor, alpha: float = 1.0):
        f = self.features(self._check(x))
        return self.classifier(f), self.domain(grad_reverse(f, alpha)), f

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, K) for images x (N, C, H, W), without the domain head (for evaluation)."""
        return self.classifier(self.features(self._check(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features (N, D) for images x (N, C, H, W): what the domain classifier and MMD see."""
        return self.features(self._check(x))


def domain_labels(n_source: int, n_target: int, device: torch.device | str) -> torch.Tensor:
    """(n_source + n_target,) long tensor on ``device``: 0 for source, 1 for target."""
    return torch.cat([torch.zeros(n_source, dtype=torch.long, device=device),
                      torch.ones(n_target, dtype=torch.long, device=device)])
