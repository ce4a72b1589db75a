"""Distances between feature distributions: the squared Maximum Mean Discrepancy (Gretton et al. 2012).

MMD² between P and Q with kernel k is E k(x, x') + E k(y, y') - 2 E k(x, y).  With a *characteristic*
kernel (RBF) it is zero only when P = Q; with the linear kernel k(a, b) = a·b it only compares means:
MMD² = ||E x - E y||².  Two estimators from samples x (N, D), y (M, D):

* biased (V-statistic): plain means of the three kernel matrices.  Its expectation is positive even
  when P = Q (for the linear kernel it is about tr(Cov)·(1/N + 1/M)).
* unbiased (U-statistic): the diagonals k(x_i, x_i), k(y_j, y_j) are left out; mean 0 when P = Q,
  so it can be slightly negative.

``mmd_test`` turns the statistic into a p-value with a permutation test.

Memory is O(N·M): squared distances come from one matrix multiply (``_sq_dists``), never from an
(N, M, D) tensor, and the multi-kernel computes them once for all its bandwidths.  Without autograd,
``mmd2`` computes the three kernel blocks one after another in a single reused (N, M) buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

KERNELS = ("rbf", "linear", "multi")
MULTI_EXPONENTS = (-2, -1, 0, 1, 2)  # DAN-style: bandwidths median * 2**k


def _centred(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """a (N, D), b (M, D) centred on their common mean, and their squared norms (N,), (M,) in float64.

    Distances do not change, and the expansion ||a||² + ||b||² - 2 a·bᵀ then does not cancel large norms.
    When ``a is b`` the results are one tensor each.
    """
    same = a is b
    c = (a if same else torch.cat([a, b])).mean(0).detach()
    a = a - c
    b = a if same else b - c
    na = a.double().pow(2).sum(1)
    return a, b, na, (na if same else b.double().pow(2).sum(1))


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, D), (M, D) -> (N, M) squared Euclidean distances ||a||² + ||b||² - 2 a·bᵀ, one matrix multiply.

    Computed on centred samples with float64 norms (``_centred``); negatives from rounding are clamped
    to 0.  When ``a is b`` the diagonal is set to exactly 0, as the biased estimator needs.
    Never builds an (N, M, D) tensor.
    """
    same = a is b
    a, b, na, nb = _centred(a, b)
    na = na.to(a.dtype)
    nb = na if same else nb.to(b.dtype)  # one cast when a is b: autograd then sums the gradients as before
    if _graph(a, b):  # out of place, so that autograd keeps what it needs
        d2 = torch.addmm(na[:, None] + nb[None, :], a, b.T, alpha=-2.0)
        return (d2.fill_diagonal_(0.0) if same else d2).clamp_min(0.0)
    d2 = torch.addmm(nb[None, :], a, b.T, alpha=-2.0).add_(na[:, None])  # one (N, M) buffer, updated in place
    if same:
        d2.fill_diagonal_(0.0)
    return d2.clamp_min_(0.0)


