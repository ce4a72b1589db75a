"""The few-shot runs that lesson 07 and Exercise 5 read: ProtoNet, MAML and meta-distillation, per seed, cached.

All three meta-train on the quick (or full) Omniglot meta-train characters with each character rotated by
0°, 90°, 180° and 270° as four extra classes (``protonet.with_rotations``), and are meta-tested on the same
fixed 5-way 1-shot and 5-shot episodes (``TEST_QUERY`` queries per label) from the meta-test alphabets
(ProtoNet on all ``test_episodes``, the two adapting methods on the first ``maml_test_episodes``):

==================  ==========================================================================================
method              recipe
==================  ==========================================================================================
ProtoNet            ``protonet.embedding`` (conv4, ``proto_channels``), Adam ``proto_lr``, ``proto_episodes``
                    episodes of ``proto_way``-way ``proto_shot``-shot (Snell et al. 2017's "higher way" trick)
MAML                second-order MAML (``meta.meta_train``) on 5-way 1-shot episodes, ``maml_steps`` steps of
                    ``meta_batch`` episodes, ``inner_steps`` SGD steps of ``inner_lr``; Adam ``outer_lr``;
                    ``test_inner_steps`` steps at meta-test (as the paper: 1 in training, 3 at test)
meta-distillation   MAML whose inner loss is (1 − α)·CE + α·T²·KL(teacher ‖ student), the teacher being the
                    same seed's trained ProtoNet (``meta.PrototypeTeacher``, scale 1, no normalisation)
==================  ==========================================================================================

MAML's conv4 keeps no BatchNorm running statistics, so it normalises with each batch's statistics, at
meta-test too (transductive); ProtoNet's embedding uses running statistics in eval mode.  The seed fixes
the initialisation and the training episodes; the test episodes are the same for every run.  Each run is
cached with its training history and its per-episode test accuracies; on a CPU a run pins one thread, so
one cache (``cpu1t``) serves every thread count, and ``shard`` splits the missing work between processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from . import config, data, meta, protonet
from .data.cache import load_stamped, path_for, save_stamped

METHODS = ("ProtoNet", "MAML", "meta-distillation")
SHOTS = (1, 5)
TEST_QUERY = 15


@dataclass(frozen=True)
class Recipe:
    """Everything that fixes a run's numbers, and which seeds a profile runs."""

    seeds: tuple[int, ...]
    proto_episodes: int
    maml_steps: int
    test_episodes: int = 600
    maml_test_episodes: int = 200
    proto_way: int = 20
    proto_shot: int = 5
    proto_query: int = 5
    proto_channels: int = 64
    proto_lr: float = 1e-3
    maml_channels: int = 32
    meta_batch: int = 4
    maml_query: int = 5
    inner_steps: int = 1
    test_inner_steps: int = 3
    inner_lr: float = 0.4
    outer_lr: float = 1e-3
    alpha: float = 0.5
    T: float = 1.0
    test_seed: int = 2

    def key(self, method: str) -> str:
        """A digest of the settings that fix ``method``'s runs (not the seeds, so more seeds reuse the cache;
        ProtoNet's runs ignore MAML's settings, MAML's ignore ProtoNet's, meta-distillation depends on both)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        settings = asdict(self)
        maml = ("maml_", "meta_batch", "inner_", "test_inner_steps", "outer_lr")
        teacher = ("alpha", "T")
        ignore = {"seeds"} | {k for k in settings if method == "ProtoNet" and (k.startswith(maml) or k in teacher)}
        ignore |= {k for k in settings if method == "MAML" and (k.startswith("proto_") or k in teacher)}
        return config.settings_digest(settings, ignore=tuple(sorted(ignore)))


RECIPES = {"quick": Recipe(seeds=(0, 1, 2), proto_episodes=300, maml_steps=500, outer_lr=3e-3),
           "full": Recipe(seeds=(0, 1, 2), proto_episodes=5000, maml_steps=5000, meta_batch=16,
                          maml_channels=64, maml_query=15)}


def meta_train_set(profile: str | None = None, data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The meta-train characters with their 4 rotations as classes: images (4M, 1, 28, 28), labels (4M,)."""
    train = data.load("omniglot", "train", profile=profile, data_dir=data_dir)
    return protonet.with_rotations(train.images, train.labels)


