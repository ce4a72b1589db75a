"""Pure callbacks behind the lessons' ipywidgets.

A slider cannot be moved in headless execution (CI), so each widget's logic lives here as a pure
function of the slider values, unit-tested over a grid of values; the notebook only draws what it
returns.  Sections are ordered by lesson.  ``enable_colab`` switches on Colab's widget manager.
"""

from __future__ import annotations

import importlib
import math
import sys
from dataclasses import dataclass

import torch

from .adaptation import dann_lambda, dann_lr, kernel_matrix, median_bandwidth, mmd2
from .distill import kd_loss, soft_targets
from .finetune import discriminative_lrs


def enable_colab() -> bool:
    """On Colab, enable the custom widget manager that ipywidgets 8 needs; elsewhere do nothing.

    Returns True when it was enabled.  JupyterLab renders ipywidgets 8 natively, so this is a no-op there.
    """
    if "google.colab" not in sys.modules:
        return False
    importlib.import_module("google.colab.output").enable_custom_widget_manager()
    return True


# ------------------------------------------------------------------ 03 · discriminative learning rates
@dataclass(frozen=True)
class Bars:
    """What a bar chart shows: one bar per label, its height, and a title."""

    labels: list[str]
    values: list[float]
    title: str


def lr_bars(group_names: list[str], base_lr: float, factor: float) -> Bars:
    """Each group's LR, lowest group first: the last (head) gets ``base_lr``, each lower one ``/ factor``.

    Labels read ``"layer2\\n3.8e-04"``; the title gives the ratio between the head and the lowest group.
    """
    if not group_names or len(set(group_names)) != len(group_names):
        raise ValueError(f"need distinct group names, got {group_names!r}")
    lrs = discriminative_lrs(len(group_names), base_lr, factor)
    labels = [f"{name}\n{lr:.1e}" for name, lr in zip(group_names, lrs)]
    span = lrs[-1] / lrs[0]
    return Bars(labels, lrs, f"base_lr={base_lr:.1e}, factor={factor:.2f}: head/lowest = {span:,.1f}x")


# ------------------------------------------------------------------ 04 · DANN's λ(p) schedule
@dataclass(frozen=True)
class Curves:
    """Curves over training progress p (T,): each named series has T values; plus a title."""

    p: list[float]
    series: dict[str, list[float]]
    title: str


def dann_schedule(gamma: float, lambda_max: float, lr0: float = 0.01, points: int = 101) -> Curves:
    """λ(p) = λ_max (2 / (1 + e^(-γp)) - 1) and what the feature extractor receives from the domain loss.

    ``"λ(p)"`` scales the reversed gradient; ``"λ(p)·μ_p/μ_0"`` is the size of the resulting *step*, since
    the paper also anneals the learning rate μ_p = μ_0 / (1 + 10p)^0.75.  The title gives p at which λ
    reaches half of λ_max, ln(3)/γ, so a slider on γ shows how early adaptation starts.
    """
    if not (gamma > 0 and lambda_max >= 0 and points >= 2):  # also rejects NaN
        raise ValueError(f"need gamma > 0, lambda_max >= 0, points >= 2; got {gamma}, {lambda_max}, {points}")
    p = [i / (points - 1) for i in range(points)]
    lam = [dann_lambda(q, gamma, lambda_max) for q in p]
    step = [v * dann_lr(q, lr0) / lr0 for v, q in zip(lam, p)]
    half = math.log(3) / gamma
    where = f"λ reaches λ_max/2 at p = {half:.2f}" if half <= 1 else "λ stays below λ_max/2 all run"
    return Curves(p, {"λ(p)": lam, "λ(p)·μ_p/μ_0": step}, f"γ={gamma:g}, λ_max={lambda_max:g}: {where}")


# ------------------------------------------------------------------ 05 · the MMD bandwidth
@dataclass(frozen=True)
class KernelView:
    """An RBF kernel on a pooled sample, and the MMD² it gives at one bandwidth."""

    matrix: torch.Tensor  # (N + M, N + M): rows/columns of x first, then y
    sigma: float
    mmd2_unbiased: float
    mmd2_biased: float
    off_diagonal_mean: float  # ~0 when sigma is far too small: K ≈ I and the MMD only sees the diagonal
    title: str


