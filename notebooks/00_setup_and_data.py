# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Setup and data
#
# <a href="https://colab.research.google.com/github/transfer-learning-course/transfer-learning-course/blob/main/notebooks/00_setup_and_data.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# **章との対応 (chapter section):** なし。このノートブックは環境とデータの準備のためのもので、章のどの節にも対応しません
# (no section of the chapter).
#
# **概要:** 講座で使うライブラリ `course_lib` と実行プロファイルを設定し、すべてのデータセットをチェックサムで確かめて
# サンプルを表示します。DANN の論文と同じ方法で MNIST-M を作り、以降のレッスンの出発点となる事前学習済み
# CIFAR-10 ResNet-20 の精度を測ります。
#
# **用語集 (glossary):** 英語と日本語の用語対応は [docs/glossary.md](../docs/glossary.md) にあります
# (Colab で開いている場合は docs/glossary.md in the course repository を見てください)。
#
# This notebook checks that your environment works before the lessons start. It
#
# 1. sets up `course_lib` and tells you which **profile** you are in,
# 2. loads every dataset of the course, checks each file against its checksum and shows samples,
# 3. builds MNIST-M the way the DANN paper did, once inline and once with `course_lib`, and checks that both agree,
# 4. measures the pretrained CIFAR-10 ResNet-20 that several lessons start from.
#
# **Profiles.** `quick` runs on a 2-core CPU within 90 s per lesson (the README lists measured
# runtimes), with small splits carved
# out of what the offline data mirror holds. `full` is for a Colab GPU: official splits, downloaded
# when missing. The profile comes from the environment variable `COURSE_PROFILE`; without it you get
# `full` when a GPU is present and `quick` otherwise.
#
# **Threads.** A sum of floats split over 2 threads is rounded differently from the same sum over 8,
# so the numbers a lesson prints depend on how many threads torch uses. In `quick` on a CPU,
# `course_lib.setup()` therefore pins torch to 2 threads, the count of the machine that measured the
# README's results, whatever your core count. Set `COURSE_THREADS` to override it; your numbers may then
# differ slightly from the README's, whose Results section records a run of every notebook with one
# thread (all assertions held).

# %% [markdown]
# **Profiles.** The same notebook runs in two profiles. `quick` uses small, deterministic splits and
# CPU-sized training (every lesson is sized for at most 60 s on a 2-core CPU, every exercise for 90 s); `full` uses the official
# splits and real training budgets, and is the default whenever a GPU is present, so on Colab. The setup
# cell below prints which profile runs, what this notebook reads, and what `full` downloads the first
# time, with sizes. For a fast pass on Colab, write `course_lib.setup("quick")` in that cell.

# %%
# Colab-safe setup: install course_lib only when it is missing, and never replace the runtime's torch.
import importlib.metadata as _md
import importlib.util
import subprocess
import sys
import tempfile

if importlib.util.find_spec("course_lib") is None:
    pins = []
    for pkg in ("torch", "torchvision"):
        try:
            pins.append(f"{pkg}=={_md.version(pkg)}")
        except _md.PackageNotFoundError:
            pass
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(pins))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", f.name,
                    "git+https://github.com/transfer-learning-course/transfer-learning-course.git"], check=True)

# %%
import os
import platform

import numpy as np
import torch

import course_lib
from course_lib import data, models, plots

cfg = course_lib.setup()
# Which profile runs, what this notebook reads, and what the full profile downloads the first time:
print(data.profile_note(["cifar10", "mnist", "mnist_m", "usps", "pneumoniamnist", "breastmnist",
                        "retinamnist", "omniglot", "resnet20", "resnet32", "resnet44", "resnet56"]))

# %% [markdown]
# ## 1. The environment
#
# The course's code is device-agnostic: everything goes to `cfg.device`. On a CPU-only machine that is
# `cpu`; on Colab with a GPU runtime it is `cuda`.

# %%
print(f"python      {platform.python_version()}")
print(f"torch       {torch.__version__} (CUDA available: {torch.cuda.is_available()})")
print(f"course_lib  {course_lib.__version__}")
print(f"CPU cores   {os.cpu_count()}, torch threads {torch.get_num_threads()} (set by course_lib.setup: {cfg.threads})")
print(f"profile     {cfg.profile}")
print(f"data dir    {cfg.data_dir}  (set COURSE_DATA_DIR to change it)")
print(f"runs dir    {cfg.run_dir}   (checkpoints go here, never into the notebook's folder)")
assert cfg.profile in ("quick", "full")
assert cfg.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
assert torch.get_num_threads() == cfg.threads

