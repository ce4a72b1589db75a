"""course_lib.distill: the KD loss against its formula, the T² gradient scale, the student and its loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import distill, loops


def _logits(n: int = 16, c: int = 10, seed: int = 0, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, c, generator=g) * scale
    t = torch.randn(n, c, generator=g) * scale
    y = torch.randint(0, c, (n,), generator=g)
    return s, t, y


def test_alpha_zero_at_T1_is_cross_entropy():
    s, t, y = _logits()
    out = distill.kd_loss(s, t, y, T=1.0, alpha=0.0)
    assert torch.allclose(out.total, F.cross_entropy(s, y))
    assert torch.allclose(out.hard, F.cross_entropy(s, y))


@pytest.mark.parametrize("T", [1.0, 2.5, 4.0, 20.0])
def test_agrees_with_the_formula(T):
    """soft = T² · mean_i Σ_c p_ic (log p_ic − log q_ic); total = α soft + (1 − α) hard."""
    s, t, y = _logits(n=5, c=4, seed=1)
    p = torch.softmax(t / T, 1)
    q = torch.softmax(s / T, 1)
    soft = T ** 2 * (p * (p.log() - q.log())).sum(1).mean()
    hard = -torch.log_softmax(s, 1)[torch.arange(5), y].mean()
    out = distill.kd_loss(s, t, y, T=T, alpha=0.3)
    assert torch.allclose(out.soft, soft, atol=1e-5)
    assert torch.allclose(out.hard, hard, atol=1e-6)
    assert torch.allclose(out.total, 0.3 * soft + 0.7 * hard, atol=1e-5)


def test_alpha_endpoints_and_zero_soft_term_for_identical_logits():
    s, t, y = _logits(seed=2)
    assert torch.allclose(distill.kd_loss(s, t, y, 4.0, 1.0).total, distill.kd_loss(s, t, y, 4.0, 1.0).soft)
    assert torch.allclose(distill.kd_loss(s, t, y, 4.0, 0.0).total, F.cross_entropy(s, y))
    assert distill.kd_loss(s, s.clone(), y, 4.0, 0.5).soft.abs() < 1e-6  # KL(p ‖ p) = 0
    assert distill.kd_loss(s, t, y, 4.0, 0.5).soft > 0


def _soft_grad_norm(T: float, t2: bool) -> float:
    s, t, y = _logits(n=64, seed=3)
    s.requires_grad_(True)
    soft = distill.kd_loss(s, t, y, T=T, alpha=1.0).soft
    (soft if t2 else soft / T ** 2).backward()
    return s.grad.norm().item()


def test_T_squared_keeps_the_soft_gradient_scale():
    temps = [1.0, 2.0, 3.0, 5.0, 10.0]
    with_t2 = [_soft_grad_norm(T, True) for T in temps]
    without = [_soft_grad_norm(T, False) for T in temps]
    assert max(with_t2) / min(with_t2) < 2.0  # stays within a small factor from T = 1 to 10
    assert without[-1] < without[0] / 30  # without T² it collapses roughly like 1/T²
    for T, a, b in zip(temps, with_t2, without):
        assert a == pytest.approx(b * T ** 2, rel=1e-4)


def test_no_gradient_into_the_teacher():
    s, t, y = _logits(seed=4)
    s.requires_grad_(True)
    t.requires_grad_(True)
    distill.kd_loss(s, t, y, 3.0, 0.7).total.backward()
    assert t.grad is None and s.grad is not None


@pytest.mark.parametrize("args,match", [
    ((torch.zeros(4), torch.zeros(4), torch.zeros(4, dtype=torch.long)), "student_logits must be"),
    ((torch.zeros(4, 10), torch.zeros(4, 9), torch.zeros(4, dtype=torch.long)), "teacher_logits must"),
    ((torch.zeros(4, 10), torch.zeros(4, 10), torch.zeros(3, dtype=torch.long)), "targets must be"),
    ((torch.zeros(4, 10), torch.zeros(4, 10), torch.zeros(4, 10)), "targets must be"),
    ((torch.zeros(4, 10), torch.zeros(4, 10), torch.zeros(4)), "integer class indices"),
])
def test_shape_errors(args, match):
    with pytest.raises(ValueError, match=match):
        distill.kd_loss(*args, T=2.0, alpha=0.5)


@pytest.mark.parametrize("T,alpha", [(0.0, 0.5), (-1.0, 0.5), (2.0, -0.1), (2.0, 1.5)])
def test_bad_T_or_alpha(T, alpha):
    s, t, y = _logits()
    with pytest.raises(ValueError):
        distill.kd_loss(s, t, y, T=T, alpha=alpha)


def test_unlabelled_targets_skip_the_hard_term_only():
    s, t, y = _logits(8)
    y_part = y.clone()
    y_part[::2] = distill.UNLABELLED
    out = distill.kd_loss(s, t, y_part, T=2.0, alpha=0.4)
    assert torch.allclose(out.hard, F.cross_entropy(s[1::2], y[1::2]))
    assert torch.allclose(out.soft, distill.kd_loss(s, t, y, T=2.0, alpha=0.4).soft)  # every sample teaches softly
    none = distill.kd_loss(s.requires_grad_(), t, torch.full_like(y, distill.UNLABELLED), T=2.0, alpha=0.4)
    assert none.hard == 0 and torch.allclose(none.total, 0.4 * none.soft)
    none.total.backward()  # a batch with no label still backpropagates
    assert s.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [-2, 10])
def test_targets_out_of_range(bad):
    s, t, y = _logits()
    y[0] = bad
    with pytest.raises(ValueError, match="UNLABELLED"):
        distill.kd_loss(s, t, y, T=2.0, alpha=0.5)


def test_soft_targets_flatten_with_T():
    logits = torch.tensor([[4.0, 1.0, 0.0]])
    ent = lambda p: -(p * p.log()).sum().item()  # noqa: E731
    ents = [ent(distill.soft_targets(logits, T)) for T in (1, 2, 4, 100)]
    assert ents == sorted(ents) and ents[-1] == pytest.approx(math.log(3), abs=1e-3)


def test_student_shapes_and_size():
    student = distill.StudentCNN(width=16)
    assert student(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert student(torch.rand(2, 3, 28, 28)).shape == (2, 10)  # global pooling: not 32×32-only
    n = distill.count_params(student)
    assert n == sum(p.numel() for p in student.parameters()) and 20_000 < n < 30_000
    assert distill.count_params(distill.StudentCNN(width=32)) > 3 * n
    with pytest.raises(ValueError, match="expected images"):
        student(torch.rand(2, 1, 32, 32))


def _toy(n: int = 96):
    """A learnable toy set: class c is a bright square in one of 4 image quadrants."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 4
    x = torch.rand(n, 3, 16, 16, generator=g) * 0.3
    for i, c in enumerate(y.tolist()):
        r, col = divmod(c, 2)
        x[i, :, 8 * r: 8 * r + 8, 8 * col: 8 * col + 8] += 0.7
    return x, y


