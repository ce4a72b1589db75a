"""A small model zoo: several source models with the same interface, to rank by transferability.

Every source is a CIFAR-style ResNet (``course_lib.models.CifarResNet``) that takes (N, 3, 32, 32)
images in [0, 1] and gives penultimate features (N, 64) and source-class probabilities (N, Z):

* ``cifar10-resnet{20,32,44,56}``: the mirrored CIFAR-10 checkpoints (Z = 10).
* ``mnist-resnet20``, ``omniglot-resnet20``: ResNet-20s the course trains itself, from scratch, on
  MNIST digits (Z = 10) and Omniglot characters (Z = 136 in quick), grayscale repeated to RGB and
  resized to 32×32.  They are trained once and cached in ``<data_dir>/cache/zoo`` next to a sha256
  stamp; a cache file that does not match its stamp raises ``ChecksumError`` and is never retrained
  silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import config, data, models
from .data.integrity import load_stamped, save_stamped
from .features import to_rgb
from .strategies import accuracy, train_classifier

CACHE_VERSION = 2


@dataclass(frozen=True)
class Source:
    """One zoo entry: an architecture and the data it was (pre)trained on."""

    name: str
    depth: int
    dataset: str  # the source dataset, a ``course_lib.data`` name
    trained_by_course: bool


SOURCES: dict[str, Source] = {s.name: s for s in (
    *(Source(f"cifar10-resnet{d}", d, "cifar10", False) for d in (20, 32, 44, 56)),
    Source("mnist-resnet20", 20, "mnist", True),
    Source("omniglot-resnet20", 20, "omniglot", True),
)}

#: how the course trains its own sources, per profile: images used, epochs, batch size, Adam's lr.
RECIPES = {"quick": {"n_images": 1200, "epochs": 2, "batch_size": 64, "lr": 2e-3},
           "full": {"n_images": None, "epochs": 15, "batch_size": 128, "lr": 1e-3}}
TRAIN_SEED = 0


def _spec(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"Unknown source {name!r}; choose one of {list(SOURCES)}")
    return SOURCES[name]


def source_images(name: str, split: str = "train", n: int | None = None, seed: int = 0,
                  profile: str | None = None, data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 3, 32, 32) in [0, 1] and labels (n,) from a source's own dataset.

    ``n`` images are drawn without replacement by a seeded permutation (all of them if ``n`` is None).
    """
    ds = data.load(_spec(name).dataset, split, profile=profile, data_dir=data_dir)
    idx = torch.arange(len(ds))
    if n is not None and n < len(ds):
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return to_rgb(ds.images[idx], 32), ds.labels[idx]


def cache_path(name: str, profile: str | None = None, data_dir: str | Path | None = None,
               device: torch.device | str = "cpu") -> Path:
    """``<data_dir>/cache/zoo/<name>_<profile>_<numerics tag>.v<N>.pt`` (see ``config.numerics_tag``)."""
    root = Path(data_dir) if data_dir is not None else config.data_dir()
    tag = f"{config.resolve_profile(profile)}_{config.numerics_tag(device)}"
    return root / "cache" / "zoo" / f"{name}_{tag}.v{CACHE_VERSION}.pt"


def train_source(name: str, profile: str | None = None, data_dir: str | Path | None = None,
                 device: torch.device | str = "cpu", progress: bool = True) -> tuple[models.CifarResNet, dict]:
    """Train a course-made source from scratch with ``RECIPES[profile]``; returns (model, info).

    The global RNG is left untouched (training runs under ``torch.random.fork_rng``), so a notebook
    prints the same numbers whether the model came from the cache or was just trained.
    """
    spec = _spec(name)
    if not spec.trained_by_course:
        raise ValueError(f"{name} is a mirrored checkpoint; only {[s for s in SOURCES if SOURCES[s].trained_by_course]} "
                         "are trained by the course")
    profile = config.resolve_profile(profile)
    recipe = RECIPES[profile]
    x, y = source_images(name, "train", recipe["n_images"], TRAIN_SEED, profile, data_dir)
    classes = data.load(spec.dataset, "train", profile=profile, data_dir=data_dir).classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TRAIN_SEED)
        model = models.cifar_resnet(spec.depth, pretrained=False, num_classes=len(classes)).to(device)
        train_classifier(model, x, y, recipe["epochs"], recipe["lr"], recipe["batch_size"], TRAIN_SEED,
                         progress, desc=f"train {name}")
    info = {"name": name, "profile": profile, "recipe": recipe, "classes": classes,
            "n_train": len(x), "train_acc": accuracy(model, x, y)}
    return model.eval(), info


def load(name: str, profile: str | None = None, data_dir: str | Path | None = None,
         device: torch.device | str = "cpu", progress: bool = True) -> models.CifarResNet:
    """A zoo source in eval mode: mirrored weights, or the course's own (trained on first use, then cached)."""
    spec = _spec(name)
    if not spec.trained_by_course:
        return models.cifar_resnet(spec.depth, pretrained=True, data_dir=data_dir).to(device).eval()
    path = cache_path(name, profile, data_dir, device)
    saved = load_stamped(path)
    if saved is not None:
        model = models.cifar_resnet(spec.depth, pretrained=False, num_classes=len(saved["info"]["classes"]))
        model.load_state_dict(saved["state_dict"])
        return model.to(device).eval()
    model, info = train_source(name, profile, data_dir, device, progress)
    save_stamped({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "info": info}, path)
    return model


def cache_info(name: str, profile: str | None = None, data_dir: str | Path | None = None,
               device: torch.device | str = "cpu") -> dict:
    """What was recorded when a course-made source was trained (recipe, classes, train accuracy)."""
    saved = load_stamped(cache_path(name, profile, data_dir, device))
    if saved is None:
        raise FileNotFoundError(f"{name} is not cached yet; call zoo.load({name!r}) first")
    return saved["info"]


# ------------------------------------------------------------------ what a score needs from a source
@torch.no_grad()
def source_outputs(model: models.CifarResNet, images: torch.Tensor, batch_size: int = 256,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (N, 64) and source-class probabilities (N, Z), both on the CPU, for images
    (N, 3, 32, 32) on any device; eval mode, computed on ``device`` (default: the model's)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (N, 3, H, W) in [0, 1], got {tuple(images.shape)}; use features.to_rgb")
    device = device if device is not None else config.device_of(model)
    was_training = model.training
    model.eval()
    feats, probs = [], []
    for xb in images.split(batch_size):
        f = model.features(xb.to(device))
        feats.append(f.cpu())
        probs.append(F.softmax(model.fc(f), dim=1).cpu())
    model.train(was_training)
    return torch.cat(feats), torch.cat(probs)