# %% [markdown]
# ## 2. Every dataset, checked and shown
#
# `data.load(name, split)` returns a `Dataset` of `(float image C×H×W in [0, 1], int label)`. Before a
# file is read, its sha256 (or the publisher's md5) is compared with the value the course ships; a
# corrupted or truncated file raises an error naming the file and the expected checksum. Images stay
# in one tensor per split, so there is no per-item PIL round trip.
#
# In the `quick` profile, CIFAR-10, MNIST and USPS are **smaller, carved splits**: the offline mirror
# holds only their official *test* sets, so train/val/test are a stratified 60/10/30 carve of them.
# `data.describe(name)` says where each split comes from.

# %%
rows = []
for name in data.NAMES:
    splits = {s: data.load(name, s) for s in data.SPLITS}
    shape = tuple(splits["train"].data.shape[1:])
    rows.append((name, *(len(splits[s]) for s in data.SPLITS), shape, len(splits["train"].classes)))
    print(f"{name:15s} {data.describe(name)}")

print(f"\n{'dataset':15s} {'train':>7s} {'val':>6s} {'test':>6s}  image       classes")
for name, n_tr, n_va, n_te, shape, k in rows:
    print(f"{name:15s} {n_tr:7,d} {n_va:6,d} {n_te:6,d}  {str(shape):11s} {k}")

# %%
for name in data.NAMES:
    ds = data.load(name, "train")
    idx = torch.linspace(0, len(ds) - 1, 16).long()  # spread over the split, deterministic
    fig = plots.show_grid(ds.images[idx], ds.labels[idx], None if name == "omniglot" else ds.classes,
                          title=f"{name} (train): {len(ds):,} images", ncols=16)

# %% [markdown]
# The official splits of MedMNIST are kept in both profiles, and their sizes are fixed by the
# dataset's authors. We check them, and we check that the quick carve's splits add up to the official
# test sets (that the carve is a partition, with no image lost or duplicated, is unit-tested in
# `tests/test_data.py`):

# %%
assert [len(data.load("pneumoniamnist", s)) for s in data.SPLITS] == [4708, 524, 624]
assert [len(data.load("breastmnist", s)) for s in data.SPLITS] == [546, 78, 156]
if cfg.quick:
    for name, total in (("cifar10", 10_000), ("mnist", 10_000), ("usps", 2_007)):
        assert sum(len(data.load(name, s)) for s in data.SPLITS) == total, name
    omni = {s: set(data.load("omniglot", s).classes) for s in data.SPLITS}
    alphabets = {s: {c.split("/")[0] for c in omni[s]} for s in data.SPLITS}
    assert not (alphabets["train"] & alphabets["test"]), "meta-train and meta-test must not share alphabets"

# %% [markdown]
# ## 3. MNIST-M, inline first
#
# Ganin et al. (DANN, 2016) built MNIST-M by blending each MNIST digit over a random patch of a colour
# photo from BSDS500: every pixel becomes |patch − digit|, so the digit shows up as inverted colours of
# the photo. Here is one digit, done by hand:

# %%
from PIL import Image

mnist_test = data.load("mnist", "test")
digit = mnist_test.data[0, 0].numpy()  # (28, 28) uint8
photo_path = sorted((cfg.data_dir / "bsds500" / "val").glob("*.jpg"))[0]
photo = np.asarray(Image.open(photo_path).convert("RGB"))  # (321, 481, 3) or (481, 321, 3)
rng = np.random.default_rng(0)
top, left = rng.integers(photo.shape[0] - 28 + 1), rng.integers(photo.shape[1] - 28 + 1)
patch = photo[top:top + 28, left:left + 28]  # (28, 28, 3)
inline = np.abs(patch.astype(np.int16) - digit[:, :, None].astype(np.int16)).astype(np.uint8)

# %% [markdown]
# `course_lib.data.datasets.blend` is the tested version of that rule, on whole arrays in (N, C, H, W)
# layout. It must give exactly our pixels. The library then draws photos and crop positions from a
# fixed seed (`random_patches`), so MNIST-M is the same on every machine.

# %%
from course_lib.data.datasets import blend

lib = blend(digit[None, None], patch.transpose(2, 0, 1)[None])  # (1, 3, 28, 28)
assert np.array_equal(lib[0].transpose(1, 2, 0), inline)

mnist_m_test = data.load("mnist_m", "test")
assert torch.equal(mnist_m_test.labels, mnist_test.labels)  # same digits, same labels, new domain
as_float = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float() / 255
fig = plots.show_grid(torch.stack([as_float(digit)[None].expand(3, -1, -1), as_float(patch.transpose(2, 0, 1)),
                                   as_float(inline.transpose(2, 0, 1)), mnist_m_test.images[0]]),
                      ncols=4, title="digit · patch · |patch − digit| · the library's MNIST-M image")

