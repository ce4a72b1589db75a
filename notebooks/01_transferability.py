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
# # 01 · What transfers, and how to predict it
#
# <a href="https://colab.research.google.com/github/transfer-learning-course/transfer-learning-course/blob/main/notebooks/01_transferability.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# **章との対応 (chapter section):** §1 「転移学習の基礎」: §1.1 「転移学習とは」、§1.2 「転移学習の種類」、
# §1.3 「転移可能性の評価」
#
# **概要:** 事前学習済みモデルの特徴が別のタスクでどれだけ役立つかを測り、章の転移可能性スコアの問題点を一つずつ
# 確かめます。そのうえで LogME・LEEP・H-score という公開された推定量で多数のソースモデルを採点し、どのスコアが
# 実際の転移性能の順位を予測できるのか、どんな場合に予測できないのかを調べます。
#
# **用語集 (glossary):** 英語と日本語の用語対応は [docs/glossary.md](../docs/glossary.md) にあります
# (Colab で開いている場合は docs/glossary.md in the course repository を見てください)。
#
# This lesson mirrors the chapter's §1 (転移学習の基礎): §1.1 what transfer learning is, §1.2 the kinds
# of transfer, §1.3 how to judge *in advance* whether a pretrained model will transfer. We
#
# 1. look inside a pretrained CIFAR-10 ResNet and measure what its features are worth on chest X-rays,
# 2. run the chapter's `compute_transferability_score` and take it apart, one small cell per problem,
# 3. score a zoo of twelve source models on three targets with three published estimators (LogME, LEEP,
#    H-score) and the chapter's score, and check which score predicts how well each source transfers,
#    where that works, and why the chapter's score sometimes seems to.
#
# **Kinds of transfer (§1.2).** Pan & Yang (2010) sort transfer by what changes: *inductive* (the
# target task differs, target labels exist: CIFAR-10 → pneumonia, this lesson), *transductive* (same
# task, new domain, no target labels: MNIST → MNIST-M, lesson 04) and *unsupervised* (no labels on
# either side). "ResNet → custom architecture" in the chapter's table is not one of them (ERRATA G7).

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
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import spearmanr, weightedtau
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

import course_lib
from course_lib import adaptation, data, images, loops, models, score_ranking, transferability, zoo

cfg = course_lib.setup()
# Which profile runs, what this notebook reads, and what the full profile downloads the first time:
print(data.profile_note(["cifar10", "pneumoniamnist", "usps", "mnist", "mnist_m", "omniglot", "resnet20",
                        "resnet32", "resnet44", "resnet56"]))

# %% [markdown]
# ## 1. What transfers (§1.1)
#
# The target task of this lesson is **PneumoniaMNIST**: 28×28 chest X-rays, normal vs pneumonia. The
# source is a ResNet-20 trained on CIFAR-10 (airplanes, cats, trucks, ...). Grayscale X-rays become
# 3×32×32 with `images.to_rgb(x, 32)`. In the `quick` profile we use a fixed random subset of the
# PneumoniaMNIST training split (1,000 of its 4,708 images); the test split is the official one (624).

# %%
N_TARGET = cfg.pick(1000, None)  # None: the whole training split
pneu = {s: data.load("pneumoniamnist", s) for s in data.SPLITS}
if N_TARGET is not None:
    keep = torch.randperm(len(pneu["train"]), generator=torch.Generator().manual_seed(cfg.seed))[:N_TARGET]
    pneu["train"] = pneu["train"].subset(keep.sort().values)
target = {s: (images.to_rgb(ds.images, 32), ds.labels) for s, ds in pneu.items()}
print({s: tuple(x.shape) for s, (x, _) in target.items()}, "| classes:", pneu["train"].classes)
print("train label counts:", target["train"][1].bincount().tolist())

# %% [markdown]
# ### The first layer: 16 filters of 3×3×3
#
# The first convolution of a CIFAR ResNet has 16 filters, each 3×3 over the RGB channels. Each is drawn
# below as a tiny colour image (rescaled to [0, 1] per filter). Pretrained filters are smooth colour and
# edge detectors; the filters of the same architecture at its random initialisation are noise.

# %%
resnet20 = models.cifar_resnet(20).to(cfg.device).eval()
torch.manual_seed(cfg.seed)
scratch20 = models.cifar_resnet(20, pretrained=False).to(cfg.device).eval()


def filter_tiles(conv: nn.Conv2d) -> torch.Tensor:
    w = conv.weight.detach().cpu()  # (16, 3, 3, 3)
    lo, hi = w.amin((1, 2, 3), keepdim=True), w.amax((1, 2, 3), keepdim=True)
    return (w - lo) / (hi - lo)


fig, axes = plt.subplots(2, 16, figsize=(12, 1.9))
for row, (name, net) in enumerate((("pretrained", resnet20), ("random init", scratch20))):
    for i, ax in enumerate(axes[row]):
        ax.imshow(filter_tiles(net.conv1)[i].permute(1, 2, 0)), ax.axis("off")
    axes[row, 0].set_title(name, fontsize=8, loc="left")
