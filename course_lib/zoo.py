"""A model zoo: twelve source models with one interface, to rank by transferability (lesson 01, Exercise 1).

Every source is a CIFAR-style ResNet (``course_lib.models.CifarResNet``) that takes (N, 3, 32, 32)
images in [0, 1] and gives penultimate features (N, 64) and source-class probabilities (N, Z).  The
sources differ in depth, source task and training length, so that they really transfer differently:

* ``cifar10-resnet{20,32,44,56}``: the mirrored CIFAR-10 checkpoints (Z = 10), trained to convergence.
* ``random-resnet20``: a ResNet-20 at its seeded random initialisation, the floor.
* eight ResNet-20/32s that the course trains itself, from scratch, on few images for few epochs:
  MNIST digits (short and long), MNIST-M, Omniglot characters, CIFAR-10 (short) and CIFAR-10 regrouped
  into animals vs vehicles (Z = 2).  Grayscale is repeated to RGB and every image resized to 32×32.

Course-made sources are trained once (one CPU thread, so the weights do not depend on the machine's
thread count) and cached in ``<data_dir>/cache/zoo`` next to a sha256 stamp; so are every source's
outputs on the three ranking targets (``outputs``).  A cache file that does not match its stamp
raises ``ChecksumError`` and is never rebuilt silently.

Targets (``TARGETS``): 1,000 labelled images each, and a disjoint test set for the ground truth:
``cifar10`` (10-way, carved from the CIFAR-10 test images, which no source was trained on), ``usps``
(10-way handwritten digits) and ``pneumoniamnist`` (chest X-rays, 2-way).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import config, data, models
from .data import cache
from .images import to_rgb
from .loops import evaluate_accuracy, predict, train_classifier
from .tasks import regroup

ANIMALS, VEHICLES = (2, 3, 4, 5, 6, 7), (0, 1, 8, 9)  # CIFAR-10 class indices


@dataclass(frozen=True)
class Source:
    """One zoo entry: an architecture, the data it was trained on, and how (course-made sources).

    ``quick`` / ``full``: (images, epochs) of the course's training run per profile, None = all images.
    ``groups``: train on the source classes regrouped (``tasks.regroup``), e.g. animals vs vehicles.
    """

    name: str
    depth: int
    dataset: str  # the source dataset, a ``course_lib.data`` name; the chapter's score reads its test images
    kind: str  # "mirror" (published checkpoint), "random" (initialisation only) or "course" (trained here)
    quick: tuple[int | None, int] = (1200, 2)
    full: tuple[int | None, int] = (None, 3)
    groups: tuple[tuple[int, ...], ...] | None = None

    @property
    def trained_by_course(self) -> bool:
        return self.kind == "course"


SOURCES: dict[str, Source] = {s.name: s for s in (
    *(Source(f"cifar10-resnet{d}", d, "cifar10", "mirror") for d in (20, 32, 44, 56)),
    Source("random-resnet20", 20, "cifar10", "random"),
    Source("mnist-resnet20", 20, "mnist", "course"),
    Source("mnist-resnet20-long", 20, "mnist", "course", quick=(4000, 4), full=(None, 15)),
    Source("mnist-resnet32", 32, "mnist", "course"),
    Source("mnist_m-resnet20", 20, "mnist_m", "course"),
    Source("omniglot-resnet20", 20, "omniglot", "course", full=(None, 15)),
    Source("cifar10-resnet20-short", 20, "cifar10", "course", quick=(2000, 2), full=(5000, 3)),
    Source("animals-vehicles-resnet20", 20, "cifar10", "course", quick=(2000, 2), full=(None, 3),
           groups=(ANIMALS, VEHICLES)),
)}

#: the optimiser of the course's training runs, per profile (images and epochs are per source)
RECIPES = {"quick": {"batch_size": 64, "lr": 2e-3}, "full": {"batch_size": 128, "lr": 1e-3}}
TRAIN_SEED = 0
TARGETS = ("cifar10", "usps", "pneumoniamnist")
N_LABELLED = 1000  # labelled target images the scores see
N_SOURCE_IMAGES = 500  # source test images per source, for the chapter's score


def _spec(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"Unknown source {name!r}; choose one of {list(SOURCES)}")
    return SOURCES[name]


def recipe(name: str, profile: str | None = None) -> dict:
    """How a course-made source is trained: n_images (None = all), epochs, batch_size, lr."""
    n, epochs = getattr(_spec(name), config.resolve_profile(profile))
    return {"n_images": n, "epochs": epochs, **RECIPES[config.resolve_profile(profile)]}


def source_images(name: str, split: str = "train", n: int | None = None, seed: int = 0,
                  profile: str | None = None, data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 3, 32, 32) in [0, 1] and labels (n,) from a source's own dataset (regrouped if the
    source is).  ``n`` images are drawn without replacement by a seeded permutation (all if None)."""
    spec = _spec(name)
    ds = data.load(spec.dataset, split, profile=profile, data_dir=data_dir)
    idx = torch.arange(len(ds))
    if n is not None and n < len(ds):
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    y = ds.labels[idx] if spec.groups is None else regroup(ds.labels[idx], spec.groups)
    return to_rgb(ds.images[idx], 32), y


