"""Micro-benchmarks behind three of the course's performance claims; writes results/microbench-<profile>.json.

Usage: python tools/microbench.py [--profile quick|full] [--threads 1] [--out PATH]

1. MMD²: ``course_lib.adaptation.mmd2`` (RBF, fixed σ, biased V-statistic, as the chapter computes it) against
   the chapter's broadcast Gaussian kernel (§3.3, re-implemented below as the baseline) for N = M = 256 ... 2048
   points of dimension D = 256: time, peak memory, and both float32 values' relative error against the float64
   value (course_lib promises 1e-6; the script stops if it is exceeded).
2. Lesson 02's setting: a frozen pretrained CIFAR ResNet-20 and a linear head on 2,000 PneumoniaMNIST images
   for 5 epochs, the frozen forward pass every epoch against features cached once (the extraction counted).
3. Input pipeline: the chapter's per-item transform (§5.1: ``ToPILImage``, ``Resize(256)``, ``CenterCrop(224)``,
   ``ToTensor``, ``Normalize``) against a tensor-backed dataset whose batches are preprocessed as whole tensors
   (``course_lib.pipeline.torchvision_backbone``'s preprocessing), images per second through a DataLoader.

Every ratio is measured within one run of this script (both sides on the same machine, the same minute),
and both sides must compute the same thing (the same MMD², the same trained head, batches of the same shape),
or the script stops with an error.  Everything runs on the CPU with ``--threads`` threads, in either profile:
``--profile`` only names the output file.
Peak memory (Linux): the process's resident-set high-water mark (VmHWM in /proc/self/status) is reset
through /proc/self/clear_refs before each call; peak = VmHWM after the call - VmRSS before it.  The script
re-executes itself with MALLOC_MMAP_THRESHOLD_=65536 so that freed buffers go back to the OS and cannot hide
a later allocation.  Elsewhere peak memory is recorded as null.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
STATUS = Path("/proc/self/status")


# ------------------------------------------------------------------------------------------- measurement helpers
def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", STATUS.read_text(), re.M).group(1))


def measure(fn, repeats: int = 1) -> tuple[float, float | None, object]:
    """(best wall seconds over ``repeats``, peak extra resident MiB of one call or None, fn's result)."""
    peak = None
    if STATUS.exists():
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    best = time.perf_counter() - t0
    if STATUS.exists():
        peak = (_status_kib("VmHWM") - before) / 1024
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best, peak, out


# ----------------------------------------------------------------------------------------------------- 1. MMD
def chapter_mmd(source_features: torch.Tensor, target_features: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """The chapter's §3.3 ``compute_mmd_loss(kernel='rbf')``, quoted (comments translated), σ made a parameter:

        def gaussian_kernel(x, y, sigma=1.0):
            x = x.unsqueeze(1)  # (N_s, 1, D)
            y = y.unsqueeze(0)  # (1, N_t, D)
            diff = x - y  # (N_s, N_t, D)
            dist_sq = torch.sum(diff ** 2, dim=2)  # (N_s, N_t)
            return torch.exp(-dist_sq / (2 * sigma ** 2))
        xx = gaussian_kernel(source_features, source_features).mean()
        yy = gaussian_kernel(target_features, target_features).mean()
        xy = gaussian_kernel(source_features, target_features).mean()
        mmd_loss = xx + yy - 2 * xy
    """
    def gaussian_kernel(x, y):
        diff = x.unsqueeze(1) - y.unsqueeze(0)  # (N_s, N_t, D)
        return torch.exp(-torch.sum(diff ** 2, dim=2) / (2 * sigma ** 2))

    xx = gaussian_kernel(source_features, source_features).mean()
    yy = gaussian_kernel(target_features, target_features).mean()
    xy = gaussian_kernel(source_features, target_features).mean()
    return xx + yy - 2 * xy


@torch.no_grad()
def bench_mmd(sizes: list[int], dim: int = 256, sigma: float = 16.0) -> list[dict]:
    """Per N: seconds, peak MiB of both implementations, the (N, N, D) float32 size and both values."""
    from course_lib import adaptation

    rows = []
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        x = torch.randn(n, dim, generator=gen)
        y = torch.randn(n, dim, generator=gen) + 0.1
        t_lib, m_lib, v_lib = measure(lambda x=x, y=y: adaptation.mmd2(x, y, "rbf", sigma, unbiased=False), 3)
        # best of 2 at least: first touching the chapter's (N, N, D) tensor (8 GiB at N = 2048) varied 3x in time
        t_ch, m_ch, v_ch = measure(lambda x=x, y=y: chapter_mmd(x, y, sigma), 3 if n <= 512 else 2)
        if not torch.isclose(v_lib, v_ch, rtol=1e-3):
            raise RuntimeError(f"N={n}: the two implementations disagree ({v_lib.item()} vs {v_ch.item()})")
        v64 = adaptation.mmd2(x.double(), y.double(), "rbf", sigma, unbiased=False).item()  # the reference
        err_lib, err_ch = abs(v_lib.item() - v64) / abs(v64), abs(v_ch.item() - v64) / abs(v64)
        if err_lib > 1e-6:
            raise RuntimeError(f"N={n}: course_lib's float32 MMD² is {err_lib:.1e} from float64, promised 1e-6")
        rows.append({"n": n, "d": dim, "sigma": sigma, "seconds_course_lib": t_lib, "seconds_chapter": t_ch,
                     "speedup": t_ch / t_lib, "peak_mib_course_lib": m_lib, "peak_mib_chapter": m_ch,
                     "nnd_float32_mib": n * n * dim * 4 / 2 ** 20,
                     "value_course_lib": v_lib.item(), "value_chapter": v_ch.item(), "value_float64": v64,
                     "rel_err_course_lib": err_lib, "rel_err_chapter": err_ch})
        print(f"  MMD N={n}: chapter {t_ch:.3f} s / {m_ch} MiB, course_lib {t_lib:.4f} s / {m_lib} MiB; "
              f"relative error vs float64: chapter {err_ch:.1e}, course_lib {err_lib:.1e}", flush=True)
    return rows


# -------------------------------------------------------------------------------- 2. cached frozen features
def _epochs(head: nn.Module, inputs: torch.Tensor, y: torch.Tensor, epochs: int, batch: int,
            feature_fn=None) -> nn.Module:
    """Train ``head`` with Adam for ``epochs``; inputs go through ``feature_fn`` (no grad) first if given."""
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(batch):
            xb = inputs[idx]
            if feature_fn is not None:
                with torch.no_grad():
                    xb = feature_fn(xb)
            loss = F.cross_entropy(head(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head


def bench_cached_features(n_images: int = 2000, epochs: int = 5, batch: int = 128,
                          dataset: str = "pneumoniamnist") -> dict:
    """Frozen ResNet-20 forward every epoch vs features extracted once, then the same head training."""
    from course_lib import data, images, models

    ds = data.load(dataset, "train")
    x = images.to_rgb(ds.images[:n_images], 32)  # (n, 3, 32, 32), lesson 02's input
    y = ds.labels[:n_images]
    backbone = models.cifar_resnet(20, pretrained=True).eval()

    torch.manual_seed(0)
    t_live, _, live_head = measure(lambda: _epochs(nn.Linear(64, 2), x, y, epochs, batch, backbone.features))

    def cached():
        with torch.no_grad():
            feats = torch.cat([backbone.features(b) for b in x.split(500)])
        return _epochs(nn.Linear(64, 2), feats, y, epochs, batch)

    torch.manual_seed(0)
    t_cached, _, cached_head = measure(cached)
    diff = (live_head.weight - cached_head.weight).abs().max().item()
    if diff > 1e-4:  # the same training, only faster
        raise RuntimeError("cached features trained a different head than the frozen forward pass: "
                           f"max |dw| = {diff:.2e}")
    print(f"  frozen forward every epoch {t_live:.2f} s, cached features {t_cached:.2f} s", flush=True)
    return {"images": n_images, "epochs": epochs, "batch": batch, "seconds_forward_every_epoch": t_live,
            "seconds_cached_including_extraction": t_cached, "speedup": t_live / t_cached,
            "max_abs_head_weight_diff": diff}


# ------------------------------------------------------------------------------------------ 3. input pipeline
class ChapterDataset(Dataset):
    """The chapter's §5.1 dataset: ``images`` (N, H, W, 3) uint8, the transform applied per item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx):
        image = self.images[idx]
        label = self.labels[idx]
        if self.transform:
            image = self.transform(image)
        return image, label


def bench_input_pipeline(n_images: int = 1000, batch: int = 64, dataset: str = "pneumoniamnist") -> dict:
    """Images/s to (B, 3, 224, 224) normalised batches: per-item PIL pipeline vs tensor batches."""
    from torchvision import transforms

    from course_lib import data, pipeline

    ds = data.load(dataset, "train")
    x, y = ds.images[:n_images], ds.labels[:n_images]  # (n, 1, 28, 28) float in [0, 1]
    val_transform = transforms.Compose([  # the chapter's §5.1 val_transform, verbatim
        transforms.ToPILImage(),
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    uint8_rgb = (x * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()  # (n, 28, 28, 3)
    chapter = DataLoader(ChapterDataset(uint8_rgb, y.numpy(), val_transform), batch_size=batch)
    preprocess = pipeline.torchvision_backbone(weights=None).preprocess
    tensor = DataLoader(TensorDataset(x, y), batch_size=batch)

    def consume(loader, fn=lambda b: b):
        shapes = set()
        for xb, _ in loader:
            shapes.add(tuple(fn(xb).shape[1:]))
        return shapes

    def write_only():  # the bound: allocate and fill each (B, 3, 224, 224) output batch, nothing else
        return {tuple(torch.ones(len(xb), 3, 224, 224).shape[1:]) for xb in x.split(batch)}

    t_chapter, _, s_chapter = measure(lambda: consume(chapter))
    t_tensor, _, s_tensor = measure(lambda: consume(tensor, preprocess), 3)
    t_bound, _, _ = measure(write_only, 3)
    if s_chapter != s_tensor or s_tensor != {(3, 224, 224)}:
        raise RuntimeError(f"the two pipelines give different batches: {s_chapter} vs {s_tensor}")
    print(f"  chapter per-item PIL {n_images / t_chapter:.0f} img/s, tensor batches {n_images / t_tensor:.0f} img/s, "
          f"writing the output alone {n_images / t_bound:.0f} img/s", flush=True)
    return {"images": n_images, "batch": batch, "output": [3, 224, 224],
            "images_per_s_chapter_per_item_pil": n_images / t_chapter,
            "images_per_s_tensor_batches": n_images / t_tensor, "speedup": t_chapter / t_tensor,
            "images_per_s_output_write_bound": n_images / t_bound, "speedup_bound": t_chapter / t_bound}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=os.environ.get("COURSE_PROFILE", "quick"), choices=("quick", "full"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: comparable on a shared machine)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if STATUS.exists() and "MALLOC_MMAP_THRESHOLD_" not in os.environ:  # see the module docstring
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    torch.set_num_threads(args.threads)
    out = args.out or ROOT / "results" / f"microbench-{args.profile}.json"
    t0 = time.perf_counter()
    print("1. MMD², chapter broadcast kernel vs course_lib.adaptation.mmd2 (D = 256, σ = 16, V-statistic)")
    mmd = bench_mmd([256, 512, 1024, 2048])
    print("2. lesson 02: frozen ResNet-20 + linear head, 2,000 images x 5 epochs")
    cached = bench_cached_features()
    print("3. input pipeline to ResNet-18 input (3, 224, 224), 1,000 PneumoniaMNIST images")
    loader = bench_input_pipeline()
    result = {"profile": args.profile, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "torch": torch.__version__, "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "memory_method": "VmHWM - VmRSS (/proc/self/status, VmHWM reset via /proc/self/clear_refs), "
                               "MALLOC_MMAP_THRESHOLD_=65536" if STATUS.exists() else None,
              "mmd": mmd, "cached_features": cached, "input_pipeline": loader,
              "seconds_total": time.perf_counter() - t0}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nratios (each measured in this run, {result['threads']} thread(s)):")
    for r in mmd:
        mem = (f"{r['peak_mib_chapter'] / r['peak_mib_course_lib']:.0f}x less peak memory "
               f"({r['peak_mib_chapter']:.0f} vs {r['peak_mib_course_lib']:.1f} MiB)"
               if r["peak_mib_chapter"] and r["peak_mib_course_lib"] else "peak memory not measured")
        print(f"  MMD² N={r['n']:5d}: course_lib {r['speedup']:.1f}x faster than the chapter's kernel; {mem}")
    print(f"  cached features: {cached['speedup']:.1f}x faster than the frozen forward pass every epoch")
    print(f"  tensor-backed batches: {loader['speedup']:.1f}x the images/s of the chapter's per-item PIL pipeline")
    print(f"wrote {out} ({result['seconds_total']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