fig.suptitle("conv1 filters (16 × 3×3×3)")
fig.tight_layout()
assert resnet20.conv1.weight.shape == (16, 3, 3, 3)

# %% [markdown]
# ### Feature maps on real images
#
# What those filters respond to: the 16 channels after `conv1 → bn1 → ReLU`, for a CIFAR-10 test image
# and for a chest X-ray. Edges and colour blobs are generic; they are what transfers most easily.

# %%
cifar_test = data.load("cifar10", "test")
images = torch.stack([cifar_test.images[0], target["test"][0][0]]).to(cfg.device)
with torch.no_grad():
    maps = F.relu(resnet20.bn1(resnet20.conv1(resnet20.normalize(images)))).cpu()  # (2, 16, 32, 32)
fig, axes = plt.subplots(2, 9, figsize=(12, 3))
for row in range(2):
    axes[row, 0].imshow(images[row].cpu().permute(1, 2, 0))
    for j in range(8):
        axes[row, j + 1].imshow(maps[row, j], cmap="viridis")
    for ax in axes[row]:
        ax.axis("off")
axes[0, 0].set_title(f"CIFAR: {cifar_test.classes[cifar_test.labels[0]]}", fontsize=8)
axes[1, 0].set_title("X-ray", fontsize=8)
fig.suptitle("input, then the first 8 of 16 feature maps after conv1 → bn1 → ReLU")
fig.tight_layout()

# %% [markdown]
# ### A linear probe: pretrained vs random features
#
# The honest test of "do the features transfer" is to *use* them: freeze the network, take its 64
# penultimate features (`model.features`), and fit a logistic regression on the target's training
# images. The control is the very same architecture at its random initialisation
# (`pretrained=False`): whatever it reaches comes from the architecture alone, not from CIFAR-10.
# `loops.extract` runs the frozen network once and caches the features; we measure test accuracy
# and ROC AUC on the 624 official test X-rays.

# %%
def probe(net: nn.Module) -> dict[str, float]:
    """Logistic regression on frozen penultimate features: test accuracy and AUC."""
    cache = {s: loops.extract(net.features, TensorDataset(*target[s]), device=cfg.device) for s in ("train", "test")}
    scaler = StandardScaler().fit(cache["train"][0].numpy())
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(cache["train"][0].numpy()), cache["train"][1].numpy())
    p = clf.predict_proba(scaler.transform(cache["test"][0].numpy()))[:, 1]
    y = cache["test"][1].numpy()
    return {"acc": float(((p > 0.5) == y).mean()), "auc": float(roc_auc_score(y, p))}


probes = {"pretrained (CIFAR-10)": probe(resnet20), "random init": probe(scratch20)}
for name, r in probes.items():
    print(f"{name:22s} test accuracy {r['acc']:.3f}   test AUC {r['auc']:.3f}")
gap = probes["pretrained (CIFAR-10)"]["auc"] - probes["random init"]["auc"]
print(f"gap in AUC (pretrained - random): {gap:+.3f}")
assert min(r["auc"] for r in probes.values()) > 0.85, "both frozen feature sets should give a useful X-ray classifier"
assert 0 < gap < 0.05, "on X-rays, CIFAR-10 pretraining improves the linear probe's AUC, by less than 0.05"
course_lib.record("probe_auc", {k: r["auc"] for k, r in probes.items()})
course_lib.record("probe_acc", {k: r["acc"] for k, r in probes.items()})

# %% [markdown]
# Measured: the CIFAR-10 features are only slightly better in AUC than the features of an *untrained*
# ResNet-20 (the gap printed above is under 0.05), and at the 0.5 threshold the ranking can even flip.
# Random convolutional features are already good generic features for 28-pixel X-rays; what CIFAR-10 adds
# on top of that is small here. Raghu et al. (NeurIPS 2019, "Transfusion") reported a similar picture
# for ImageNet → medical imaging (their observation, on their data). Whether a source transfers depends
# on the target, which is why we want to *predict* it.

# %% [markdown]
# ## 2. The chapter's score (§1.3), taken apart
#
# The chapter proposes one number for "how well will this source transfer", computed from source
# features and target features. Here is its function, unchanged except `torch.tensor` →
# `torch.as_tensor` (ERRATA 1.6, a warning), with its own usage example:

# %%
# §1.3, the chapter's code
def compute_mmd(x, y):
    xx = torch.mm(x, x.t())
    yy = torch.mm(y, y.t())
    xy = torch.mm(x, y.t())
    return xx.mean() + yy.mean() - 2 * xy.mean()


def compute_transferability_score(source_features, target_features):
    correlation, _ = spearmanr(source_features.flatten(), target_features.flatten())
    mmd_distance = compute_mmd(torch.as_tensor(source_features), torch.as_tensor(target_features))
    return correlation - 0.1 * mmd_distance.item()


