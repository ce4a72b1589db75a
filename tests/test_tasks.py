"""balanced_subset and regroup: label budgets and relabelled tasks, on synthetic data."""

from __future__ import annotations

import pytest
import torch

from course_lib import tasks


def test_balanced_subset_counts_nesting_and_seed():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    idx = tasks.balanced_subset(labels, 10, seed=1)
    assert torch.bincount(labels[idx], minlength=3).tolist() == [4, 3, 3]
    assert len(idx.unique()) == 10
    small, big = tasks.balanced_subset(labels, 30, 5), tasks.balanced_subset(labels, 60, 5)
    assert set(small.tolist()) <= set(big.tolist())  # nested for one seed
    assert torch.equal(small, tasks.balanced_subset(labels, 30, 5))
    assert not torch.equal(small, tasks.balanced_subset(labels, 30, 6))


@pytest.mark.parametrize("n", [2, 64, 100])
def test_balanced_subset_refuses_impossible_draws(n):
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    with pytest.raises(ValueError):
        tasks.balanced_subset(labels, n)


def test_regroup():
    labels = torch.tensor([0, 1, 2, 3, 9, 8])
    assert tasks.regroup(labels, [[2, 3], [0, 1, 8, 9]]).tolist() == [1, 1, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="no group"):
        tasks.regroup(labels, [[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="two groups"):
        tasks.regroup(labels, [[0, 1, 2], [2, 3, 8, 9]])
