"""strategy_grid: what each strategy trains, deterministic runs, the per-run cache and its shards, scores."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import strategy_grid as sg
from synthetic import bright_square

TINY = sg.Recipe((4, 8), (0, 1), steps=2, batch_size=4)


def _trainable(groups: list[dict]) -> int:
    return sum(p.numel() for g in groups for p in g["params"])


def test_each_strategy_trains_what_its_table_says(fake_mirror):
    sizes = {}
    for strategy in sg.STRATEGIES:
        module, trunk, groups = sg.build(strategy, sg.RECIPES["quick"])
        sizes[strategy] = _trainable(groups)
        assert sizes[strategy] == sum(p.numel() for p in module.parameters() if p.requires_grad)
        assert (trunk is None) == (strategy in ("full", "discriminative", "scratch"))
        if trunk is not None:
            assert not any(p.requires_grad for p in trunk.parameters())
    assert sizes["frozen"] == 64 * 2 + 2
    assert sizes["frozen"] < sizes["partial"] < sizes["full"] == sizes["discriminative"] == sizes["scratch"]
    _, _, disc = sg.build("discriminative", sg.RECIPES["quick"])
    assert [g["name"] for g in disc] == ["stem", "layer1", "layer2", "layer3", "head"]
    assert [g["lr"] for g in disc] == pytest.approx([1e-2 / 2.6 ** k for k in (4, 3, 2, 1, 0)])
    _, _, partial = sg.build("partial", sg.RECIPES["quick"])
    assert [g["lr"] for g in partial] == pytest.approx([1e-3, 1e-2])
    with pytest.raises(ValueError, match="strategy"):
        sg.build("layer4", sg.RECIPES["quick"])


def test_frozen_features_are_the_source_features(fake_mirror):
    from course_lib import models
    _, trunk, _ = sg.build("frozen", sg.RECIPES["quick"])
    x, _ = bright_square(6, 0)
    with torch.no_grad():
        assert torch.allclose(trunk(x), models.cifar_resnet(20).eval().features(x), atol=1e-5)


def test_train_run_is_deterministic_and_leaves_global_state(fake_mirror):
    x, y = bright_square(16, 0)
    tx, ty = bright_square(20, 1)
    rng, threads = torch.random.get_rng_state(), torch.get_num_threads()
    a = sg.train_run("partial", x, y, tx, TINY, seed=0)
    assert torch.equal(rng, torch.random.get_rng_state()) and threads == torch.get_num_threads()
    assert a.shape == (20,) and ((0 <= a) & (a <= 1)).all()
    assert torch.equal(a, sg.train_run("partial", x, y, tx, TINY, seed=0))
    with pytest.raises(ValueError, match=r"\(n, 3, 32, 32\)"):
        sg.train_run("full", x[:, :, :28, :28], y, tx, TINY, seed=0)


def test_scratch_learns_an_easy_task():
    x, y = bright_square(64, 0)
    tx, ty = bright_square(64, 1)
    recipe = sg.Recipe((64,), (0,), steps=30, batch_size=16)
    p = sg.train_run("scratch", x, y, tx, recipe, seed=0)
    assert ((p > 0.5).long() == ty).float().mean() > 0.9
    assert not torch.equal(p, sg.train_run("scratch", x, y, tx, recipe, seed=1))  # the seed draws the weights


def test_grid_caches_each_run_and_shards_the_missing_ones(fake_mirror, monkeypatch):
    monkeypatch.setitem(sg.RECIPES, "quick", TINY)
    monkeypatch.setattr(sg, "STRATEGIES", ("frozen", "scratch"))
    monkeypatch.setattr(sg, "target_data",
                        lambda target, profile=None, data_dir=None: (*bright_square(16, 0), *bright_square(12, 1)))
    half = sg.grid("quick", progress=False, shard=(0, 2))
    n_runs = len(sg.TARGETS) * 2 * 2 * 2  # targets x strategies x sizes x seeds
    assert len(half) == n_runs // 2
    full = sg.grid("quick", progress=False)
    assert len(full) == n_runs and all(torch.equal(full[k], v) for k, v in half.items())
    monkeypatch.setattr(sg, "train_run", lambda *a, **k: pytest.fail("a cached run was retrained"))
    again = sg.grid("quick", progress=False)
    assert all(torch.equal(again[k], v) for k, v in full.items())
    assert sg.cache_dir("quick").parent.name == "strategy_grid" and "cpu1t" in sg.cache_dir("quick").name


def test_scores_and_paired_gap():
    y = torch.tensor([0, 0, 1, 1])
    runs = {("t", "a", 4, s): torch.tensor([0.1, 0.2, 0.8, 0.9]) for s in range(3)}
    runs |= {("t", "b", 4, s): torch.tensor([0.6, 0.2, 0.8, 0.4 + s / 10]) for s in range(3)}
    runs[("other", "a", 4, 0)] = torch.zeros(4)
    acc, auc = sg.scores(runs, y, "t"), sg.scores(runs, y, "t", "auc")
    assert acc["a", 4] == [1.0, 1.0, 1.0] and acc["b", 4] == [0.5, 0.5, 0.75]
    # 3 of 4 (positive, negative) pairs ordered
    assert auc["a", 4] == [1.0, 1.0, 1.0] and auc["b", 4][0] == pytest.approx(0.75)
    mean, half = sg.paired_gap(acc, "a", "b", 4)
    assert math.isclose(mean, 1 - 1.75 / 3) and half > 0
    with pytest.raises(ValueError, match="metric"):
        sg.scores(runs, y, "t", "f1")


def test_the_cache_key_ignores_the_grid():
    assert sg.Recipe((4,), (0,), 25).key() == sg.Recipe((4, 8), (0, 1, 2), 25).key() != sg.Recipe((4,), (0,), 30).key()


def test_grid_can_read_a_subset_of_strategies(fake_mirror, monkeypatch):
    monkeypatch.setitem(sg.RECIPES, "quick", sg.Recipe((4,), (0,), steps=1, batch_size=4))
    monkeypatch.setattr(sg, "target_data",
                        lambda target, profile=None, data_dir=None: (*bright_square(8, 0), *bright_square(6, 1)))
    runs = sg.grid("quick", progress=False, strategies=["frozen"])
    assert {k[1] for k in runs} == {"frozen"} and len(runs) == len(sg.TARGETS)
    with pytest.raises(ValueError, match="strategies"):
        sg.grid("quick", progress=False, strategies=["freeze all"])


@pytest.mark.parametrize("strategy", sg.STRATEGIES)
def test_train_run_on_a_cuda_device_matches_the_cpu(fake_mirror, strategy):
    """Under fake_cuda() the run takes its CUDA code paths on the CPU: inputs stay on the CPU, the result too."""
    from fakecuda import fake_cuda

    x, y = bright_square(8, 0)
    tx, _ = bright_square(6, 1)
    on_cpu = sg.train_run(strategy, x, y, tx, TINY, seed=0)
    with fake_cuda():
        on_cuda = sg.train_run(strategy, x, y, tx, TINY, seed=0, device="cuda")
    assert on_cuda.device.type == "cpu" and torch.allclose(on_cuda, on_cpu, atol=1e-5)
