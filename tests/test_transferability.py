"""LogME, LEEP and H-score: direct evaluation of the formulas, hand-computed values, properties, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from course_lib.transferability import hscore, leep, log_evidence, logme, logme_evidence


def blobs(n=120, d=6, c=3, signal=2.0, seed=0):
    """Features whose first dimensions carry the class (signal) plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    f = rng.normal(size=(n, d))
    f[:, :c] += signal * np.eye(c)[y]
    return f, y


# ---------------------------------------------------------------- LogME
def test_log_evidence_is_the_gaussian_marginal_likelihood():
    f, y = blobs(n=15, d=4)
    t = (y == 1).astype(float)
    alpha, beta = 0.7, 3.0
    cov = f @ f.T / alpha + np.eye(len(f)) / beta
    want = multivariate_normal(np.zeros(len(f)), cov).logpdf(t) / len(f)
    assert log_evidence(f, t, alpha, beta) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("n, d", [(80, 5), (12, 30)])  # N > D and N < D (zero eigenvalues of F^T F)
def test_logme_is_the_mean_evidence_at_its_alpha_beta(n, d):
    f, y = blobs(n=n, d=d, c=3)
    ev = logme_evidence(f, y)
    direct = [log_evidence(f, (y == c).astype(float), a, b) for c, (a, b) in enumerate(zip(ev.alphas, ev.betas))]
    assert ev.score == pytest.approx(np.mean(direct), rel=1e-8, abs=1e-10)
    assert logme(torch.as_tensor(f), torch.as_tensor(y)) == pytest.approx(ev.score)


@pytest.mark.parametrize("n, d", [(80, 5), (12, 30)])
def test_fixed_point_maximises_the_evidence(n, d):
    f, y = blobs(n=n, d=d, c=2, seed=1)
    ev = logme_evidence(f, y)
    for c, (a, b) in enumerate(zip(ev.alphas, ev.betas)):
        t = (y == c).astype(float)
        best = log_evidence(f, t, a, b)
        grid = [log_evidence(f, t, a * u, b * v) for u in np.geomspace(0.1, 10, 9) for v in np.geomspace(0.1, 10, 9)]
        assert best >= max(grid) - 1e-9
        # and it is a stationary point: small moves change the evidence only to second order
        for u, v in ((1.01, 1), (0.99, 1), (1, 1.01), (1, 0.99)):
            assert best - log_evidence(f, t, a * u, b * v) < 1e-4


def test_more_informative_features_score_higher():
    weak = [logme(*blobs(signal=s, seed=3)) for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(weak, weak[1:]))


def test_logme_drops_when_labels_are_shuffled():
    f, y = blobs(n=300, signal=3.0, seed=4)
    shuffled = np.random.default_rng(0).permutation(y)
    assert logme(f, y) > logme(f, shuffled) + 0.1


# ---------------------------------------------------------------- LEEP
def test_leep_hand_computed():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]])
    y = np.array([0, 0, 1, 1])
    # P(y,z) = [[.425, .075], [.125, .375]]; P(y|z) = [[17/22, 1/6], [5/22, 5/6]]
    # EEP of the true label: 47/66, 43/66, 43/66, 47/66
    assert leep(p, y) == pytest.approx((math.log(47 / 66) + math.log(43 / 66)) / 2, rel=1e-12)


def test_leep_limits():
    y = np.array([0, 0, 0, 1, 1, 2])
    uniform = np.full((6, 4), 0.25)  # a source head that knows nothing: LEEP = -H(labels)
    prior = np.bincount(y) / len(y)
    assert leep(uniform, y) == pytest.approx(np.sum(prior * np.log(prior)), rel=1e-12)
    perfect = np.eye(3)[y]  # source classes = target classes
    assert leep(torch.as_tensor(perfect), torch.as_tensor(y)) == pytest.approx(0.0, abs=1e-12)
    assert leep(perfect, y) > leep(0.5 * perfect + 0.5 / 3, y) > leep(np.full((6, 3), 1 / 3), y)


def test_leep_errors():
    y = np.array([0, 1, 1])
    with pytest.raises(ValueError, match="sum to 1"):
        leep(np.ones((3, 2)), y)  # logits, not probabilities
    with pytest.raises(ValueError, match="shape"):
        leep(np.full((4, 2), 0.5), y)
    with pytest.raises(ValueError, match="dimension"):
        leep(np.full(3, 0.5), y)


# ---------------------------------------------------------------- H-score
def test_hscore_of_pure_class_features_is_c_minus_1():
    y = np.arange(60) % 4
    assert hscore(np.eye(4)[y], y) == pytest.approx(3.0, rel=1e-8)


def test_hscore_one_dimension_is_between_class_over_total_variance():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    f = (y + rng.normal(scale=0.7, size=200))[:, None]
    g = np.where(y == 1, f[y == 1].mean(), f[y == 0].mean())
    assert hscore(f, y) == pytest.approx(np.var(g) / np.var(f[:, 0]), rel=1e-10)


def test_hscore_is_invariant_to_invertible_linear_maps_and_rises_with_signal():
    f, y = blobs(n=200, d=5, seed=2)
    a = np.random.default_rng(1).normal(size=(5, 5)) + 3 * np.eye(5)
    assert hscore(f @ a + 7.0, y) == pytest.approx(hscore(f, y), rel=1e-8)
    scores = [hscore(*blobs(n=300, signal=s, seed=5)) for s in (0.0, 1.0, 3.0)]
    assert scores[0] < scores[1] < scores[2] <= 2.0 + 1e-9


# ---------------------------------------------------------------- input checks
@pytest.mark.parametrize("fn", [logme, hscore])
def test_feature_score_errors(fn):
    f, y = blobs(n=10)
    with pytest.raises(ValueError, match="shape"):
        fn(f, y[:-1])
    with pytest.raises(ValueError, match="dimension"):
        fn(f[:, 0], y)
    with pytest.raises(ValueError, match="two classes"):
        fn(f, np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="integers"):
        fn(f, y + 0.5)
    with pytest.raises(ValueError, match="non-negative"):
        fn(f, y - 1)
    bad = f.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fn(bad, y)
