"""loops: prediction in eval mode (mode restored, even on error), accuracy, and fit (the best checkpoint is the
one returned, saved atomically outside the CWD; patience; a monitored loss)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from course_lib import loops
from course_lib.data import ImageDataset
from course_lib.images import to_rgb
from course_lib.models import cifar_resnet


def toy_dataset(n: int = 64, seed: int = 0) -> ImageDataset:
    """Two classes that differ in brightness: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (torch.rand(n, 1, 4, 4, generator=g) * 100 + 100 * y.view(-1, 1, 1, 1)).to(torch.uint8)
    return ImageDataset(x, y, ["dark", "bright"])


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 2))


class Snapshots:
    """A 'scheduler' that records the weights after each epoch (fit steps it once per epoch)."""

    def __init__(self, model):
        self.model, self.states = model, []

    def step(self):
        self.states.append({k: v.clone() for k, v in self.model.state_dict().items()})


def test_returned_model_is_the_best_epoch_not_the_last(tmp_path, monkeypatch):
    model = tiny_model()
    scripted = iter([0.5, 0.9, 0.6, 0.7])
    monkeypatch.setattr(loops, "_loader_validate", lambda *a: lambda: {"val_loss": 1.0, "val_acc": next(scripted)})
    snaps = Snapshots(model)
    ds = toy_dataset()
    hist = loops.fit(model, loops.make_loader(ds, 16, shuffle=True), loops.make_loader(ds, 16), epochs=4,
                     optimizer=torch.optim.SGD(model.parameters(), lr=0.5), scheduler=snaps,
                     run_dir=tmp_path / "run", progress=False)
    out = model
    assert hist.best_epoch == 2 and hist.best["val_acc"] == 0.9
    for k, v in out.state_dict().items():
        assert torch.equal(v, snaps.states[1][k]), k
        assert not torch.equal(v, snaps.states[-1][k]), k
    saved = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in out.state_dict().items())
    assert json.loads((tmp_path / "run" / "best_history.json").read_text())["best_epoch"] == 2


def test_fit_learns_and_never_writes_to_cwd(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COURSE_RUN_DIR", str(tmp_path / "runs"))
    ds = toy_dataset()
    model = tiny_model()
    hist = loops.fit(model, loops.make_loader(ds, 16, shuffle=True), loops.make_loader(ds, 64), epochs=5,
                     optimizer=torch.optim.SGD(model.parameters(), lr=2.0), progress=False)
    assert hist.best["val_acc"] == 1.0
    assert loops.evaluate_accuracy(model, ds.images.float(), ds.labels) == 1.0
    assert list(cwd.iterdir()) == []
    run = next((tmp_path / "runs").iterdir())
    assert {p.name for p in run.iterdir()} == {"best.pt", "best_history.json"}


def test_existing_checkpoint_is_never_overwritten(tmp_path):
    ds = toy_dataset()
    loader = loops.make_loader(ds, 16)
    loops.fit(tiny_model(), loader, loader, epochs=1, run_dir=tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        loops.fit(tiny_model(), loader, loader, epochs=1, run_dir=tmp_path, progress=False)
    loops.fit(tiny_model(), loader, loader, epochs=1, run_dir=tmp_path, overwrite=True, progress=False)


def test_losses_are_averaged_per_sample():
    """A 7-sample loader with batch 4: the epoch loss must weight samples, not batches (ERRATA 8.16)."""
    ds = toy_dataset(7)
    model = tiny_model()
    with torch.no_grad():
        per_sample = nn.functional.cross_entropy(model(ds.images), ds.labels).item()
    validate = loops._loader_validate(model, loops.make_loader(ds, 4), nn.functional.cross_entropy)
    assert validate()["val_loss"] == pytest.approx(per_sample, rel=1e-6)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # no update: the training loss is the same per-sample mean
    row = loops.train_epoch(model, loops._loader_batches(loops.make_loader(ds, 4), torch.device("cpu"))(1),
                            nn.functional.cross_entropy, opt)
    assert row["train_loss"] == pytest.approx(per_sample, rel=1e-6)


def test_make_loader_order_depends_only_on_seed():
    ds = toy_dataset(32)
    order = lambda seed: torch.cat([x.flatten(1) for x, _ in loops.make_loader(ds, 8, shuffle=True, seed=seed)])
    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))


