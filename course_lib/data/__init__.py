"""The course's data layer: ``load(name, split)`` -> a Dataset of (float C×H×W in [0, 1], int label).

>>> train = load("mnist_m", "train")          # doctest: +SKIP
>>> x, y = train[0]; x.shape, y               # (torch.Size([3, 28, 28]), 7)

Names: cifar10, mnist, mnist_m, usps, pneumoniamnist, breastmnist, retinamnist, omniglot.
The files live in ``$COURSE_DATA_DIR`` (layout of the offline mirror) and are checked against their
checksums before use.  What each profile's splits contain is in ``describe(name)``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import config
from . import cache
from . import datasets as _ds
from .integrity import ChecksumError, DataError, DataMissingError
from .plan import Need, needs, profile_note

SPLITS = ("train", "val", "test")
MEDMNIST = ("pneumoniamnist", "breastmnist", "retinamnist")
NAMES = ("cifar10", "mnist", "mnist_m", "usps", *MEDMNIST, "omniglot")

_QUICK_CARVE = ("quick profile: train/val/test are a stratified 60/10/30 carve of the official {what} "
                "({n:,} images), because the offline mirror holds only that split.")
DESCRIPTIONS = {
    "cifar10": {"quick": _QUICK_CARVE.format(what="CIFAR-10 test set", n=10_000),
                "full": "full profile: official 50,000 train (10% carved as val) and 10,000 test images."},
    "mnist": {"quick": _QUICK_CARVE.format(what="MNIST test set", n=10_000),
              "full": "full profile: official 60,000 train (10% carved as val) and 10,000 test digits."},
    "mnist_m": {"quick": "MNIST-M built from the quick MNIST splits (same digits and labels) over BSDS500 crops.",
                "full": "MNIST-M built from the full MNIST splits over BSDS500 crops, as in Ganin et al."},
    "usps": {"quick": _QUICK_CARVE.format(what="USPS test set", n=2_007),
             "full": "full profile: official 7,291 train (10% carved as val) and 2,007 test digits (16×16)."},
    "omniglot": {"quick": "quick profile: the two small background sets, split by alphabet "
                          f"{_ds.OMNIGLOT_QUICK}; 20 drawings per character, 28×28.",
                 "full": "full profile: images_background (25 alphabets train, 5 val) and images_evaluation (test)."},
    **{f: {"quick": "official MedMNIST v2 train/val/test splits, 28×28.",
           "full": "official MedMNIST v2 train/val/test splits (size as requested)."} for f in MEDMNIST},
}


class ImageDataset(Dataset):
    """Images kept as one uint8 tensor; items are ``(float tensor C×H×W in [0, 1], int label)``.

    ``data``: (N, C, H, W) uint8, ``labels``: (N,) int64.  ``images`` gives all of them as float.
    """

    def __init__(self, data: torch.Tensor, labels: torch.Tensor, classes: list[str], name: str = "",
                 split: str = "", note: str = ""):
        if data.dtype != torch.uint8 or data.ndim != 4:
            raise ValueError(f"data must be a uint8 tensor (N, C, H, W), got {data.dtype} {tuple(data.shape)}")
        if labels.ndim != 1 or len(labels) != len(data):
            raise ValueError(f"labels must have shape ({len(data)},), got {tuple(labels.shape)}")
        self.data, self.labels = data, labels.long()
        self.classes, self.name, self.split, self.note = classes, name, split, note

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.data[i].float().div_(255), int(self.labels[i])

    @property
    def images(self) -> torch.Tensor:
        """All images as one float tensor (N, C, H, W) in [0, 1]."""
        return self.data.float().div_(255)

    def subset(self, indices) -> ImageDataset:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageDataset(self.data[idx], self.labels[idx], self.classes, self.name, self.split,
                            f"{self.note} (subset of {len(idx):,})")

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name}/{self.split}: {len(self):,} images of {tuple(self.data.shape[1:])}, "
                f"{len(self.classes)} classes)")


def describe(name: str, profile: str | None = None) -> str:
    """Where a dataset's splits come from in the given (or active) profile."""
    return DESCRIPTIONS[_check_name(name)][config.resolve_profile(profile)]


def _check_name(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {NAMES}")
    return name


def _build(name: str, root: Path, profile: str, size: int) -> dict:
    """-> {"splits": {split: (uint8 tensor, int64 tensor)}, "classes": {split: [...]}}"""
    if name in MEDMNIST:
        splits, cls = _ds.medmnist_flag(name, root, size), _ds.medmnist_classes(name)
        classes = {s: cls for s in SPLITS}
    elif name == "omniglot":
        splits, classes = _ds.omniglot(root, profile, size)
    else:
        reader = {"cifar10": _ds.cifar10, "mnist": _ds.mnist, "usps": _ds.usps, "mnist_m": _ds.mnist_m}[name]
        splits = reader(root, profile)
        cls = _ds.CIFAR10_CLASSES if name == "cifar10" else _ds.DIGITS
        classes = {s: cls for s in SPLITS}
    return {"splits": {s: (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y))
                       for s, (x, y) in splits.items()}, "classes": classes}


@lru_cache(maxsize=32)
def _built(name: str, root: Path, profile: str, size: int) -> dict:
    """All splits of one dataset, memoised per process; slow ones also cached on disk (``cache.cached``)."""
    if name in ("cifar10", "mnist_m", "omniglot"):
        return cache.cached(cache.path_for("datasets", f"{name}_{profile}_{size}", root),
                            lambda: _build(name, root, profile, size))
    return _build(name, root, profile, size)


def load(name: str, split: str, profile: str | None = None, size: int | None = None,
         data_dir: str | Path | None = None) -> ImageDataset:
    """Load one split of a course dataset as an ``ImageDataset``.

    name: see ``NAMES``.  split: "train", "val" or "test".  profile: defaults to the active one
    (``$COURSE_PROFILE``).  size: MedMNIST image size (28, 64, 128, 224) or Omniglot side (28).
    Raises ``DataMissingError`` (missing and not downloadable) or ``ChecksumError`` (corrupted file).
    """
    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {SPLITS}")
    profile = config.resolve_profile(profile)
    root = Path(data_dir) if data_dir is not None else config.data_dir()
    size = size or 28
    if name not in MEDMNIST and name != "omniglot" and size != 28:
        raise ValueError(f"{name} has a fixed image size; `size` applies to MedMNIST and Omniglot only")
    built = _built(name, root.resolve(), profile, size)
    x, y = built["splits"][split]
    return ImageDataset(x, y, built["classes"][split], name, split, DESCRIPTIONS[name][profile])


__all__ = ["load", "describe", "needs", "profile_note", "Need", "ImageDataset", "NAMES", "SPLITS", "DataError",
           "DataMissingError", "ChecksumError"]
