"""label_curves: stratified nested subsets, early stopping by budget, cached runs, t-intervals."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import label_curves as lc
from course_lib.stats import t_ci
from synthetic import bright_square


def test_t_ci_uses_student_t():
    mean, half = t_ci([0.90, 0.92, 0.94])
    assert math.isclose(mean, 0.92) and math.isclose(half, 4.302653 * 0.02 / math.sqrt(3), rel_tol=1e-5)
    assert t_ci([1.0, 1.0])[1] == 0.0
    with pytest.raises(ValueError):
        t_ci([1.0])


def test_stratified_subset_is_nested_balanced_and_seeded():
    labels = torch.tensor([0] * 26 + [1] * 74)
    small, big = lc.stratified_subset(labels, 10, 0), lc.stratified_subset(labels, 50, 0)
    assert len(small) == 10 and len(big) == 50 and set(small.tolist()) <= set(big.tolist())
    assert torch.bincount(labels[big]).tolist() == [13, 37]
    assert torch.bincount(labels[lc.stratified_subset(labels, 4, 0)]).min() >= 1
    assert not torch.equal(lc.stratified_subset(labels, 10, 1), small)
    assert torch.equal(lc.stratified_subset(labels, 100, 3), torch.arange(100))
    with pytest.raises(ValueError, match="between"):
        lc.stratified_subset(labels, 101, 0)


def test_at_budget_picks_best_validation_checkpoint_within_budget():
    trace = [(50, 0.80, 0.70), (100, 0.90, 0.75), (150, 0.95, 0.60), (200, 0.95, 0.99)]
    assert lc.at_budget(trace, 100) == 0.75 and lc.at_budget(trace, 200) == 0.60  # ties: the earliest
    with pytest.raises(ValueError):
        lc.at_budget(trace, 10)


def test_train_run_learns_and_is_deterministic():
    recipe = lc.Recipe((16,), (0,), 10, 20, 10, batch_size=16)
    x, y = bright_square(32, 0)
    val, test = bright_square(40, 1), bright_square(40, 2)
    before = torch.random.get_rng_state()
    a = lc.train_run("scratch", x, y, val, test, recipe, seed=0)
    assert torch.equal(before, torch.random.get_rng_state())  # the global RNG is untouched
    assert [s for s, _, _ in a] == [10, 20] and a == lc.train_run("scratch", x, y, val, test, recipe, seed=0)
    assert a[-1][2] > 0.9  # a bright square is easy to find
    with pytest.raises(ValueError, match="kind"):
        lc.train_run("frozen", x, y, val, test, recipe, seed=0)
    with pytest.raises(ValueError, match="images"):
        lc.train_run("scratch", x[:, :1], y, val, test, recipe, seed=0)


def test_summarize_pairs_runs_by_seed():
    recipe = lc.Recipe((8,), (0, 1, 2), 100, 200, 100)
    runs = {("transfer", 8, s): [(100, 0.9, 0.90 + s / 100), (200, 0.8, 0.5)] for s in range(3)}
    runs |= {("scratch", 8, s): [(100, 0.9, 0.80), (200, 0.95, 0.85 + s / 100)] for s in range(3)}
    row = lc.summarize(runs, recipe)[8]
    assert math.isclose(row["gap@equal"][0], 0.11) and math.isclose(row["gap@generous"][0], 0.05)
    assert row["gap@generous"][1] == pytest.approx(0.0, abs=1e-12)  # the same gap on every seed
    assert math.isclose(row["scratch@generous"][0], 0.86)


def test_the_cache_key_ignores_the_grid():
    a = lc.Recipe((32, 100), (0, 1, 2), 100, 400, 50)
    assert a.key() == lc.Recipe((32,), (0, 1, 2, 3), 100, 400, 50).key() != lc.Recipe((32,), (0,), 100, 300, 50).key()
