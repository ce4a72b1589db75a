"""Evaluating a binary medical classifier: AUC, ROC, a threshold chosen on validation, calibration.

* ``roc_auc`` / ``roc_curve``: from ranks, ties counted as one half (equal to sklearn's).
* ``confusion``: rows are the true class, columns the predicted one (sklearn's convention).
* ``choose_threshold``: the threshold on P(positive) that maximises Youden's J = sens + spec − 1 on
  the **validation** split; the test split is then scored at that fixed threshold.
* ``reliability`` / ``ece``: top-label calibration (Guo et al. 2017) in equal-width confidence bins,
  ECE = Σ_b (n_b / N) · |acc_b − conf_b|.
* ``binary_report``: everything above for one test split, in a ``Report``.
* ``plot_roc``, ``plot_confusion``, ``plot_reliability``: the three figures.

Scores are P(class 1) with shape (N,); probabilities are (N, 2) softmax rows; labels (N,) in {0, 1}.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import rankdata

ArrayLike = np.ndarray | torch.Tensor | list


def _np(a: ArrayLike) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _check_binary(labels: ArrayLike, scores: ArrayLike, need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """labels (N,) in {0, 1}, scores (N,) finite -> numpy arrays; ``ValueError`` otherwise."""
    y, s = _np(labels), _np(scores)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s) or len(y) == 0:
        raise ValueError(f"labels and scores must both be 1-D of the same length N > 0, got shapes {y.shape} "
                         f"and {s.shape}; for (N, 2) probabilities pass probs[:, 1]")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {sorted(set(y.tolist()))[:5]}")
    if not np.isfinite(s.astype(float)).all():
        raise ValueError("scores contain NaN or inf")
    if need_both and len(np.unique(y)) < 2:
        raise ValueError("AUC, sensitivity and specificity need both classes among the labels")
    return y.astype(np.int64), s.astype(np.float64)


def _check_probs(probs: ArrayLike, n: int | None = None) -> np.ndarray:
    p = _np(probs).astype(np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or (n is not None and len(p) != n):
        want = f"({n}, K)" if n is not None else "(N, K)"
        raise ValueError(f"probs must be {want} class probabilities with K >= 2, got shape {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise ValueError("probs rows must be non-negative and sum to 1 (apply softmax to logits)")
    return p


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve = P(score of a random positive > that of a random negative), ties 1/2.

    labels (N,) in {0, 1}; scores (N,), higher = more likely positive.  Computed from average ranks
    (the Mann-Whitney U statistic), O(N log N).
    """
    y, s = _check_binary(labels, scores)
    ranks = rankdata(s)  # 1..N, tied scores share their average rank
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), one point per distinct score (highest first), starting at (0, 0).

    A point says: predicting positive when score >= threshold gives that fpr and tpr.
    """
    y, s = _check_binary(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return (np.r_[0.0, fp / (1 - y).sum()], np.r_[0.0, tp / y.sum()], np.r_[np.inf, s[last]])


def confusion(labels: ArrayLike, preds: ArrayLike, num_classes: int = 2) -> np.ndarray:
    """(K, K) counts; entry [i, j] = number of class-i examples predicted as class j."""
    y, p = _np(labels).astype(np.int64), _np(preds).astype(np.int64)
    if y.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"labels and preds must be 1-D of equal length, got {y.shape} and {p.shape}")
    if len(y) and (min(y.min(), p.min()) < 0 or max(y.max(), p.max()) >= num_classes):
        raise ValueError(f"labels and preds must lie in 0..{num_classes - 1}")
    return np.bincount(y * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def sens_spec(labels: ArrayLike, scores: ArrayLike, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) when predicting positive for score >= threshold."""
    y, s = _check_binary(labels, scores)
    pred = s >= threshold
    return float(pred[y == 1].mean()), float((~pred)[y == 0].mean())


