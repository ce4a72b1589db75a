"""The zoo: every source gives features and probabilities; course-made sources are cached and checked."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib import zoo
from course_lib.data import cache
from course_lib.data.integrity import ChecksumError
from course_lib.models import cifar_resnet


@pytest.fixture
def tiny_recipe(monkeypatch):
    """Train course-made sources on 24 images for one epoch: the tests check plumbing, not accuracy."""
    monkeypatch.setitem(zoo.RECIPES, "quick", {"batch_size": 8, "lr": 1e-3})
    for name, spec in zoo.SOURCES.items():
        monkeypatch.setitem(zoo.SOURCES, name, dataclasses.replace(spec, quick=(24, 1)))


def test_zoo_sources_differ_in_depth_task_and_training_length_with_a_random_floor():
    from course_lib.data import NAMES

    specs = list(zoo.SOURCES.values())
    assert len(specs) >= 10
    assert {s.dataset for s in specs} <= set(NAMES) and len({s.dataset for s in specs}) >= 4
    assert len({s.depth for s in specs}) >= 3
    assert [s.kind for s in specs].count("random") == 1 and sum(s.trained_by_course for s in specs) >= 5
    course = [s for s in specs if s.trained_by_course]
    assert len({s.quick for s in course}) >= 2 and len({s.full for s in course}) >= 2
    assert any(s.groups is not None for s in course)  # a source task that regroups its classes
    with pytest.raises(ValueError, match="Unknown target"):
        zoo.target_splits("imagenet")


def test_unknown_source():
    with pytest.raises(ValueError, match="Unknown source"):
        zoo.load("imagenet-resnet50")
    with pytest.raises(ValueError, match="not trained by the course"):
        zoo.train_source("cifar10-resnet20")
    with pytest.raises(ValueError, match="not trained by the course"):
        zoo.train_source("random-resnet20")


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
    torch.set_num_threads(2)  # sources train on one thread whatever the count, so the cache serves every count
    assert zoo.cache_path("mnist-resnet20") == path and path.name.endswith(f"_quick_cpu1t.v{cache.STORES['zoo'][1]}.pt")
    zoo.load("mnist-resnet20")
    assert zoo.cache_path("mnist-resnet20", device="cuda").name.endswith(f"_quick_cuda.v{cache.STORES['zoo'][1]}.pt")


def test_training_uses_one_thread_and_restores_the_count(fake_mirror, tiny_recipe, monkeypatch):
    seen = []
    real = zoo.train_classifier
    monkeypatch.setattr(zoo, "train_classifier", lambda *a, **k: (seen.append(torch.get_num_threads()), real(*a, **k)))
    torch.set_num_threads(2)
    zoo.train_source("mnist-resnet20", progress=False)
    assert seen == [1] and torch.get_num_threads() == 2


def test_random_source_is_a_seeded_initialisation(fake_mirror):
    torch.manual_seed(5)
    before = torch.rand(2)
    torch.manual_seed(5)
    a, b = zoo.load("random-resnet20"), zoo.load("random-resnet20")
    assert torch.equal(torch.rand(2), before)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    trained = cifar_resnet(20, pretrained=True)
    assert not torch.equal(a.conv1.weight, trained.conv1.weight) and not a.training


def test_regrouped_source_sees_two_classes(fake_mirror):
    x, y = zoo.source_images("animals-vehicles-resnet20", "train", n=30)
    assert x.shape[1:] == (3, 32, 32) and set(y.tolist()) <= {0, 1} and len(set(y.tolist())) == 2
    assert zoo.source_classes("animals-vehicles-resnet20") == ["animal", "vehicle"]
    name = "animals-vehicles-resnet20"
    assert zoo.recipe(name, "quick")["n_images"] == zoo.SOURCES[name].quick[0]


def test_outputs_cover_every_target_and_are_cached(fake_mirror, monkeypatch):
    monkeypatch.setattr(zoo, "TARGETS", ("cifar10", "usps"))
    monkeypatch.setattr(zoo, "N_LABELLED", 8)
    monkeypatch.setattr(zoo, "N_SOURCE_IMAGES", 4)
    splits = zoo.target_splits("cifar10")
    assert len(splits["train"][1]) == 8 and splits["train"][0].shape[1:] == (3, 32, 32)
    train_rows = {tuple(v.flatten()[:64].tolist()) for v in splits["train"][0]}
    assert not train_rows & {tuple(v.flatten()[:64].tolist()) for v in splits["test"][0]}  # disjoint images
    out = zoo.outputs("cifar10-resnet20", progress=False)
    assert out["source_f"].shape == (4, 64)
    for t in ("cifar10", "usps"):
        o = out[t]
        assert o["train_f"].shape == (8, 64) and o["train_p"].shape == (8, 10) and o["train_y"].shape == (8,)
        assert o["test_f"].shape == (len(o["test_y"]), 64)
    monkeypatch.setattr(zoo, "load", lambda *a, **k: pytest.fail("cached outputs must not rerun the network"))
    again = zoo.outputs("cifar10-resnet20")
    assert torch.equal(again["usps"]["test_f"], out["usps"]["test_f"])
    path = zoo.outputs_path("cifar10-resnet20")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ChecksumError):
        zoo.outputs("cifar10-resnet20")


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
