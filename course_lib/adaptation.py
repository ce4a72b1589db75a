"""Distances between feature distributions: the squared Maximum Mean Discrepancy (Gretton et al. 2012).

MMD² between P and Q with kernel k is E k(x, x') + E k(y, y') - 2 E k(x, y).  With a *characteristic*
kernel (RBF) it is zero only when P = Q; with the linear kernel k(a, b) = a·b it only compares means:
MMD² = ||E x - E y||².  Two estimators from samples x (N, D), y (M, D):

* biased (V-statistic): plain means of the three kernel matrices.  Its expectation is positive even
  when P = Q (for the linear kernel it is about tr(Cov)·(1/N + 1/M)).
* unbiased (U-statistic): the diagonals k(x_i, x_i), k(y_j, y_j) are left out; mean 0 when P = Q,
  so it can be slightly negative.

Memory is O(N·M): squared distances come from ``torch.cdist``, never from an (N, M, D) tensor.
"""

from __future__ import annotations

import torch

KERNELS = ("rbf", "linear", "multi")
MULTI_EXPONENTS = (-2, -1, 0, 1, 2)  # DAN-style: bandwidths median * 2**k


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, D), (M, D) -> (N, M) squared Euclidean distances, clamped at 0 against rounding."""
    return torch.cdist(a, b).pow(2).clamp_min(0)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The median heuristic: median distance between distinct points of the pooled sample (detached)."""
    z = torch.cat([x, y]).detach()
    d = torch.cdist(z, z)
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


def _mean(k: torch.Tensor, unbiased: bool) -> torch.Tensor:
    """Mean of a square kernel matrix, leaving out its diagonal when ``unbiased``."""
    if not unbiased:
        return k.mean()
    n = k.shape[0]
    return (k.sum() - k.diagonal().sum()) / (n * (n - 1))


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel: str = "rbf", bandwidth: float | str = "median",
         unbiased: bool = True) -> torch.Tensor:
    """Squared MMD between samples x (N, D) and y (M, D); a 0-dim tensor that gradients flow through.

    kernel: ``"rbf"`` k(a, b) = exp(-||a - b||² / (2 sigma²)); ``"linear"`` k(a, b) = a·b;
    ``"multi"`` the sum of RBF kernels with sigma = bandwidth * 2**k, k in -2..2 (as in DAN, Long et al. 2015).
    bandwidth: sigma as a positive number, or ``"median"`` (median pooled pairwise distance, computed on
    detached inputs).  Ignored by the linear kernel.
    unbiased: U-statistic (diagonals excluded) if True, V-statistic if False.
    """
    if kernel not in KERNELS:
        raise ValueError(f"Unknown kernel {kernel!r}; use one of {KERNELS}")
    if not (bandwidth == "median" or (isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool)
                                      and bandwidth > 0)):
        raise ValueError(f"bandwidth must be 'median' or a positive number (sigma), got {bandwidth!r}")
    _check(x, y, unbiased)
    if kernel == "linear":
        kxx, kyy, kxy = x @ x.T, y @ y.T, x @ y.T
    else:
        sigma = median_bandwidth(x, y) if bandwidth == "median" else torch.tensor(float(bandwidth))
        sigmas = [sigma * 2.0 ** k for k in MULTI_EXPONENTS] if kernel == "multi" else [sigma]
        dxx, dyy, dxy = _sq_dists(x, x), _sq_dists(y, y), _sq_dists(x, y)
        kxx = sum(torch.exp(-dxx / (2 * s ** 2)) for s in sigmas)
        kyy = sum(torch.exp(-dyy / (2 * s ** 2)) for s in sigmas)
        kxy = sum(torch.exp(-dxy / (2 * s ** 2)) for s in sigmas)
    return _mean(kxx, unbiased) + _mean(kyy, unbiased) - 2 * kxy.mean()