def choose_threshold(labels: ArrayLike, scores: ArrayLike) -> float:
    """The score threshold maximising Youden's J = sensitivity + specificity − 1.

    Pass **validation** labels and scores; using the test split here would leak it.  Ties go to the
    threshold closest to 0.5.
    """
    fpr, tpr, thr = roc_curve(labels, scores)
    j = tpr - fpr
    cand = np.flatnonzero(np.isclose(j, j.max()))
    cand = cand[np.isfinite(thr[cand])]
    return float(thr[cand[np.argmin(np.abs(thr[cand] - 0.5))]])


@dataclass
class Reliability:
    """Per equal-width confidence bin: mean confidence, accuracy and count; ``edges`` (n_bins + 1,)."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        n = self.count.sum()
        keep = self.count > 0
        return float((self.count[keep] / n * np.abs(self.accuracy[keep] - self.confidence[keep])).sum())


def reliability(labels: ArrayLike, probs: ArrayLike, n_bins: int = 10) -> Reliability:
    """Top-label reliability table: confidence = max_k p_k, correct = (argmax == label).

    labels (N,) ints; probs (N, K).  Bins are (0, 1/n], (1/n, 2/n], ...; empty bins get NaN.
    """
    y = _np(labels).astype(np.int64)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {y.shape}")
    p = _check_probs(probs, len(y))
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf, correct = p.max(1), (p.argmax(1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, n_bins) / count
        acc = np.bincount(idx, correct, n_bins) / count
    return Reliability(edges, mean_conf, acc, count)


def ece(labels: ArrayLike, probs: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error (top-label, equal-width bins); 0 = perfectly calibrated."""
    return reliability(labels, probs, n_bins).ece


@dataclass
class Report:
    """Test-split metrics.  ``acc`` is argmax accuracy (as MedMNIST reports it); ``acc_at_threshold``,
    ``sensitivity`` and ``specificity`` use ``threshold``, chosen on validation."""

    auc: float
    acc: float
    threshold: float
    acc_at_threshold: float
    sensitivity: float
    specificity: float
    ece: float
    confusion: np.ndarray  # at the threshold

    def row(self) -> dict[str, float]:
        return {k: round(float(getattr(self, k)), 3) for k in
                ("auc", "acc", "acc_at_threshold", "sensitivity", "specificity", "ece", "threshold")}


def binary_report(test_labels: ArrayLike, test_probs: ArrayLike, val_labels: ArrayLike, val_probs: ArrayLike,
                  n_bins: int = 10) -> Report:
    """Score (N, 2) test probabilities at a threshold on P(class 1) chosen on the validation split."""
    y = _np(test_labels).astype(np.int64)
    p = _check_probs(test_probs, len(y))
    pv = _check_probs(val_probs, len(_np(val_labels)))
    if p.shape[1] != 2 or pv.shape[1] != 2:
        raise ValueError(f"binary_report needs (N, 2) probabilities, got {p.shape} and {pv.shape}")
    thr = choose_threshold(val_labels, pv[:, 1])
    sens, spec = sens_spec(y, p[:, 1], thr)
    pred = (p[:, 1] >= thr).astype(np.int64)
    return Report(auc=roc_auc(y, p[:, 1]), acc=float((p.argmax(1) == y).mean()), threshold=thr,
                  acc_at_threshold=float((pred == y).mean()), sensitivity=sens, specificity=spec,
                  ece=ece(y, p, n_bins), confusion=confusion(y, pred))


# ---------------------------------------------------------------------------------------------- figures
def plot_roc(curves: dict[str, tuple[ArrayLike, ArrayLike]], ax=None, points: dict[str, tuple[float, float]] | None = None):
    """ROC curves for ``{name: (labels, scores)}``; ``points``: ``{name: (fpr, tpr)}`` operating points."""
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    for name, (y, s) in curves.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(y, s):.3f})")
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


def plot_reliability(rel: Reliability, ax=None, title: str = ""):
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
