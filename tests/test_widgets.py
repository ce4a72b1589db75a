"""The widgets' pure callbacks, over a grid of slider values."""

from __future__ import annotations

import itertools

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
