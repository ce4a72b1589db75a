"""Transferability estimators: score a pretrained source model on a target task *using target labels*,
without fine-tuning it.

* ``logme`` (You et al., ICML 2021): the maximised log evidence of a Bayesian linear model on the
  features, per class (one-hot targets), averaged over classes and divided by N.
* ``leep`` (Nguyen et al., ICML 2020): the log-likelihood of an "expected empirical predictor" built
  from the source head's class probabilities and the target labels.
* ``hscore`` (Bao et al., ICIP 2019): tr(cov(f)^-1 cov(E[f | y])), how much of the feature variance
  separates the target classes.
* ``chapter_score``: the chapter's §1.3 score, only to be compared with the three (it uses no labels).

All three are higher-is-better.  A score is judged by how well it *ranks* several source models
against their fine-tuned target accuracy (Kendall's tau), not by its absolute value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr

ArrayLike = np.ndarray | torch.Tensor


def _as_numpy(a: ArrayLike, name: str, ndim: int, dtype=np.float64) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    return a.astype(dtype)


def _labels(labels: ArrayLike, n: int) -> np.ndarray:
    """Integer labels (N,) in 0..C-1."""
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be integers (class indices)")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise ValueError("labels must be non-negative class indices")
    return y


def _features_and_labels(features: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    f = _as_numpy(features, "features", 2)
    y = _labels(labels, len(f))
    if len(np.unique(y)) < 2:
        raise ValueError("need at least two classes among the labels")
    if not np.all(np.isfinite(f)):
        raise ValueError("features contain NaN or inf")
    return f, y


# ---------------------------------------------------------------------------------------------- LogME
@dataclass
class Evidence:
    """LogME's result: the score and, per class, the maximising prior/noise precisions alpha, beta."""

    score: float
    alphas: np.ndarray  # (C,)
    betas: np.ndarray  # (C,)


def log_evidence(features: ArrayLike, y: ArrayLike, alpha: float, beta: float) -> float:
    """log p(y | F, alpha, beta) / N for the Bayesian linear model y = F w + noise, evaluated directly.

    w ~ N(0, alpha^-1 I), noise ~ N(0, beta^-1 I), so y ~ N(0, F F^T / alpha + I / beta).
    features: (N, D); y: (N,) real targets.  Costs O(N^3): for checks on small data.
    """
    f = _as_numpy(features, "features", 2)
    t = _as_numpy(y, "y", 1)
    n = len(f)
    cov = f @ f.T / alpha + np.eye(n) / beta
    sign, logdet = np.linalg.slogdet(cov)
    quad = t @ np.linalg.solve(cov, t)
    return float(-0.5 * (n * np.log(2 * np.pi) + logdet + quad) / n)


def logme_evidence(features: ArrayLike, labels: ArrayLike, max_iter: int = 100, tol: float = 1e-6) -> Evidence:
    """LogME with its per-class alpha, beta.  features (N, D), labels (N,) in 0..C-1.

    For each class c, y = 1[label == c]; alpha, beta maximise the evidence by MacKay's fixed point
    (gamma = sum_i s_i / (s_i + alpha/beta), alpha = gamma / |m|^2, beta = (N - gamma) / |y - F m|^2),
    with s the eigenvalues of F^T F (all D of them, zeros included, as in the paper).
    """
    f, y = _features_and_labels(features, labels)
    n, d = f.shape
    u, sv, _ = np.linalg.svd(f, full_matrices=False)  # u (N, k), k = min(N, D)
    s = np.zeros(d)
    s[: len(sv)] = sv ** 2  # eigenvalues of F^T F, padded with the zero ones when N < D
    evidences, alphas, betas = [], [], []
    for c in range(int(y.max()) + 1):
        t = (y == c).astype(np.float64)
        z2 = np.zeros(d)
        z2[: len(sv)] = (u.T @ t) ** 2  # squared projections of y on the left singular vectors
        rest = max(t @ t - z2.sum(), 0.0)  # part of |y|^2 outside the column space of F
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            lam = alpha / beta
            gamma = (s / (s + lam)).sum()
            m2 = (s * z2 / (s + lam) ** 2).sum()  # |m|^2, m the posterior mean of w
            res2 = (lam ** 2 * z2 / (s + lam) ** 2).sum() + rest  # |y - F m|^2
            alpha, beta = gamma / max(m2, 1e-12), (n - gamma) / max(res2, 1e-12)
            if abs(alpha / beta - lam) / lam < tol:
                break
        lam = alpha / beta
        m2 = (s * z2 / (s + lam) ** 2).sum()
        res2 = (lam ** 2 * z2 / (s + lam) ** 2).sum() + rest
        ev = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.log(alpha + beta * s).sum()
              - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi)) / n
        evidences.append(ev), alphas.append(alpha), betas.append(beta)
    return Evidence(float(np.mean(evidences)), np.array(alphas), np.array(betas))


