"""Prototypical networks and the cached few-shot runs (lesson 07), on tiny synthetic inputs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib import meta, meta_grid, protonet


def test_with_rotations_makes_four_classes_per_class():
    x = torch.arange(2 * 9, dtype=torch.float32).view(2, 1, 3, 3)
    y = torch.tensor([0, 1])
    rx, ry = protonet.with_rotations(x, y)
    assert rx.shape == (8, 1, 3, 3) and ry.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert torch.equal(rx[:2], x) and torch.equal(rx[2], torch.rot90(x[0], 1, dims=(1, 2)))
    assert torch.equal(rx[6], torch.rot90(x[0], 3, dims=(1, 2)))
    with pytest.raises(ValueError):
        protonet.with_rotations(torch.zeros(2, 1, 3, 4), y)


def test_prototype_logits_by_hand():
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    y = torch.tensor([0, 0, 1])  # prototypes (1, 0) and (0, 4)
    query = torch.tensor([[1.0, 1.0]])
    logits = protonet.prototype_logits(support, y, query)
    assert torch.allclose(logits, torch.tensor([[-1.0, -10.0]]), atol=1e-5)
    with pytest.raises(ValueError):
        protonet.prototype_logits(support, torch.tensor([0, 0, 2]), query)  # label 1 has no support example
    with pytest.raises(ValueError):
        protonet.prototype_logits(support, y, torch.zeros(1, 3))


def test_episode_accuracy_from_embeddings():
    emb = torch.tensor([[0.0], [0.1], [5.0], [5.1]])  # two well-separated classes
    episodes = [(torch.tensor([0, 2]), torch.tensor([1, 3])), (torch.tensor([2, 0]), torch.tensor([1, 3]))]
    acc = protonet.episode_accuracy(emb, episodes, n_way=2, k_shot=1, n_query=1)
    assert acc.tolist() == [1.0, 0.0]  # the second episode swaps the labels of its queries' classes


def test_train_lowers_the_episode_loss_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 1, 16, 16, generator=g)
    x = (centres.repeat_interleave(6, 0) + 0.3 * torch.randn(36, 1, 16, 16, generator=g))
    y = torch.arange(6).repeat_interleave(6)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = protonet.embedding(8, size=16)
        hist = protonet.train(net, meta.EpisodeSampler(x, y, 3, 2, 2, seed=0), 30, lr=1e-2, progress=False)
        runs.append((net, hist))
    losses = [h["loss"] for h in runs[0][1]]
    assert sum(losses[-10:]) < sum(losses[:10]) and not runs[0][0].training
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0].state_dict().values(), runs[1][0].state_dict().values()))


def test_sample_indices_matches_sample():
    x = torch.arange(30, dtype=torch.float32).view(30, 1, 1, 1)
    y = torch.arange(6).repeat_interleave(5)
    a, b = meta.EpisodeSampler(x, y, 3, 2, 1, seed=4), meta.EpisodeSampler(x, y, 3, 2, 1, seed=4)
    for _ in range(3):
        s, q, classes = a.sample_indices()
        ep = b.sample()
        assert torch.equal(x[s], ep.support_x) and torch.equal(x[q], ep.query_x) and torch.equal(classes, ep.classes)


def test_protonet_teacher_uses_raw_squared_distances():
    teacher = meta_grid.teacher_of(torch.nn.Flatten())
    sx, sy = torch.tensor([[[[0.0, 0.0]]], [[[3.0, 0.0]]]]), torch.tensor([0, 1])
    logits = teacher.logits(sx, sy, torch.tensor([[[[1.0, 0.0]]]]))
    assert torch.allclose(logits, torch.tensor([[-1.0, -4.0]]))


def test_recipe_key_ignores_seeds_and_runs_rejects_unknown_methods():
    r = meta_grid.RECIPES["quick"]
    assert dataclasses.replace(r, seeds=(7,)).key("MAML") == r.key("MAML")
    assert dataclasses.replace(r, maml_steps=1).key("MAML") != r.key("MAML")
    assert dataclasses.replace(r, maml_steps=1).key("ProtoNet") == r.key("ProtoNet")
    assert dataclasses.replace(r, proto_episodes=1).key("MAML") == r.key("MAML")
    assert dataclasses.replace(r, proto_episodes=1).key("meta-distillation") != r.key("meta-distillation")
    assert dataclasses.replace(r, alpha=0.1).key("meta-distillation") != r.key("meta-distillation")
    with pytest.raises(ValueError):
        meta_grid.runs("quick", methods=("Reptile",))


def test_runs_cache_each_run_and_shard_the_missing_ones(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    train_x = torch.rand(6 * 4, 1, 16, 16, generator=g)
    train_y = torch.arange(6).repeat_interleave(4)
    test_x = torch.rand(5 * 3, 1, 16, 16, generator=g)  # 5 classes x 3 drawings: indices 3c, 3c+1, 3c+2
    episodes = {1: [(torch.arange(5) * 3, torch.arange(5) * 3 + 1), (torch.arange(5) * 3 + 2, torch.arange(5) * 3)]}
    tiny = meta_grid.Recipe(seeds=(0, 1), proto_episodes=2, maml_steps=2, test_episodes=2, maml_test_episodes=1,
                            proto_way=3, proto_shot=1, proto_query=1, proto_channels=4, maml_channels=4,
                            meta_batch=1, maml_query=1, test_inner_steps=1)
    monkeypatch.setitem(meta_grid.RECIPES, "quick", tiny)
    monkeypatch.setattr(meta_grid, "TEST_QUERY", 1)
    monkeypatch.setattr(meta_grid, "meta_train_set", lambda profile=None, data_dir=None: (train_x, train_y))
    monkeypatch.setattr(meta_grid, "test_images", lambda profile=None, data_dir=None: test_x)
    monkeypatch.setattr(meta_grid, "test_episodes", lambda recipe, profile=None, data_dir=None: episodes)
    half = meta_grid.runs("quick", data_dir=tmp_path, progress=False, shard=(0, 2))
    assert set(half) == {("ProtoNet", 0), ("meta-distillation", 0), ("MAML", 0)}  # jobs 0 and 2 of PM0, PM1, M0, M1
    every = meta_grid.runs("quick", data_dir=tmp_path, progress=False)
    assert set(every) == {(m, s) for m in meta_grid.METHODS for s in (0, 1)}
    assert every["ProtoNet", 0]["acc"][1].shape == (2,) and every["MAML", 0]["acc"][1].shape == (1,)
    assert len(every["MAML", 1]["history"]) == 2 and len(every["ProtoNet", 1]["history"]) == 2
    monkeypatch.setattr(meta_grid, "train_protonet", lambda *a, **k: pytest.fail("a cached run was retrained"))
    monkeypatch.setattr(meta_grid, "train_maml", lambda *a, **k: pytest.fail("a cached run was retrained"))
    again = meta_grid.runs("quick", data_dir=tmp_path, progress=False)
    assert all(torch.equal(again[key]["acc"][1], every[key]["acc"][1]) for key in every)


def test_protonet_and_maml_on_a_cuda_device_match_the_cpu(monkeypatch):
    """Under fake_cuda() training and testing take their CUDA code paths on the CPU, with CPU inputs."""
    from fakecuda import fake_cuda

    monkeypatch.setattr(meta_grid, "TEST_QUERY", 1)
    g = torch.Generator().manual_seed(0)
    train_x, train_y = torch.rand(6 * 4, 1, 28, 28, generator=g), torch.arange(6).repeat_interleave(4)
    test_x = torch.rand(5 * 3, 1, 28, 28, generator=g)
    episodes = {1: [(torch.arange(5) * 3, torch.arange(5) * 3 + 1)]}
    tiny = meta_grid.Recipe(seeds=(0,), proto_episodes=2, maml_steps=2, test_episodes=1, maml_test_episodes=1,
                            proto_way=3, proto_shot=1, proto_query=1, proto_channels=4, maml_channels=4,
                            meta_batch=1, maml_query=1, test_inner_steps=1)

    def run(device):
        net, _ = meta_grid.train_protonet(train_x, train_y, tiny, 0, device)
        model, _ = meta_grid.train_maml(train_x, train_y, tiny, 0, device, teacher=meta_grid.teacher_of(net))
        return (meta_grid.test_protonet(net, test_x, episodes, device),
                meta_grid.test_maml(model, test_x, episodes, tiny, meta_grid.teacher_of(net), device))

    on_cpu = run("cpu")
    with fake_cuda():
        on_cuda = run("cuda")
    for a, b in zip(on_cpu, on_cuda):
        assert b[1].device.type == "cpu" and torch.allclose(a[1], b[1])
