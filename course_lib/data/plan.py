"""What a lesson reads in each profile, and what the ``full`` profile will download the first time.

Every notebook prints ``profile_note(...)`` under its setup cell, so a student on Colab (where a GPU
makes ``full`` the default) sees before any download which profile runs, what ``full`` fetches and how
much, and how to choose ``quick`` instead.

Items name what a lesson needs: a dataset of ``data.NAMES`` (a MedMNIST flag may carry its image size,
e.g. ``"pneumoniamnist_224"``), ``"resnet20"``…``"resnet56"`` (the mirrored CIFAR-10 checkpoints) or
``"imagenet-resnet18"`` (torchvision's ImageNet weights, kept in torch's own cache).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import config
from .files import REMOTE, tree

MEDMNIST = ("pneumoniamnist", "breastmnist", "retinamnist")
MEDMNIST_SIZES = (28, 64, 128, 224)
IMAGENET_RESNET18 = "resnet18-f37072fd.pth"  # torchvision's file name for ResNet18_Weights.IMAGENET1K_V1

#: Sizes in bytes, as published, of files the course may download.  Used only for a file that is not
#: on disk yet (a file on disk is measured); tests check every entry the offline mirror also holds.
PUBLISHED_BYTES: dict[str, int] = {
    "cifar10/cifar-10-python.tar.gz": 170_498_071,
    "MNIST/raw/train-images-idx3-ubyte.gz": 9_912_422,
    "MNIST/raw/train-labels-idx1-ubyte.gz": 28_881,
    "MNIST/raw/t10k-images-idx3-ubyte.gz": 1_648_877,
    "MNIST/raw/t10k-labels-idx1-ubyte.gz": 4_542,
    "usps/usps.bz2": 6_579_383,
    "usps/usps.t.bz2": 1_831_726,
    "bsds500/BSR_bsds500.tgz": 70_763_455,
    "omniglot/original_zips/images_background_small1.zip": 1_319_022,
    "omniglot/original_zips/images_background_small2.zip": 1_580_917,
    "omniglot/images_background.zip": 9_464_212,
    "omniglot/images_evaluation.zip": 6_462_886,
    "checkpoints/resnet20-12fca82f.th": 1_099_231,
    "checkpoints/resnet32-d509ac18.th": 1_890_043,
    "checkpoints/resnet44-014dd654.th": 2_680_855,
    "checkpoints/resnet56-4bfd9763.th": 3_471_733,
    "medmnist/pneumoniamnist.npz": 4_170_669,
    "medmnist/breastmnist.npz": 559_580,
    "medmnist/retinamnist.npz": 3_291_041,
    "medmnist/pneumoniamnist_224.npz": 214_384_716,
    "medmnist/retinamnist_224.npz": 127_992_567,
    "medmnist/breastmnist_224.npz": 30_000_000,  # about 0.03 GB (MedMNIST+ record); the exact size is unpublished
    f"torch-hub/{IMAGENET_RESNET18}": 46_830_571,
}


@dataclass(frozen=True)
class Need:
    """One file a lesson reads: where it lives, its size in bytes, and whether it is already on disk."""

    item: str
    rel: str
    bytes: int | None  # None: the size is unknown before the download
    present: bool


def _torch_hub_file() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_RESNET18


def _files(item: str, profile: str, root: Path) -> list[str]:
    """The data-directory paths ``item`` reads in ``profile`` (``torch-hub/...`` for torchvision weights)."""
    if item.startswith("resnet") and item[6:].isdigit():
        matches = [rel for rel in REMOTE if rel.startswith(f"checkpoints/{item}-")]
        if matches:
            return matches
    if item == "imagenet-resnet18":
        return [f"torch-hub/{IMAGENET_RESNET18}"]
    if item == "bsds500":
        photos = tree("bsds500/val/") + tree("bsds500/test/")
        return photos if all((root / rel).exists() for rel in photos) else ["bsds500/BSR_bsds500.tgz"]
    if item == "cifar10":
        if profile == "quick" and (root / "cifar10" / "test").is_dir():
            return tree("cifar10/test/")
        return ["cifar10/cifar-10-python.tar.gz"]
    if item == "mnist":
        parts = ("t10k",) if profile == "quick" else ("train", "t10k")
        return [f"MNIST/raw/{p}-{kind}-idx{n}-ubyte.gz" for p in parts for kind, n in (("images", 3), ("labels", 1))]
    if item == "mnist_m":
        return _files("mnist", profile, root) + _files("bsds500", profile, root)
    if item == "usps":
        return ["usps/usps.t.bz2"] + ([] if profile == "quick" else ["usps/usps.bz2"])
    if item == "omniglot":
        if profile == "quick":
            return [f"omniglot/original_zips/images_background_small{k}.zip" for k in (1, 2)]
        return ["omniglot/images_background.zip", "omniglot/images_evaluation.zip"]
    flag, _, size = item.partition("_")
    if flag in MEDMNIST and (not size or (size.isdigit() and int(size) in MEDMNIST_SIZES)):
        return [f"medmnist/{flag}{'' if not size or size == '28' else '_' + size}.npz"]
    raise ValueError(f"Unknown item {item!r}: use a dataset name (e.g. 'cifar10', 'pneumoniamnist_224'), "
                     f"'resnet20'/'resnet32'/'resnet44'/'resnet56' or 'imagenet-resnet18'.")


def needs(items: Iterable[str], profile: str | None = None, data_dir: str | Path | None = None) -> list[Need]:
    """Every file ``items`` read in ``profile`` (default: the active one), each listed once."""
    chosen = config.resolve_profile(profile)
    root = Path(data_dir) if data_dir is not None else config.data_dir()
    out, seen = [], set()
    for item in items:
        for rel in _files(item, chosen, root):
            if rel in seen:
                continue
            seen.add(rel)
            path = _torch_hub_file() if rel.startswith("torch-hub/") else root / rel
            present = path.is_file()
            out.append(Need(item, rel, path.stat().st_size if present else PUBLISHED_BYTES.get(rel), present))
    return out


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n / 2**10:,.0f} KiB"


def _summary(todo: list[Need]) -> str:
    """``"≈ 163 MiB: cifar-10-python.tar.gz (163 MiB), …"`` for the files still to download."""
    if not todo:
        return "nothing: every file is already there"
    known = sum(n.bytes or 0 for n in todo)
    names = ", ".join(f"{Path(n.rel).name} ({_mb(n.bytes) if n.bytes else 'size unknown'})" for n in todo[:4])
    more = f" and {len(todo) - 4} more files" if len(todo) > 4 else ""
    return f"≈ {_mb(known)}: {names}{more}"


def profile_note(quick: Sequence[str], full: Sequence[str] | None = None, profile: str | None = None,
                 data_dir: str | Path | None = None) -> str:
    """Which profile runs, what each profile reads for this lesson, what is still to download, and how to switch.

    ``quick``: the items this lesson reads in ``quick``; ``full``: in ``full`` (default: the same items).
    """
    chosen = config.resolve_profile(profile)
    root = Path(data_dir) if data_dir is not None else config.data_dir()
    why = ("chosen in the setup cell or by $COURSE_PROFILE" if profile or os.environ.get("COURSE_PROFILE")
           else "the default " + ("with a GPU" if chosen == "full" else "without a GPU"))
    plans = {p: needs(items, p, root) for p, items in (("quick", quick), ("full", full or quick))}
    size = lambda p: sum(n.bytes or 0 for n in plans[p])
    lines = [f"Profile: {chosen} ({why}). Data directory: {root}"]
    for p, what in (("quick", "small deterministic splits of the offline data, CPU-sized training"),
                    ("full", "official splits and real training budgets, meant for a GPU")):
        todo = [n for n in plans[p] if not n.present]
        label = f"{p} (this run)" if p == chosen else p
        lines.append(f"* {label}: {what}; reads {len(plans[p])} files (≈ {_mb(size(p))}); downloads {_summary(todo)}.")
    lines.append('Switch: in the setup cell write course_lib.setup("quick") (a fast pass, any machine) or '
                 'course_lib.setup("full"); or set COURSE_PROFILE before starting the kernel. '
                 "Download sizes are the publishers'; files on disk are measured.")
    return "\n".join(lines)