def logme(features: ArrayLike, labels: ArrayLike) -> float:
    """LogME (You et al. 2021): mean over classes of the maximised log evidence / N; higher is better.

    features: (N, D) penultimate features of the source model on the target data; labels: (N,) ints.
    """
    return logme_evidence(features, labels).score


# ---------------------------------------------------------------------------------------------- LEEP
def leep(source_probs: ArrayLike, labels: ArrayLike) -> float:
    """LEEP (Nguyen et al. 2020); higher is better, always <= 0.

    source_probs: (N, Z) softmax outputs of the source head on the target images (rows sum to 1);
    labels: (N,) target labels in 0..C-1.
    P(y, z) = mean_i theta_z(x_i) 1[y_i = y];  P(y | z) = P(y, z) / P(z);
    LEEP = mean_i log sum_z P(y_i | z) theta_z(x_i).
    """
    p = _as_numpy(source_probs, "source_probs", 2)
    y = _labels(labels, len(p))
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise ValueError("source_probs must be probabilities: non-negative rows that sum to 1 (apply softmax)")
    n, c = len(p), int(y.max()) + 1
    joint = np.zeros((c, p.shape[1]))
    np.add.at(joint, y, p / n)  # (C, Z): P(y, z)
    cond = joint / np.clip(joint.sum(0, keepdims=True), 1e-300, None)  # P(y | z)
    eep = p @ cond.T  # (N, C): the expected empirical predictor
    return float(np.mean(np.log(eep[np.arange(n), y])))


# ---------------------------------------------------------------------------------------------- H-score
def hscore(features: ArrayLike, labels: ArrayLike) -> float:
    """H-score (Bao et al. 2019): tr(cov(f)^+ cov(g)), g_i = E[f | y = y_i]; higher is better.

    features: (N, D); labels: (N,).  Between 0 and min(D, C - 1): it reaches C - 1 when the features
    carry nothing but the class.  Uses the pseudo-inverse, so rank-deficient features are fine.
    """
    f, y = _features_and_labels(features, labels)
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(0)
    cov_f = np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])
    cov_g = np.cov(g, rowvar=False).reshape(f.shape[1], f.shape[1])
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-10, hermitian=True) @ cov_g))


def chapter_score(source_features: ArrayLike, target_features: ArrayLike) -> float:
    """The chapter's §1.3 "transferability score", reproduced only to be compared (lesson 01 shows why
    it is not one: ERRATA 1.1-1.5): Spearman's ρ between the two flattened feature matrices minus 0.1 ×
    the biased linear-kernel MMD², i.e. 0.1 × ‖mean(source) − mean(target)‖².

    source_features (n, D), target_features (n, D) with the same n (the flattened ρ pairs them entry by
    entry).  It never looks at target labels, and it grows more negative with the feature scale.
    """
    s = _as_numpy(source_features, "source_features", 2)
    t = _as_numpy(target_features, "target_features", 2)
    if s.shape != t.shape:
        raise ValueError(f"the chapter's score pairs entries: need equal shapes, got {s.shape} and {t.shape}")
    rho = spearmanr(s.ravel(), t.ravel())[0]
    return float(rho - 0.1 * np.sum((s.mean(0) - t.mean(0)) ** 2))
