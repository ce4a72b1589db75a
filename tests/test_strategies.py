"""balanced_subset, regroup, split_frozen and the small training loop, on synthetic data."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from course_lib import finetune, strategies
from course_lib.models import cifar_resnet


def test_balanced_subset_counts_nesting_and_seed():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    idx = strategies.balanced_subset(labels, 10, seed=1)
    assert torch.bincount(labels[idx], minlength=3).tolist() == [4, 3, 3]
    assert len(idx.unique()) == 10
    small, big = strategies.balanced_subset(labels, 30, 5), strategies.balanced_subset(labels, 60, 5)
    assert set(small.tolist()) <= set(big.tolist())  # nested for one seed
    assert torch.equal(small, strategies.balanced_subset(labels, 30, 5))
    assert not torch.equal(small, strategies.balanced_subset(labels, 30, 6))


@pytest.mark.parametrize("n", [2, 64, 100])
def test_balanced_subset_refuses_impossible_draws(n):
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    with pytest.raises(ValueError):
        strategies.balanced_subset(labels, n)


def test_regroup():
    labels = torch.tensor([0, 1, 2, 3, 9, 8])
    assert strategies.regroup(labels, [[2, 3], [0, 1, 8, 9]]).tolist() == [1, 1, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="no group"):
        strategies.regroup(labels, [[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="two groups"):
        strategies.regroup(labels, [[0, 1, 2], [2, 3, 8, 9]])


@pytest.mark.parametrize("strategy,trunk_out", [("all", (64, 8, 8)), ("partial", (32, 16, 16)),
                                                (2, (16, 32, 32)), ("none", (3, 32, 32))])
def test_split_frozen_recomposes_the_model(strategy, trunk_out):
    torch.manual_seed(0)
    model = finetune.freeze(cifar_resnet(20, pretrained=False, num_classes=3), strategy)
    trunk, top = strategies.split_frozen(model)
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    assert trunk(x).shape[1:] == trunk_out
    assert torch.allclose(top(trunk(x)), model(x), atol=1e-5)
    assert not any(p.requires_grad for p in trunk.parameters())
    assert {id(p) for p in top.parameters()} == {id(p) for p in model.parameters() if p.requires_grad}
    assert torch.allclose(top[:-1](trunk(x)), model.features(x), atol=1e-5)  # penultimate features
    assert top[-1] is model.fc  # shared: training top trains the model


def test_split_frozen_refuses_other_models_and_non_prefix_freezing():
    with pytest.raises(ValueError, match="CifarResNet"):
        strategies.split_frozen(nn.Sequential(nn.Linear(2, 2)))
    model = cifar_resnet(20, pretrained=False)
    model.layer3.requires_grad_(False)  # a frozen block above a trainable one
    with pytest.raises(ValueError, match="prefix"):
        strategies.split_frozen(model)


def test_train_classifier_learns_and_is_deterministic():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        head = nn.Linear(5, 2)
        losses = strategies.train_classifier(head, x, y, epochs=30, lr=0.05, batch_size=32, seed=3, progress=False)
        runs.append((losses, head.weight.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][0][-1] < 0.5 * runs[0][0][0]
    assert strategies.accuracy(head, x, y) > 0.9
    assert strategies.logits_of(head, x).shape == (200, 2)
    with pytest.raises(ValueError):
        strategies.train_classifier(head, x, y[:10], epochs=1, lr=0.1)
