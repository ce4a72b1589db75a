"""Judging a transferability score: probe ground truth, paired bootstrap, τ with intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau, weightedtau
from sklearn.metrics import roc_auc_score

from course_lib import metrics, score_ranking, transferability


def _blobs(n: int, k: int, sep: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.normal(size=(n, 5)) + sep * np.eye(5)[y], y


def test_probe_separable_and_shapes():
    x, y = _blobs(120, 3, sep=8.0)
    p = score_ranking.probe(torch.as_tensor(x[:90]), torch.as_tensor(y[:90]), x[90:])
    assert p.shape == (30, 3) and np.allclose(p.sum(1), 1)
    assert score_ranking.probe_metric(y[90:], p) == 1.0
    with pytest.raises(ValueError, match=r"\(n, D\)"):
        score_ranking.probe(x[:90], y[:90], x[90:, :4])
    with pytest.raises(ValueError, match="probabilities"):
        score_ranking.probe_metric(y[:5], p)


def test_probe_metric_is_auc_for_two_classes_and_accuracy_otherwise():
    y = np.array([0, 1, 1, 0, 1])
    p2 = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    assert score_ranking.probe_metric(y, p2) == pytest.approx(metrics.roc_auc(y, p2[:, 1]))
    p3 = np.eye(3)[[0, 1, 2, 2, 1]]
    assert score_ranking.probe_metric(np.array([0, 1, 2, 0, 0]), p3) == pytest.approx(3 / 5)


def test_bootstrap_is_paired_seeded_and_centred():
    x, y = _blobs(200, 2, sep=1.0)
    pa = score_ranking.probe(x[:100], y[:100], x[100:])
    pb = score_ranking.probe(x[:100] * 2, y[:100], x[100:] * 2)  # the same probe (standardised features)
    boot = score_ranking.bootstrap_truth(y[100:], [pa, pb, pa], n_boot=200, seed=3)
    assert boot.shape == (200, 3)
    assert np.allclose(boot[:, 0], boot[:, 2]) and np.allclose(boot[:, 0], boot[:, 1])  # one resample per row
    assert np.array_equal(boot, score_ranking.bootstrap_truth(y[100:], [pa, pb, pa], n_boot=200, seed=3))
    assert boot[:, 0].std() > 0 and abs(boot[:, 0].mean() - score_ranking.probe_metric(y[100:], pa)) < 0.02


def test_bootstrap_equals_the_metric_on_each_resample_drawn_one_by_one():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    binary = np.round(rng.random(60), 1)  # few distinct scores: ties within and across the classes
    probs = [np.stack([1 - binary, binary], 1), rng.dirichlet(np.ones(3), 60)]
    boot = score_ranking.bootstrap_truth(y, probs, n_boot=50, seed=4)
    draws = np.random.default_rng(4)
    for b in range(50):
        idx = draws.integers(0, 60, 60)
        assert boot[b, 0] == pytest.approx(roc_auc_score(y[idx], binary[idx]), abs=1e-12)
        assert boot[b, 1] == (probs[1][idx].argmax(1) == y[idx]).mean()
    with pytest.raises(ValueError, match="both classes"):
        score_ranking.bootstrap_truth(np.r_[1, np.zeros(59, int)], probs[:1], n_boot=200, seed=0)
    with pytest.raises(ValueError, match="probabilities"):
        score_ranking.bootstrap_truth(y, [probs[0][:10]], n_boot=5)


def test_rank_agreement_values_and_intervals():
    truth = np.array([0.1, 0.5, 0.3, 0.9, 0.7])
    rng = np.random.default_rng(0)
    boot = truth + rng.normal(0, 0.1, size=(300, 5))
    scores = {"perfect": 2 * truth, "reversed": -truth, "noisy": truth + rng.normal(0, 0.3, 5)}
    out = score_ranking.rank_agreement(scores, truth, boot)
    assert out["perfect"]["tau"] == pytest.approx(1.0) and out["perfect"]["wtau"] == pytest.approx(1.0)
    assert out["reversed"]["tau"] == pytest.approx(-1.0) and out["reversed"]["wtau"] == pytest.approx(-1.0)
    assert out["noisy"]["tau"] == pytest.approx(kendalltau(scores["noisy"], truth)[0])
    assert out["noisy"]["wtau"] == pytest.approx(weightedtau(scores["noisy"], truth)[0])
    for r in out.values():
        assert -1 <= r["tau_lo90"] <= r["tau_hi90"] <= 1 and r["wtau_lo90"] <= r["wtau_hi90"]
        assert r["wtau_boot"].shape == (300,)
    assert out["perfect"]["tau_lo90"] < 0.9 and out["perfect"]["tau_hi90"] == pytest.approx(1.0)  # resamples swap pairs
    with pytest.raises(ValueError, match="boot must be"):
        score_ranking.rank_agreement(scores, truth, boot[:, :4])
    with pytest.raises(ValueError, match="scores for"):
        score_ranking.rank_agreement({"short": truth[:4]}, truth, boot)


def test_mean_over_targets_pairs_resample_b_of_each_target():
    per = {"a": {"s": {"wtau": 0.8, "wtau_boot": np.array([0.7, 0.8, 0.9])}},
           "b": {"s": {"wtau": 0.2, "wtau_boot": np.array([0.3, 0.2, 0.1])}}}
    out = score_ranking.mean_over_targets(per)["s"]
    assert out["wtau"] == pytest.approx(0.5)
    assert out["wtau_lo90"] == pytest.approx(0.5) and out["wtau_hi90"] == pytest.approx(0.5)


def test_chapter_score_is_spearman_minus_a_scaled_mean_distance():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(50, 8)), rng.normal(1.0, 1.0, size=(50, 8))
    from scipy.stats import spearmanr

    want = spearmanr(s.ravel(), t.ravel())[0] - 0.1 * ((s.mean(0) - t.mean(0)) ** 2).sum()
    assert transferability.chapter_score(torch.as_tensor(s), t) == pytest.approx(want)
    # the same data at ten times the scale: the distance term grows 100-fold, Spearman does not move
    d1 = transferability.chapter_score(s, t) - spearmanr(s.ravel(), t.ravel())[0]
    d10 = transferability.chapter_score(10 * s, 10 * t) - spearmanr(s.ravel(), t.ravel())[0]
    assert d10 == pytest.approx(100 * d1)
    with pytest.raises(ValueError, match="equal shapes"):
        transferability.chapter_score(s, t[:40])
