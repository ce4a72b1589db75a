"""Distillation with a transfer set: where the teacher pays, and where it stops (lesson 06, Exercise 4).

Hinton et al.'s *transfer set* need not be labelled: the teacher labels it.  Here the transfer set is the
whole CIFAR-10 training split of the profile (quick: the 6,000-image carve of the official test set, which
the ResNet-56 teacher never saw), of which only ``n`` images keep their label (``tasks.
balanced_subset``, nested in n for a seed).  Two students of the same architecture (``distill.StudentCNN``)
start from the same weights and take the same number of Adam steps (within one epoch of the labelled
set):

* ``"alone"``: cross-entropy on the n labelled images only (as many epochs as the steps allow);
* ``(T, alpha)``: ``distill.kd_loss`` on the whole transfer set, from the teacher's cached logits; the
  images without a label carry ``distill.UNLABELLED``, so only the soft term learns from them.

Two sets of runs share this recipe and the cache: the **curve** (``alone`` and the recipe's ``(T, alpha)``
at every size in ``sizes``, lesson 06) and the **grid** (``alone`` and every ``(T, alpha)`` of
``temperatures × alphas`` at ``grid_n`` labels, Exercise 4).  Each run stores the student's weights and its
logits on the validation and test splits.  On a CPU every run (and the teacher's logits) uses one thread,
so one cache (``cpu1t``) serves every thread count, and ``shard`` splits the missing runs between
processes (``tools/warm_caches.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from tqdm.auto import tqdm

from . import config, data, distill, models
from .data.cache import cached, load_stamped, path_for, save_stamped
from .loops import predict
from .stats import t_ci
from .tasks import balanced_subset

ALONE = "alone"
Setting = str | tuple[float, float]  # ALONE or (T, alpha)


@dataclass(frozen=True)
class Recipe:
    """What one profile trains: the curve's sizes and (T, α), the grid, the seeds and one run's budget."""

    sizes: tuple[int, ...]  # labelled images on the curve; the largest may be the whole transfer set
    seeds: tuple[int, ...]
    grid_n: int  # labelled images in the T × α grid
    temperatures: tuple[float, ...] = (1.0, 3.0, 5.0, 10.0)
    alphas: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    T: float = 1.0  # the curve's distillation settings: mostly soft targets, sharp ones
    alpha: float = 0.9
    epochs: int = 3  # over the whole transfer set; "alone" takes the same number of steps
    batch_size: int = 64
    lr: float = 3e-3
    width: int = 16

    def key(self) -> str:
        """What fixes one run's numbers besides (n, setting, seed): extending the curve or the grid reuses
        the cache."""
        return config.settings_digest(asdict(self), ignore=("sizes", "seeds", "grid_n", "temperatures",
                                                            "alphas", "T", "alpha"))

    def curve_keys(self) -> list[tuple[int, Setting, int]]:
        return [(n, s, seed) for n in self.sizes for seed in self.seeds for s in (ALONE, (self.T, self.alpha))]

    def grid_keys(self) -> list[tuple[int, Setting, int]]:
        settings = [ALONE] + [(T, a) for T in self.temperatures for a in self.alphas]
        return [(self.grid_n, s, seed) for seed in self.seeds for s in settings]


RECIPES = {"quick": Recipe((300, 1000, 3000, 6000), (0, 1, 2), 300),
           "full": Recipe((1000, 4500, 15000, 45000), (0, 1, 2), 1000, epochs=10, batch_size=128)}


class Splits(NamedTuple):
    """The transfer set and the evaluation splits: images (N, 3, 32, 32) in [0, 1], labels (N,)."""

    x: torch.Tensor
    y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def splits(profile: str | None = None, data_dir: str | Path | None = None) -> Splits:
    """CIFAR-10's train (the transfer set), val and test splits of the profile."""
    sets = [data.load("cifar10", s, profile=config.resolve_profile(profile), data_dir=data_dir)
            for s in ("train", "val", "test")]
    return Splits(*(t for ds in sets for t in (ds.images, ds.labels)))


def cache_dir(profile: str, device: torch.device | str = "cpu", data_dir: str | Path | None = None) -> Path:
    """``<data_dir>/cache/kd_curves/<profile>_<recipe key>_<numerics>.v<N>/``: one file per run."""
    key = f"{profile}_{RECIPES[profile].key()}_{config.one_thread_tag(device)}"
    return path_for("kd_curves", key, data_dir, suffix="")


def teacher_logits(profile: str | None = None, device: torch.device | str = "cpu",
                   data_dir: str | Path | None = None) -> torch.Tensor:
    """The ResNet-56 teacher's logits (N, 10) on the transfer set, computed once (one CPU thread) and cached."""
    profile = config.resolve_profile(profile)

    def compute() -> torch.Tensor:
        with config.one_thread_on_cpu(device):
            return distill.teacher_logits(models.cifar_resnet(56).to(device), splits(profile, data_dir).x)

    return cached(cache_dir(profile, device, data_dir) / "teacher_logits.pt", compute)