def _rbf(a: torch.Tensor, b: torch.Tensor, na: torch.Tensor, nb: torch.Tensor, sigmas: list[float], same: bool,
         out: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) sum over ``sigmas`` of exp(-||a_i - b_j||² / (2 sigma²)), into ``out`` if given; no autograd.

    a (N, D), b (M, D) are centred and na, nb their float64 squared norms (``_centred``).  As in ``_sq_dists``,
    but the factor -1 / (2 sigma²) goes into the float64 norms and the matrix multiply's alpha (no extra pass
    over the matrix); the exponents are clamped to <= 0 and, when ``same``, the diagonal's set to exactly 0.
    """
    s = 1 / (2 * sigmas[0] ** 2)
    e = torch.addmm((nb * -s).to(b.dtype)[None, :], a, b.T, alpha=2 * s, out=out if len(sigmas) == 1 else None)
    e.sub_((na * s).to(a.dtype)[:, None])
    if same:
        e.fill_diagonal_(0.0)
    e.clamp_max_(0.0)
    if len(sigmas) == 1:
        return e.exp_()
    k, scratch = torch.exp(e, out=out), torch.empty_like(e)
    for sigma in sigmas[1:]:
        k.add_(torch.mul(e, (sigmas[0] / sigma) ** 2, out=scratch).exp_())
    return k


def _graph(*tensors: torch.Tensor) -> bool:
    """Whether autograd records operations on these tensors (then no in-place shortcuts)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The median heuristic: median distance between distinct points of the pooled sample (detached)."""
    z = torch.cat([x, y]).detach()
    d = _sq_dists(z, z).sqrt()
    off = d[~torch.eye(len(z), dtype=torch.bool, device=z.device)]
    med = off.median()
    if med <= 0:
        raise ValueError("median pairwise distance is 0 (all points identical?); pass a numeric bandwidth")
    return med


def _check(x: torch.Tensor, y: torch.Tensor, unbiased: bool) -> None:
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise ValueError("x and y must be torch tensors")
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"expected samples x (N, D) and y (M, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same feature dimension, got {x.shape[1]} and {y.shape[1]}")
    need = 2 if unbiased else 1
    if len(x) < need or len(y) < need:
        raise ValueError(f"need at least {need} samples in x and in y, got {len(x)} and {len(y)}")


def _mean(k: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """float64 mean of a kernel matrix (N, M), leaving out the diagonal of a square one when ``unbiased``."""
    if k.requires_grad:
        total = k.sum(dtype=torch.float64)
    else:  # row sums in float32 (pairwise, ~1e-10 relative), 20x faster than summing everything in float64
        total = k.sum(1).sum(dtype=torch.float64)
    if not unbiased:
        return total / k.numel()
    n = k.shape[0]
    return (total - k.diagonal().sum(dtype=torch.float64)) / (n * (n - 1))


def kernel_matrix(a: torch.Tensor, b: torch.Tensor, kernel: str, sigma: torch.Tensor | float | None,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """(N, D), (M, D) -> (N, M) kernel values; ``sigma`` is the RBF bandwidth (the base one for "multi").

    ``out``: an (N, M) buffer to write the result into (the RBF and linear kernels), only without autograd.
    """
    graph = _graph(a, b) or (isinstance(sigma, torch.Tensor) and sigma.requires_grad)
    if out is not None and graph:
        raise ValueError("out= cannot be used when autograd records the kernel matrix")
    if kernel == "linear":
        return torch.mm(a, b.T, out=out)
    sigmas = [sigma * 2.0 ** k for k in MULTI_EXPONENTS] if kernel == "multi" else [sigma]
    if graph:
        d2 = _sq_dists(a, b)
        return sum(torch.exp(-d2 / (2 * s ** 2)) for s in sigmas)
    same = a is b
    a, b, na, nb = _centred(a, b)
    return _rbf(a, b, na, nb, [float(s) for s in sigmas], same, out)


def _check_kernel(kernel: str, bandwidth: float | str) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"Unknown kernel {kernel!r}; use one of {KERNELS}")
    if not (bandwidth == "median" or (isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool)
                                      and bandwidth > 0)):
        raise ValueError(f"bandwidth must be 'median' or a positive number (sigma), got {bandwidth!r}")


def _sigma(x: torch.Tensor, y: torch.Tensor, kernel: str, bandwidth: float | str) -> torch.Tensor | None:
    if kernel == "linear":
        return None
    if bandwidth == "median":
        return median_bandwidth(x, y)
    return torch.tensor(float(bandwidth), dtype=x.dtype, device=x.device)


def _mmd2_from_blocks(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor, unbiased: bool) -> torch.Tensor:
    """MMD² from the three kernel blocks, summed in float64: it is a small difference of means near 1."""
    return (_mean(kxx, unbiased) + _mean(kyy, unbiased) - 2 * _mean(kxy)).to(kxx.dtype)


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel: str = "rbf", bandwidth: float | str = "median",
         unbiased: bool = True) -> torch.Tensor:
    """Squared MMD between samples x (N, D) and y (M, D); a 0-dim tensor that gradients flow through.

    kernel: ``"rbf"`` k(a, b) = exp(-||a - b||² / (2 sigma²)); ``"linear"`` k(a, b) = a·b;
    ``"multi"`` the sum of RBF kernels with sigma = bandwidth * 2**k, k in -2..2 (as in DAN, Long et al. 2015).
    bandwidth: sigma as a positive number, or ``"median"`` (median pooled pairwise distance, computed on
    detached inputs).  Ignored by the linear kernel.
    unbiased: U-statistic (diagonals excluded) if True, V-statistic if False.
    """
    _check_kernel(kernel, bandwidth)
    _check(x, y, unbiased)
    sigma = _sigma(x, y, kernel, bandwidth)
    if _graph(x, y):
        return _mmd2_from_blocks(kernel_matrix(x, x, kernel, sigma), kernel_matrix(y, y, kernel, sigma),
                                 kernel_matrix(x, y, kernel, sigma), unbiased)
    return _mmd2_no_grad(x, y, kernel, sigma, unbiased)


def _mmd2_no_grad(x: torch.Tensor, y: torch.Tensor, kernel: str, sigma: torch.Tensor | None,
                  unbiased: bool) -> torch.Tensor:
    """``mmd2`` without autograd: the samples centred (and their norms taken) once for the three kernel blocks,
    which are computed in turn in one reused (N, M) buffer and reduced to their float64 means."""
    buf = x.new_empty(max(len(x), len(y)) ** 2)
    if kernel != "linear":
        xc, yc, nx, ny = _centred(x, y)
        centred, norms = (xc, yc), (nx, ny)
        sigmas = [float(sigma) * 2.0 ** k for k in (MULTI_EXPONENTS if kernel == "multi" else (0,))]
    means = []
    for i, j, unbiased_ij in ((0, 0, unbiased), (1, 1, unbiased), (0, 1, False)):  # xx, yy, xy
        a, b = (x, y)[i], (x, y)[j]
        out = buf[:len(a) * len(b)].view(len(a), len(b))
        k = (torch.mm(a, b.T, out=out) if kernel == "linear"
             else _rbf(centred[i], centred[j], norms[i], norms[j], sigmas, a is b, out))
        means.append(_mean(k, unbiased_ij))
    return (means[0] + means[1] - 2 * means[2]).to(x.dtype)


@dataclass
class MMDTest:
    """A permutation two-sample test: the unbiased MMD², its p-value and the permutation null (n_permutations,)."""

    statistic: float
    p_value: float
    null: torch.Tensor


@torch.no_grad()
def mmd_test(x: torch.Tensor, y: torch.Tensor, n_permutations: int = 500, kernel: str = "rbf",
             bandwidth: float | str = "median", seed: int = 0) -> MMDTest:
    """Is P = Q?  Permutation test on the unbiased MMD² of x (N, D) and y (M, D).

    The kernel (and a median bandwidth) is fixed once on the pooled sample, its (N+M)² matrix computed
    once, and each permutation reshuffles which rows count as x.  p = (1 + #{null >= stat}) / (1 + B),
    which is never 0 and is valid (P(p <= a) <= a under P = Q).
    """
    _check_kernel(kernel, bandwidth)
    _check(x, y, unbiased=True)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    n = len(x)
    z = torch.cat([x, y]).detach()
    k = kernel_matrix(z, z, kernel, _sigma(x, y, kernel, bandwidth))  # (N+M, N+M), computed once

    def stat(idx: torch.Tensor) -> float:
        kk = k[idx][:, idx]
        return _mmd2_from_blocks(kk[:n, :n], kk[n:, n:], kk[:n, n:], unbiased=True).item()

    observed = stat(torch.arange(len(z)))
    gen = torch.Generator().manual_seed(seed)
    null = torch.tensor([stat(torch.randperm(len(z), generator=gen)) for _ in range(n_permutations)])
    p = (1 + (null >= observed).sum().item()) / (1 + n_permutations)
    return MMDTest(observed, p, null)
