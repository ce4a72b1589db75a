"""Tasks under a label budget: how the lessons draw a labelled subset and define a new task by relabelling.

* ``balanced_subset`` draws a labelled training set of a given size (nested as the size grows).
* ``regroup`` turns a labelling into a new task (e.g. CIFAR-10 classes -> animals vs vehicles).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


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