def partial_labels(y: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Labels (N,) with every image outside ``labelled`` (indices) set to ``distill.UNLABELLED``."""
    out = torch.full_like(y, distill.UNLABELLED)
    out[labelled] = y[labelled]
    return out


def alone_epochs(n: int, total: int, recipe: Recipe) -> int:
    """Epochs over n labelled images that match ``recipe.epochs`` over all ``total`` images in steps."""
    if not 0 < n <= total:
        raise ValueError(f"need 0 < n <= {total} labelled images, got {n}")
    per_epoch = lambda m: math.ceil(m / recipe.batch_size)  # noqa: E731
    return max(1, round(recipe.epochs * per_epoch(total) / per_epoch(n)))


def train_run(x: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor, logits: torch.Tensor, setting: Setting,
              recipe: Recipe, seed: int, device: torch.device | str = "cpu",
              loss_fn: Callable[..., torch.Tensor] | None = None) -> torch.nn.Module:
    """One student, trained on images x (N, 3, 32, 32) of which ``labelled`` (n,) keep their label y (N,),
    with the teacher's ``logits`` (N, C); ``setting`` is ``ALONE`` or ``(T, alpha)``.  ``loss_fn`` replaces
    ``distill.kd_loss`` (same signature).  One thread on a CPU; the global RNG and thread count are restored.
    Returns the student in eval mode."""
    if x.ndim != 4 or len(x) != len(y) or logits.shape[0] != len(x):
        raise ValueError(f"need images (N, 3, H, W), labels (N,) and logits (N, C) for the same N, got "
                         f"{tuple(x.shape)}, {tuple(y.shape)} and {tuple(logits.shape)}")
    with config.one_thread_on_cpu(device), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = distill.StudentCNN(recipe.width).to(device)
        common = dict(lr=recipe.lr, batch_size=recipe.batch_size, seed=seed, progress=False)
        if setting == ALONE:
            distill.train_student(student, x[labelled], y[labelled], alone_epochs(len(labelled), len(x), recipe),
                                  **common)
        else:
            T, alpha = setting
            distill.train_student(student, x, partial_labels(y, labelled), recipe.epochs, cached_logits=logits,
                                  T=T, alpha=alpha, loss_fn=loss_fn, **common)
    return student


def _name(key: tuple[int, Setting, int]) -> str:
    n, setting, seed = key
    return f"{n}_{setting}_{seed}.pt" if setting == ALONE else f"{n}_T{setting[0]:g}_a{setting[1]:g}_{seed}.pt"


def runs(profile: str | None = None, device: torch.device | str = "cpu", data_dir: str | Path | None = None,
         progress: bool = True, shard: tuple[int, int] = (0, 1),
         part: Literal["curve", "grid"] | None = None) -> dict:
    """The curve's and the grid's runs (``part``: one of them, default both), trained on first use and
    cached one by one: ``{(n, setting, seed): {"state": state_dict, "val": logits (M, C), "test": logits}}``.
    ``shard=(i, k)`` trains the missing ones among every k-th run from the i-th (a fixed split, whenever a
    process starts) and returns what is cached so far."""
    if part not in ("curve", "grid", None):
        raise ValueError(f"part must be 'curve', 'grid' or None, got {part!r}")
    profile = config.resolve_profile(profile)
    recipe, folder = RECIPES[profile], cache_dir(profile, device, data_dir)
    keys = list(dict.fromkeys((recipe.curve_keys() if part != "grid" else [])
                              + (recipe.grid_keys() if part != "curve" else [])))
    todo = [key for key in keys[shard[0]::shard[1]] if not (folder / _name(key)).exists()]
    if todo:
        sets, logits = splits(profile, data_dir), teacher_logits(profile, device, data_dir)
        for key in tqdm(todo, desc="distillation runs", disable=not progress):
            n, setting, seed = key
            student = train_run(sets.x, sets.y, balanced_subset(sets.y, n, seed), logits, setting, recipe, seed, device)
            save_stamped({"state": {k: v.cpu() for k, v in student.state_dict().items()},
                          "val": predict(student, sets.val_x), "test": predict(student, sets.test_x)},
                         folder / _name(key))
    return {key: load_stamped(folder / _name(key)) for key in keys if (folder / _name(key)).exists()}


def accuracies(cached: dict, labels: torch.Tensor, split: Literal["val", "test"]) -> dict:
    """``{(n, setting): [accuracy per seed]}`` (seeds in increasing order) from ``runs``'s logits."""
    out: dict = {}
    for (n, setting, _), run in sorted(cached.items(), key=lambda kv: kv[0][2]):
        out.setdefault((n, setting), []).append((run[split].argmax(1) == labels).float().mean().item())
    return out


def paired_gain(acc: dict, n: int, setting: Setting) -> tuple[float, float]:
    """Mean and 95% t half-width of ``setting − ALONE`` at n labels, paired by seed (the same labels)."""
    return t_ci([a - b for a, b in zip(acc[n, setting], acc[n, ALONE])])