def test_train_classifier_learns_and_is_deterministic():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        head = nn.Linear(5, 2)
        hist = loops.train_classifier(head, x, y, epochs=30, lr=0.05, batch_size=32, seed=3, progress=False)
        losses = hist["train_loss"]
        runs.append((losses, head.weight.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][0][-1] < 0.5 * runs[0][0][0]
    assert loops.evaluate_accuracy(head, x, y) > 0.9
    assert loops.predict(head, x).shape == (200, 2)
    with pytest.raises(ValueError):
        loops.train_classifier(head, x, y[:10], epochs=1, lr=0.1)


def test_extract_matches_a_direct_forward_and_restores_mode():
    torch.manual_seed(0)
    model = cifar_resnet(20, pretrained=False).train()
    ds = ImageDataset((torch.rand(10, 1, 28, 28) * 255).to(torch.uint8), torch.arange(10) % 2, ["a", "b"])
    f, y = loops.extract(model.features, ds, batch_size=4, transform=lambda x: to_rgb(x, 32))
    assert f.shape == (10, 64) and torch.equal(y, ds.labels) and model.training
    f2, _ = loops.extract(model.features, loops.make_loader(ds, 3), transform=lambda x: to_rgb(x, 32))
    assert torch.allclose(f, f2, atol=1e-5)  # a loader works like a dataset
    model.eval()
    with torch.no_grad():
        direct = model.features(to_rgb(ds.images, 32))
    assert torch.allclose(f, direct, atol=1e-5)


class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


@pytest.mark.parametrize("call", [lambda m, x: loops.predict(m, x),
                                  lambda m, x: loops.extract(m, torch.utils.data.TensorDataset(x, x[:, 0]))])
def test_prediction_restores_train_mode_even_when_the_model_raises(call):
    model = nn.Sequential(nn.BatchNorm1d(3), Boom()).train()
    with pytest.raises(RuntimeError, match="boom"):
        call(model, torch.rand(4, 3))
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    with pytest.raises(RuntimeError, match="boom"):
        call(model, torch.rand(4, 3))
    assert not model.training


def test_predict_batches_methods_and_tuple_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    x = torch.rand(11, 3)
    with torch.no_grad():
        want = model.eval()(x)
    model.train()
    assert torch.allclose(loops.predict(model, x, batch_size=4), want, atol=1e-6)  # eval mode: no dropout
    assert model.training
    both = loops.predict(lambda xb: (model[0](xb), model(xb)), x, batch_size=5, module=model)
    assert isinstance(both, tuple) and both[0].shape == (11, 4) and torch.allclose(both[1], want, atol=1e-6)
    with pytest.raises(ValueError, match="non-empty"):
        loops.predict(model, torch.rand(0, 3))


def test_accuracy_and_its_shape_errors():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert loops.accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="logits"):
        loops.accuracy(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="logits"):
        loops.accuracy(logits[:, 0], torch.tensor([0, 1, 1]))


def test_patience_stops_early_and_a_monitored_loss_is_minimised(tmp_path):
    model = tiny_model()
    losses = iter([0.9, 0.5, 0.7, 0.8, 0.4, 0.3])
    ds = toy_dataset()
    hist = loops.fit(model, loops.make_loader(ds, 16), lambda: {"val_loss": next(losses)}, epochs=6,
                     monitor="val_loss", patience=2, run_dir=tmp_path, progress=False)
    assert len(hist.epochs) == 4 and hist.best_epoch == 2 and hist.best["val_loss"] == 0.5
    assert not model.training


def test_fit_without_validation_keeps_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = toy_dataset()
    hist = loops.fit(tiny_model(), loops.make_loader(ds, 16), None, epochs=2, progress=False)
    assert hist.best_epoch is None and len(hist["train_loss"]) == 2 and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no validation"):
        hist.best


def test_bad_monitor():
    ds = toy_dataset()
    with pytest.raises(ValueError, match="monitor 'acc'"):
        loops.fit(tiny_model(), loops.make_loader(ds), loops.make_loader(ds), 1, monitor="acc", progress=False)