def test_train_student_learns_and_is_seeded():
    x, y = _toy()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        student = distill.StudentCNN(width=4, num_classes=4)
        hist = distill.train_student(student, x, y, epochs=8, lr=1e-2, batch_size=16, seed=0, progress=False)
        runs.append((student, hist))
    assert runs[0][1][-1]["hard"] < runs[0][1][0]["hard"]
    assert all(h["soft"] == 0 for h in runs[0][1])
    assert loops.evaluate_accuracy(runs[0][0], x, y) > 0.9
    for a, b in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        assert torch.equal(a, b)


def test_cached_logits_equal_an_online_teacher():
    """A frozen, eval-mode teacher gives the same logits every epoch, so caching them is exact."""
    x, y = _toy(64)
    torch.manual_seed(1)
    teacher = distill.StudentCNN(width=4, num_classes=4)
    teacher.train()  # teacher_logits must switch it to eval mode and freeze it
    cached = distill.teacher_logits(teacher, x, batch_size=20)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    students = []
    for kwargs in ({"cached_logits": cached}, {"teacher": teacher}):
        torch.manual_seed(0)
        student = distill.StudentCNN(width=4, num_classes=4)
        hist = distill.train_student(student, x, y, 3, T=3.0, alpha=0.8, batch_size=16, seed=0,
                                     progress=False, **kwargs)
        students.append(student)
        assert all(h["soft"] > 0 for h in hist)
        assert hist[0]["total"] == pytest.approx(0.8 * hist[0]["soft"] + 0.2 * hist[0]["hard"], rel=1e-5)
    for a, b in zip(students[0].parameters(), students[1].parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_unlabelled_images_teach_through_the_teacher():
    """With only a few labels, soft targets on the unlabelled images carry the rest of the signal."""
    x, y = _toy(64)
    torch.manual_seed(1)
    teacher = distill.StudentCNN(width=4, num_classes=4)
    distill.train_student(teacher, x, y, 8, lr=1e-2, batch_size=16, seed=0, progress=False)
    y_part = torch.full_like(y, distill.UNLABELLED)
    y_part[:4] = y[:4]
    hist = distill.train_student(distill.StudentCNN(width=4, num_classes=4), x, y_part, 2, T=2.0, alpha=0.5,
                                 cached_logits=distill.teacher_logits(teacher, x), batch_size=8, seed=0, progress=False)
    assert all(h["soft"] > 0 for h in hist)
    with pytest.raises(ValueError, match="UNLABELLED images need a teacher"):
        distill.train_student(distill.StudentCNN(width=4, num_classes=4), x, y_part, 1, progress=False)


def test_train_student_input_errors():
    x, y = _toy(32)
    student = distill.StudentCNN(width=4, num_classes=4)
    with pytest.raises(ValueError, match="not both"):
        distill.train_student(student, x, y, 1, cached_logits=torch.zeros(32, 4), teacher=student, progress=False)
    with pytest.raises(ValueError, match="one label per image"):
        distill.train_student(student, x, y[:5], 1, progress=False)
    with pytest.raises(ValueError, match="cached_logits must be"):
        distill.train_student(student, x, y, 1, cached_logits=torch.zeros(31, 4), progress=False)
    with pytest.raises(ValueError, match="images must be"):
        distill.teacher_logits(student, x[0])


def test_time_inference_restores_mode_and_threads():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    model.train()
    before = torch.get_num_threads()
    seen = []
    model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    seconds = distill.time_inference(model, torch.rand(8, 4), repeats=3, threads=2)
    assert seconds > 0 and model.training and torch.get_num_threads() == before
    assert seen == [2] * 4  # one warm-up and three timed passes, all with the requested threads
    for bad in ({"repeats": 0}, {"threads": 0}):
        with pytest.raises(ValueError):
            distill.time_inference(model, torch.rand(8, 4), **bad)


def test_train_student_takes_a_loss_function():
    """A loss_fn with kd_loss's formula trains the same student; its history has NaN soft/hard parts."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(24, 3, 32, 32, generator=g), torch.arange(24) % 10
    y[::2] = distill.UNLABELLED
    logits = torch.randn(24, 10, generator=g)
    students = []
    for loss_fn in (None, lambda *args: distill.kd_loss(*args).total):
        torch.manual_seed(0)
        students.append(distill.StudentCNN(4))
        hist = distill.train_student(students[-1], x, y, 1, cached_logits=logits, T=2.0, alpha=0.5, batch_size=8,
                                     progress=False, loss_fn=loss_fn)
    assert all(torch.equal(p, q) for p, q in zip(students[0].parameters(), students[1].parameters()))
    assert math.isnan(hist[0]["soft"]) and not math.isnan(hist[0]["total"])
    with pytest.raises(ValueError, match="loss_fn"):
        distill.train_student(distill.StudentCNN(4), x, torch.arange(24) % 10, 1, progress=False,
                              loss_fn=lambda *args: distill.kd_loss(*args).total)
