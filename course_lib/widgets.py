"""Pure callbacks behind the lessons' ipywidgets.

A slider cannot be moved in headless execution (CI), so each widget's logic lives here as a pure
function of the slider values, unit-tested over a grid of values; the notebook only draws what it
returns.  Sections are ordered by lesson.
"""

from __future__ import annotations

from dataclasses import dataclass

from .finetune import discriminative_lrs


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
