"""mmd2: known values (linear kernel), estimator bias, kernel power, gradients, bad input."""

from __future__ import annotations

import pytest
import torch

from course_lib.adaptation import median_bandwidth, mmd2


def gauss(n, d, seed, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def test_linear_biased_equals_squared_mean_distance():
    x, y = gauss(40, 7, 0), gauss(30, 7, 1, shift=0.3)
    expected = (x.mean(0) - y.mean(0)).pow(2).sum()
    assert torch.allclose(mmd2(x, y, kernel="linear", unbiased=False), expected, rtol=1e-12, atol=1e-12)


def test_linear_unbiased_removes_the_diagonal():
    x, y = gauss(20, 3, 0), gauss(25, 3, 1)
    n, m = len(x), len(y)
    kxx, kyy = x @ x.T, y @ y.T
    want = ((kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
            - 2 * (x @ y.T).mean())
    assert torch.allclose(mmd2(x, y, kernel="linear"), want)


def test_biased_floor_and_unbiased_zero_mean_on_same_distribution():
    d, n, m = 50, 40, 60
    biased = torch.stack([mmd2(gauss(n, d, 2 * s), gauss(m, d, 2 * s + 1), "linear", unbiased=False)
                          for s in range(30)])
    unbiased = torch.stack([mmd2(gauss(n, d, 2 * s), gauss(m, d, 2 * s + 1), "linear") for s in range(30)])
    floor = d * (1 / n + 1 / m)  # E ||mean_x - mean_y||^2 for N(0, I) samples
    assert abs(biased.mean() - floor) < 0.1 * floor
    assert (biased > 0).all()
    assert abs(unbiased.mean()) < 0.1 * floor
    assert (unbiased < 0).any()  # an unbiased estimate of 0 goes below 0 sometimes


@pytest.mark.parametrize("kernel", ["rbf", "multi"])
def test_rbf_sees_a_variance_change_that_the_linear_kernel_misses(kernel):
    x, y, z = gauss(200, 5, 0), gauss(200, 5, 1), gauss(200, 5, 2, scale=3.0)
    same, wider = mmd2(x, y, kernel), mmd2(x, z, kernel)
    assert abs(same) < 0.02 and wider > 10 * max(abs(same), 0.01)
    lin_same, lin_wider = mmd2(x, y, "linear"), mmd2(x, z, "linear")
    assert abs(lin_wider) < 0.5 and abs(lin_wider) < 10 * max(abs(lin_same), 0.05)  # means equal: blind


def test_numeric_bandwidth_matches_hand_computed_kernel():
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([[3.0]], dtype=torch.float64)
    k = lambda a, b: torch.exp(torch.tensor(-(a - b) ** 2 / (2 * 2.0 ** 2), dtype=torch.float64))
    want = (k(0, 0) + 2 * k(0, 1) + k(1, 1)) / 4 + 1 - 2 * (k(0, 3) + k(1, 3)) / 2
    assert torch.allclose(mmd2(x, y, "rbf", bandwidth=2.0, unbiased=False), want)


def test_multi_is_the_sum_of_five_rbf_kernels():
    x, y = gauss(30, 4, 0), gauss(35, 4, 1, shift=0.5)
    sigma = median_bandwidth(x, y).item()
    parts = sum(mmd2(x, y, "rbf", bandwidth=sigma * 2.0 ** k) for k in range(-2, 3))
    assert torch.allclose(mmd2(x, y, "multi"), parts)


def test_median_bandwidth_is_the_median_pooled_distance():
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[3.0]])
    # distinct pairs (both orders): 1, 3, 2 -> median 2
    assert median_bandwidth(x, y).item() == pytest.approx(2.0)


@pytest.mark.parametrize("kernel", ["rbf", "linear", "multi"])
def test_gradients_flow_and_are_finite(kernel):
    x = gauss(20, 3, 0).requires_grad_(True)
    y = gauss(25, 3, 1, shift=1.0)
    mmd2(x, y, kernel).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_median_bandwidth_is_detached():
    x = gauss(10, 2, 0).requires_grad_(True)
    assert not median_bandwidth(x, gauss(10, 2, 1)).requires_grad


def test_translation_invariant_and_identical_samples_give_zero_biased():
    x, y = gauss(30, 4, 0), gauss(30, 4, 1)
    assert torch.allclose(mmd2(x + 5, y + 5, "rbf"), mmd2(x, y, "rbf"))
    assert mmd2(x, x, "rbf", unbiased=False).abs() < 1e-12


@pytest.mark.parametrize("args, match", [
    ((torch.zeros(5, 3), torch.zeros(5, 4)), "same feature dimension"),
    ((torch.zeros(5), torch.zeros(5, 1)), r"\(N, D\)"),
    ((torch.zeros(1, 3), torch.zeros(5, 3)), "at least 2"),
])
def test_shape_errors(args, match):
    with pytest.raises(ValueError, match=match):
        mmd2(*args)


def test_option_errors():
    x, y = gauss(5, 2, 0), gauss(5, 2, 1)
    with pytest.raises(ValueError, match="Unknown kernel"):
        mmd2(x, y, kernel="gaussian")
    for bad in (0, -1.0, "mean", True):
        with pytest.raises(ValueError, match="bandwidth"):
            mmd2(x, y, bandwidth=bad)
