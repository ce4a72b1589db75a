"""Judging a transferability score: does it order the sources like their transfer does? (lesson 01, Exercise 1)

* Ground truth (``probe``): a linear probe on each source's frozen features, a logistic regression (L2,
  C = 1, standardised features) fitted on the target's labelled images and scored on its test images:
  accuracy for a multi-class target, ROC AUC for a binary one (``probe_metric``).  It is deterministic,
  so the ranking it gives is not the seed noise of a training run.
* Agreement (``rank_agreement``): Kendall's τ and the weighted τ (``scipy.stats.weightedtau``, the
  LogME paper's measure, which weighs mistakes among the best sources more) between a score and the
  ground truth over the sources, each with a 90% bootstrap interval: the test set is resampled with
  replacement (the same resample for every source, so the comparison stays paired) and the ground
  truth recomputed; the scores stay fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scipy.stats import kendalltau, weightedtau
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from .metrics import roc_auc

ArrayLike = np.ndarray | torch.Tensor


def _np(a: ArrayLike) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def probe(train_f: ArrayLike, train_y: ArrayLike, test_f: ArrayLike, C: float = 1.0) -> np.ndarray:
    """Class probabilities (m, K) on test features (m, D) of a logistic regression fitted on (n, D), (n,)."""
    train_f, train_y, test_f = _np(train_f), _np(train_y), _np(test_f)
    if train_f.ndim != 2 or test_f.ndim != 2 or train_f.shape[1] != test_f.shape[1] or len(train_f) != len(train_y):
        raise ValueError(f"need train features (n, D), labels (n,) and test features (m, D); got "
                         f"{train_f.shape}, {train_y.shape}, {test_f.shape}")
    scaler = StandardScaler().fit(train_f)
    model = LogisticRegression(C=C, max_iter=3000).fit(scaler.transform(train_f), train_y)
    return model.predict_proba(scaler.transform(test_f))


def probe_metric(test_y: ArrayLike, probs: np.ndarray) -> float:
    """Accuracy of probs (m, K) against labels (m,), or ROC AUC of P(class 1) when K = 2."""
    test_y = _np(test_y)
    if probs.ndim != 2 or len(probs) != len(test_y):
        raise ValueError(f"need probabilities (m, K) for labels (m,), got {probs.shape} and {test_y.shape}")
    if probs.shape[1] == 2:
        return roc_auc(test_y, probs[:, 1])
    return float((probs.argmax(1) == test_y).mean())


def bootstrap_truth(test_y: ArrayLike, probs: Sequence[np.ndarray], n_boot: int = 1000,
                    seed: int = 0) -> np.ndarray:
    """(n_boot, S): each source's ``probe_metric`` on ``n_boot`` resamples of the test set (one resample
    shared by the S sources); probs is one (m, K) array per source."""
    test_y = _np(test_y)
    m = len(test_y)
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, m, m) for _ in range(n_boot)])  # (n_boot, m), the same draws as one by one
    for p in probs:
        probe_metric(test_y, p)  # shapes checked once, with probe_metric's message
    if any(p.shape[1] == 2 for p in probs):
        counts = np.bincount((idx + m * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * m).reshape(n_boot, m)
    return np.stack([_weighted_auc(test_y, p[:, 1], counts) if p.shape[1] == 2
                     else (p.argmax(1)[idx] == test_y[idx]).mean(1) for p in probs], axis=1)


def _weighted_auc(y: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC (ties 1/2) of scores (m,) against labels (m,) in {0, 1} on B resamples given as multiplicities
    counts (B, m): (B,).  Exact: the Mann-Whitney count is a sum of half-integers, divided once by P·N."""
    order = np.argsort(score, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(score[order]) != 0])  # first index of each tie group
    pos = np.add.reduceat(counts[:, order] * (y[order] == 1), starts, axis=1).astype(np.float64)  # (B, G)
    neg = np.add.reduceat(counts[:, order] * (y[order] == 0), starts, axis=1).astype(np.float64)
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    if (n_pos == 0).any() or (n_neg == 0).any():
        raise ValueError("AUC needs both classes in every resample; use more test images")
    below = np.cumsum(neg, axis=1) - neg  # negatives strictly below each group
    return (pos * (below + 0.5 * neg)).sum(1) / (n_pos * n_neg)


def rank_agreement(scores: Mapping[str, Sequence[float]], truth: Sequence[float],
                   boot: np.ndarray) -> dict[str, dict[str, float]]:
    """For each score (S values, one per source): Kendall's τ and the weighted τ against the truth (S,),
    and the 5th / 95th percentiles of both over the bootstrap truths ``boot`` (B, S).

    Returns ``{score: {"tau", "tau_lo90", "tau_hi90", "wtau", "wtau_lo90", "wtau_hi90"}}`` and keeps the
    per-resample weighted τ as ``wtau_boot`` (B,), for averaging over targets.
    """
    truth = np.asarray(truth, dtype=float)
    if boot.ndim != 2 or boot.shape[1] != len(truth):
        raise ValueError(f"boot must be (B, {len(truth)}), got {boot.shape}")
    out = {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=float)
        if s.shape != truth.shape:
            raise ValueError(f"{name}: {s.shape} scores for {truth.shape} sources")
        taus = np.array([kendalltau(s, t)[0] for t in boot])
        wtaus = np.array([weightedtau(s, t)[0] for t in boot])
        out[name] = {"tau": float(kendalltau(s, truth)[0]), "wtau": float(weightedtau(s, truth)[0]),
                     "tau_lo90": float(np.percentile(taus, 5)), "tau_hi90": float(np.percentile(taus, 95)),
                     "wtau_lo90": float(np.percentile(wtaus, 5)), "wtau_hi90": float(np.percentile(wtaus, 95)),
                     "wtau_boot": wtaus}
    return out


def mean_over_targets(per_target: Mapping[str, Mapping[str, dict]]) -> dict[str, dict[str, float]]:
    """Mean weighted τ of each score over targets, with the 90% interval of the mean: the targets'
    bootstrap resamples are independent, so resample b of the mean averages resample b of each target."""
    targets = list(per_target)
    out = {}
    for name in per_target[targets[0]]:
        boots = np.mean([per_target[t][name]["wtau_boot"] for t in targets], axis=0)
        out[name] = {"wtau": float(np.mean([per_target[t][name]["wtau"] for t in targets])),
                     "wtau_lo90": float(np.percentile(boots, 5)), "wtau_hi90": float(np.percentile(boots, 95))}
    return out
