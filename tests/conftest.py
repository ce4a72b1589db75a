"""Fixtures: a small, synthetic data directory in the offline mirror's layout.

Every file is generated here, and its sha256 replaces the package's checksum table for the test,
so the data layer's real code paths (verify, read, carve, cache, download) run on it.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import data as data_mod
from course_lib.data import datasets, files

N_DIGITS = 100  # 10 per class


def _idx(arr: np.ndarray) -> bytes:
    magic = (0x08 << 8) | arr.ndim
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes())


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _digits(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A learnable toy digit set: class c lights up row band c."""
    y = np.repeat(np.arange(10), N_DIGITS // 10)
    x = rng.integers(0, 30, size=(len(y), 28, 28)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 2 + 2 * c: 4 + 2 * c, 4:24] = 255
    return x, y


def build_fake_mirror(root: Path) -> dict[str, bytes]:
    """Write the synthetic mirror under ``root``; return {relpath: bytes}."""
    rng = np.random.default_rng(0)
    out: dict[str, bytes] = {}
    x, y = _digits(rng)
    out["MNIST/raw/t10k-images-idx3-ubyte.gz"] = _idx(x)
    out["MNIST/raw/t10k-labels-idx1-ubyte.gz"] = _idx(y)
    lines = []
    for c in range(10):
        for _ in range(10):
            vals = rng.uniform(-1, 1, 256)
            lines.append(f"{c + 1} " + " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(vals)))
    out["usps/usps.t.bz2"] = bz2.compress("\n".join(lines).encode())
    for c, cls in enumerate(datasets.CIFAR10_CLASSES):
        for k in range(5):
            img = np.full((32, 32, 3), 20 * c, dtype=np.uint8)
            img[k] = 255
            out[f"cifar10/test/{cls}/{cls}_s_{k:06d}.png"] = _png(img)
    for split_sizes, flag, ch in (((30, 6, 10), "breastmnist", 1), ((25, 5, 10), "retinamnist", 3)):
        arrays = {}
        for split, n in zip(("train", "val", "test"), split_sizes):
            shape = (n, 28, 28) if ch == 1 else (n, 28, 28, 3)
            arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
            arrays[f"{split}_labels"] = (np.arange(n) % (2 if ch == 1 else 5)).reshape(n, 1).astype(np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        out[f"medmnist/{flag}.npz"] = buf.getvalue()
    for k, alphabets in ((1, ["Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"]),
                         (2, ["Greek", "Japanese_(katakana)", "Latin", "Sanskrit", "Tagalog"])):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for a in alphabets:
                for ch_i in (1, 2):
                    for d in range(1, 4):
                        img = np.full((105, 105), 255, dtype=np.uint8)
                        img[10 * ch_i: 10 * ch_i + 20, 10 * d: 10 * d + 5] = 0
                        z.writestr(f"images_background_small{k}/{a}/character{ch_i:02d}/{ch_i:04d}_{d:02d}.png",
                                   _png(img))
        out[f"omniglot/original_zips/images_background_small{k}.zip"] = buf.getvalue()
    for split in ("val", "test"):
        for k in range(3):
            photo = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(photo).save(buf, format="JPEG")
            out[f"bsds500/{split}/{k}.jpg"] = buf.getvalue()
    from course_lib.models import CifarResNet

    with torch.random.fork_rng(devices=[]):  # the same weights whichever tests ran before (and not seed 0's,
        torch.manual_seed(12345)               # which zoo's random-init source uses)
        sd = CifarResNet(20).state_dict()
    raw = {f"module.{k.replace('fc.', 'linear.', 1)}": v for k, v in sd.items() if "num_batches" not in k}
    buf = io.BytesIO()
    torch.save({"state_dict": raw, "best_prec1": 0.0}, buf)
    out["checkpoints/resnet20-12fca82f.th"] = buf.getvalue()
    for rel, blob in out.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(blob)
    return out


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch):
    """A synthetic data dir; COURSE_DATA_DIR points at it, offline, quick profile, fresh caches."""
    root = tmp_path / "data"
    blobs = build_fake_mirror(root)
    monkeypatch.setattr(files, "SHA256", {rel: hashlib.sha256(b).hexdigest() for rel, b in blobs.items()})
    monkeypatch.setattr(files, "REMOTE", {})
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_RUN_DIR", str(tmp_path / "runs"))
    data_mod._built.cache_clear()
    yield root
    data_mod._built.cache_clear()


@pytest.fixture(autouse=True)
def _one_thread():
    """Unit tests use tiny tensors: intra-op threads only add overhead (and contend on a 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def sandbox_required():
    """The grader's sandbox (bubblewrap) works here; else skip with the reason, or fail under
    ``COURSE_REQUIRE_SANDBOX=1`` (set by .ci/run)."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import sandbox

    try:
        sandbox.probe(sandbox.Limits())
    except sandbox.SandboxUnavailable as err:
        if os.environ.get("COURSE_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"COURSE_REQUIRE_SANDBOX=1 but: {err}")
        pytest.skip(f"no sandbox here: {err}")
