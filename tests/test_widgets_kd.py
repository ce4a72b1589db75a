"""widgets.kd_temperature (lesson 06): the distillation slider's pure callback, over a grid of (T, α)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import distill, widgets

CLASSES = [f"c{i}" for i in range(10)]
TEACHER = torch.tensor([1.0, 0.5, 0.0, 6.0, 0.2, 4.5, 0.1, 0.3, 0.0, 0.4])  # class 3, runner-up 5
STUDENT = torch.linspace(-0.3, 0.3, 10)


@pytest.mark.parametrize("T,alpha", list(itertools.product([1.0, 2.0, 4.0, 10.0, 20.0], [0.0, 0.3, 0.9, 1.0])))
def test_kd_temperature_grid(T, alpha):
    view = widgets.kd_temperature(TEACHER, STUDENT, 3, T, alpha, CLASSES)
    assert sum(view.teacher_probs) == pytest.approx(1.0) and sum(view.student_probs) == pytest.approx(1.0)
    assert view.teacher_probs == pytest.approx(torch.softmax(TEACHER / T, 0).tolist())
    assert view.teacher_probs_t1 == pytest.approx(torch.softmax(TEACHER, 0).tolist())
    ref = distill.kd_loss(STUDENT[None], TEACHER[None], torch.tensor([3]), T, alpha)
    assert view.loss["total"] == pytest.approx(ref.total.item(), rel=1e-6)
    assert view.loss["α·soft"] + view.loss["(1-α)·hard"] == pytest.approx(view.loss["total"], rel=1e-6)
    assert view.loss["hard"] == pytest.approx(F.cross_entropy(STUDENT[None], torch.tensor([3])).item(), rel=1e-6)
    # d(soft)/ds = T (q_T - p_T) for one example; the hard term's is q - onehot
    q_t, p_t = torch.softmax(STUDENT / T, 0), torch.softmax(TEACHER / T, 0)
    assert view.grad_norm["α·soft"] == pytest.approx(alpha * T * (q_t - p_t).norm().item(), rel=1e-4, abs=1e-9)
    hard_grad = torch.softmax(STUDENT, 0) - F.one_hot(torch.tensor(3), 10)
    assert view.grad_norm["(1-α)·hard"] == pytest.approx((1 - alpha) * hard_grad.norm().item(), rel=1e-4, abs=1e-9)
    assert view.grad_norm["α·soft without T²"] == pytest.approx(view.grad_norm["α·soft"] / T ** 2, rel=1e-4, abs=1e-9)
    assert 0 < view.teacher_entropy <= math.log(10) + 1e-6
    assert view.title.startswith(f"T={T:g}, α={alpha:.2f}") and "c3" in view.title


def test_higher_T_flattens_the_teacher_and_keeps_its_argmax():
    views = [widgets.kd_temperature(TEACHER, STUDENT, 3, T, 0.5, CLASSES) for T in (1, 2, 4, 8, 50)]
    ents = [v.teacher_entropy for v in views]
    assert ents == sorted(ents) and ents[-1] > 0.99 * math.log(10)
    assert all(max(range(10), key=v.teacher_probs.__getitem__) == 3 for v in views)
    # the runner-up class 5 gains mass relative to the rest as T rises
    assert views[2].teacher_probs[5] > views[0].teacher_probs[5]


def test_T_squared_keeps_the_soft_gradient_steady():
    soft = [widgets.kd_temperature(TEACHER, STUDENT, 3, T, 1.0, CLASSES).grad_norm for T in (1, 3, 10)]
    with_t2 = [g["α·soft"] for g in soft]
    without = [g["α·soft without T²"] for g in soft]
    assert max(with_t2) / min(with_t2) < 3
    assert without[-1] < without[0] / 10


@pytest.mark.parametrize("args", [
    (TEACHER[None], STUDENT[None], 3, 2.0, 0.5, CLASSES),
    (TEACHER, STUDENT[:9], 3, 2.0, 0.5, CLASSES),
    (TEACHER, STUDENT, 10, 2.0, 0.5, CLASSES),
    (TEACHER, STUDENT, 3, 2.0, 0.5, CLASSES[:9]),
    (TEACHER, STUDENT, 3, 0.0, 0.5, CLASSES),
    (TEACHER, STUDENT, 3, 2.0, 1.5, CLASSES),
])
def test_kd_temperature_bad_input(args):
    with pytest.raises(ValueError):
        widgets.kd_temperature(*args)
