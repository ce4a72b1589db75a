"""The digit adaptation benchmarks as tensors: MNIST -> MNIST-M and MNIST -> USPS, all (N, 3, 28, 28).

MNIST and USPS are grayscale (USPS is 16×16): they are repeated to 3 channels and resized to 28×28, so
both pairs share one input format and one network (ERRATA 5.7).  Splits come from ``course_lib.data``:
in ``quick`` they are carved from the official test sets (``data.describe`` says how).

``experiments`` trains and caches every run lessons 04-05 and Exercise 3 read (``experiment_runs``: source-only,
the BatchNorm-only control, DANN, MMD and the train-on-target oracle on both pairs, over the recipe's seeds, and
Exercise 3's λ_max sweep), one thread per run on a CPU, in shards that ``tools/warm_caches.py`` runs in
parallel; ``trained`` then returns one of them (a cache hit).  The quick recipe departs from the paper's SGD
recipe in one way: μ_0 = 0.03 instead of 0.01, so that its short budget gets further; ``full`` keeps 0.01.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import config, data
from ..data.cache import cached, load_stamped, path_for
from ..images import to_rgb
from .adapt import train_adapted
from .dann import DANN

SOURCE = "mnist"
TARGETS = ("mnist_m", "usps")
SIZE = 28


@dataclass
class DigitPair:
    """Images (N, 3, 28, 28) in [0, 1] and labels (N,) for one source -> target pair.

    ``target_train`` labels exist on disk but a UDA method may only use the images; the labels serve
    the train-on-target *oracle*.  ``target_val`` is for choosing hyperparameters, ``target_test`` for
    the reported numbers.
    """

    target: str
    profile: str
    data_dir: Path
    source_train: tuple[torch.Tensor, torch.Tensor]
    source_test: tuple[torch.Tensor, torch.Tensor]
    target_train: tuple[torch.Tensor, torch.Tensor]
    target_val: tuple[torch.Tensor, torch.Tensor]
    target_test: tuple[torch.Tensor, torch.Tensor]


def _split(name: str, split: str, profile: str | None,
           data_dir: str | Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    ds = data.load(name, split, profile=profile, data_dir=data_dir)
    return to_rgb(ds.images, SIZE).contiguous(), ds.labels


def load_pair(target: str, profile: str | None = None, data_dir: str | Path | None = None) -> DigitPair:
    """MNIST -> ``target`` (``"mnist_m"`` or ``"usps"``) as tensors."""
    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; use one of {TARGETS}")
    root = Path(data_dir) if data_dir is not None else config.data_dir()
    wanted = ((SOURCE, "train"), (SOURCE, "test"), (target, "train"), (target, "val"), (target, "test"))
    splits = [_split(name, split, profile, data_dir) for name, split in wanted]
    return DigitPair(target, config.resolve_profile(profile), root, *splits)


METHODS_RUN = ("source", "bn_only", "dann", "mmd", "oracle")
SWEEP = (0.0, 0.1, 0.3, 1.0)  # Exercise 3's λ_max grid on MNIST -> MNIST-M; 0 is the bn_only control
LAMBDA_MAX = {"dann": {"mnist_m": 0.3, "usps": 0.03}, "mmd": {"mnist_m": 3.0, "usps": 3.0}}  # chosen on target val


@dataclass(frozen=True)
class Recipe:
    """What one profile trains for lessons 04-05 and Exercise 3: steps per target, seeds and the SGD recipe."""

    steps_mnist_m: int
    steps_usps: int
    seeds: tuple[int, ...]
    batch_size: int = 64
    lr0: float = 0.03  # the paper's μ_0 is 0.01
    evals: int = 4  # target-test evaluations per run, the last one after the final step

    def steps(self, target: str) -> int:
        """Training steps for MNIST -> ``target``."""
        if target not in TARGETS:
            raise ValueError(f"Unknown target {target!r}; use one of {TARGETS}")
        return self.steps_mnist_m if target == "mnist_m" else self.steps_usps


RECIPES = {"quick": Recipe(2000, 400, (0, 1, 2)), "full": Recipe(10_000, 5_000, (0, 1, 2), lr0=0.01)}


def _canonical(method: str, lambda_max: float) -> tuple[str, float]:
    """(training loss, λ_max) a method trains with: ``bn_only`` is DANN at λ_max = 0 (the target batch goes
    through the network, no adversarial gradient); ``source`` and ``oracle`` ignore λ_max."""
    if method not in METHODS_RUN:
        raise ValueError(f"Unknown method {method!r}; use one of {METHODS_RUN}")
    if method == "bn_only" or (method == "dann" and lambda_max == 0):
        return "dann", 0.0
    return method, 0.0 if method in ("source", "oracle") else float(lambda_max)


def cache_path(pair: DigitPair, method: str, steps: int, lambda_max: float = 1.0, seed: int = 0,
               device: torch.device | str = "cpu", eval_every: int | None = None, batch_size: int = 64,
               lr0: float = 0.01) -> Path:
    """Where ``run`` caches a run: ``<data_dir>/cache/digits/<target>_<method>_lam<λ>_seed<s>_<profile>_<settings
    digest>_<cpu1t|cuda>.v<N>.pt`` (N: ``cache.STORES["digits"]``); ``bn_only`` and DANN at λ_max = 0 share one file."""
    loss_name, lam = _canonical(method, lambda_max)
    digest = config.settings_digest({"steps": steps, "batch_size": batch_size, "lr0": lr0,
                                     "eval_every": eval_every or steps})
    name = "oracle" if method == "oracle" else loss_name
    key = f"{pair.target}_{name}_lam{lam:g}_seed{seed}_{pair.profile}_{digest}_{config.one_thread_tag(device)}"
    return path_for("digits", key, pair.data_dir)


def run(pair: DigitPair, method: str, steps: int, lambda_max: float = 1.0, seed: int = 0,
        device: torch.device | str = "cpu", eval_every: int | None = None, batch_size: int = 64,
        lr0: float = 0.01, progress: bool = True, cache: bool = True) -> tuple[DANN, list[dict]]:
    """Train a fresh ``DANN`` network on ``pair`` with ``method``; returns (model, history).

    method: ``"source"``, ``"dann"``, ``"mmd"`` (see ``train_adapted``), ``"bn_only"`` (DANN with
    λ_max = 0: the target batch passes through the network in train mode, so BatchNorm sees it, but no
    adversarial gradient reaches the features; the control for every method that mixes the batches) or
    ``"oracle"``: supervised training on the target's own labelled training split, an upper bound no UDA
    method is given.  The weights are initialised from ``torch.manual_seed(seed)``; target *test*
    accuracy is logged every ``eval_every`` steps (default: only after the last).  With ``cache``, the
    result is stored in ``<data_dir>/cache/digits`` (checksummed) and a hit returns exactly what training
    gave; either way the caller's global RNG and thread count are left as they were.  On a CPU a run
    trains on one thread, so one cache (``cpu1t``) serves every thread count.
    """
    loss_name, lam = _canonical(method, lambda_max)
    eval_every = eval_every or steps
    dev = torch.device(device)
    path = cache_path(pair, method, steps, lambda_max, seed, device, eval_every, batch_size, lr0)
    with config.one_thread_on_cpu(dev), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)  # the caller's RNG is untouched
        model = DANN(10, (3, SIZE, SIZE)).to(dev)

        def train() -> dict:
            source = pair.target_train if method == "oracle" else pair.source_train
            history = train_adapted(model, source, pair.target_train[0], steps,
                                    "source" if method == "oracle" else loss_name, batch_size=batch_size,
                                    lambda_max=lam, lr0=lr0, target_test=pair.target_test, seed=seed,
                                    progress=progress, eval_every=eval_every)
            return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": history}

        saved = cached(path, train) if cache else train()
    model.load_state_dict(saved["state_dict"])  # a no-op after training, the stored weights on a hit
    return model.to(memory_format=torch.channels_last), saved["history"]


def experiment_runs(profile: str | None = None) -> list[tuple[str, str, float, int]]:
    """Every run lessons 04-05 and Exercise 3 read, as ``(target, method, λ_max, seed)``: on both pairs
    source, bn_only, DANN, MMD and oracle; on MNIST-M also DANN at each λ_max of ``SWEEP``."""
    recipe = RECIPES[config.resolve_profile(profile)]
    out = []
    for target in TARGETS:
        cells = [("source", 0.0), ("bn_only", 0.0), ("dann", LAMBDA_MAX["dann"][target]),
                 ("mmd", LAMBDA_MAX["mmd"][target]), ("oracle", 0.0)]
        if target == "mnist_m":
            cells += [("dann", lam) for lam in SWEEP if lam not in (0.0, LAMBDA_MAX["dann"][target])]
        out += [(target, method, lam, seed) for method, lam in cells for seed in recipe.seeds]
    return out


def recipe_args(target: str, profile: str | None = None) -> dict:
    """``run``'s keyword arguments for the profile's recipe on MNIST -> ``target``: steps, eval_every, batch_size,
    lr0."""
    recipe = RECIPES[config.resolve_profile(profile)]
    steps = recipe.steps(target)
    return {"steps": steps, "eval_every": max(steps // recipe.evals, 1), "batch_size": recipe.batch_size,
            "lr0": recipe.lr0}


def trained(target: str, method: str, lambda_max: float = 0.0, seed: int = 0, profile: str | None = None,
            device: torch.device | str = "cpu", data_dir: str | Path | None = None,
            pair: DigitPair | None = None, progress: bool = False) -> tuple[DANN, list[dict]]:
    """One run of the profile's recipe (``run`` with its steps, batch, lr0 and evaluations): a cache hit
    once ``experiments`` has run, else trained and cached now."""
    profile = config.resolve_profile(profile)
    pair = pair or load_pair(target, profile, data_dir)
    return run(pair, method, lambda_max=lambda_max, seed=seed, device=device, progress=progress,
               **recipe_args(target, profile))


def experiments(profile: str | None = None, device: torch.device | str = "cpu", data_dir: str | Path | None = None,
                progress: bool = True, shard: tuple[int, int] = (0, 1)
                ) -> dict[tuple[str, str, float, int], list[dict]]:
    """``{(target, method, λ_max, seed): history}`` for every run of ``experiment_runs``, trained on first
    use and cached one by one.  ``shard=(i, k)`` trains the missing ones among every k-th run from the i-th and
    returns what is cached so far, so K processes can fill the cache in parallel (tools/warm_caches.py)."""
    profile = config.resolve_profile(profile)
    if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard must be (i, k) with 0 <= i < k, got {shard}")
    pairs = {t: load_pair(t, profile, data_dir) for t in TARGETS}

    def path(t: str, m: str, lam: float, s: int) -> Path:
        return cache_path(pairs[t], m, lambda_max=lam, seed=s, device=device, **recipe_args(t, profile))

    runs = experiment_runs(profile)
    todo = [r for r in runs[shard[0]::shard[1]] if not path(*r).exists()]
    for target, method, lam, seed in tqdm(todo, desc="digit runs", disable=not progress):
        trained(target, method, lam, seed, profile, device, pair=pairs[target])
    return {r: load_stamped(path(*r))["history"] for r in runs if path(*r).exists()}
