"""Transfer or train from scratch?  Target AUC against the number of labels (shared by lessons 02 and 08).

For each label count n and seed, two networks of the same architecture (CIFAR ResNet-20 with a new
2-class head; PneumoniaMNIST X-rays at their native 28×28, grey repeated to RGB: the ResNet's global
pooling takes any size, and 28 px costs 30% less than 32) are trained on the same n labelled images:

* ``transfer``: the CIFAR-10 weights, every layer fine-tuned (Adam, 1e-3 for the body, 1e-2 for the
  new head): lesson 02's best recipe on X-rays;
* ``scratch``: random weights, every layer at 3e-3.

The n images are a stratified, nested subset of the 4,708 training images (the seed picks it, and also
the initial head, the batch order and, for scratch, every weight).  Each run lasts ``generous_steps``
Adam steps of ``batch_size`` images and is evaluated every ``eval_every`` steps on the official validation
split (524) and test split (624).  A budget of B steps reports the **test AUC at the checkpoint with the
best validation AUC among steps <= B** (early stopping).  ``equal_steps`` is the budget both methods get
in the same-budget comparison; ``generous_steps`` is 3× that in ``quick`` (CI's time) and 4× in ``full``.

On a CPU every run uses one thread (small convolutions gain little from more, and the numbers then do
not depend on the machine's thread count), so independent runs can go to parallel processes
(``shard``; ``tools/warm_caches.py`` uses one per core).  Each run is cached on its own
(``<data_dir>/cache/curves/<profile>_<recipe key>_<numerics>/``), keyed by the profile, the recipe and the
numerics (``cpu1t``: one pinned CPU thread, or the accelerator's type): lesson 08 reads what lesson 02
trained, and a cache hit is what a fresh run here would print.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import config, data, metrics, models
from .data.cache import load_stamped, path_for, save_stamped
from .images import to_rgb
from .loops import predict
from .stats import t_ci

KINDS = ("transfer", "scratch")


@dataclass(frozen=True)
class Recipe:
    """What one profile trains: label counts, seeds and budgets (in Adam steps)."""

    label_counts: tuple[int, ...]
    seeds: tuple[int, ...]
    equal_steps: int
    generous_steps: int
    eval_every: int
    batch_size: int = 64
    lr_body: float = 1e-3
    lr_head: float = 1e-2
    lr_scratch: float = 3e-3

    def key(self) -> str:
        """What fixes one run's numbers (not which label counts and seeds are run): extending the grid
        reuses the cached runs."""
        return config.settings_digest(asdict(self), ignore=("label_counts", "seeds"))


RECIPES = {"quick": Recipe((32, 100, 316, 1000, 4708), tuple(range(5)), 100, 300, 50, batch_size=32),
           "full": Recipe((32, 100, 316, 1000, 4708), tuple(range(10)), 300, 1200, 100)}


def stratified_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices (n,) of a class-stratified subset; nested: the subset for n is a prefix-union of the one for
    any larger n with the same seed.  Every class gets at least one image."""
    counts = torch.bincount(labels)
    if not 0 < n <= len(labels) or n < len(counts):
        raise ValueError(f"n must be between {len(counts)} (one per class) and {len(labels)}, got {n}")
    gen = torch.Generator().manual_seed(seed)
    share = (counts.double() * n / len(labels)).round().long().clamp(min=1)
    share[share.argmax()] += n - share.sum()  # rounding: the largest class absorbs the difference
    picks = [torch.nonzero(labels == c).flatten()[torch.randperm(int(counts[c]), generator=gen)][:int(k)]
             for c, k in enumerate(share)]
    return torch.cat(picks).sort().values


def _network(kind: str, recipe: Recipe) -> tuple[nn.Module, list[dict]]:
    if kind == "scratch":
        model = models.cifar_resnet(20, pretrained=False, num_classes=2)
        return model, [{"params": list(model.parameters()), "lr": recipe.lr_scratch}]
    if kind != "transfer":
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    model = models.cifar_resnet(20, num_classes=2)
    head = {id(p) for p in model.fc.parameters()}
    return model, [{"params": [p for p in model.parameters() if id(p) not in head], "lr": recipe.lr_body},
                   {"params": list(model.fc.parameters()), "lr": recipe.lr_head}]


def _auc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """ROC AUC of class 1 on images x (n, 3, H, W) with labels y (n,), in eval mode."""
    p = predict(lambda b: model(b).softmax(1)[:, 1], x, batch_size=512, module=model)
    return metrics.roc_auc(y.cpu().numpy(), p.numpy())


