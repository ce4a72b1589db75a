"""Gradient reversal, the λ and LR schedules, the DANN model and domain-batch helpers."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from course_lib import adaptation


def test_grad_reverse_is_identity_forward_and_minus_alpha_backward():
    x = torch.randn(4, 3, requires_grad=True)
    y = adaptation.grad_reverse(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.5 * torch.arange(3.0).expand(4, 3))


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.0, 3.0])
def test_grad_reverse_matches_numeric_sign_flip(alpha):
    x = torch.randn(5, requires_grad=True)
    (adaptation.grad_reverse(x, alpha) ** 2).sum().backward()
    assert torch.allclose(x.grad, -alpha * 2 * x.detach())


def test_dann_lambda_schedule():
    assert adaptation.dann_lambda(0.0) == 0.0
    assert adaptation.dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    values = [adaptation.dann_lambda(p / 100) for p in range(101)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert adaptation.dann_lambda(0.5, gamma=10, lambda_max=0.3) == pytest.approx(0.3 * (2 / (1 + math.exp(-5)) - 1))
    with pytest.raises(ValueError, match="progress"):
        adaptation.dann_lambda(1.5)


def test_dann_lr_schedule_matches_paper():
    assert adaptation.dann_lr(0.0) == 0.01
    assert adaptation.dann_lr(1.0) == pytest.approx(0.01 / 11 ** 0.75)
    assert adaptation.dann_lr(1.0) == pytest.approx(0.00166, abs=1e-5)


@pytest.mark.parametrize("shape", [(3, 28, 28), (3, 32, 32), (1, 28, 28)])
def test_dann_model_adapts_to_input_size(shape):
    model = adaptation.DANN(10, shape)
    y, d, f = model(torch.rand(4, *shape), alpha=0.3)
    assert y.shape == (4, 10) and d.shape == (4, 2) and f.shape == (4, model.feature_dim)
    with pytest.raises(ValueError, match="built for input"):
        model(torch.rand(4, 3, 20, 20))


def test_domain_gradient_reaches_features_reversed():
    torch.manual_seed(0)
    model = adaptation.DANN(10, (3, 28, 28)).eval()
    x = torch.rand(6, 3, 28, 28)
    labels = adaptation.domain_labels(3, 3, x.device)
    grads = []
    for alpha in (1.0, -1.0):
        model.zero_grad()
        _, d, _ = model(x, alpha)
        torch.nn.functional.cross_entropy(d, labels).backward()
        grads.append(model.features[0].weight.grad.clone())
    assert torch.allclose(grads[0], -grads[1], atol=1e-6) and grads[0].abs().sum() > 0


def test_domain_labels_on_device():
    lab = adaptation.domain_labels(2, 3, "cpu")
    assert lab.tolist() == [0, 0, 1, 1, 1] and lab.dtype == torch.long
    meta = adaptation.domain_labels(2, 2, "meta")
    assert meta.device.type == "meta"


def test_forever_cycles_the_shorter_loader():
    short, long = [1, 2], [10, 20, 30, 40, 50]
    pairs = list(zip(long, adaptation.forever(short)))
    assert len(pairs) == 5 and [b for _, b in pairs] == [1, 2, 1, 2, 1]
    assert list(itertools.islice(adaptation.forever([7]), 3)) == [7, 7, 7]
    with pytest.raises(ValueError, match="empty"):
        next(adaptation.forever([]))


def test_shuffled_batches_reshuffle_each_pass_and_drop_the_last_partial_batch():
    from course_lib.adaptation.adapt import shuffled_batches
    batches = list(itertools.islice(shuffled_batches(10, 4, seed=0), 4))  # 2 batches per pass
    assert all(b.shape == (4,) for b in batches)
    for first, second in (batches[:2], batches[2:]):
        assert len(set(torch.cat([first, second]).tolist())) == 8  # no repeat within a pass
    assert not torch.equal(torch.cat(batches[:2]), torch.cat(batches[2:]))
    assert all(torch.equal(a, b) for a, b in zip(batches, itertools.islice(shuffled_batches(10, 4, seed=0), 4)))
    with pytest.raises(ValueError, match="batch_size"):
        next(shuffled_batches(3, 4, seed=0))
