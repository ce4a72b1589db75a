"""course_lib.pipeline on small synthetic images with a tiny CIFAR ResNet (depth 8, random init)."""

from __future__ import annotations

import copy
import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib import finetune, pipeline
from course_lib.distill import StudentCNN
from course_lib.images import to_rgb


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RUN_DIR", str(tmp_path / "runs"))
    torch.manual_seed(0)


def toy(n: int, seed: int, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Grayscale (n, 1, size, size) in [0, 1]; class 1 (about 3 in 4, like pneumonia) has a bright patch."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.75).long()
    x = torch.rand(n, 1, size, size, generator=g) * 0.5
    x[y == 1, :, 3:7, 3:7] += 0.4
    return x.clamp(0, 1), y


def make(tmp_path=None, **kw) -> pipeline.TransferLearningPipeline:
    kw = {"batch_size": 16, "max_epochs": 3, "patience": 2, "lr": 1e-2, "progress": False, "device": "cpu",
          "augment": None, **kw}
    return pipeline.TransferLearningPipeline(pipeline.cifar_backbone(8, pretrained=False), **kw)


def _scripted_auc(monkeypatch, pipe, values):
    """Make the epoch-end val AUC follow ``values``; return the model's state at each epoch end."""
    states, it = [], iter(values)

    def fake(y, s):
        states.append(copy.deepcopy(pipe.model.state_dict()))
        return next(it)

    monkeypatch.setattr(pipeline.metrics, "roc_auc", fake)
    return states


def test_best_checkpoint_is_the_one_reloaded(monkeypatch):
    pipe = make(max_epochs=6, patience=2)
    states = _scripted_auc(monkeypatch, pipe, [0.6, 0.9, 0.7, 0.8, 0.5, 0.95])
    hist = pipe.fit(toy(64, 0), toy(32, 1))
    assert hist.best_epoch == 2 and len(hist.epochs) == 4  # stopped: two epochs without improvement
    final = pipe.model.state_dict()
    assert all(torch.equal(final[k], states[1][k]) for k in final)  # epoch 2's weights, not epoch 4's
    assert not all(torch.equal(final[k], states[-1][k]) for k in final)
    saved = torch.load(Path(hist.run_dir) / "best.pt", weights_only=True)
    assert all(torch.equal(final[k], saved[k]) for k in final)


def test_early_stop_when_val_auc_stalls(monkeypatch):
    pipe = make(max_epochs=10, patience=3)
    _scripted_auc(monkeypatch, pipe, [0.7] * 10)
    assert len(pipe.fit(toy(64, 0), toy(32, 1)).epochs) == 1 + 3
    pipe = make(max_epochs=5, patience=3)
    _scripted_auc(monkeypatch, pipe, [0.5, 0.6, 0.7, 0.8, 0.9])
    assert len(pipe.fit(toy(64, 0), toy(32, 1)).epochs) == 5


def test_fit_learns_the_toy_task():
    pipe = make(max_epochs=4, freeze="none", lr_factor=1.0)
    hist = pipe.fit(toy(128, 0), toy(64, 1))
    assert hist.best["val_auc"] > 0.9
    assert pipe.report(toy(64, 2), toy(64, 1)).auc > 0.9


def test_batch_of_one_does_not_crash_the_batchnorm_head():
    x, y = toy(33, 0)  # 33 % 32 == 1: the chapter's loader ends on a batch of one (ERRATA 8.5)
    head = pipeline.make_head(64, 2, 16).train()
    feats = torch.randn(33, 64)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        for fb, _ in DataLoader(TensorDataset(feats, y), batch_size=32):
            head(fb)
    pipe = make(batch_size=32, head_hidden=16, max_epochs=2)
    assert isinstance(pipe.model.fc[3], nn.BatchNorm1d)
    pipe.fit((x, y), toy(16, 1))
    assert all(len(b) == 32 for b in pipe._batches(y, torch.Generator().manual_seed(0)))


def test_grayscale_input_works_with_three_channel_backbones():
    pipe = make()
    x, _ = toy(5, 0)
    assert pipe.predict_proba(x).shape == (5, 2)
    with pytest.raises(ValueError, match="3, H, W"):  # the backbone itself insists on 3 channels
        pipe.model(x)
    full = pipeline.torchvision_backbone(weights=None)
    inp = full.preprocess(torch.rand(2, 1, 28, 28))
    assert inp.shape == (2, 3, 224, 224)
    assert torch.equal(inp[:, 0], inp[:, 1]) is False  # ImageNet normalisation differs per channel
    assert full.model(inp).shape == (2, 2)


def test_full_profile_backbone_structure_with_weights_none():
    pipe = pipeline.TransferLearningPipeline(pipeline.torchvision_backbone(weights=None), freeze="partial",
                                             progress=False, device="cpu")
    trainable = {n.split(".")[0] for n, p in pipe.model.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "fc"}
    groups = finetune.param_groups(pipe.model, 1e-3)
    assert [g["name"] for g in groups] == ["layer4", "head"] and groups[0]["lr"] < groups[1]["lr"]
    assert isinstance(pipe.model.layer1[0].bn1, finetune.FrozenBatchNorm2d)


def test_offline_weights_give_an_actionable_error(monkeypatch):
    from torchvision.models._api import WeightsEnum

    def offline(self, *a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(pipeline.WeightsUnavailableError, match="COURSE_PROFILE=quick"):
        pipeline.torchvision_backbone("DEFAULT")


def test_frozen_batchnorm_statistics_do_not_move():
    pipe = make(freeze="partial", max_epochs=1)
    before = pipe.model.layer1[0].bn1.running_mean.clone()
    pipe.fit(toy(64, 0), toy(32, 1))
    assert torch.equal(pipe.model.layer1[0].bn1.running_mean, before)


def test_run_dir_is_never_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="current directory"):
        make(run_dir=tmp_path)
    pipe = make(max_epochs=1)
    pipe.fit(toy(64, 0), toy(32, 1))
    assert Path(os.environ["COURSE_RUN_DIR"]) in pipe.run_dir.parents
    assert (pipe.run_dir / "best.pt").exists() and (pipe.run_dir / "best_history.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written to the CWD


@pytest.mark.parametrize("bad", [
    (torch.rand(10, 12, 12), torch.zeros(10, dtype=torch.long)),  # no channel axis
    (torch.rand(10, 2, 12, 12), torch.zeros(10, dtype=torch.long)),  # 2 channels
    (torch.rand(10, 1, 12, 12), torch.zeros(9, dtype=torch.long)),  # one label short
    (torch.rand(10, 1, 12, 12), torch.zeros(10)),  # float labels
    (torch.randint(0, 255, (10, 1, 12, 12), dtype=torch.uint8), torch.zeros(10, dtype=torch.long)),
])
def test_wrong_shapes_raise_clear_valueerror(bad):
    with pytest.raises(ValueError, match="must"):
        make().fit(bad, toy(16, 1))


def test_head_only_stage_uses_cached_features():
    pipe = make(freeze="all", max_epochs=2)
    train, val = toy(64, 0), toy(32, 1)
    score = pipe.transferability(train)
    cached = pipe.features(train)
    assert pipe.features(train) is cached and isinstance(score, float)
    calls = []
    pipe.preprocess = lambda x: calls.append(len(x)) or to_rgb(x)
    pipe.fit(train, val)
    assert calls == [32]  # only the validation set went through the backbone, once


def test_class_weights_balance_classes_and_average_one():
    y = torch.tensor([1] * 30 + [0] * 10)
    w = pipeline.class_weights(y, 2)
    assert w[y].mean().item() == pytest.approx(1.0)
    assert (w[0] * 10).item() == pytest.approx((w[1] * 30).item())


def test_sampler_draws_balanced_batches():
    pipe = make(imbalance="sampler", batch_size=100)
    y = torch.tensor([1] * 900 + [0] * 100)
    drawn = torch.cat(pipe._batches(y, torch.Generator().manual_seed(0)))
    assert 0.4 < y[drawn].float().mean().item() < 0.6


def test_distillation_stage_is_real():
    pipe = make(max_epochs=2)
    train, val = toy(64, 0), toy(32, 1)
    with pytest.raises(ValueError, match="student"):
        pipe.run(train, val, use_distillation=True)
    student = pipeline.Backbone(StudentCNN(4, 2), to_rgb, "student")
    result = pipe.run(train, val, use_distillation=True, student=student)
    assert result.student_history is not None and pipe.student is student
    assert pipe.predict_proba(val, student=True).shape == (32, 2)
    torch.manual_seed(1)
    plain = pipeline.Backbone(StudentCNN(4, 2), to_rgb, "plain")
    torch.manual_seed(1)
    kd = pipeline.Backbone(StudentCNN(4, 2), to_rgb, "kd")
    pipe.distill(plain, train, val, alpha=0.0, augment=False)
    pipe.distill(kd, train, val, alpha=0.9, augment=False)
    assert not torch.allclose(plain.model.fc.weight, kd.model.fc.weight)  # the teacher changed the result


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (3, 3, 28, 28), (2, 1, 224, 224), (2, 3, 300, 300)])
def test_resize_crop_normalize_equals_torchvision_preset(shape):
    from torchvision.models import ResNet18_Weights

    preset = ResNet18_Weights.DEFAULT.transforms()  # resize 256 (antialiased), centre crop 224, normalise
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    ours = pipeline.torchvision_backbone(weights=None).preprocess(x)
    assert ours.shape == (shape[0], 3, 224, 224)
    assert (ours - preset(to_rgb(x))).abs().max() < 1.5e-6  # float32 rounding: 1.1e-6 at most here


def test_resize_crop_normalize_rejects_non_square_or_wrong_channels():
    prep = pipeline.ResizeCropNormalize(256, 224, [0.5] * 3, [0.5] * 3)
    for bad in (torch.rand(2, 1, 28, 30), torch.rand(2, 2, 28, 28), torch.rand(28, 28)):
        with pytest.raises(ValueError, match="square images"):
            prep(bad)


@pytest.mark.parametrize("h", [28, 224, 300])
def test_resize_rows_sum_to_one_and_the_bands_hold_every_nonzero_weight(h):
    a = pipeline._resize_matrix(h, 256, 224)
    assert torch.allclose(a.double().sum(1), torch.ones(224, dtype=torch.float64), atol=1e-6)  # so normalise first
    rebuilt = torch.zeros_like(a)
    bands = pipeline.ResizeCropNormalize._bands(a)
    for out_px, in_px, a_t in bands:
        rebuilt[out_px, in_px] = a_t.T
    assert torch.equal(rebuilt, a)
    assert len(bands) == 2 and all(in_px.stop - in_px.start < h for _, in_px, _ in bands)  # each skips zeros
