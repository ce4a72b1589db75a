"""Which freezing strategy wins at which label budget: the grid that lesson 02 (section 4) and Exercise 2 read.

One source, the CIFAR-10 ResNet-20 with a new 2-class head, on two targets:

* ``animals_vehicles`` (similar to the source): CIFAR-10 images regrouped into animals (6 classes) vs
  vehicles (4); the pool and the test images come from the official CIFAR-10 *test* set, which the
  source never trained on;
* ``pneumoniamnist`` (dissimilar): chest X-rays, grey 28×28 made RGB 32×32, official train split as the
  pool and official test split (624) for evaluation.

Five strategies, each trained on the same balanced labelled subset (``tasks.balanced_subset``):

==============  =====================================  ==========================================
strategy        trains                                 learning rates (Adam)
==============  =====================================  ==========================================
frozen          head, on cached 64-d features          1e-2
partial         ``layer3`` + head, on cached layer2    1e-3, 1e-2 (``finetune.param_groups``, ×10)
full            everything                             1e-3 body, 1e-2 head
discriminative  everything, stem included              1e-2 / 2.6^k (ULMFiT, ``param_groups``)
scratch         everything, random weights             3e-3
==============  =====================================  ==========================================

Every run processes about ``steps × batch_size`` examples (epochs = round(steps·batch/n), at least one),
with no augmentation and no early stopping, and stores the final model's test probabilities of class 1,
from which lessons compute accuracy or ROC AUC.  The seed picks the subset, the new head's (or the
scratch network's) weights and the batch order.  On a CPU each run pins one thread, so one cache
(``cpu1t``) serves every thread count, and ``shard`` splits the missing runs between processes
(``tools/warm_caches.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from . import config, data, finetune, metrics, models
from .data.cache import load_stamped, path_for, save_stamped
from .images import to_rgb
from .loops import predict, train_classifier
from .stats import t_ci
from .tasks import balanced_subset, regroup

TARGETS = ("animals_vehicles", "pneumoniamnist")
STRATEGIES = ("frozen", "partial", "full", "discriminative", "scratch")
VEHICLES, ANIMALS = (0, 1, 8, 9), (2, 3, 4, 5, 6, 7)


@dataclass(frozen=True)
class Recipe:
    """What one profile trains: label budgets, seeds and the per-run budget in examples (steps × batch)."""

    sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    steps: int
    batch_size: int = 64
    lr_head: float = 1e-2
    lr_body: float = 1e-3
    lr_scratch: float = 3e-3
    ulmfit_factor: float = 2.6

    def key(self) -> str:
        """What fixes one run's numbers (not which sizes and seeds run), so a larger grid reuses the cache."""
        return config.settings_digest(asdict(self), ignore=("sizes", "seeds"))


RECIPES = {"quick": Recipe((20, 80, 320), tuple(range(5)), 25),
           "full": Recipe((20, 50, 100, 200, 500, 1000, 2000), tuple(range(5)), 300)}


def target_data(target: str, profile: str | None = None,
                data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pool_x (N, 3, 32, 32), pool_y (N,), test_x (M, 3, 32, 32), test_y (M,))``, images in [0, 1].

    animals_vehicles: quick uses the 6,000-image quick CIFAR train carve as pool and the first 1,000 quick
    test images (both carved from the official test set); full splits the official test set 7,000 / 3,000."""
    profile = config.resolve_profile(profile)
    if target == "pneumoniamnist":
        train, test = (data.load(target, s, profile=profile, data_dir=data_dir) for s in ("train", "test"))
        return to_rgb(train.images, 32), train.labels, to_rgb(test.images, 32), test.labels
    if target != "animals_vehicles":
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if profile == "quick":
        pool = data.load("cifar10", "train", profile=profile, data_dir=data_dir)
        test = data.load("cifar10", "test", profile=profile, data_dir=data_dir).subset(range(1000))
    else:
        every = data.load("cifar10", "test", profile=profile, data_dir=data_dir)
        order = torch.randperm(len(every), generator=torch.Generator().manual_seed(0))
        pool, test = every.subset(order[:7000]), every.subset(order[7000:])
    groups = [ANIMALS, VEHICLES]
    return pool.images, regroup(pool.labels, groups), test.images, regroup(test.labels, groups)


def build(strategy: str, recipe: Recipe) -> tuple[nn.Module, nn.Module | None, list[dict]]:
    """``(trained module, frozen trunk or None, Adam groups)`` for one strategy, new head drawn from the
    global RNG (seed it first).  ``trained(trunk(x))`` (or ``trained(x)``) maps images to logits (N, 2)."""
    if strategy == "scratch":
        net = models.cifar_resnet(20, pretrained=False, num_classes=2)
        return net, None, [{"params": list(net.parameters()), "lr": recipe.lr_scratch}]
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "frozen":
        head = nn.Linear(64, 2)
        trunk, top = finetune.split_frozen(finetune.freeze(models.cifar_resnet(20, num_classes=2), "all"))
        features = nn.Sequential(*trunk, *top[:-1])  # images -> pooled 64-d features (N, 64)
        return head, features, [{"params": list(head.parameters()), "lr": recipe.lr_head}]
    net = models.cifar_resnet(20, num_classes=2)
    if strategy == "partial":
        finetune.freeze(net, "partial")
        trunk, top = finetune.split_frozen(net)
        return top, trunk, finetune.param_groups(net, recipe.lr_head, recipe.lr_head / recipe.lr_body)
    if strategy == "discriminative":
        return net, None, finetune.param_groups(net, recipe.lr_head, recipe.ulmfit_factor)
    body = [p for name, p in net.named_parameters() if not name.startswith("fc.")]
    return net, None, [{"params": body, "lr": recipe.lr_body},
                       {"params": list(net.fc.parameters()), "lr": recipe.lr_head}]


@torch.no_grad()
def _through(trunk, x: torch.Tensor, device) -> torch.Tensor:
    return x if trunk is None else torch.cat([trunk(b.to(device)).cpu() for b in x.split(500)])


def train_run(strategy: str, x: torch.Tensor, y: torch.Tensor, test_x: torch.Tensor, recipe: Recipe,
              seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Train one strategy on images x (n, 3, 32, 32) and labels y (n,); return the test probabilities of
    class 1, shape (len(test_x),).  One thread on a CPU; the global RNG and thread count are restored."""
    if x.ndim != 4 or x.shape[1:] != (3, 32, 32) or len(x) != len(y):
        raise ValueError(f"need images (n, 3, 32, 32) and labels (n,), got {tuple(x.shape)} and {tuple(y.shape)}")
    with config.one_thread_on_cpu(device), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module, trunk, groups = build(strategy, recipe)
        module.to(device)
        if trunk is not None:
            trunk.to(device).eval()
        epochs = max(1, round(recipe.steps * recipe.batch_size / len(y)))
        train_classifier(module, _through(trunk, x, device), y, epochs, groups, recipe.batch_size, seed,
                         progress=False)
        return predict(module, _through(trunk, test_x, device)).softmax(1)[:, 1]


