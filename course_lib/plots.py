"""Figures a student would rather look at than read: sample grids, training curves, and lesson 08's ROC curves,
confusion matrix and reliability diagram (of ``course_lib.metrics``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import metrics
from .loops import History


def show_grid(images: torch.Tensor, labels=None, classes=None, ncols: int = 8, title: str = ""):
    """Show (N, C, H, W) float images in [0, 1] as a grid, with class names under each one."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.1, nrows * 1.25), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i].detach().cpu()
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img.permute(1, 2, 0).clamp(0, 1))
        if labels is not None:
            lab = int(labels[i])
            ax.set_title(classes[lab] if classes else str(lab), fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_history(history: History, title: str = ""):
    """Loss and accuracy per epoch for train and val, with the best epoch marked."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3))
    ep = history["epoch"]
    for key, ax in (("loss", a1), ("acc", a2)):
        ax.plot(ep, history[f"train_{key}"], "o-", label="train")
        ax.plot(ep, history[f"val_{key}"], "o-", label="val")
        ax.axvline(history.best_epoch, color="gray", ls="--", lw=1, label="best (reloaded)")
        ax.set_xlabel("epoch"), ax.set_ylabel(key), ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_roc(curves: dict[str, tuple[metrics.ArrayLike, metrics.ArrayLike]], ax=None,
             points: dict[str, tuple[float, float]] | None = None):
    """ROC curves for ``{name: (labels, scores)}``; ``points``: ``{name: (fpr, tpr)}`` operating points."""
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    for name, (y, s) in curves.items():
        fpr, tpr, _ = metrics.roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {metrics.roc_auc(y, s):.3f})")
    for name, (x, t) in (points or {}).items():
        ax.plot([x], [t], "ko", ms=5)
        ax.annotate(name, (x, t), textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.plot([0, 1], [0, 1], ":", color="gray", lw=1)
    ax.set_xlabel("false positive rate (1 − specificity)"), ax.set_ylabel("true positive rate (sensitivity)")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_confusion(matrix: np.ndarray, classes: list[str], ax=None, title: str = ""):
    """A (K, K) confusion matrix with counts; rows true, columns predicted."""
    ax = ax or plt.subplots(figsize=(3.2, 3))[1]
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, fontsize=8), ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title, fontsize=9)
    return ax


def plot_reliability(rel: metrics.Reliability, ax=None, title: str = ""):
    """Accuracy vs confidence per bin (bars), the diagonal of perfect calibration, and the ECE."""
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    width = np.diff(rel.edges)
    keep = rel.count > 0
    ax.bar(rel.edges[:-1][keep], rel.accuracy[keep], width=width[keep], align="edge", edgecolor="k",
           alpha=0.7, label="accuracy in bin")
    ax.plot(rel.confidence[keep], rel.confidence[keep], "r.", label="mean confidence")
    ax.plot([0, 1], [0, 1], ":", color="gray")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max probability)"), ax.set_ylabel("accuracy")
    ax.set_title(f"{title} ECE = {rel.ece:.3f}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    return ax
