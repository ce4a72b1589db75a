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


# ------------------------------------------------------------------ mmd_test: the permutation test

from course_lib.adaptation import kernel_matrix, mmd_test  # noqa: E402


def test_mmd_test_p_values_under_the_null_are_valid_and_not_systematically_small():
    b = 99
    ps = [mmd_test(gauss(30, 3, 2 * s), gauss(30, 3, 2 * s + 1), n_permutations=b, seed=s).p_value
          for s in range(40)]
    assert all(1 / (b + 1) <= p <= 1 for p in ps)
    assert all(abs(p * (b + 1) - round(p * (b + 1))) < 1e-9 for p in ps)  # p = (1 + count) / (1 + B)
    assert sum(p < 0.05 for p in ps) <= 6  # expected 2 of 40 for a valid test; P(>= 7) < 0.5%
    assert 0.25 < sum(ps) / len(ps) < 0.75  # roughly uniform: mean near 1/2
    assert len(set(ps)) > 5  # not a constant


@pytest.mark.parametrize("kernel", ["rbf", "multi", "linear"])
def test_mmd_test_clear_shift_gives_the_smallest_possible_p(kernel):
    b = 99
    for s in range(3):
        res = mmd_test(gauss(60, 5, 2 * s), gauss(60, 5, 2 * s + 1, shift=1.0), n_permutations=b, kernel=kernel,
                       seed=s)
        assert res.p_value == pytest.approx(1 / (b + 1))
        assert res.statistic > res.null.max()


@pytest.mark.parametrize("kernel,bandwidth", [("rbf", 1.5), ("rbf", "median"), ("multi", 0.7), ("linear", "median")])
def test_mmd_test_statistic_is_the_unbiased_mmd2(kernel, bandwidth):
    x, y = gauss(25, 4, 0), gauss(35, 4, 1, shift=0.4)
    res = mmd_test(x, y, n_permutations=20, kernel=kernel, bandwidth=bandwidth)
    want = mmd2(x, y, kernel, bandwidth, unbiased=True).item()
    assert res.statistic == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert isinstance(res.statistic, float) and isinstance(res.p_value, float)


def test_mmd_test_null_has_one_entry_per_permutation_and_is_a_permutation_null():
    x, y = gauss(20, 2, 0), gauss(15, 2, 1, shift=2.0)
    for b in (1, 7, 50):
        res = mmd_test(x, y, n_permutations=b)
        assert res.null.shape == (b,)
        assert torch.isfinite(res.null).all()
        want = (1 + (res.null >= res.statistic).sum().item()) / (1 + b)
        assert res.p_value == pytest.approx(want)
    # every null value is the unbiased MMD² of some relabelling of the pooled sample: recompute one
    res = mmd_test(x, y, n_permutations=3, bandwidth=1.0, seed=5)
    z = torch.cat([x, y])
    gen = torch.Generator().manual_seed(5)
    idx = torch.randperm(len(z), generator=gen)
    first = mmd2(z[idx[:20]], z[idx[20:]], "rbf", 1.0).item()
    assert res.null[0].item() == pytest.approx(first, rel=1e-6, abs=1e-9)


def test_mmd_test_is_deterministic_for_a_seed():
    x, y = gauss(20, 3, 0), gauss(20, 3, 1, shift=0.2)
    a, b = mmd_test(x, y, 60, seed=3), mmd_test(x, y, 60, seed=3)
    assert a.statistic == b.statistic and a.p_value == b.p_value and torch.equal(a.null, b.null)
    c = mmd_test(x, y, 60, seed=4)
    assert c.statistic == a.statistic and not torch.equal(c.null, a.null)  # the seed only drives the shuffles


def test_mmd_test_leaves_the_global_rng_alone():
    x, y = gauss(10, 2, 0), gauss(10, 2, 1)
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    mmd_test(x, y, 30)
    assert torch.equal(torch.rand(3), want)