torch.manual_seed(cfg.seed)
source_feats = torch.randn(100, 512)
target_feats = torch.randn(100, 512)
chapter_usage = compute_transferability_score(source_feats, target_feats)
print(f"Transferability Score: {chapter_usage:.4f}   (both sets are N(0, I): the same distribution)")

# %% [markdown]
# Two sets drawn from the *same* distribution score about −1. The next cells show why, on real
# features: ResNet-20 features of two disjoint random halves of 1,000 CIFAR-10 test images (`a`, `b`:
# the same distribution) and of 500 chest X-rays (`t`).

# %%
pick = torch.randperm(len(cifar_test), generator=torch.Generator().manual_seed(cfg.seed))[:1000]
with torch.no_grad():
    cifar_feats = resnet20.features(cifar_test.images[pick].to(cfg.device)).cpu().double()
    xray_feats = resnet20.features(target["train"][0][:500].to(cfg.device)).cpu().double()
a, b, t = cifar_feats[:500], cifar_feats[500:], xray_feats
print("a, b, t:", tuple(a.shape), tuple(b.shape), tuple(t.shape))

# %% [markdown]
# **Its "MMD" is the distance between the means (ERRATA 1.1).** §1.3: `xx = torch.mm(x, x.t())` …
# `return xx.mean() + yy.mean() - 2 * xy.mean()`. With the linear kernel k(u, v) = u·v, the three
# means expand to ‖mean(x)‖² + ‖mean(y)‖² − 2 mean(x)·mean(y) = ‖mean(x) − mean(y)‖². Anything beyond
# the means (spread, shape, modes) is invisible to it. `adaptation.mmd2(..., kernel="linear",
# unbiased=False)` is the same estimator:

# %%
for name, (x, y) in {"a vs b": (a, b), "a vs t": (a, t)}.items():
    chap = compute_mmd(x, y).item()
    means = (x.mean(0) - y.mean(0)).pow(2).sum().item()
    lib = adaptation.mmd2(x, y, kernel="linear", unbiased=False).item()
    print(f"{name}:  chapter {chap:.6f}   ||mean_x - mean_y||^2 {means:.6f}   mmd2(linear, biased) {lib:.6f}")
    assert np.isclose(chap, means, rtol=1e-9) and np.isclose(lib, means, rtol=1e-9)

# %% [markdown]
# **It is biased (ERRATA 1.2).** Two independent samples of the same distribution never have exactly
# equal means, so ‖mean(x) − mean(y)‖² is positive on average: about tr(Cov)·(1/N + 1/M), which is
# D·(1/N + 1/M) = 512·0.02 = 10.24 for the chapter's N(0, I) example. That is where its −1 comes from:
# −0.1 × 10.24. The unbiased estimator (U-statistic) drops the diagonal terms k(x_i, x_i) and is 0 on
# average when the distributions agree. Inline, for the linear kernel:

