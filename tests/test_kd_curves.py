"""kd_curves: equal steps, deterministic runs with a transfer set, the per-run cache and its shards, the summaries."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from course_lib import distill, loops
from course_lib import kd_curves as kc
from synthetic import bright_square

TINY = kc.Recipe((4, 16), (0, 1), 4, temperatures=(1.0, 4.0), alphas=(0.5,), T=4.0, alpha=0.5, epochs=1,
                 batch_size=4, width=2)


def _splits(n: int = 16) -> kc.Splits:
    x, y = bright_square(n, 0)
    vx, vy = bright_square(6, 1)
    tx, ty = bright_square(8, 2)
    return kc.Splits(x, y, vx, vy, tx, ty)


def _teacher_logits(y: torch.Tensor) -> torch.Tensor:
    return 3.0 * nn.functional.one_hot(y, 10).float()


def test_alone_takes_the_same_number_of_steps():
    r = kc.Recipe((300,), (0,), 300, epochs=3, batch_size=64)
    steps = lambda n, epochs: epochs * math.ceil(n / 64)  # noqa: E731
    assert kc.alone_epochs(6000, 6000, r) == 3
    for n in (300, 1000, 3000):
        assert abs(steps(n, kc.alone_epochs(n, 6000, r)) - steps(6000, 3)) <= math.ceil(n / 64) / 2
    with pytest.raises(ValueError, match="labelled"):
        kc.alone_epochs(0, 6000, r)


def test_partial_labels_marks_the_rest_unlabelled():
    y = torch.tensor([3, 1, 4, 1, 5])
    out = kc.partial_labels(y, torch.tensor([0, 2]))
    assert out.tolist() == [3, distill.UNLABELLED, 4, distill.UNLABELLED, distill.UNLABELLED]
    assert y.tolist() == [3, 1, 4, 1, 5]


def test_train_run_is_deterministic_and_leaves_global_state():
    s = _splits()
    logits, labelled = _teacher_logits(s.y), torch.arange(4)
    rng, threads = torch.random.get_rng_state(), torch.get_num_threads()
    a = kc.train_run(s.x, s.y, labelled, logits, (4.0, 0.5), TINY, seed=0)
    assert torch.equal(rng, torch.random.get_rng_state()) and threads == torch.get_num_threads()
    b = kc.train_run(s.x, s.y, labelled, logits, (4.0, 0.5), TINY, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    alone = kc.train_run(s.x, s.y, labelled, logits, kc.ALONE, TINY, seed=0)
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), alone.state_dict().values()))
    assert not a.training
    with pytest.raises(ValueError, match="same N"):
        kc.train_run(s.x, s.y[:-1], labelled, logits, kc.ALONE, TINY, seed=0)


def test_a_loss_fn_with_the_same_formula_gives_the_same_student():
    s = _splits()
    logits, labelled = _teacher_logits(s.y), torch.arange(4)
    ref = kc.train_run(s.x, s.y, labelled, logits, (4.0, 0.5), TINY, seed=1)
    mine = kc.train_run(s.x, s.y, labelled, logits, (4.0, 0.5), TINY, seed=1,
                        loss_fn=lambda *args: distill.kd_loss(*args).total)
    assert all(torch.equal(p, q) for p, q in zip(ref.state_dict().values(), mine.state_dict().values()))


def test_runs_caches_each_run_and_shards_the_missing_ones(fake_mirror, monkeypatch):
    monkeypatch.setitem(kc.RECIPES, "quick", TINY)
    monkeypatch.setattr(kc, "splits", lambda profile=None, data_dir=None: _splits())
    monkeypatch.setattr(kc, "teacher_logits",
                        lambda profile=None, device="cpu", data_dir=None: _teacher_logits(_splits().y))
    curve = len(TINY.sizes) * len(TINY.seeds) * 2
    grid = len(TINY.seeds) * (1 + len(TINY.temperatures) * len(TINY.alphas))
    shared = len(TINY.seeds) * 2  # alone and (T, alpha) at grid_n = sizes[0]
    half = kc.runs("quick", progress=False, shard=(0, 2))
    assert len(half) == (curve + grid - shared + 1) // 2
    every = kc.runs("quick", progress=False)
    assert len(every) == curve + grid - shared
    assert all(torch.equal(every[k]["test"], v["test"]) for k, v in half.items())
    run = every[4, (4.0, 0.5), 0]
    assert run["val"].shape == (6, 10) and run["test"].shape == (8, 10) and "fc.weight" in run["state"]
    assert set(kc.runs("quick", progress=False, part="grid")) == set(TINY.grid_keys())
    assert set(kc.runs("quick", progress=False, part="curve")) == set(TINY.curve_keys())
    monkeypatch.setattr(kc, "train_run", lambda *a, **k: pytest.fail("a cached run was retrained"))
    kc.runs("quick", progress=False)
    assert kc.cache_dir("quick").parent.name == "kd_curves" and "cpu1t" in kc.cache_dir("quick").name
    with pytest.raises(ValueError, match="part"):
        kc.runs("quick", progress=False, part="both")


def test_teacher_logits_are_computed_once(fake_mirror, monkeypatch):
    from course_lib import models

    calls = []

    def tiny_teacher(depth):
        calls.append(depth)
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))

    monkeypatch.setattr(models, "cifar_resnet", tiny_teacher)
    monkeypatch.setattr(kc, "splits", lambda profile=None, data_dir=None: _splits())
    first = kc.teacher_logits("quick")
    assert first.shape == (16, 10) and calls == [56]
    assert torch.equal(kc.teacher_logits("quick"), first) and calls == [56]


def test_accuracies_and_paired_gain():
    y = torch.tensor([0, 1, 1, 0])
    right, wrong = torch.eye(2)[y], torch.eye(2)[1 - y]
    runs = {(4, kc.ALONE, s): {"test": wrong if s else right, "val": right} for s in (2, 0, 1)}
    runs |= {(4, (3.0, 0.7), s): {"test": right, "val": right} for s in (0, 1, 2)}
    acc = kc.accuracies(runs, y, "test")
    assert acc[4, kc.ALONE] == [1.0, 0.0, 0.0] and acc[4, (3.0, 0.7)] == [1.0, 1.0, 1.0]
    mean, half = kc.paired_gain(acc, 4, (3.0, 0.7))
    assert mean == pytest.approx(2 / 3) and half > 0
    assert kc.accuracies(runs, y, "val")[4, kc.ALONE] == [1.0, 1.0, 1.0]


def test_the_cache_key_ignores_which_runs_are_made():
    base = kc.Recipe((300,), (0,), 300)
    assert base.key() == kc.Recipe((300, 6000), (0, 1, 2), 100, temperatures=(2.0,), T=1.0, alpha=0.1).key()
    assert base.key() != kc.Recipe((300,), (0,), 300, epochs=5).key()


@pytest.mark.parametrize("setting", [kc.ALONE, (4.0, 0.5)])
def test_train_run_on_a_cuda_device_matches_the_cpu(setting):
    """Under fake_cuda() the run takes its CUDA code paths on the CPU: inputs stay on the CPU."""
    from fakecuda import fake_cuda

    s = _splits()
    logits, labelled = _teacher_logits(s.y), torch.arange(4)
    on_cpu = kc.train_run(s.x, s.y, labelled, logits, setting, TINY, seed=0)
    with fake_cuda():
        on_cuda = kc.train_run(s.x, s.y, labelled, logits, setting, TINY, seed=0, device="cuda")
        out = loops.predict(on_cuda, s.test_x)
    assert out.device.type == "cpu" and torch.allclose(out, loops.predict(on_cpu, s.test_x), atol=1e-5)
