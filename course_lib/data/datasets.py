"""Readers for each dataset: raw files -> uint8 arrays (N, C, H, W) and int64 labels per split.

``quick`` carves train/val/test deterministically out of what the offline mirror holds (for
CIFAR-10, MNIST and USPS that is their official *test* sets); ``full`` uses the official splits and
carves only a validation set out of the official training set.
"""

from __future__ import annotations

import bz2
import gzip
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from .files import ensure, ensure_bsds, ensure_tree
from .integrity import offline

Splits = dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (uint8 images (N,C,H,W), int64 labels (N,))

SPLIT_SEED = 20241  # fixed: which image lands in which split never depends on the lesson's seed
QUICK_FRACTIONS = {"train": 0.6, "val": 0.1, "test": 0.3}
FULL_VAL_FRACTION = 0.1

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DIGITS = [str(d) for d in range(10)]


def carve(labels: np.ndarray, fractions: dict[str, float], seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Stratified, deterministic split of ``range(len(labels))`` into named parts (sorted indices)."""
    rng = np.random.default_rng(seed)
    names, fr = list(fractions), np.array(list(fractions.values()), dtype=float)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum(fr / fr.sum()) * len(idx)).astype(int)
        for name, lo, hi in zip(names, np.r_[0, cuts[:-1]], cuts):
            parts[name].append(idx[lo:hi])
    return {n: np.sort(np.concatenate(p)) for n, p in parts.items()}


def _quick(x: np.ndarray, y: np.ndarray) -> Splits:
    return {s: (x[i], y[i]) for s, i in carve(y, QUICK_FRACTIONS).items()}


def _full(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> Splits:
    parts = carve(y_train, {"train": 1 - FULL_VAL_FRACTION, "val": FULL_VAL_FRACTION})
    return {"train": (x_train[parts["train"]], y_train[parts["train"]]),
            "val": (x_train[parts["val"]], y_train[parts["val"]]), "test": (x_test, y_test)}


# ---------------------------------------------------------------- MNIST (idx files, read directly)
def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped) as a numpy array; torchvision's MNIST class needs all four files."""
    raw = gzip.decompress(path.read_bytes())
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (2049, 2051):
        raise ValueError(f"{path} is not an MNIST idx file (magic {magic})")
    ndim = magic % 256
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(bytearray(raw), dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: {data.size} values for shape {shape}")
    return data.reshape(shape)


def _mnist_pair(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(ensure(root, f"MNIST/raw/{prefix}-images-idx3-ubyte.gz", "mnist"))
    y = read_idx(ensure(root, f"MNIST/raw/{prefix}-labels-idx1-ubyte.gz", "mnist"))
    return x[:, None], y.astype(np.int64)


def mnist(root: Path, profile: str) -> Splits:
    if profile == "quick":
        return _quick(*_mnist_pair(root, "t10k"))
    return _full(*_mnist_pair(root, "train"), *_mnist_pair(root, "t10k"))


# ---------------------------------------------------------------- USPS (LIBSVM bz2, as torchvision)
def read_usps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's USPS format: lines ``label i:v ...`` with 256 values in [-1, 1], labels 1..10."""
    rows = [line.split() for line in bz2.decompress(path.read_bytes()).decode().splitlines() if line.strip()]
    x = np.asarray([[v.split(":")[1] for v in r[1:]] for r in rows], dtype=np.float32).reshape(-1, 1, 16, 16)
    y = np.asarray([int(float(r[0])) - 1 for r in rows], dtype=np.int64)
    return np.clip((x + 1) / 2 * 255, 0, 255).round().astype(np.uint8), y


def usps(root: Path, profile: str) -> Splits:
    test = read_usps(ensure(root, "usps/usps.t.bz2", "usps"))
    if profile == "quick":
        return _quick(*test)
    return _full(*read_usps(ensure(root, "usps/usps.bz2", "usps")), *test)


# ---------------------------------------------------------------- CIFAR-10 (mirror PNGs or official tarball)
def _cifar_tarball(root: Path) -> dict[str, dict]:
    batches = {}
    with tarfile.open(ensure(root, "cifar10/cifar-10-python.tar.gz", "cifar10")) as tar:
        for m in tar.getmembers():
            name = Path(m.name).name
            if name.startswith(("data_batch_", "test_batch")):
                batches[name] = pickle.load(tar.extractfile(m), encoding="latin1")
    return batches


def _cifar_arrays(batch_list: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    x = np.concatenate([b["data"] for b in batch_list]).reshape(-1, 3, 32, 32)
    y = np.concatenate([b["labels"] for b in batch_list]).astype(np.int64)
    names = [n for b in batch_list for n in b["filenames"]]
    return x, y, names


def cifar10_test_images(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 official test images, ordered by (class, original file name).

    Read from the mirror's PNG folder when it exists, else from the official tarball: both orders agree.
    """
    if (root / "cifar10" / "test").is_dir() or offline():
        paths = ensure_tree(root, "cifar10/test/", "cifar10")
        keyed = sorted((CIFAR10_CLASSES.index(p.parent.name), p.name, p) for p in paths)
        x = np.stack([np.asarray(Image.open(p).convert("RGB")) for _, _, p in keyed]).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x), np.array([c for c, _, _ in keyed], dtype=np.int64)
    x, y, names = _cifar_arrays([_cifar_tarball(root)["test_batch"]])
    order = sorted(range(len(y)), key=lambda i: (y[i], names[i]))
    return x[order], y[order]


def cifar10(root: Path, profile: str) -> Splits:
    if profile == "quick":
        return _quick(*cifar10_test_images(root))
    batches = _cifar_tarball(root)
    x_tr, y_tr, _ = _cifar_arrays([batches[f"data_batch_{i}"] for i in range(1, 6)])
    x_te, y_te, _ = _cifar_arrays([batches["test_batch"]])
    return _full(x_tr, y_tr, x_te, y_te)


# ---------------------------------------------------------------- MedMNIST (the medmnist package)
def medmnist_flag(flag: str, root: Path, size: int = 28) -> Splits:
    """Official train/val/test splits, read by the ``medmnist`` package after our checksum check."""
    import medmnist

    info = medmnist.INFO[flag]
    suffix = "" if size == 28 else f"_{size}"
    rel = f"medmnist/{flag}{suffix}.npz"
    ensure(root, rel, flag, remote=(info[f"url{suffix}"], f"md5:{info[f'MD5{suffix}']}"))
    cls = getattr(medmnist, info["python_class"])
    out = {}
    for split in ("train", "val", "test"):
        ds = cls(split=split, root=str(root / "medmnist"), size=size, download=False)
        x = ds.imgs if ds.imgs.ndim == 4 else ds.imgs[..., None]
        out[split] = (np.ascontiguousarray(x.transpose(0, 3, 1, 2)), ds.labels.reshape(-1).astype(np.int64))
    return out


def medmnist_classes(flag: str) -> list[str]:
    import medmnist

    labels = medmnist.INFO[flag]["label"]
    return [labels[str(i)] for i in range(len(labels))]


# ---------------------------------------------------------------- Omniglot (PNGs read from the zips)
#: quick: the mirror's two small background sets (8 distinct alphabets), split by alphabet.
OMNIGLOT_QUICK = {"train": ["Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"],
                  "val": ["Tagalog"], "test": ["Japanese_(katakana)", "Sanskrit"]}


def _omniglot_zip(path: Path, size: int) -> dict[str, list[np.ndarray]]:
    """``"Alphabet/characterNN" -> list of (size, size) uint8 images``, strokes bright on black."""
    chars: dict[str, list[np.ndarray]] = {}
    with zipfile.ZipFile(path) as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".png")):
            alphabet, char = Path(name).parts[-3:-1]
            img = Image.open(io.BytesIO(z.read(name))).convert("L").resize((size, size), Image.LANCZOS)
            chars.setdefault(f"{alphabet}/{char}", []).append(255 - np.asarray(img))
    return chars


def omniglot(root: Path, profile: str, size: int = 28) -> tuple[Splits, dict[str, list[str]]]:
    """Character classes split by alphabet, so meta-train and meta-test never share an alphabet."""
    if profile == "quick":
        chars: dict[str, list[np.ndarray]] = {}
        for k in (1, 2):
            chars.update(_omniglot_zip(ensure(root, f"omniglot/original_zips/images_background_small{k}.zip",
                                              "omniglot"), size))
        groups = OMNIGLOT_QUICK
    else:
        background = _omniglot_zip(ensure(root, "omniglot/images_background.zip", "omniglot"), size)
        evaluation = _omniglot_zip(ensure(root, "omniglot/images_evaluation.zip", "omniglot"), size)
        alphabets = sorted({c.split("/")[0] for c in background})
        groups = {"train": [a for i, a in enumerate(alphabets) if i % 6 != 5],
                  "val": [a for i, a in enumerate(alphabets) if i % 6 == 5],
                  "test": sorted({c.split("/")[0] for c in evaluation})}
        chars = {**background, **evaluation}
    splits, classes = {}, {}
    for split, alphabets in groups.items():
        names = sorted(c for c in chars if c.split("/")[0] in alphabets)
        x = np.stack([img for c in names for img in chars[c]])[:, None]
        y = np.concatenate([np.full(len(chars[c]), i, dtype=np.int64) for i, c in enumerate(names)])
        splits[split], classes[split] = (x, y), names
    return splits, classes


# ---------------------------------------------------------------- MNIST-M (built as in Ganin et al.)
MNIST_M_SEED = 1234


def bsds_photos(root: Path) -> list[np.ndarray]:
    """The 300 checksum-verified BSDS500 val+test photos as (H, W, 3) uint8 arrays."""
    return [np.asarray(Image.open(p).convert("RGB")) for p in ensure_bsds(root)]


def blend(digits: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """The MNIST-M rule, ``|patch - digit|`` per pixel and channel.

    digits: (N, 1, H, W) uint8; patches: (N, 3, H, W) uint8.  Returns (N, 3, H, W) uint8.
    """
    if digits.ndim != 4 or digits.shape[1] != 1:
        raise ValueError(f"digits must have shape (N, 1, H, W), got {digits.shape}")
    if patches.shape != (digits.shape[0], 3, *digits.shape[2:]):
        raise ValueError(f"patches must have shape {(digits.shape[0], 3, *digits.shape[2:])}, got {patches.shape}")
    return np.abs(patches.astype(np.int16) - digits.astype(np.int16)).astype(np.uint8)


def random_patches(photos: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random (3, size, size) crops, each from a random photo (H, W, 3) uint8."""
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for i, p in enumerate(rng.integers(len(photos), size=n)):
        photo = photos[p]
        top, left = rng.integers(photo.shape[0] - size + 1), rng.integers(photo.shape[1] - size + 1)
        out[i] = photo[top:top + size, left:left + size].transpose(2, 0, 1)
    return out


def blend_mnist_m(digits: np.ndarray, photos: list[np.ndarray], seed: int = MNIST_M_SEED) -> np.ndarray:
    """MNIST-M from MNIST digits (N, 1, 28, 28) uint8 -> (N, 3, 28, 28) uint8; deterministic given ``seed``."""
    return blend(digits, random_patches(photos, len(digits), digits.shape[-1], np.random.default_rng(seed)))


def mnist_m(root: Path, profile: str) -> Splits:
    """Same digits, labels and splits as ``mnist(root, profile)``, blended over BSDS500 crops."""
    photos = bsds_photos(root)
    digits = mnist(root, profile)
    return {s: (blend_mnist_m(x, photos, seed=MNIST_M_SEED + k), y) for k, (s, (x, y)) in enumerate(digits.items())}