# %%
def mmd2_linear_unbiased(x, y):
    n, m = len(x), len(y)
    kxx, kyy = x @ x.T, y @ y.T
    return ((kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
            - 2 * (x @ y.T).mean())


rows = {"chapter usage, N(0, I), D=512": (source_feats.double(), target_feats.double()),
        "CIFAR features a vs b, D=64": (a, b)}
for name, (x, y) in rows.items():
    floor = torch.cat([x, y]).var(0).sum().item() * (1 / len(x) + 1 / len(y))
    biased, unbiased = compute_mmd(x, y).item(), mmd2_linear_unbiased(x, y).item()
    print(f"{name:30s} biased {biased:8.4f}  predicted floor {floor:8.4f}  unbiased {unbiased:+.4f}")
    assert torch.isclose(mmd2_linear_unbiased(x, y), adaptation.mmd2(x, y, kernel="linear"))
    assert 0.6 * floor < biased < 1.5 * floor, "the biased estimate sits at its floor although x and y agree"
    assert abs(unbiased) < 0.4 * floor, "the unbiased estimate is near 0"
assert -1.3 < chapter_usage < -0.8  # = Spearman (about 0) - 0.1 * (about 10.24)

# %% [markdown]
# **It depends on the scale (ERRATA 1.4).** §1.3: `transferability_score = correlation - 0.1 *
# mmd_distance.item()`. The correlation is bounded and scale-free, the distance is neither: multiply
# both feature sets by 10 (nothing about the data changed) and the distance grows 100-fold.

# %%
s1, s10 = compute_transferability_score(a, t), compute_transferability_score(10 * a, 10 * t)
print(f"score(a, t) = {s1:.3f}    score(10a, 10t) = {s10:.3f}")
print(f"distance part: {compute_mmd(a, t).item():.4f} -> {compute_mmd(10 * a, 10 * t).item():.4f}")
assert np.isclose(compute_mmd(10 * a, 10 * t).item(), 100 * compute_mmd(a, t).item(), rtol=1e-9)
assert s10 < 10 * s1 < 0  # same data, a score more than ten times lower

# %% [markdown]
# **The Spearman term means nothing (ERRATA 1.3).** §1.3: `spearmanr(source_features.flatten(),
# target_features.flatten())` pairs value *(i, j)* of the source with value *(i, j)* of the target, but
# source image *i* and target image *i* have nothing to do with each other. On the chapter's own data
# (same distribution) it is about 0. Renumbering the 64 neurons (the same features, in another order)
# changes it. And an affine map of `a` that moves it far away from every real feature vector gives
# exactly +1, the best possible value, while its mean distance explodes.

# %%
perm = torch.randperm(a.shape[1], generator=torch.Generator().manual_seed(cfg.seed))
far = 0.01 * a + 5
rho = {"chapter usage (same distribution)": spearmanr(source_feats.flatten(), target_feats.flatten())[0],
       "a vs b (same distribution)": spearmanr(a.flatten(), b.flatten())[0],
       "a vs a, neurons renumbered": spearmanr(a.flatten(), a[:, perm].flatten())[0],
       "a vs 0.01·a + 5": spearmanr(a.flatten(), far.flatten())[0]}
for name, r in rho.items():
    print(f"Spearman {name:36s} {r:+.3f}")
print(f"mean distance a vs 0.01·a + 5: {compute_mmd(a, far).item():.1f} (a vs b: {compute_mmd(a, b).item():.3f})")
assert compute_mmd(a, far).item() > 100 * compute_mmd(a, b).item()  # the distance explodes
assert abs(rho["chapter usage (same distribution)"]) < 0.05
assert np.isclose(rho["a vs 0.01·a + 5"], 1.0) and rho["a vs 0.01·a + 5"] > rho["a vs a, neurons renumbered"] + 0.5

# %% [markdown]
# **Discrepancy is not transferability (ERRATA 1.5).** A kernel that sees more than means (RBF with
# the median heuristic, `adaptation.mmd2`, unbiased) confirms that CIFAR and X-ray features are far
# apart, much farther than two CIFAR halves. Yet section 1 measured that these very features give a
# useful X-ray classifier. How far the target is from the source says little about how useful the
# source's features are *for the target's labels*; estimators that answer that question need the target
# labels. Inline first, the RBF kernel's unbiased MMD² with the median bandwidth:

# %%
def mmd2_rbf_inline(x, y):
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    sigma = torch.cdist(z, z)[~torch.eye(len(z), dtype=torch.bool)].median()
    k = torch.exp(-d2 / (2 * sigma ** 2))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return ((kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean())


rbf_ab, rbf_at = adaptation.mmd2(a, b), adaptation.mmd2(a, t)
assert torch.isclose(mmd2_rbf_inline(a, t), rbf_at)
print(f"MMD² (RBF, unbiased): CIFAR a vs CIFAR b {rbf_ab.item():+.4f}   CIFAR a vs X-rays {rbf_at.item():.4f}")
assert rbf_at > 0.1 and rbf_at > 10 * abs(rbf_ab)

# %% [markdown]
# ## 3. Estimators that use the target labels
#
# * **LEEP** (Nguyen et al. 2020) needs only the source head's class probabilities θ(x) on the target
#   images. It builds the joint P(y, z) of target label y and source class z, turns it into P(y | z),
#   and scores how well the "expected empirical predictor" Σ_z P(y | z) θ_z(x) predicts the labels.
# * **LogME** (You et al. 2021) fits a Bayesian linear model from the features to each one-hot label
#   column and reports the *maximised log evidence* per sample, averaged over classes: how well the
#   features explain the labels, with the complexity of the fit paid for automatically.
# * **H-score** (Bao et al. 2019): tr(cov(f)⁻¹ cov(E[f | y])), the share of feature variance that
#   separates the classes.
#
# LEEP inline, in five lines of torch, then the tested version:

# %%
f20, probs20 = zoo.source_outputs(resnet20, target["train"][0], device=cfg.device)  # (N, 64), (N, 10)
y_tr = target["train"][1]
joint = torch.zeros(2, probs20.shape[1], dtype=torch.float64).index_add_(0, y_tr, probs20.double()) / len(y_tr)
cond = joint / joint.sum(0, keepdim=True)  # P(y | z)
leep_inline = torch.log((probs20.double() @ cond.T)[torch.arange(len(y_tr)), y_tr]).mean().item()
print(f"LEEP of CIFAR ResNet-20 on X-rays: inline {leep_inline:.5f}   course_lib {transferability.leep(probs20, y_tr):.5f}")
assert np.isclose(leep_inline, transferability.leep(probs20, y_tr), rtol=1e-6)

# %% [markdown]
# LogME's evidence for one class at given α (prior precision) and β (noise precision) is a closed
# formula. Inline, from the eigen-decomposition of FᵀF; `transferability.logme_evidence` finds the
# α, β that maximise it (MacKay's fixed point) and we check its value against ours:

# %%
fit = transferability.logme_evidence(f20, y_tr)
Fm, n, d = f20.double(), len(f20), f20.shape[1]
s = torch.linalg.eigvalsh(Fm.T @ Fm)
per_class = []
for c, (alpha, beta) in enumerate(zip(fit.alphas, fit.betas)):
    yc = (y_tr == c).double()
    A = alpha * torch.eye(d, dtype=torch.float64) + beta * Fm.T @ Fm
    m = beta * torch.linalg.solve(A, Fm.T @ yc)  # posterior mean of the weights
    ev = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * torch.log(alpha + beta * s).sum()
          - beta / 2 * (yc - Fm @ m).pow(2).sum() - alpha / 2 * m.pow(2).sum() - n / 2 * np.log(2 * np.pi)) / n
    per_class.append(ev.item())
print(f"LogME: inline {np.mean(per_class):.5f}   course_lib {fit.score:.5f}   (alpha {fit.alphas.round(3)}, beta {fit.betas.round(3)})")
assert np.isclose(np.mean(per_class), fit.score, rtol=1e-6)

# %% [markdown]
# ### A zoo of twelve sources
#
# One source tells us nothing about *ranking*. `course_lib.zoo` holds twelve ResNets that all take
# 3×32×32 images and give 64 features and source-class probabilities, chosen to transfer *differently*:
#
# * the four mirrored CIFAR-10 ResNets (depth 20/32/44/56), trained to convergence on 50,000 images;
# * a ResNet-20 at its random initialisation: the floor;
# * seven networks the course trains from scratch on few images for few epochs: MNIST digits (a ResNet-20
#   short and long, a ResNet-32), MNIST-M, Omniglot characters, CIFAR-10 (short), and CIFAR-10 regrouped
#   into *animals vs vehicles* (a source task with only 2 classes).
#
# The course-made sources are trained once (quick: ≤ 4,000 images, ≤ 4 epochs, one CPU thread) and
# cached under `cfg.data_dir / "cache" / "zoo"` with a checksum, as is every source's output on the
# targets below; `make test` fills this cache before the notebooks run (`tools/warm_caches.py`), and a
# student's first run fills it in a few minutes. A corrupted cache file raises an error instead of
# being silently rebuilt.

# %%
SOURCES = list(zoo.SOURCES)
outs = {name: zoo.outputs(name, device=cfg.device) for name in tqdm(SOURCES, desc="zoo outputs")}
print(f"{'source':26s} {'depth':>5s} {'source data':>12s} {'kind':>7s}  how it was trained")
for name, spec in zoo.SOURCES.items():
    how = "published checkpoint" if spec.kind == "mirror" else "seeded initialisation"
    if spec.trained_by_course:
        info = zoo.cache_info(name, device=cfg.device)
        how = (f"{info['n_train']:,} images x {info['recipe']['epochs']} epochs, {len(info['classes'])} classes, "
               f"train acc {info['train_acc']:.2f}")
    print(f"{name:26s} {spec.depth:5d} {spec.dataset:>12s} {spec.kind:>7s}  {how}")

# %% [markdown]
# **Three targets, 1,000 labelled images each** (`zoo.target_splits`):
#
# * `cifar10`: 10 natural-image classes, carved from the CIFAR-10 *test* images (1,000 labelled, the
#   rest for testing), which no source trained on;
# * `usps`: 10 handwritten digits, 16×16 scans from the US postal service (a different digit dataset
#   from MNIST);
# * `pneumoniamnist`: the X-rays of section 1.
#
# **Ground truth.** How well does a source *actually* transfer to a target? We use the linear probe of
# section 1: a logistic regression on the frozen features, fitted on the 1,000 labelled images and
# scored on the held-out test images (accuracy on the 10-class targets, ROC AUC on the X-rays).
# `score_ranking.probe` is the same probe; we check it against the inline one on one source.

# %%
o = outs["cifar10-resnet20"]["pneumoniamnist"]
scaler = StandardScaler().fit(o["train_f"].numpy())
clf = LogisticRegression(C=1.0, max_iter=3000).fit(scaler.transform(o["train_f"].numpy()), o["train_y"].numpy())
auc_inline = roc_auc_score(o["test_y"].numpy(), clf.predict_proba(scaler.transform(o["test_f"].numpy()))[:, 1])
auc_lib = score_ranking.probe_metric(o["test_y"], score_ranking.probe(o["train_f"], o["train_y"], o["test_f"]))
print(f"probe AUC of cifar10-resnet20 on X-rays: inline {auc_inline:.5f}   score_ranking {auc_lib:.5f}")
assert np.isclose(auc_inline, auc_lib, atol=1e-9)

# %% [markdown]
# **Scores.** For every source and target: LogME, LEEP and H-score on the 1,000 labelled images, and the
# chapter's score (`transferability.chapter_score`, the §1.3 function above) between 500 test images
# of the source's own data and 500 target images. Then, per target and score, Kendall's τ and the
# weighted τ against the ground truth over the 12 sources. The weighted τ (`scipy.stats.weightedtau`,
# the LogME paper's measure) weighs mistakes among the best sources more: a practitioner cares about the
# top of the list.
#
# **How noisy is each τ?** The bootstrap, inline first: resample the test set with replacement (the same
# resample for every source, so the comparison stays paired), recompute every source's probe metric, and
# recompute τ; the scores stay fixed. The 5th and 95th percentiles over 1,000 resamples give a 90%
# interval. `score_ranking.rank_agreement` does the same for every score.

# %%
METHODS = ["LogME", "LEEP", "H-score", "chapter"]


def scores_of(o_src: dict, target_name: str) -> dict[str, float]:
    o = o_src[target_name]
    return {"LogME": transferability.logme(o["train_f"], o["train_y"]),
            "LEEP": transferability.leep(o["train_p"], o["train_y"]),
            "H-score": transferability.hscore(o["train_f"], o["train_y"]),
            "chapter": transferability.chapter_score(o_src["source_f"], o["train_f"][: zoo.N_SOURCE_IMAGES])}


probs, truth, scores, boots, agree = {}, {}, {}, {}, {}
for t in tqdm(zoo.TARGETS, desc="targets"):
    probs[t] = [score_ranking.probe(outs[n][t]["train_f"], outs[n][t]["train_y"], outs[n][t]["test_f"]) for n in SOURCES]
    y_test = outs[SOURCES[0]][t]["test_y"]
    truth[t] = np.array([score_ranking.probe_metric(y_test, p) for p in probs[t]])
    rows = [scores_of(outs[n], t) for n in SOURCES]
    scores[t] = {m: np.array([r[m] for r in rows]) for m in METHODS}
    boots[t] = score_ranking.bootstrap_truth(y_test, probs[t], n_boot=1000, seed=cfg.seed)  # (1000, 12)
    agree[t] = score_ranking.rank_agreement(scores[t], truth[t], boots[t])

# the bootstrap of one weighted tau, inline, against the library's
t, m = "usps", "LogME"
rng = np.random.default_rng(cfg.seed)
y_test = outs[SOURCES[0]][t]["test_y"].numpy()
inline = []
for _ in range(1000):
    idx = rng.integers(0, len(y_test), len(y_test))
    inline.append(weightedtau(scores[t][m], [(p[idx].argmax(1) == y_test[idx]).mean() for p in probs[t]])[0])
lo, hi = np.percentile(inline, [5, 95])
print(f"{m} on {t}: weighted tau 90% interval inline [{lo:+.3f}, {hi:+.3f}]   score_ranking "
      f"[{agree[t][m]['wtau_lo90']:+.3f}, {agree[t][m]['wtau_hi90']:+.3f}]")
assert np.isclose(lo, agree[t][m]["wtau_lo90"]) and np.isclose(hi, agree[t][m]["wtau_hi90"])

for t in zoo.TARGETS:
    metric = "AUC" if probs[t][0].shape[1] == 2 else "accuracy"
    print(f"\n{t}: probe test {metric} from {truth[t].min():.3f} ({SOURCES[truth[t].argmin()]}) "
          f"to {truth[t].max():.3f} ({SOURCES[truth[t].argmax()]})")
    for m in METHODS:
        a = agree[t][m]
        print(f"  {m:8s} Kendall tau {a['tau']:+.2f} [{a['tau_lo90']:+.2f}, {a['tau_hi90']:+.2f}]   "
              f"weighted tau {a['wtau']:+.2f} [{a['wtau_lo90']:+.2f}, {a['wtau_hi90']:+.2f}]")

# %%
fig, axes = plt.subplots(len(zoo.TARGETS), len(METHODS), figsize=(14, 9))
for i, t in enumerate(zoo.TARGETS):
    for j, m in enumerate(METHODS):
        ax = axes[i, j]
        ax.scatter(scores[t][m], truth[t], c=["C0" if zoo.SOURCES[n].kind == "mirror" else "C3" if
                                             zoo.SOURCES[n].kind == "random" else "C1" for n in SOURCES])
        if m == "chapter":
            ax.set_xscale("symlog")
        ax.set_title(f"{t}: weighted τ {agree[t][m]['wtau']:+.2f}", fontsize=9)
        ax.set_xlabel(m, fontsize=8) if i == len(zoo.TARGETS) - 1 else None
    axes[i, 0].set_ylabel("probe " + ("AUC" if probs[t][0].shape[1] == 2 else "accuracy"))
fig.suptitle("each dot is a source (blue: CIFAR-10 checkpoints, orange: course-made, red: random init)")
fig.tight_layout()

# %% [markdown]
# **Averaged over the targets.** A score's mean weighted τ over the three targets, with a 90% interval
# from the same bootstrap (`score_ranking.mean_over_targets`), next to the papers' reported observations:

# %%
mean_all = score_ranking.mean_over_targets(agree)
for m in METHODS:
    a = mean_all[m]
    print(f"{m:8s} mean weighted tau over {len(zoo.TARGETS)} targets {a['wtau']:+.3f} "
          f"[{a['wtau_lo90']:+.3f}, {a['wtau_hi90']:+.3f}]")
print("\nFor reference (the papers' observations, not measured here):")
print("  LogME paper (You et al., ICML 2021): scores are judged by the weighted Kendall tau against fine-tuned")
print("  accuracy over zoos of 10+ ImageNet models; LogME ranked best among the estimators it compared.")
print("  TLlib's re-run of the estimators: LEEP's tau is negative on some targets, e.g. Aircraft -0.26.")

# %% [markdown]
# **Where ranking works, and where there is nothing to rank.** On CIFAR-10 and USPS the sources'
# probe results span a wide range (random features are far behind), and the three label-based scores
# rank them well. On the X-rays they do not, and the reason is in the ground truth, not in the scores:
# the random-init network's probe AUC is close to the best source's. We call a target *rankable* when
# the best source beats random features by more than 0.05 (five points of accuracy or AUC) at the lower
# end of the paired bootstrap's 90% interval. This is lesson 02's finding seen from another side: on
# these small X-rays, fine-tuned transfer beats training from scratch by under 0.04 AUC at every label
# count, so there is little transferability to predict.

# %%
floor = SOURCES.index("random-resnet20")
best_minus_floor = {}
for t in zoo.TARGETS:
    best = int(np.argmax(truth[t]))
    d = boots[t][:, best] - boots[t][:, floor]
    best_minus_floor[t] = (truth[t][best] - truth[t][floor], *np.percentile(d, [5, 95]))
    print(f"{t:15s} best ({SOURCES[best]}) - random init: {best_minus_floor[t][0]:+.3f} "
          f"[{best_minus_floor[t][1]:+.3f}, {best_minus_floor[t][2]:+.3f}]")
RANKABLE = [t for t in zoo.TARGETS if best_minus_floor[t][1] > 0.05]
mean_rankable = score_ranking.mean_over_targets({t: agree[t] for t in RANKABLE})
print(f"rankable targets (best - random init > 0.05 at the interval's lower end): {RANKABLE}")
for m in METHODS:
    print(f"{m:8s} mean weighted tau over them {mean_rankable[m]['wtau']:+.3f} "
          f"[{mean_rankable[m]['wtau_lo90']:+.3f}, {mean_rankable[m]['wtau_hi90']:+.3f}]")

# %%
assert len(SOURCES) >= 10 and len(zoo.TARGETS) >= 2
assert RANKABLE == ["cifar10", "usps"] and best_minus_floor["pneumoniamnist"][0] < 0.05
for t in RANKABLE:  # where there is something to rank, LogME and H-score rank it, above the chapter's score
    assert agree[t]["LogME"]["wtau"] >= 0.5 and agree[t]["LogME"]["wtau_lo90"] > agree[t]["chapter"]["wtau_hi90"]
    assert agree[t]["H-score"]["wtau_lo90"] > agree[t]["chapter"]["wtau_hi90"]
assert mean_rankable["LogME"]["wtau"] >= 0.5 and mean_rankable["LogME"]["wtau_lo90"] > mean_rankable["chapter"]["wtau_hi90"]
assert mean_all["LogME"]["wtau_lo90"] > mean_all["chapter"]["wtau_hi90"]  # also averaged over all three targets
assert mean_all["H-score"]["wtau"] > mean_all["chapter"]["wtau"] and mean_all["LEEP"]["wtau"] > mean_all["chapter"]["wtau"]
course_lib.record("zoo_probe_truth", {t: dict(zip(SOURCES, v)) for t, v in truth.items()})
# target -> score -> [value, lo90, hi90] (bootstrap of the test set)
course_lib.record("zoo_kendall_tau", {t: {m: [a["tau"], a["tau_lo90"], a["tau_hi90"]] for m, a in d.items()}
                                      for t, d in agree.items()})
course_lib.record("zoo_weighted_tau", {t: {m: [a["wtau"], a["wtau_lo90"], a["wtau_hi90"]] for m, a in d.items()}
                                       for t, d in agree.items()})
course_lib.record("zoo_weighted_tau_mean", {m: a["wtau"] for m, a in mean_all.items()})
course_lib.record("zoo_weighted_tau_mean_ci90", {m: [a["wtau_lo90"], a["wtau_hi90"]] for m, a in mean_all.items()})
course_lib.record("zoo_rankable", {t: float(t in RANKABLE) for t in zoo.TARGETS})
course_lib.record("zoo_weighted_tau_mean_rankable", {m: [a["wtau"], a["wtau_lo90"], a["wtau_hi90"]]
                                                     for m, a in mean_rankable.items()})

# %% [markdown]
# **Why does the chapter's score win on the X-rays?** Not because it measures transferability: it never
# sees a label. Its distance term, 0.1 · ‖mean(source) − mean(target)‖², grows with the *scale* of the
# features, which differs between networks by a factor of ten (compare the feature norms below). So it
# mostly ranks sources by how small their features are. Two checks, from the data: rank the sources by
# −‖f‖ alone (a "score" that knows nothing else), and recompute the chapter's score after dividing each
# source's features by their mean norm on the target.

# %%
scale_checks = {}
for t in zoo.TARGETS:
    norms = np.array([outs[n][t]["train_f"].norm(dim=1).mean().item() for n in SOURCES])
    assert norms.max() > 10 * norms.min()
    unit = [transferability.chapter_score(outs[n]["source_f"] / k, outs[n][t]["train_f"][: zoo.N_SOURCE_IMAGES] / k)
            for n, k in zip(SOURCES, norms)]
    scale_checks[t] = score_ranking.rank_agreement({"-||f||": -norms, "chapter, unit-norm": unit,
                                                    "chapter": scores[t]["chapter"]}, truth[t], boots[t])
    print(f"{t:15s} feature norms {norms.min():5.1f}-{norms.max():5.1f}   weighted tau: " + "   ".join(
        f"{k} {v['wtau']:+.2f} [{v['wtau_lo90']:+.2f}, {v['wtau_hi90']:+.2f}]" for k, v in scale_checks[t].items()))

# %%
pn = scale_checks["pneumoniamnist"]
assert pn["-||f||"]["wtau"] > 0.3  # feature scale alone ranks the X-ray zoo about as well as the chapter's score
assert pn["chapter, unit-norm"]["wtau"] < pn["chapter"]["wtau"] - 0.2
assert all(scale_checks[t]["chapter, unit-norm"]["wtau"] < 0.3 for t in zoo.TARGETS)  # without scale it has no skill
course_lib.record("zoo_scale_check_weighted_tau", {t: {k: v["wtau"] for k, v in c.items()}
                                                   for t, c in scale_checks.items()})

# %% [markdown]
# **What this measurement shows.**
#
# * **Where the sources really differ** (CIFAR-10, USPS: the best source beats random features by
#   more than 0.05, beyond the test set's noise), the label-based scores rank the zoo well: LogME and
#   H-score reach a weighted τ far above the chapter's score, with 90% intervals that do not overlap.
#   That is the LogME paper's claim, reproduced on a zoo of 12 and two targets.
# * **Where they do not** (the X-rays: random features come within 0.05 AUC of the best source), a
#   score's τ says little, because there is little transferability to predict. The chapter's score
#   looks good there for a reason that has nothing to do with transfer: it prefers networks with small
#   features, and −‖f‖ alone reaches a weighted τ above 0.3. Divide the features by their norm and the
#   chapter's weighted τ drops below 0.3 on every target. Averaged over all three targets, LogME still
#   ranks above it (intervals printed above).
# * The intervals cover only the test set's sampling noise; the labelled set, the source training runs
#   and the probe's regularisation add more. 演習1 (Exercise 1) redraws the labelled set.
# * The ground truth here is a linear probe. The LogME paper ranks against *fine-tuned* accuracy, which
#   costs 12 fine-tuning runs per target; a linear probe is what the frozen-feature scores model
#   directly, and lesson 02 shows how fine-tuning changes the picture on the X-rays.
#
# Next: `02_freezing` (§2.1), which layers to freeze and why BatchNorm needs care.

# %% [markdown]
# ## References
#
# The papers this notebook cites. A number labelled *the paper's* is that paper's own result on its own setting,
# quoted for comparison; it was not measured here. The course-wide bibliography is
# [docs/references.md](../docs/references.md) (docs/references.md in the course repository).
#
# * **Pan & Yang (2010).** S. J. Pan, Q. Yang. A Survey on Transfer Learning. *IEEE Transactions on Knowledge and Data Engineering* 22(10). The kinds of transfer (inductive, transductive, unsupervised); no number quoted.
# * **Raghu, Zhang, Kleinberg & Bengio (2019).** Transfusion: Understanding Transfer Learning for Medical Imaging. *NeurIPS 2019.* The paper's observation that ImageNet features add little on medical images; no number quoted.
# * **Nguyen, Hassner, Seeger & Archambeau (2020).** LEEP: A New Measure to Evaluate Transferability of Learned Representations. *ICML 2020.* The LEEP score; no number quoted from the paper (LEEP's τ of −0.26 on Aircraft is TLlib's re-run, a library benchmark, not the paper's).
# * **You, Liu, Wang & Long (2021).** LogME: Practical Assessment of Pre-trained Models for Transfer Learning. *ICML 2021.* The LogME score and its evaluation by the weighted Kendall τ; the paper's setting: zoos of 10+ ImageNet models, ranked against fine-tuned accuracy.
# * **Bao, Li, Huang, Zhang, Zheng, Zamir & Guibas (2019).** An Information-Theoretic Approach to Transferability in Task Transfer Learning (H-score). *ICIP 2019.* The H-score; no number quoted.
