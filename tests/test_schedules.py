"""SGDR cycle arithmetic against torch's scheduler, the slanted triangular LR, and the LR range test."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import schedules


def torch_sgdr(epochs: int, T_0: int, T_mult: int, eta_min: float = 0.0) -> list[float]:
    """LR used in each epoch by CosineAnnealingWarmRestarts stepped once per epoch (max LR 1)."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=T_0, T_mult=T_mult, eta_min=eta_min)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("T_0,T_mult", [(10, 2), (3, 1), (5, 3), (1, 2)])
def test_sgdr_factor_matches_torch(T_0, T_mult):
    ref = torch_sgdr(80, T_0, T_mult, eta_min=0.1)
    ours = [schedules.sgdr_factor(e, T_0, T_mult, eta_min_ratio=0.1) for e in range(80)]
    assert ours == pytest.approx(ref, abs=1e-12)


def test_chapter_schedule_numbers():
    """ERRATA 3.4: restarts at 10, 30, 70; 20 epochs end at 0.578·max, 50 at 0.539·max."""
    assert schedules.restart_epochs(10, 2, 100) == [10, 30, 70]
    assert schedules.final_lr_factor(20, 10, 2) == pytest.approx(0.578, abs=5e-4)
    assert schedules.final_lr_factor(50, 10, 2) == pytest.approx(0.539, abs=5e-4)
    for n in (10, 30, 70):
        assert schedules.final_lr_factor(n, 10, 2) < 0.03  # the last epoch of a cycle: LR almost annealed
        assert schedules.sgdr_factor(n, 10, 2) == 1.0  # ... and the next one restarts
    assert schedules.cycle_position(0, 10, 2) == (0, 0, 10)
    assert schedules.cycle_position(29, 10, 2) == (1, 19, 20)
    assert schedules.cycle_position(30, 10, 2) == (2, 0, 40)
    assert schedules.restart_epochs(4, 1, 12) == [4, 8, 12]


def test_restarts_are_where_torch_jumps_up():
    lrs = torch_sgdr(100, 10, 2)
    jumps = [e for e in range(1, 100) if lrs[e] > lrs[e - 1]]
    assert jumps == schedules.restart_epochs(10, 2, 99)


@pytest.mark.parametrize("bad", [dict(T_0=0, T_mult=2), dict(T_0=10, T_mult=0), dict(T_0=2.5, T_mult=2)])
def test_sgdr_bad_arguments(bad):
    with pytest.raises(ValueError):
        schedules.sgdr_factor(3, **bad)
    with pytest.raises(ValueError):
        schedules.restart_epochs(max_epochs=50, **bad)


def test_sgdr_bad_epochs():
    with pytest.raises(ValueError):
        schedules.final_lr_factor(0, 10, 2)
    with pytest.raises(ValueError):
        schedules.cycle_position(-1, 10, 2)
    with pytest.raises(ValueError):
        schedules.sgdr_factor(1, 10, 2, eta_min_ratio=1.5)


@pytest.mark.parametrize("total", [10, 100, 1000, 37])
def test_slanted_triangular_shape(total):
    f = [schedules.slanted_triangular(t, total) for t in range(total + 1)]
    cut = max(1, int(total * 0.1))
    assert f[0] == pytest.approx(1 / 32) and f[-1] == pytest.approx(1 / 32)
    assert max(f) == pytest.approx(1.0) and f.index(max(f)) == cut
    up, down = torch.tensor(f[:cut + 1]), torch.tensor(f[cut:])
    assert torch.allclose(torch.diff(up), torch.diff(up)[0].expand(cut), atol=1e-6)  # linear warm-up
    assert torch.allclose(torch.diff(down), torch.diff(down)[0].expand(len(down) - 1), atol=1e-6)  # linear decay
    assert torch.diff(down).max() < 0


def test_slanted_triangular_paper_example():
    """ULMFiT eq. 3 with T=1000, cut_frac=0.1, ratio=32: cut=100, half-way up at t=50."""
    assert schedules.slanted_triangular(50, 1000) == pytest.approx((1 + 0.5 * 31) / 32)
    assert schedules.slanted_triangular(550, 1000) == pytest.approx((1 + 0.5 * 31) / 32)
    with pytest.raises(ValueError):
        schedules.slanted_triangular(1001, 1000)
    with pytest.raises(ValueError):
        schedules.stlr_lambda(100, cut_frac=1.5)


def test_stlr_lambda_keeps_each_groups_peak():
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedules.stlr_lambda(20))
    seen = []
    for _ in range(20):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    top = max(seen, key=lambda r: r[0])
    assert top == pytest.approx([0.1, 0.01])
    assert all(r[0] / r[1] == pytest.approx(10.0) for r in seen)
    assert seen[0][0] == pytest.approx(0.1 / 32)


# ------------------------------------------------------------------ LR range test on a synthetic problem
def toy_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 10, generator=g)
    y = (x @ torch.randn(10, 3, generator=g)).argmax(1)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 512, 32)]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    return model, batches


def test_range_test_restores_model_and_optimizer():
    model, batches = toy_problem()
    opt = torch.optim.Adam([{"params": model[0].parameters(), "lr": 1e-3},
                            {"params": [*model[1].parameters(), *model[3].parameters()], "lr": 4e-3}])
    for x, y in batches[:3]:  # give the optimizer some state worth restoring
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    state, opt_state = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    result = schedules.lr_range_test(model, opt, batches, num_iter=60, end_lr=100.0, progress=False)
    assert not model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # incl. BN running stats
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 4e-3]
    restored = opt.state_dict()["state"]
    assert restored.keys() == opt_state["state"].keys()
    for k in restored:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(restored[k][name], opt_state["state"][k][name])
    assert result.diverged and len(result.lrs) < 60  # LR up to 100 with Adam blows the loss up


def test_range_test_lrs_losses_and_suggestion():
    model, batches = toy_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    res = schedules.lr_range_test(model, opt, batches, start_lr=1e-5, end_lr=10.0, num_iter=100, progress=False)
    lrs = torch.tensor(res.lrs)
    assert res.lrs[0] == pytest.approx(1e-5)
    ratios = lrs[1:] / lrs[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, (1e6) ** (1 / 99)), rtol=1e-6)  # geometric
    assert len(res.losses) == len(res.lrs)
    steep, min10 = res.suggest("steepest"), res.suggest("min/10")
    i_min = min(range(len(res.losses)), key=res.losses.__getitem__)
    assert min10 == pytest.approx(res.lrs[i_min] / 10)
    assert res.lrs[0] < steep <= res.lrs[i_min]  # the steepest descent lies before the minimum
    assert res.losses[i_min] < res.losses[0] * 0.8  # the loss did fall before it rose
    # training at the suggested LR from the start beats a far-too-small one
    def train(lr):
        m, b = toy_problem()
        o = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9)
        for _ in range(3):
            for x, y in b:
                o.zero_grad()
                F.cross_entropy(m(x), y).backward()
                o.step()
        return F.cross_entropy(m(torch.cat([x for x, _ in b])), torch.cat([y for _, y in b])).item()
    assert train(steep) < train(1e-5)


def test_range_test_bad_input():
    model, batches = toy_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError):
        schedules.lr_range_test(model, opt, batches, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        schedules.lr_range_test(model, opt, [], progress=False)
    res = schedules.RangeTest([1e-3, 1e-2], [1.0, 0.9], False)
    with pytest.raises(ValueError, match="points"):
        res.suggest()
    with pytest.raises(ValueError, match="method"):
        schedules.RangeTest([0.1] * 10, [1.0] * 10, False).suggest("valley")
