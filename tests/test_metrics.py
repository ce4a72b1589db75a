"""course_lib.metrics against sklearn and hand formulas, on small synthetic scores."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from course_lib import metrics, plots


def _scores(seed: int, n: int = 200, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + 1.2 * y
    if ties:
        s = np.round(s, 1)  # many tied scores
    return y, s


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_auc_matches_sklearn(seed, ties):
    y, s = _scores(seed, ties=ties)
    assert metrics.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert metrics.roc_auc(torch.tensor(y), torch.tensor(s)) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_roc_curve_matches_sklearn():
    y, s = _scores(0, ties=True)
    fpr, tpr, thr = metrics.roc_curve(y, s)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.roc_auc(y, s))


def test_confusion_matches_sklearn():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 3, 100), rng.integers(0, 3, 100)
    np.testing.assert_array_equal(metrics.confusion(y, p, 3), confusion_matrix(y, p, labels=[0, 1, 2]))


def test_sens_spec_by_hand():
    y = np.array([1, 1, 1, 1, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.4, 0.7, 0.6, 0.1, 0.2])
    sens, spec = metrics.sens_spec(y, s, 0.5)
    assert (sens, spec) == (pytest.approx(3 / 4), pytest.approx(2 / 3))


def test_threshold_maximises_youden_on_the_split_given():
    y, s = _scores(3)
    thr = metrics.choose_threshold(y, s)
    best = max(sum(metrics.sens_spec(y, s, t)) for t in np.unique(s))
    assert sum(metrics.sens_spec(y, s, thr)) == pytest.approx(best)


def test_report_threshold_comes_from_validation_not_test():
    rng = np.random.default_rng(0)
    yv, yt = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    pv1 = np.clip(0.3 * yv + rng.uniform(0, 0.6, 300), 0, 1)  # val scores live in [0, 0.9]
    pt1 = np.clip(0.3 * yt + rng.uniform(0.2, 0.8, 300), 0, 1)  # test scores shifted up
    pv, pt = np.stack([1 - pv1, pv1], 1), np.stack([1 - pt1, pt1], 1)
    report = metrics.binary_report(yt, pt, yv, pv)
    assert report.threshold == metrics.choose_threshold(yv, pv1)
    assert report.threshold != metrics.choose_threshold(yt, pt1)
    sens, spec = metrics.sens_spec(yt, pt1, report.threshold)
    assert (report.sensitivity, report.specificity) == (sens, spec)
    assert report.confusion.sum() == 300
    assert report.auc == pytest.approx(roc_auc_score(yt, pt1))


def test_ece_matches_hand_formula():
    rng = np.random.default_rng(2)
    p1 = rng.uniform(size=500)
    y = (rng.uniform(size=500) < 0.25 + 0.5 * p1).astype(int)  # overconfident at both ends
    probs = np.stack([1 - p1, p1], 1)
    conf, correct = probs.max(1), (probs.argmax(1) == y)
    want = 0.0
    for lo, hi in zip(np.linspace(0, 1, 11)[:-1], np.linspace(0, 1, 11)[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            want += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    assert metrics.ece(y, probs) == pytest.approx(want, abs=1e-12)
    assert want > 0.05


def test_perfectly_calibrated_confident_model_has_zero_ece():
    y = np.array([0, 1, 1, 0])
    probs = np.eye(2)[y]
    assert metrics.ece(y, probs) == 0.0


@pytest.mark.parametrize("call", [
    lambda: metrics.roc_auc(np.zeros((5, 2)), np.zeros(5)),
    lambda: metrics.roc_auc(np.array([0, 1, 1]), np.zeros(4)),
    lambda: metrics.roc_auc(np.ones(4), np.arange(4.0)),  # one class only
    lambda: metrics.roc_auc(np.array([0, 2, 1]), np.arange(3.0)),
    lambda: metrics.ece(np.array([0, 1]), np.array([0.2, 0.7])),  # (N,) instead of (N, K)
    lambda: metrics.ece(np.array([0, 1]), np.array([[0.2, 0.2], [0.5, 0.5]])),  # rows do not sum to 1
    lambda: metrics.confusion(np.array([0, 1]), np.array([0, 1, 1])),
    lambda: metrics.confusion(np.array([], int), np.array([], int)),  # sklearn's own error would be less clear
    lambda: metrics.confusion(np.array([0, 2]), np.array([0, 1])),  # class 2 with num_classes=2
])
def test_wrong_shapes_raise_clear_valueerror(call):
    with pytest.raises(ValueError, match="must|need"):
        call()


def test_plots_draw():
    y, s = _scores(0)
    p = 1 / (1 + np.exp(-s))
    probs = np.stack([1 - p, p], 1)
    plots.plot_roc({"model": (y, p)}, points={"thr": (0.2, 0.8)})
    plots.plot_confusion(metrics.confusion(y, (p > 0.5).astype(int)), ["a", "b"])
    ax = plots.plot_reliability(metrics.reliability(y, probs))
    assert "ECE" in ax.get_title()
