"""fit/evaluate: the best checkpoint is the one returned, saved atomically outside the CWD."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from course_lib import train
from course_lib.data import ImageDataset


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
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: {"loss": 1.0, "acc": next(scripted)})
    snaps = Snapshots(model)
    ds = toy_dataset()
    out, hist = train.fit(model, train.make_loader(ds, 16, shuffle=True), train.make_loader(ds, 16), epochs=4,
                          optimizer=torch.optim.SGD(model.parameters(), lr=0.5), scheduler=snaps,
                          run_dir=tmp_path / "run", progress=False)
    assert hist.best_epoch == 2 and hist.best["val_acc"] == 0.9
    for k, v in out.state_dict().items():
        assert torch.equal(v, snaps.states[1][k]), k
        assert not torch.equal(v, snaps.states[-1][k]), k
    saved = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in out.state_dict().items())
    assert json.loads((tmp_path / "run" / "history.json").read_text())["best_epoch"] == 2


def test_fit_learns_and_never_writes_to_cwd(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COURSE_RUN_DIR", str(tmp_path / "runs"))
    ds = toy_dataset()
    model = tiny_model()
    model, hist = train.fit(model, train.make_loader(ds, 16, shuffle=True), train.make_loader(ds, 64), epochs=5,
                            optimizer=torch.optim.SGD(model.parameters(), lr=2.0), progress=False)
    assert hist.best["val_acc"] == 1.0
    assert train.evaluate(model, train.make_loader(ds, 64))["acc"] == 1.0
    assert list(cwd.iterdir()) == []
    run = next((tmp_path / "runs").iterdir())
    assert {p.name for p in run.iterdir()} == {"best.pt", "history.json"}


def test_existing_checkpoint_is_never_overwritten(tmp_path):
    ds = toy_dataset()
    loader = train.make_loader(ds, 16)
    train.fit(tiny_model(), loader, loader, epochs=1, run_dir=tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train.fit(tiny_model(), loader, loader, epochs=1, run_dir=tmp_path, progress=False)
    train.fit(tiny_model(), loader, loader, epochs=1, run_dir=tmp_path, overwrite=True, progress=False)


def test_losses_are_averaged_per_sample():
    """A 7-sample loader with batch 4: the epoch loss must weight samples, not batches (ERRATA 8.16)."""
    ds = toy_dataset(7)
    model = tiny_model()
    per_sample = nn.functional.cross_entropy(model(ds.images), ds.labels).item()
    assert train.evaluate(model, train.make_loader(ds, 4))["loss"] == pytest.approx(per_sample, rel=1e-6)


def test_make_loader_order_depends_only_on_seed():
    ds = toy_dataset(32)
    order = lambda seed: torch.cat([x.flatten(1) for x, _ in train.make_loader(ds, 8, shuffle=True, seed=seed)])
    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))


def test_bad_monitor():
    ds = toy_dataset()
    with pytest.raises(ValueError, match="monitor"):
        train.fit(tiny_model(), train.make_loader(ds), train.make_loader(ds), 1, monitor="acc", progress=False)