@pytest.mark.parametrize("kwargs,args,match", [
    ({"n_permutations": 0}, None, "n_permutations must be >= 1"),
    ({"n_permutations": -5}, None, "n_permutations"),
    ({}, (torch.zeros(5, 3), torch.zeros(6, 4)), "same feature dimension"),
    ({}, (torch.zeros(5), torch.zeros(5, 1)), r"\(N, D\)"),
    ({}, (torch.zeros(1, 3), torch.zeros(5, 3)), "at least 2"),
    ({"kernel": "gaussian"}, None, "Unknown kernel 'gaussian'"),
    ({"bandwidth": -1.0}, None, "bandwidth must be 'median' or a positive number"),
])
def test_mmd_test_bad_input(kwargs, args, match):
    args = args or (gauss(6, 3, 0), gauss(6, 3, 1))
    with pytest.raises(ValueError, match=match):
        mmd_test(*args, **kwargs)


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_multi_kernel_matrix_is_five_rbf_matrices_from_the_formula(sigma):
    a, b = gauss(7, 3, 0), gauss(9, 3, 1, shift=0.5)
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)  # direct, no cdist
    want = sum(torch.exp(-d2 / (2 * (sigma * 2.0 ** k) ** 2)) for k in range(-2, 3))
    got = kernel_matrix(a, b, "multi", sigma)
    assert got.shape == (7, 9)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    single = torch.exp(-d2 / (2 * sigma ** 2))
    assert torch.allclose(kernel_matrix(a, b, "rbf", sigma), single, rtol=1e-10, atol=1e-12)


def test_numeric_bandwidth_keeps_float64_precision():
    x, y = gauss(12, 3, 0), gauss(9, 3, 1, shift=0.5)
    sigma = 10 ** -0.3  # not representable in float32
    k = lambda a, b: torch.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * sigma ** 2))
    want = (k(x, x).sum() - 12) / (12 * 11) + (k(y, y).sum() - 9) / (9 * 8) - 2 * k(x, y).mean()
    assert mmd2(x, y, "rbf", sigma).item() == pytest.approx(want.item(), rel=1e-12)


# ------------------------------------------------------------------ the matrix-multiply path: exact and differentiable

def _mmd2_float64_broadcast(x, y, sigma, unbiased):
    """Reference: the chapter's (N, M, D) broadcast kernel, in float64."""
    x, y = x.double(), y.double()
    k = lambda a, b: torch.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * sigma ** 2))
    n, m = len(x), len(y)
    if unbiased:
        return (k(x, x).sum() - n) / (n * (n - 1)) + (k(y, y).sum() - m) / (m * (m - 1)) - 2 * k(x, y).mean()
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("offset", [0.0, 20.0])  # far from the origin: the norm expansion must not cancel
def test_float32_matches_a_float64_broadcast_reference_to_1e_6(unbiased, offset):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 64, generator=g) + offset
    y = torch.randn(260, 64, generator=g) + offset + 0.05
    want = _mmd2_float64_broadcast(x, y, 8.0, unbiased)
    got = mmd2(x, y, "rbf", 8.0, unbiased)
    assert got.dtype == torch.float32
    assert abs(got.double() - want) < 1e-6 * abs(want), (got.item(), want.item())


def test_squared_distances_to_self_are_exactly_zero_and_never_negative():
    x = gauss(50, 8, 0).float() + 100.0
    k = kernel_matrix(x, x, "rbf", 0.01)  # so narrow that any rounding in the diagonal would show
    assert torch.equal(k.diagonal(), torch.ones(50)) and (k <= 1).all()


def test_gradient_matches_finite_differences():
    x = gauss(12, 3, 0).requires_grad_(True)
    y = gauss(10, 3, 1, shift=0.7)
    for kernel in ("rbf", "multi"):
        assert torch.autograd.gradcheck(lambda a, kernel=kernel: mmd2(a, y, kernel, 1.3), (x,))


@pytest.mark.parametrize("kernel", ["rbf", "multi", "linear"])
@pytest.mark.parametrize("unbiased", [False, True])
def test_the_no_grad_path_equals_the_autograd_path(kernel, unbiased):
    x, y = gauss(30, 4, 0), gauss(25, 4, 1, shift=0.5)
    fast = mmd2(x, y, kernel, 1.5, unbiased)  # no autograd: centred once, one reused buffer
    recorded = mmd2(x.clone().requires_grad_(True), y, kernel, 1.5, unbiased)
    assert torch.allclose(fast, recorded.detach(), rtol=1e-10, atol=1e-14)
    assert mmd2(x, x, kernel, 1.5, unbiased=False).abs() < 1e-12  # x is y: every block's diagonal is exact


def test_kernel_matrix_writes_into_out_and_refuses_it_under_autograd():
    a, b = gauss(6, 3, 0), gauss(5, 3, 1)
    for kernel in ("rbf", "multi", "linear"):
        out = torch.empty(6, 5, dtype=torch.float64)
        got = kernel_matrix(a, b, kernel, 1.0, out=out)
        assert got.data_ptr() == out.data_ptr() and torch.allclose(got, kernel_matrix(a, b, kernel, 1.0))
    with pytest.raises(ValueError, match="autograd"):
        kernel_matrix(a.requires_grad_(True), b, "rbf", 1.0, out=torch.empty(6, 5, dtype=torch.float64))