def source_classes(name: str, profile: str | None = None, data_dir: str | Path | None = None) -> list[str]:
    spec = _spec(name)
    if spec.groups is not None:
        return ["animal", "vehicle"]
    return data.load(spec.dataset, "train", profile=profile, data_dir=data_dir).classes


def cache_path(name: str, profile: str | None = None, data_dir: str | Path | None = None,
               device: torch.device | str = "cpu") -> Path:
    """``<data_dir>/cache/zoo/<name>_<profile>_<cpu1t|cuda>.v<N>.pt`` (N: ``cache.STORES["zoo"]``)."""
    tag = f"{config.resolve_profile(profile)}_{config.one_thread_tag(device)}"
    return cache.path_for("zoo", f"{name}_{tag}", data_dir)


def train_source(name: str, profile: str | None = None, data_dir: str | Path | None = None,
                 device: torch.device | str = "cpu", progress: bool = True) -> tuple[models.CifarResNet, dict]:
    """Train a course-made source from scratch with ``recipe(name, profile)``; returns (model, info).

    One thread on a CPU; the global RNG and thread count are left as they were, so a notebook prints the
    same numbers whether the model came from the cache or was just trained.
    """
    if not _spec(name).trained_by_course:
        raise ValueError(f"{name} is not trained by the course; only "
                         f"{[s for s in SOURCES if SOURCES[s].trained_by_course]} are")
    profile = config.resolve_profile(profile)
    r = recipe(name, profile)
    x, y = source_images(name, "train", r["n_images"], TRAIN_SEED, profile, data_dir)
    classes = source_classes(name, profile, data_dir)
    with torch.random.fork_rng(devices=[]), config.one_thread_on_cpu(device):
        torch.manual_seed(TRAIN_SEED)
        model = models.cifar_resnet(_spec(name).depth, pretrained=False, num_classes=len(classes)).to(device)
        train_classifier(model, x, y, r["epochs"], r["lr"], r["batch_size"], TRAIN_SEED, progress,
                         desc=f"train {name}")
        info = {"name": name, "profile": profile, "recipe": r, "classes": classes,
                "n_train": len(x), "train_acc": evaluate_accuracy(model, x, y)}
    return model.eval(), info


def load(name: str, profile: str | None = None, data_dir: str | Path | None = None,
         device: torch.device | str = "cpu", progress: bool = True) -> models.CifarResNet:
    """A zoo source in eval mode: mirrored weights, a seeded initialisation, or the course's own
    (trained on first use, then cached)."""
    spec = _spec(name)
    if spec.kind == "mirror":
        return models.cifar_resnet(spec.depth, pretrained=True, data_dir=data_dir).to(device).eval()
    if spec.kind == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TRAIN_SEED)
            return models.cifar_resnet(spec.depth, pretrained=False).to(device).eval()
    saved = cache.cached(cache_path(name, profile, data_dir, device),
                         lambda: _payload(*train_source(name, profile, data_dir, device, progress)))
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: leave the caller's RNG alone
        model = models.cifar_resnet(spec.depth, pretrained=False, num_classes=len(saved["info"]["classes"]))
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()


def _payload(model: models.CifarResNet, info: dict) -> dict:
    """What the cache stores of a trained source: ``{"state_dict": CPU tensors, "info": info}``."""
    return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "info": info}


