"""Figures a student would rather look at than read: sample grids and training curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .train import History


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