# %% [markdown]
# ## 4. The pretrained CIFAR-10 ResNet-20
#
# `models.cifar_resnet(depth)` loads the CIFAR-10 ResNets of He et al. (2016) trained by
# Y. Idelbayev (akamaster/pytorch_resnet_cifar10, depths 20/32/44/56). The model **normalises its own
# input** with the statistics it was trained with, so you feed it the `[0, 1]` tensors that
# `data.load("cifar10", ...)` returns; there is no preprocessing to get wrong.
#
# Inline, normalising by hand is `(x - mean) / std` per channel; the model's first module does exactly that:

# %%
resnet20 = models.cifar_resnet(20).to(cfg.device).eval()
x = data.load("cifar10", "test").images[:8].to(cfg.device)
mean = torch.tensor(models.CIFAR_MEAN, device=cfg.device).view(1, 3, 1, 1)
std = torch.tensor(models.CIFAR_STD, device=cfg.device).view(1, 3, 1, 1)
assert torch.allclose(resnet20.normalize(x), (x - mean) / std)

# %% [markdown]
# Now its accuracy on all 10,000 official CIFAR-10 test images. In the `quick` profile those are the
# union of the three carved splits; in `full` they are the `test` split.

# %%
from course_lib.loops import extract, make_loader

if cfg.quick:
    parts = [data.load("cifar10", s) for s in data.SPLITS]
    test_all = data.ImageDataset(torch.cat([p.data for p in parts]), torch.cat([p.labels for p in parts]),
                                 parts[0].classes, "cifar10", "all 10,000 test images")
else:
    test_all = data.load("cifar10", "test")
assert len(test_all) == 10_000
logits, labels = extract(resnet20, make_loader(test_all, batch_size=500), device=cfg.device)
acc20 = (logits.argmax(1) == labels).float().mean().item()
print(f"ResNet-20 on CIFAR-10 test: measured {100 * acc20:.2f}%  |  published (upstream README) "
      f"{models.PUBLISHED_TOP1[20]:.2f}%")
assert acc20 >= 0.91, "the pretrained ResNet-20 should reach at least 91% on CIFAR-10 test"
course_lib.record("resnet20_cifar10_test_acc", acc20)
course_lib.record("resnet20_logit_sum", logits.double().sum())  # a checksum of all 10,000 x 10 test logits

# %%
import matplotlib.pyplot as plt
from sklearn.metrics import confusion_matrix

cm = confusion_matrix(labels, logits.argmax(1), normalize="true")
fig, ax = plt.subplots(figsize=(5, 4.5))
ax.imshow(cm, cmap="Blues")
ax.set_xticks(range(10), test_all.classes, rotation=90), ax.set_yticks(range(10), test_all.classes)
ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(f"ResNet-20, {100 * acc20:.1f}% top-1")
fig.tight_layout()
worst = int(np.argmin(np.diag(cm)))
course_lib.record("resnet20_per_class_recall", np.diag(cm))
print(f"hardest class: {test_all.classes[worst]} ({100 * cm[worst, worst]:.1f}% recall)")

# %% [markdown]
# ## 5. What a corrupted file looks like
#
# The course never uses a file whose checksum is wrong. To see the error without touching your data,
# we copy one file into a scratch directory, cut it short, and ask the data layer to verify it:

# %%
import shutil
from pathlib import Path

from course_lib.data.files import ensure
from course_lib.data.integrity import ChecksumError

with tempfile.TemporaryDirectory() as scratch:
    rel = "usps/usps.t.bz2"
    copy = os.path.join(scratch, rel)
    os.makedirs(os.path.dirname(copy))
    shutil.copyfile(cfg.data_dir / rel, copy)
    with open(copy, "r+b") as f:
        f.truncate(1000)
    try:
        ensure(Path(scratch), rel, "usps")
        raise AssertionError("a truncated file must not verify")
    except ChecksumError as err:
        print(err)

# %% [markdown]
# Everything is in place. Next: `01_transferability`.

# %% [markdown]
# ## References
#
# The papers this notebook cites. A number labelled *the paper's* is that paper's own result on its own setting,
# quoted for comparison; it was not measured here. The course-wide bibliography is
# [docs/references.md](../docs/references.md) (docs/references.md in the course repository).
#
# * **Ganin, Ustinova, Ajakan, Germain, Larochelle, Laviolette, Marchand & Lempitsky (2016).** Domain-Adversarial Training of Neural Networks. *Journal of Machine Learning Research* 17(59). How MNIST-M is built (each pixel |photo patch − digit|); no number quoted.
# * **Arbeláez, Maire, Fowlkes & Malik (2011).** Contour Detection and Hierarchical Image Segmentation (BSDS500). *IEEE Transactions on Pattern Analysis and Machine Intelligence* 33(5). The photos behind MNIST-M's backgrounds; no number quoted.
# * **He, Zhang, Ren & Sun (2016).** Deep Residual Learning for Image Recognition (ResNet). *CVPR 2016.* The CIFAR-10 ResNet architecture; the published accuracy printed beside ours is the weights' upstream README's (akamaster/pytorch_resnet_cifar10), not the paper's.
