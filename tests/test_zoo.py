"""The zoo: every source gives features and probabilities; course-made sources are cached and checked."""

from __future__ import annotations

import pytest
import torch

from course_lib import zoo
from course_lib.data.integrity import ChecksumError
from course_lib.models import cifar_resnet


@pytest.fixture
def tiny_recipe(monkeypatch):
    """Train course-made sources on 24 images for one epoch: the tests check plumbing, not accuracy."""
    monkeypatch.setitem(zoo.RECIPES, "quick", {"n_images": 24, "epochs": 1, "batch_size": 8, "lr": 1e-3})


def test_zoo_has_at_least_six_sources_with_known_datasets():
    from course_lib.data import NAMES

    assert len(zoo.SOURCES) >= 6
    assert {s.dataset for s in zoo.SOURCES.values()} <= set(NAMES)
    assert sum(s.trained_by_course for s in zoo.SOURCES.values()) >= 2


def test_unknown_source():
    with pytest.raises(ValueError, match="Unknown source"):
        zoo.load("imagenet-resnet50")
    with pytest.raises(ValueError, match="mirrored checkpoint"):
        zoo.train_source("cifar10-resnet20")


def test_source_outputs_shapes_and_probabilities():
    torch.manual_seed(0)
    model = cifar_resnet(20, pretrained=False, num_classes=7).train()
    x = torch.rand(10, 3, 32, 32)
    feats, probs = zoo.source_outputs(model, x, batch_size=3)
    assert feats.shape == (10, 64) and probs.shape == (10, 7)
    assert torch.allclose(probs.sum(1), torch.ones(10), atol=1e-5) and (probs >= 0).all()
    assert model.training  # mode restored
    model.eval()
    assert torch.allclose(feats, model.features(x), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        zoo.source_outputs(model, torch.rand(2, 1, 32, 32))


def test_source_images_are_rgb_32_and_seeded(fake_mirror):
    x, y = zoo.source_images("mnist-resnet20", "train", n=20, seed=1)
    assert x.shape == (20, 3, 32, 32) and y.shape == (20,)
    assert 0 <= x.min() and x.max() <= 1
    x2, y2 = zoo.source_images("mnist-resnet20", "train", n=20, seed=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(y, zoo.source_images("mnist-resnet20", "train", n=20, seed=2)[1])


def test_mirrored_source_loads_the_checkpoint(fake_mirror):
    model = zoo.load("cifar10-resnet20")
    assert not model.training and model.fc.out_features == 10
    ref = cifar_resnet(20, pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))


def test_course_source_is_trained_once_cached_and_leaves_the_rng_alone(fake_mirror, tiny_recipe, monkeypatch):
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    model = zoo.load("mnist-resnet20", progress=False)
    assert torch.equal(torch.rand(3), before), "training must not consume the global RNG"
    path = zoo.cache_path("mnist-resnet20")
    assert path.exists() and path.with_name(path.name + ".sha256").exists()
    assert path.is_relative_to(fake_mirror / "cache" / "zoo")
    info = zoo.cache_info("mnist-resnet20")
    assert info["classes"] == [str(d) for d in range(10)] and info["n_train"] == 24

    def no_training(*a, **k):
        raise AssertionError("a cached source must not be retrained")

    monkeypatch.setattr(zoo, "train_source", no_training)
    again = zoo.load("mnist-resnet20")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    torch.set_num_threads(2)  # the key names the thread count: another count is not served this cache
    assert zoo.cache_path("mnist-resnet20") != path and path.name.endswith(f"_quick_cpu1t.v{zoo.CACHE_VERSION}.pt")
    with pytest.raises(AssertionError, match="must not be retrained"):
        zoo.load("mnist-resnet20")


def test_training_is_deterministic(fake_mirror, tiny_recipe):
    a, _ = zoo.train_source("mnist-resnet20", progress=False)
    b, _ = zoo.train_source("mnist-resnet20", progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_corrupted_or_incomplete_cache_raises(fake_mirror, tiny_recipe, monkeypatch):
    zoo.load("mnist-resnet20", progress=False)
    path = zoo.cache_path("mnist-resnet20")
    monkeypatch.setattr(zoo, "train_source", lambda *a, **k: pytest.fail("must not retrain a corrupted cache"))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ChecksumError, match="does not match its checksum"):
        zoo.load("mnist-resnet20")
    path.write_bytes(blob)
    path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(ChecksumError, match="incomplete"):
        zoo.load("mnist-resnet20")