def train_run(kind: str, x: torch.Tensor, y: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor],
              test: tuple[torch.Tensor, torch.Tensor], recipe: Recipe, seed: int,
              device: torch.device | str = "cpu") -> list[tuple[int, float, float]]:
    """Train one network on images x (n, 3, H, W) in [0, 1] and labels y (n,); returns the trace
    ``[(step, val AUC, test AUC)]`` every ``recipe.eval_every`` steps up to ``recipe.generous_steps``.

    Inputs may live on any device; training runs on ``device`` (one thread on a CPU) and the global RNG
    and thread count are left untouched."""
    if x.ndim != 4 or x.shape[1] != 3 or len(x) != len(y):
        raise ValueError(f"need images (n, 3, H, W) and labels (n,), got {tuple(x.shape)} and {tuple(y.shape)}")
    with config.one_thread_on_cpu(device):
        return _train(kind, x, y, val, test, recipe, seed, device)


def _train(kind, x, y, val, test, recipe, seed, device) -> list[tuple[int, float, float]]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, groups = _network(kind, recipe)
    model.to(device).train()
    opt = torch.optim.Adam(groups)
    x, y = x.to(device), y.to(device)
    (vx, vy), (tx, ty) = val, test
    vx, tx = vx.to(device), tx.to(device)
    gen, batch, step, trace = torch.Generator().manual_seed(seed), min(recipe.batch_size, len(y)), 0, []
    while step < recipe.generous_steps:
        order = torch.randperm(len(y), generator=gen)
        for idx in order[: len(order) - len(order) % batch].to(device).split(batch):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % recipe.eval_every == 0:
                trace.append((step, _auc(model, vx, vy), _auc(model, tx, ty)))
            if step == recipe.generous_steps:
                break
    return trace


def at_budget(trace: list[tuple[int, float, float]], steps: int) -> float:
    """Test AUC at the checkpoint with the best validation AUC among steps <= ``steps`` (ties: the earliest)."""
    seen = [t for t in trace if t[0] <= steps]
    if not seen:
        raise ValueError(f"no checkpoint at or before step {steps}")
    return max(seen, key=lambda t: (t[1], -t[0]))[2]


def cache_dir(profile: str, device: torch.device | str = "cpu", data_dir: str | Path | None = None) -> Path:
    """``<data_dir>/cache/curves/<profile>_<recipe key>_<numerics>.v<N>/``: one file per run."""
    numerics = config.one_thread_tag(device)  # runs pin one CPU thread (train_run)
    return path_for("label_curves", f"{profile}_{RECIPES[profile].key()}_{numerics}", data_dir, suffix="")


def _pneumonia(profile: str, data_dir) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    splits = {s: data.load("pneumoniamnist", s, profile=profile, data_dir=data_dir) for s in data.SPLITS}
    return {s: (to_rgb(ds.images), ds.labels) for s, ds in splits.items()}


def transfer_vs_scratch(profile: str | None = None, device: torch.device | str = "cpu",
                        data_dir: str | Path | None = None, progress: bool = True,
                        shard: tuple[int, int] = (0, 1)) -> dict:
    """Every run of the profile's recipe, trained on first use and cached: ``{(kind, n, seed): trace}``.

    Cached runs are read; missing ones are trained and saved one by one, so an interrupted experiment
    resumes where it stopped.  ``shard=(i, k)`` trains the missing ones among every k-th run from the i-th
    (for k parallel processes; a fixed split, whenever each starts) and returns what is cached so far."""
    profile = config.resolve_profile(profile)
    recipe, folder = RECIPES[profile], cache_dir(profile, device, data_dir)
    keys = [(k, n, s) for n in recipe.label_counts for s in recipe.seeds for k in KINDS]

    def path(key: tuple[str, int, int]) -> Path:
        return folder / f"{key[0]}_{key[1]}_{key[2]}.pt"

    todo = [key for key in keys[shard[0]::shard[1]] if not path(key).exists()]
    if todo:
        sets = _pneumonia(profile, data_dir)
        x, y = sets["train"]
        for kind, n, seed in tqdm(todo, desc="transfer vs scratch", disable=not progress):
            idx = stratified_subset(y, n, seed)
            trace = train_run(kind, x[idx], y[idx], sets["val"], sets["test"], recipe, seed, device)
            save_stamped(trace, path((kind, n, seed)))
    return {key: load_stamped(path(key)) for key in keys if path(key).exists()}


def summarize(runs: dict, recipe: Recipe) -> dict[int, dict[str, tuple[float, float]]]:
    """Per label count: mean and 95% t-interval half-width (over seeds) of the test AUC for ``transfer`` and
    ``scratch`` at the equal and the generous budget, and of the paired gap transfer − scratch."""
    out = {}
    for n in recipe.label_counts:
        row = {}
        for budget, steps in (("equal", recipe.equal_steps), ("generous", recipe.generous_steps)):
            auc = {k: [at_budget(runs[k, n, s], steps) for s in recipe.seeds] for k in KINDS}
            for k in KINDS:
                row[f"{k}@{budget}"] = t_ci(auc[k])
            row[f"gap@{budget}"] = t_ci([a - b for a, b in zip(auc["transfer"], auc["scratch"])])
        out[n] = row
    return out