def cache_info(name: str, profile: str | None = None, data_dir: str | Path | None = None,
               device: torch.device | str = "cpu") -> dict:
    """What was recorded when a course-made source was trained (recipe, classes, train accuracy)."""
    saved = cache.load_stamped(cache_path(name, profile, data_dir, device))
    if saved is None:
        raise FileNotFoundError(f"{name} is not cached yet; call zoo.load({name!r}) first")
    return saved["info"]


# ------------------------------------------------------------------ what a score needs from a source
def source_outputs(model: models.CifarResNet, images: torch.Tensor, batch_size: int = 256,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (N, 64) and source-class probabilities (N, Z), both on the CPU, for images
    (N, 3, 32, 32) on any device; eval mode, computed on ``device`` (default: the model's)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (N, 3, H, W) in [0, 1], got {tuple(images.shape)}; use images.to_rgb")

    def both(xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = model.features(xb)
        return f, F.softmax(model.fc(f), dim=1)
    return predict(both, images, batch_size=batch_size, device=device, module=model)


def target_splits(target: str, profile: str | None = None,
                  data_dir: str | Path | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"train": (x, y), "test": (x, y)}`` of a ranking target, images (n, 3, 32, 32) in [0, 1].

    train: ``N_LABELLED`` images drawn by a seeded permutation; test: disjoint from it.  ``cifar10`` is
    carved from the CIFAR-10 test split (the mirrored sources never saw it, the course-made ones train on
    the course's CIFAR-10 train split); the others use their official train and test splits.
    """
    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; choose one of {TARGETS}")
    gen = torch.Generator().manual_seed(TRAIN_SEED)
    if target == "cifar10":
        ds = data.load(target, "test", profile=profile, data_dir=data_dir)
        perm = torch.randperm(len(ds), generator=gen)
        tr, te = perm[:N_LABELLED].sort().values, perm[N_LABELLED:].sort().values
        return {"train": (to_rgb(ds.images[tr], 32), ds.labels[tr]), "test": (to_rgb(ds.images[te], 32), ds.labels[te])}
    train = data.load(target, "train", profile=profile, data_dir=data_dir)
    test = data.load(target, "test", profile=profile, data_dir=data_dir)
    tr = torch.randperm(len(train), generator=gen)[:N_LABELLED].sort().values
    return {"train": (to_rgb(train.images[tr], 32), train.labels[tr]), "test": (to_rgb(test.images, 32), test.labels)}


def outputs_path(name: str, profile: str | None = None, data_dir: str | Path | None = None,
                 device: torch.device | str = "cpu") -> Path:
    """``<data_dir>/cache/zoo/outputs_<name>_<profile>_<cpu1t|cuda>.v<N>.pt`` (N: ``cache.STORES["zoo_outputs"]``)."""
    tag = f"{config.resolve_profile(profile)}_{config.one_thread_tag(device)}"
    return cache.path_for("zoo_outputs", f"outputs_{name}_{tag}", data_dir)


def outputs(name: str, profile: str | None = None, data_dir: str | Path | None = None,
            device: torch.device | str = "cpu", progress: bool = True) -> dict:
    """One frozen forward pass of a source over every ranking target, cached.

    Returns ``{"source_f": (N_SOURCE_IMAGES, 64), target: {"train_f": (N_LABELLED, 64), "train_p":
    (N_LABELLED, Z), "train_y": (N_LABELLED,), "test_f": (n_test, 64), "test_y": (n_test,)}}``, CPU tensors.
    """
    return cache.cached(outputs_path(name, profile, data_dir, device),
                        lambda: _compute_outputs(name, profile, data_dir, device, progress))


def _compute_outputs(name: str, profile: str | None, data_dir: str | Path | None, device: torch.device | str,
                     progress: bool) -> dict:
    """``outputs`` without the cache."""
    net = load(name, profile, data_dir, device, progress)
    with config.one_thread_on_cpu(device):
        src_x, _ = source_images(name, "test", N_SOURCE_IMAGES, TRAIN_SEED, profile, data_dir)
        out: dict = {"source_f": source_outputs(net, src_x, device=device)[0]}
        for target in TARGETS:
            split = target_splits(target, profile, data_dir)
            train_f, train_p = source_outputs(net, split["train"][0], device=device)
            test_f, _ = source_outputs(net, split["test"][0], device=device)
            out[target] = {"train_f": train_f, "train_p": train_p, "train_y": split["train"][1],
                           "test_f": test_f, "test_y": split["test"][1]}
    return out