def cache_dir(profile: str, device: torch.device | str = "cpu", data_dir: str | Path | None = None) -> Path:
    """``<data_dir>/cache/strategy_grid/<profile>_<recipe key>_<numerics>.v<N>/``: one file per run."""
    key = f"{profile}_{RECIPES[profile].key()}_{config.one_thread_tag(device)}"
    return path_for("strategy_grid", key, data_dir, suffix="")


def grid(profile: str | None = None, device: torch.device | str = "cpu", data_dir: str | Path | None = None,
         progress: bool = True, shard: tuple[int, int] = (0, 1), strategies: Sequence[str] | None = None) -> dict:
    """Every run of the profile's recipe (for ``strategies``, default all), trained on first use and cached
    one by one: ``{(target, strategy, n, seed): test probabilities (M,)}``.  ``shard=(i, k)`` trains the
    missing ones among every k-th run from the i-th (a fixed split) and returns what is cached so far."""
    profile = config.resolve_profile(profile)
    recipe, folder = RECIPES[profile], cache_dir(profile, device, data_dir)
    chosen = STRATEGIES if strategies is None else tuple(strategies)
    if not set(chosen) <= set(STRATEGIES):
        raise ValueError(f"strategies must come from {STRATEGIES}, got {chosen}")
    keys = [(t, st, n, s) for t in TARGETS for n in recipe.sizes for s in recipe.seeds for st in chosen]

    def path(key: tuple[str, str, int, int]) -> Path:
        return folder / "{}_{}_{}_{}.pt".format(*key)

    todo = [key for key in keys[shard[0]::shard[1]] if not path(key).exists()]
    sets = {t: target_data(t, profile, data_dir) for t in {key[0] for key in todo}}
    for target, strategy, n, seed in tqdm(todo, desc="strategy grid", disable=not progress):
        px, py, tx, _ = sets[target]
        idx = balanced_subset(py, n, seed)
        save_stamped(train_run(strategy, px[idx], py[idx], tx, recipe, seed, device), path((target, strategy, n, seed)))
    return {key: load_stamped(path(key)) for key in keys if path(key).exists()}


def scores(runs: dict, test_y: torch.Tensor, target: str, metric: str = "accuracy") -> dict:
    """``{(strategy, n): [score per seed]}`` for one target; metric ``accuracy`` (threshold 0.5) or ``auc``."""
    if metric not in ("accuracy", "auc"):
        raise ValueError(f"metric must be 'accuracy' or 'auc', got {metric!r}")
    out: dict = {}
    for (t, strategy, n, _), p in sorted(runs.items(), key=lambda kv: kv[0][3]):
        if t == target:
            value = (metrics.roc_auc(test_y.numpy(), p.numpy()) if metric == "auc"
                     else ((p > 0.5).long() == test_y).float().mean().item())
            out.setdefault((strategy, n), []).append(value)
    return out


def paired_gap(per_seed: dict, a: str, b: str, n: int) -> tuple[float, float]:
    """Mean and 95% t half-width of ``a − b`` at budget n, paired by seed (both saw the same labels)."""
    return t_ci([u - v for u, v in zip(per_seed[a, n], per_seed[b, n])])
