"""freeze / param_groups on CIFAR and torchvision ResNets."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn as nn
import torchvision

from course_lib import finetune
from course_lib.models import cifar_resnet

BACKBONES = {"cifar20": lambda: cifar_resnet(20, pretrained=False),
             "tv_resnet18": lambda: torchvision.models.resnet18(weights=None, num_classes=10)}


@pytest.fixture(params=sorted(BACKBONES))
def model(request):
    torch.manual_seed(0)
    return BACKBONES[request.param]()


def trainable_stages(m):
    return [s.name for s in finetune.stages(m) if any(p.requires_grad for p in s.parameters())]


def test_stages_cover_every_parameter(model):
    ids = [id(p) for s in finetune.stages(model) for p in s.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_strategies(model):
    layers = [s.name for s in finetune.stages(model)][1:-1]
    assert trainable_stages(finetune.freeze(model, "all")) == ["head"]
    assert trainable_stages(finetune.freeze(model, "partial")) == [layers[-1], "head"]
    assert trainable_stages(finetune.freeze(model, "none")) == ["stem", *layers, "head"]
    assert trainable_stages(finetune.freeze(model, 2)) == [*layers[-2:], "head"]
    rows = finetune.param_table(finetune.freeze(model, "all"))
    assert rows[-1]["total"] == sum(p.numel() for p in model.parameters())
    assert rows[-1]["trainable"] == sum(p.numel() for p in model.fc.parameters())


@pytest.mark.parametrize("bad", ["Partial", "layer4", 99, -1, 1.5, True, None])
def test_unknown_strategy_is_an_error(model, bad):
    with pytest.raises(ValueError):
        finetune.freeze(model, bad)


def test_model_without_stages_is_a_clear_error():
    with pytest.raises(ValueError, match="no named stages"):
        finetune.freeze(nn.Sequential(nn.Linear(2, 2)), "all")


def test_frozen_bn_running_stats_survive_train_mode_forward(model):
    finetune.freeze(model, "partial")
    model.train()
    frozen_bn = [m for s in finetune.stages(model)[:-2] for mod in s.modules for m in mod.modules()
                 if isinstance(m, nn.BatchNorm2d)]
    trained_bn = [m for m in finetune.stages(model)[-2].modules[0].modules() if isinstance(m, nn.BatchNorm2d)]
    before = [b.running_mean.clone() for b in frozen_bn]
    before_trained = [b.running_mean.clone() for b in trained_bn]
    for _ in range(3):
        model(torch.rand(8, 3, 32, 32) * 5)
    assert all(torch.equal(a, b.running_mean) for a, b in zip(before, frozen_bn))
    assert all(not b.training for b in frozen_bn)
    assert any(not torch.equal(a, b.running_mean) for a, b in zip(before_trained, trained_bn))


def test_requires_grad_alone_does_not_freeze_bn(model):
    """The chapter's freeze (ERRATA 2.2): requires_grad=False, then a train-mode forward moves the stats."""
    for p in model.parameters():
        p.requires_grad = False
    model.train()
    before = model.bn1.running_mean.clone()
    model(torch.rand(8, 3, 32, 32))
    assert not torch.equal(before, model.bn1.running_mean)


def test_unfreezing_restores_normal_batchnorm(model):
    state = copy.deepcopy(model.state_dict())
    finetune.freeze(model, "all")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # class swap keeps the weights
    finetune.freeze(model, "none")
    model.train()
    assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(type(m) is nn.BatchNorm2d for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_frozen_model_pickles_and_deepcopies(model):
    finetune.freeze(model, "partial")
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(clone.bn1, finetune.FrozenBatchNorm2d)
        clone.train()
        assert not clone.bn1.training


def test_discriminative_lrs():
    lrs = finetune.discriminative_lrs(5, 1e-3, 2.6)
    assert lrs[-1] == 1e-3
    assert all(a * 2.6 == pytest.approx(b) for a, b in zip(lrs, lrs[1:]))
    assert finetune.discriminative_lrs(3, 0.1, 1.0) == [0.1, 0.1, 0.1]
    for bad in ((0, 1e-3, 2.6), (3, 0.0, 2.6), (3, 1e-3, 0.5)):
        with pytest.raises(ValueError):
            finetune.discriminative_lrs(*bad)


def test_param_groups_cover_every_trainable_parameter_once(model):
    for strategy in ("none", "partial", "all", 2):
        finetune.freeze(model, strategy)
        groups = finetune.param_groups(model, 1e-3)
        ids = [id(p) for g in groups for p in g["params"]]
        trainable = [id(p) for p in model.parameters() if p.requires_grad]
        assert len(ids) == len(set(ids)) and set(ids) == set(trainable)
        assert groups[-1]["name"] == "head" and groups[-1]["lr"] == 1e-3
    finetune.freeze(model, "none")
    groups = finetune.param_groups(model, 1e-3)
    assert groups[0]["name"] == "stem" and model.conv1.weight in groups[0]["params"]  # ERRATA 3.1
    opt = torch.optim.SGD(groups, lr=1.0)
    model(torch.rand(4, 3, 32, 32)).sum().backward()
    before = model.conv1.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model.conv1.weight)  # the stem really trains


def test_param_groups_fail_loudly_on_parameters_outside_stages(model):
    model.extra = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="extra"):
        finetune.param_groups(model, 1e-3)


@pytest.mark.parametrize("strategy,trunk_out", [("all", (64, 8, 8)), ("partial", (32, 16, 16)),
                                                (2, (16, 32, 32)), ("none", (3, 32, 32))])
def test_split_frozen_recomposes_the_model(strategy, trunk_out):
    torch.manual_seed(0)
    model = finetune.freeze(cifar_resnet(20, pretrained=False, num_classes=3), strategy)
    trunk, top = finetune.split_frozen(model)
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    assert trunk(x).shape[1:] == trunk_out
    assert torch.allclose(top(trunk(x)), model(x), atol=1e-5)
    assert not any(p.requires_grad for p in trunk.parameters())
    assert {id(p) for p in top.parameters()} == {id(p) for p in model.parameters() if p.requires_grad}
    assert torch.allclose(top[:-1](trunk(x)), model.features(x), atol=1e-5)  # penultimate features
    assert top[-1] is model.fc  # shared: training top trains the model


def test_split_frozen_refuses_other_models_and_non_prefix_freezing():
    with pytest.raises(ValueError, match="CifarResNet"):
        finetune.split_frozen(nn.Sequential(nn.Linear(2, 2)))
    model = cifar_resnet(20, pretrained=False)
    model.layer3.requires_grad_(False)  # a frozen block above a trainable one
    with pytest.raises(ValueError, match="prefix"):
        finetune.split_frozen(model)