def test_images(profile: str | None = None, data_dir: str | Path | None = None) -> torch.Tensor:
    """The meta-test drawings (M, 1, 28, 28) that ``test_episodes`` index."""
    return data.load("omniglot", "test", profile=profile, data_dir=data_dir).images


def test_episodes(recipe: Recipe, profile: str | None = None, data_dir: str | Path | None = None
                  ) -> dict[int, list[tuple[torch.Tensor, torch.Tensor]]]:
    """``{shots: [(support indices, query indices)] * test_episodes}`` into the meta-test set, 5-way."""
    test = data.load("omniglot", "test", profile=profile, data_dir=data_dir)
    out = {}
    for k in SHOTS:
        sampler = meta.EpisodeSampler(test.images, test.labels, 5, k, TEST_QUERY, seed=recipe.test_seed)
        out[k] = [sampler.sample_indices()[:2] for _ in range(recipe.test_episodes)]
    return out


def episode(images: torch.Tensor, support: torch.Tensor, query: torch.Tensor, k: int) -> meta.Episode:
    """The 5-way episode with these support (5·k,) and query (5·Q,) indices into images (M, C, H, W)."""
    ways = torch.arange(5)
    return meta.Episode(images[support], ways.repeat_interleave(k), images[query],
                        ways.repeat_interleave(len(query) // 5), ways)


def train_protonet(x: torch.Tensor, y: torch.Tensor, recipe: Recipe, seed: int, device: torch.device | str = "cpu",
                   episodes: int | None = None, progress: bool = False) -> tuple[nn.Module, list[dict]]:
    """A ProtoNet embedding trained on images x (M, 1, 28, 28), labels y (M,) for ``episodes`` (default the
    recipe's) episodes, and its history.  One thread on a CPU; the global RNG is restored."""
    with config.one_thread_on_cpu(device), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = protonet.embedding(recipe.proto_channels).to(device)
        sampler = meta.EpisodeSampler(x, y, recipe.proto_way, recipe.proto_shot, recipe.proto_query, seed=seed)
        history = protonet.train(net, sampler, episodes or recipe.proto_episodes, recipe.proto_lr, progress)
    return net.eval(), history


def teacher_of(net: nn.Module) -> meta.PrototypeTeacher:
    """A trained ProtoNet as a frozen teacher: logits −‖e(x) − c_j‖² (scale 1, as it was trained)."""
    return meta.PrototypeTeacher(net, scale=1.0, normalize=False)


def train_maml(x: torch.Tensor, y: torch.Tensor, recipe: Recipe, seed: int, device: torch.device | str = "cpu",
               teacher: meta.PrototypeTeacher | None = None, steps: int | None = None,
               progress: bool = False) -> tuple[nn.Module, list[dict]]:
    """MAML (no teacher) or meta-distillation (a teacher) on 5-way 1-shot episodes from x, y for ``steps``
    (default the recipe's) meta-steps: the meta-learned conv4 and its ``{step, loss, acc}`` history."""
    with config.one_thread_on_cpu(device), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = meta.conv4(5, recipe.maml_channels).to(device)
        sampler = meta.EpisodeSampler(x, y, 5, 1, recipe.maml_query, seed=seed)
        alpha = recipe.alpha if teacher is not None else 0.0
        history = meta.meta_train(model, sampler, steps or recipe.maml_steps, recipe.meta_batch, recipe.inner_steps,
                                  recipe.inner_lr, recipe.outer_lr, teacher=teacher, alpha=alpha, T=recipe.T,
                                  progress=progress, desc="meta-distillation" if teacher else "MAML")
    return model, history


def test_protonet(net: nn.Module, test_images: torch.Tensor, episodes: dict, device: torch.device | str = "cpu"
                  ) -> dict[int, torch.Tensor]:
    """``{shots: per-episode accuracy (E,)}`` of nearest-prototype classification, from cached embeddings."""
    with config.one_thread_on_cpu(device):
        emb = protonet.embed(net, test_images)
    return {k: protonet.episode_accuracy(emb, eps, 5, k, TEST_QUERY) for k, eps in episodes.items()}


def test_maml(model: nn.Module, test_images: torch.Tensor, episodes: dict, recipe: Recipe,
              teacher: meta.PrototypeTeacher | None = None, device: torch.device | str = "cpu"
              ) -> dict[int, torch.Tensor]:
    """``{shots: per-episode accuracy (E,)}`` after ``test_inner_steps`` inner steps (with the teacher, if any),
    on the first ``maml_test_episodes`` episodes (adapting is far dearer than a nearest-prototype look-up)."""
    alpha = recipe.alpha if teacher is not None else 0.0
    with config.one_thread_on_cpu(device):
        return {k: meta.episode_accuracies(
                    model, [episode(test_images, s, q, k) for s, q in eps[:recipe.maml_test_episodes]],
                    recipe.test_inner_steps, recipe.inner_lr, teacher=teacher, alpha=alpha, T=recipe.T)
                for k, eps in episodes.items()}


def cache_dir(profile: str, device: torch.device | str = "cpu", data_dir: str | Path | None = None) -> Path:
    """``<data_dir>/cache/meta_grid/<profile>_<numerics>.v<N>/``, holding ``<method>_<key(method)>_<seed>.pt``."""
    return path_for("meta_grid", f"{profile}_{config.one_thread_tag(device)}", data_dir, suffix="")


def runs(profile: str | None = None, device: torch.device | str = "cpu", data_dir: str | Path | None = None,
         progress: bool = True, shard: tuple[int, int] = (0, 1), methods: Sequence[str] = METHODS) -> dict:
    """Every (method, seed) run of the profile's recipe, trained on first use and cached one by one:
    ``{(method, seed): {"state": state_dict, "history": [...], "acc": {shots: (E,)}}}``.

    The work is split in jobs: a seed's ProtoNet and its meta-distillation (which needs that ProtoNet as
    teacher) form one job, a seed's MAML another.  ``shard=(i, k)`` runs the missing ones among every k-th
    job from the i-th (a fixed split, whenever a process starts) and returns what is cached so far."""
    profile = config.resolve_profile(profile)
    if not set(methods) <= set(METHODS):
        raise ValueError(f"methods must come from {METHODS}, got {tuple(methods)}")
    recipe, folder = RECIPES[profile], cache_dir(profile, device, data_dir)

    def path(method: str, seed: int) -> Path:
        return folder / f"{method.replace(' ', '_')}_{recipe.key(method)}_{seed}.pt"

    jobs = [(group, s) for group in (("ProtoNet", "meta-distillation"), ("MAML",)) for s in recipe.seeds]
    jobs = [(tuple(m for m in group if m in methods), s) for group, s in jobs]
    todo = [(g, s) for g, s in jobs[shard[0]::shard[1]] if g and not all(path(m, s).exists() for m in g)]
    if todo:
        x, y = meta_train_set(profile, data_dir)
        test_x = test_images(profile, data_dir)
        episodes = test_episodes(recipe, profile, data_dir)
    for group, seed in tqdm(todo, desc="meta grid", disable=not progress):
        proto = None
        if "ProtoNet" in group or "meta-distillation" in group:
            if path("ProtoNet", seed).exists():
                proto = protonet.embedding(recipe.proto_channels).to(device)
                proto.load_state_dict(load_stamped(path("ProtoNet", seed))["state"])
                proto.eval()
            else:
                proto, history = train_protonet(x, y, recipe, seed, device)
                save_stamped({"state": proto.state_dict(), "history": history,
                              "acc": test_protonet(proto, test_x, episodes, device)}, path("ProtoNet", seed))
        for method in group:
            if method == "ProtoNet" or path(method, seed).exists():
                continue
            teacher = teacher_of(proto) if method == "meta-distillation" else None
            model, history = train_maml(x, y, recipe, seed, device, teacher)
            save_stamped({"state": model.state_dict(), "history": history,
                          "acc": test_maml(model, test_x, episodes, recipe, teacher, device)}, path(method, seed))
    return {(m, s): load_stamped(path(m, s)) for m in methods for s in recipe.seeds if path(m, s).exists()}
