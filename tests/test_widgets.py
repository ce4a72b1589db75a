"""The widgets' pure callbacks, over a grid of slider values."""

from __future__ import annotations

import itertools
import sys

import pytest
import torch.nn as nn

from course_lib import finetune, widgets
from course_lib.models import cifar_resnet

NAMES = ["stem", "layer1", "layer2", "layer3", "head"]


@pytest.mark.parametrize("base_lr,factor", list(itertools.product([1e-5, 3e-4, 1e-3, 0.1], [1.0, 1.5, 2.6, 5.0])))
def test_lr_bars_grid(base_lr, factor):
    bars = widgets.lr_bars(NAMES, base_lr, factor)
    assert len(bars.labels) == len(bars.values) == 5
    assert bars.values[-1] == base_lr
    for lo, hi in zip(bars.values, bars.values[1:]):
        assert hi == pytest.approx(lo * factor)  # each group up is `factor` times faster
    assert bars.values[0] == pytest.approx(base_lr / factor ** 4)
    assert [lab.split("\n")[0] for lab in bars.labels] == NAMES
    assert all(f"{v:.1e}" in lab for lab, v in zip(bars.labels, bars.values))
    assert f"{factor ** 4:,.1f}x" in bars.title


def test_lr_bars_agree_with_the_optimizer_groups():
    model = cifar_resnet(20, pretrained=False)
    model.fc = nn.Linear(64, 2)
    groups = finetune.param_groups(model, 1e-3, 2.6)
    bars = widgets.lr_bars([g["name"] for g in groups], 1e-3, 2.6)
    assert bars.values == [g["lr"] for g in groups]


def test_chapter_reference_values():
    """ERRATA Example 3: layer1 2.19e-05 ... fc 1.00e-03 for five groups at base_lr=1e-3."""
    bars = widgets.lr_bars(["layer1", "layer2", "layer3", "layer4", "fc"], 1e-3, 2.6)
    assert [f"{v:.2e}" for v in bars.values] == ["2.19e-05", "5.69e-05", "1.48e-04", "3.85e-04", "1.00e-03"]


@pytest.mark.parametrize("args", [([], 1e-3, 2.6), (["a", "a"], 1e-3, 2.6), (NAMES, 0.0, 2.6),
                                  (NAMES, 1e-3, 0.5)])
def test_lr_bars_bad_input(args):
    with pytest.raises(ValueError):
        widgets.lr_bars(*args)


# ------------------------------------------------------------------ 04 · dann_schedule

import math  # noqa: E402

import torch  # noqa: E402

from course_lib.adaptation import median_bandwidth, mmd2  # noqa: E402


@pytest.mark.parametrize("gamma,lambda_max", list(itertools.product([0.5, 1.0, 3.0, 10.0, 25.0], [0.1, 1.0, 2.5])))
def test_dann_schedule_grid(gamma, lambda_max):
    cur = widgets.dann_schedule(gamma, lambda_max, lr0=0.03, points=51)
    lam, step = cur.series["λ(p)"], cur.series["λ(p)·μ_p/μ_0"]
    assert set(cur.series) == {"λ(p)", "λ(p)·μ_p/μ_0"}
    assert len(cur.p) == len(lam) == len(step) == 51
    assert cur.p[0] == 0.0 and cur.p[-1] == 1.0 and all(a < b for a, b in zip(cur.p, cur.p[1:]))
    assert lam[0] == 0.0 and step[0] == 0.0
    assert all(a < b for a, b in zip(lam, lam[1:]))
    assert lam[-1] == pytest.approx(lambda_max * (2 / (1 + math.exp(-gamma)) - 1))
    for q, v in zip(cur.p, lam):
        assert v == pytest.approx(lambda_max * (2 / (1 + math.exp(-gamma * q)) - 1), abs=1e-12)
    for q, v, s in zip(cur.p, lam, step):
        assert s == pytest.approx(v * (1 + 10 * q) ** -0.75, abs=1e-12)
    assert f"γ={gamma:g}" in cur.title and f"λ_max={lambda_max:g}" in cur.title
    half = math.log(3) / gamma
    reaches = max(lam) >= lambda_max / 2
    assert (f"p = {half:.2f}" in cur.title) == reaches == (half <= 1)
    if reaches:  # the first grid point past λ_max/2 is within one grid step of ln(3)/γ
        first = next(q for q, v in zip(cur.p, lam) if v >= lambda_max / 2)
        assert half <= first < half + 1 / 50 + 1e-12


def test_dann_schedule_step_size_does_not_depend_on_lr0_and_lambda_max_zero_is_flat():
    a, b = widgets.dann_schedule(10, 1.0, lr0=0.01), widgets.dann_schedule(10, 1.0, lr0=0.5)
    assert a.series["λ(p)"] == b.series["λ(p)"]
    assert a.series["λ(p)·μ_p/μ_0"] == pytest.approx(b.series["λ(p)·μ_p/μ_0"])
    assert len(a.p) == 101
    flat = widgets.dann_schedule(10, 0.0)
    assert all(v == 0 for v in flat.series["λ(p)"] + flat.series["λ(p)·μ_p/μ_0"])