def mmd_bandwidth(x: torch.Tensor, y: torch.Tensor, log10_sigma: float) -> KernelView:
    """The RBF kernel matrix and MMD² of x (N, D) vs y (M, D) at σ = 10**log10_sigma.

    The title compares σ with the median pairwise distance (the median heuristic).
    """
    sigma = 10.0 ** log10_sigma
    z = torch.cat([x, y]).detach()
    k = kernel_matrix(z, z, "rbf", sigma)
    off = (k.sum() - k.diagonal().sum()) / (len(z) * (len(z) - 1))
    med = median_bandwidth(x, y).item()
    unb, bia = (mmd2(x, y, "rbf", sigma, unbiased=u).item() for u in (True, False))
    title = f"σ = {sigma:.3g} ({sigma / med:.2g}× the median distance {med:.3g}): MMD²ᵤ = {unb:.4f}"
    return KernelView(k, sigma, unb, bia, off.item(), title)


# ------------------------------------------------------------------ 06 · knowledge distillation


@dataclass(frozen=True)
class KDView:
    """One image under the distillation loss at (T, α): distributions, loss parts, gradient norms.

    Probabilities are lists of C floats in class order.  ``loss`` holds ``soft`` (T²·KL), ``hard``
    (CE), their weighted shares ``α·soft`` and ``(1-α)·hard``, and ``total``.  ``grad_norm`` holds the
    L2 norm of the gradient w.r.t. the student's logits of ``α·soft``, ``(1-α)·hard`` and ``total``,
    and of ``α·soft without T²`` (what the soft term would give if the chapter had left T² out).
    """

    classes: list[str]
    teacher_probs: list[float]  # softmax(teacher / T)
    teacher_probs_t1: list[float]  # softmax(teacher), for reference
    student_probs: list[float]  # softmax(student / T)
    teacher_entropy: float  # nats; ln C for a uniform distribution
    loss: dict[str, float]
    grad_norm: dict[str, float]
    title: str


def kd_temperature(teacher_logits: torch.Tensor, student_logits: torch.Tensor, target: int, T: float,
                   alpha: float, classes: list[str]) -> KDView:
    """The distillation loss of one example: teacher and student logits (C,), its label ``target``.

    Uses ``distill.kd_loss`` on a batch of one, so the values are exactly the training loss's.
    """
    if teacher_logits.ndim != 1 or teacher_logits.shape != student_logits.shape:
        raise ValueError(f"need teacher and student logits of one shape (C,), got "
                         f"{tuple(teacher_logits.shape)} and {tuple(student_logits.shape)}")
    if len(classes) != len(teacher_logits) or not 0 <= target < len(classes):
        raise ValueError(f"need {len(teacher_logits)} class names and 0 <= target < {len(teacher_logits)}, "
                         f"got {len(classes)} names and target {target}")
    t = teacher_logits.detach().float()[None]
    s = student_logits.detach().float()[None].requires_grad_(True)
    y = torch.tensor([target])
    parts = kd_loss(s, t, y, T, alpha)
    terms = {"α·soft": alpha * parts.soft, "(1-α)·hard": (1 - alpha) * parts.hard, "total": parts.total,
             "α·soft without T²": alpha * parts.soft / T ** 2}
    grads = {k: torch.autograd.grad(v, s, retain_graph=True)[0].norm().item() for k, v in terms.items()}
    p_t = soft_targets(t[0], T)
    entropy = -(p_t * p_t.clamp_min(1e-30).log()).sum().item()
    loss = {"soft": parts.soft.item(), "hard": parts.hard.item(), "α·soft": terms["α·soft"].item(),
            "(1-α)·hard": terms["(1-α)·hard"].item(), "total": parts.total.item()}
    top2 = p_t.topk(2).indices.tolist()
    title = (f"T={T:g}, α={alpha:.2f}: teacher entropy {entropy:.2f} nats (uniform {math.log(len(classes)):.2f}); "
             f"top-2 {classes[top2[0]]} {p_t[top2[0]]:.2f}, {classes[top2[1]]} {p_t[top2[1]]:.2f}")
    return KDView(list(classes), p_t.tolist(), soft_targets(t[0], 1.0).tolist(),
                  soft_targets(s[0].detach(), T).tolist(), entropy, loss, grads, title)
