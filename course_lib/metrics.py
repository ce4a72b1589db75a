"""Evaluating a binary medical classifier: AUC, ROC, a threshold chosen on validation, calibration.

* ``roc_auc`` / ``roc_curve`` / ``confusion``: scikit-learn's, after checking the input (ties count one
  half in the AUC; the confusion matrix has the true class in rows, the predicted one in columns).
* ``choose_threshold``: the threshold on P(positive) that maximises Youden's J = sens + spec − 1 on
  the **validation** split; the test split is then scored at that fixed threshold.
* ``reliability`` / ``ece``: top-label calibration (Guo et al. 2017) in equal-width confidence bins,
  ECE = Σ_b (n_b / N) · |acc_b − conf_b|.
* ``binary_report``: everything above for one test split, in a ``Report``.

Their figures are in ``course_lib.plots``.

Scores are P(class 1) with shape (N,); probabilities are (N, 2) softmax rows; labels (N,) in {0, 1}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

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

    labels (N,) in {0, 1}; scores (N,), higher = more likely positive.  ``sklearn.metrics.roc_auc_score``.
    """
    y, s = _check_binary(labels, scores)
    return float(roc_auc_score(y, s))


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), one point per distinct score (highest first), starting at (0, 0, inf).

    A point says: predicting positive when score >= threshold gives that fpr and tpr.
    ``sklearn.metrics.roc_curve`` with every point kept (``drop_intermediate=False``).
    """
    y, s = _check_binary(labels, scores)
    return sk_roc_curve(y, s, drop_intermediate=False)


def confusion(labels: ArrayLike, preds: ArrayLike, num_classes: int = 2) -> np.ndarray:
    """(K, K) counts; entry [i, j] = number of class-i examples predicted as class j."""
    y, p = _np(labels).astype(np.int64), _np(preds).astype(np.int64)
    if y.ndim != 1 or y.shape != p.shape or len(y) == 0:
        raise ValueError(f"labels and preds must be 1-D of equal length N > 0, got {y.shape} and {p.shape}")
    if min(y.min(), p.min()) < 0 or max(y.max(), p.max()) >= num_classes:
        raise ValueError(f"labels and preds must lie in 0..{num_classes - 1}")
    return confusion_matrix(y, p, labels=np.arange(num_classes))


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