@pytest.mark.parametrize("args", [(0.0, 1.0), (-2.0, 1.0), (10.0, -0.1), (10.0, 1.0, 0.01, 1), (10.0, 1.0, 0.01, 0)])
def test_dann_schedule_bad_input(args):
    with pytest.raises(ValueError, match="gamma > 0"):
        widgets.dann_schedule(*args)


# ------------------------------------------------------------------ 05 · mmd_bandwidth


def sample(n, d, seed, shift=0.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype) + shift


def rbf(z, sigma):
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)  # direct, no cdist
    return torch.exp(-d2 / (2 * sigma ** 2))


@pytest.mark.parametrize("log10_sigma", [-1.0, -0.3, 0.0, 0.4, 1.0])
def test_mmd_bandwidth_matrix_and_values(log10_sigma):
    x, y = sample(12, 3, 0), sample(9, 3, 1, shift=0.5)
    view = widgets.mmd_bandwidth(x, y, log10_sigma)
    sigma = 10 ** log10_sigma
    assert view.sigma == pytest.approx(sigma)
    k = view.matrix
    assert k.shape == (21, 21)
    assert torch.allclose(k, k.T)
    assert torch.allclose(k.diagonal(), torch.ones(21, dtype=k.dtype))
    assert torch.allclose(k, rbf(torch.cat([x, y]), sigma), atol=1e-12)
    off = k[~torch.eye(21, dtype=torch.bool)]
    assert view.off_diagonal_mean == pytest.approx(off.mean().item())
    assert view.mmd2_unbiased == pytest.approx(mmd2(x, y, "rbf", sigma, unbiased=True).item(), abs=1e-12)
    assert view.mmd2_biased == pytest.approx(mmd2(x, y, "rbf", sigma, unbiased=False).item(), abs=1e-12)
    kxx, kyy, kxy = k[:12, :12], k[12:, 12:], k[:12, 12:]  # x's rows first, then y's
    unb = ((kxx.sum() - 12) / (12 * 11) + (kyy.sum() - 9) / (9 * 8) - 2 * kxy.mean()).item()
    # rel=1e-6, not tighter: mmd2 rounds a numeric sigma to float32 (see test_mmd.py)
    assert view.mmd2_unbiased == pytest.approx(unb, rel=1e-6, abs=1e-12)
    assert view.mmd2_biased == pytest.approx((kxx.mean() + kyy.mean() - 2 * kxy.mean()).item(), rel=1e-6)
    med = median_bandwidth(x, y).item()
    assert f"{sigma / med:.2g}× the median distance {med:.3g}" in view.title
    assert f"{view.mmd2_unbiased:.4f}" in view.title


@pytest.mark.parametrize("n,m", [(6, 6), (8, 12), (20, 25)])
def test_mmd_bandwidth_tiny_sigma_sees_only_the_diagonal(n, m):
    view = widgets.mmd_bandwidth(sample(n, 3, 0), sample(m, 3, 1, shift=2.0), -4.0)
    assert torch.allclose(view.matrix, torch.eye(n + m, dtype=view.matrix.dtype), atol=1e-12)  # K ≈ I
    assert abs(view.off_diagonal_mean) < 1e-12
    assert abs(view.mmd2_unbiased) < 1e-12  # even though the samples differ a lot
    assert view.mmd2_biased == pytest.approx(1 / n + 1 / m)


def test_mmd_bandwidth_tiny_sigma_diagonal_is_one_in_float32():
    x, y = sample(20, 3, 0, dtype=torch.float32), sample(20, 3, 1, dtype=torch.float32)
    view = widgets.mmd_bandwidth(x, y, -3.0)
    assert torch.allclose(view.matrix.diagonal(), torch.ones(40))


def test_mmd_bandwidth_huge_sigma_sees_everything_as_one_point():
    x, y = sample(10, 3, 0), sample(14, 3, 1, shift=2.0)
    view = widgets.mmd_bandwidth(x, y, 4.0)
    assert view.off_diagonal_mean > 1 - 1e-6 and view.off_diagonal_mean <= 1
    assert abs(view.mmd2_unbiased) < 1e-6 and abs(view.mmd2_biased) < 1e-6
    small = widgets.mmd_bandwidth(x, y, 0.0)
    assert view.off_diagonal_mean > small.off_diagonal_mean


def test_mmd_bandwidth_at_the_median_sees_a_shift():
    x, y_same, y_shift = sample(30, 4, 0), sample(30, 4, 1), sample(30, 4, 2, shift=1.0)
    views = [widgets.mmd_bandwidth(x, y, math.log10(median_bandwidth(x, y).item())) for y in (y_same, y_shift)]
    assert all("(1× the median distance" in v.title for v in views)
    same, shifted = views
    assert shifted.mmd2_unbiased > 0.1 and shifted.mmd2_unbiased > 5 * abs(same.mmd2_unbiased)
    assert shifted.mmd2_unbiased == pytest.approx(mmd2(x, y_shift, "rbf", "median").item(), rel=1e-6)


def test_enable_colab_only_on_colab(monkeypatch):
    import types
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert widgets.enable_colab() is False
    calls = []
    colab, output = types.ModuleType("google.colab"), types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.append("enabled")
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    assert widgets.enable_colab() is True and calls == ["enabled"]
