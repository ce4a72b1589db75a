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
# # Exercise 1 (演習1) · Does a transferability score predict transfer?
#
# <a href="https://colab.research.google.com/github/transfer-learning-course/transfer-learning-course/blob/main/solutions/ex1_transferability.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# **The chapter's exercise.** "Compute the MMD score between ImageNet-, Places365- and COCO-pretrained
# models and a medical-image dataset, and compare it with the real transfer performance."
#
# **Why it cannot be done as written (ERRATA, "Exercises" 1), and what this version fixes.**
#
# * *Three sources give a rank correlation over n = 3 models*, which means nothing (only 6 orderings
#   exist). Here the sources are the course's **zoo of six** ResNets (`course_lib.zoo`): the mirrored
#   CIFAR-10 ResNet-20/32/44/56 and two ResNet-20s the course trains on MNIST digits and on Omniglot
#   characters. ImageNet, Places365 and COCO weights are not in the offline mirror.
# * *"MMD score" is undefined*, and the chapter's §1.3 code is not an MMD: its kernel is linear, so it
#   only compares means (ERRATA 1.1), its estimator is biased (1.2), it adds a meaningless Spearman of
#   unpaired values (1.3) and mixes scales (1.4). Here **MMD** means the *unbiased squared MMD with a
#   Gaussian (RBF) kernel whose bandwidth is the median pairwise distance* (Gretton et al. 2012), between
#   a source model's penultimate features on 200 images of *its own* source data and on 200 target
#   images. A smaller discrepancy is read as a prediction of better transfer, so the score is −MMD².
# * *A discrepancy ignores the target labels* (ERRATA 1.5). So we also score every source with two
#   published estimators that use them: **LEEP** (Nguyen et al. 2020) and **LogME** (You et al. 2021).
# * *No target dataset was named*: here it is **PneumoniaMNIST** (chest X-rays, normal vs pneumonia).
# * *No fine-tuning protocol was given*: here the "real transfer performance" of a source is the **test
#   ROC AUC of a linear probe**: the source network frozen (BatchNorm in eval mode) and a new
#   logistic-regression head (L2, C = 1, on standardised features) trained on the labelled target images,
#   i.e. the chapter's `freeze_strategy='all'` fine-tuning, with the head fitted to convergence instead of
#   a budget of epochs. It is deterministic, so the ranking it gives is not seed noise of a training run.
# * *The comparison* is a rank correlation over sources: Kendall's τ and the weighted τ
#   (`scipy.stats.weightedtau`, the measure of the LogME paper).
#
# You implement four small functions (autograded), then run the experiment with them.

# %% [markdown]
# **Profiles.** The same notebook runs in two profiles. `quick` uses small, deterministic splits and
# CPU-sized training (every lesson is sized for about 90 s on a 2-core CPU); `full` uses the official
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
import itertools
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import kendalltau, weightedtau
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

import course_lib
from course_lib import adaptation, data, features, transferability, zoo

cfg = course_lib.setup()
# Which profile runs, what this notebook reads, and what the full profile downloads the first time:
print(data.profile_note(["cifar10", "pneumoniamnist", "mnist", "omniglot", "resnet20", "resnet32", "resnet44",
                        "resnet56"]))

# %% [markdown]
# ## Part A · Four functions (autograded)

# %% [raw]
# # BEGIN QUESTION
# name: q1
# points: 3

# %% [markdown]
# **Q1 (3 pts) · RBF MMD² with the median heuristic.** Implement `mmd2_rbf(x, y)` for samples
# `x` (N, D) and `y` (M, D), N, M ≥ 2 (N ≠ M allowed):
#
# * bandwidth σ = the **median of the Euclidean distances between distinct points** of the pooled sample
#   z = [x; y] (each pair i ≠ j; use `torch.median`);
# * kernel k(a, b) = exp(−‖a − b‖² / (2σ²));
# * the **unbiased** estimator: mean of k(x_i, x_j) over i ≠ j, plus mean of k(y_i, y_j) over i ≠ j,
#   minus 2 × the mean of k(x_i, y_j) over all pairs (the diagonal terms k(x_i, x_i) = 1 are left out,
#   ERRATA 1.2).
#
# Return a 0-dim tensor. Raise `ValueError` if `x` or `y` is not 2-D, if their feature dimensions differ,
# or if either has fewer than 2 rows. Do not build an (N, M, D) tensor (`torch.cdist` gives distances).

# %%
def mmd2_rbf(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD² between x (N, D) and y (M, D), Gaussian kernel, median-heuristic bandwidth; 0-dim."""
    # BEGIN SOLUTION
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected x (N, D) and y (M, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"need at least 2 samples in x and in y, got {n} and {m}")
    z = torch.cat([x, y])
    d = torch.cdist(z, z)
    sigma = d[~torch.eye(n + m, dtype=torch.bool)].median()
    k = torch.exp(-d.pow(2) / (2 * sigma ** 2))
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
            + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
_g = torch.Generator().manual_seed(0)
_a, _b = torch.randn(60, 5, generator=_g, dtype=torch.float64), torch.randn(50, 5, generator=_g, dtype=torch.float64)
assert mmd2_rbf(_a, _b).ndim == 0, "return a 0-dim tensor"
assert abs(mmd2_rbf(_a, _b).item()) < 0.03, "same distribution: the unbiased MMD² is close to 0"
assert mmd2_rbf(_a, _b + 2.0).item() > 0.3, "a shifted distribution gives a clearly positive MMD²"

# %%
try:
    mmd2_rbf(torch.randn(5, 3), torch.randn(5, 4))
    raise AssertionError("different feature dimensions must raise ValueError")
except ValueError:
    pass

# %%
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
# the definition, by explicit loops, on a tiny sample
_x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
_y = torch.tensor([[3.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
_z = torch.cat([_x, _y])
_dist = sorted(torch.dist(_z[i], _z[j]).item() for i in range(5) for j in range(5) if i != j)
_s = _dist[(len(_dist) - 1) // 2]
_k = lambda p, q: math.exp(-torch.dist(p, q).item() ** 2 / (2 * _s ** 2))
_out = mmd2_rbf(_x, _y)
assert type(_out) is torch.Tensor and _out.ndim == 0
_want = (sum(_k(_x[i], _x[j]) for i in range(3) for j in range(3) if i != j) / 6
         + sum(_k(_y[i], _y[j]) for i in range(2) for j in range(2) if i != j) / 2
         - 2 * sum(_k(_x[i], _y[j]) for i in range(3) for j in range(2)) / 6)
assert abs(mmd2_rbf(_x, _y).item() - _want) < 1e-9
assert abs(mmd2_rbf(_y, _x).item() - _want) < 1e-9  # symmetric
assert abs(mmd2_rbf(10 * _x, 10 * _y).item() - _want) < 1e-9  # the median bandwidth makes it scale-free

# %%
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
_g = torch.Generator().manual_seed(1)
_a, _b = torch.randn(40, 8, generator=_g, dtype=torch.float64), 3 * torch.randn(30, 8, generator=_g, dtype=torch.float64)
assert type(mmd2_rbf(_a, _b)) is torch.Tensor
assert torch.allclose(mmd2_rbf(_a, _b), adaptation.mmd2(_a, _b))  # same mean, different spread: RBF sees it
assert mmd2_rbf(_a, _b).item() > 0.1
for _bad in ((torch.randn(5), torch.randn(5, 1)), (torch.randn(1, 3), torch.randn(4, 3))):
    try:
        mmd2_rbf(*_bad)
        raise AssertionError("1-D input or a single sample must raise ValueError")
    except ValueError:
        pass

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2
# points: 3

# %% [markdown]
# **Q2 (3 pts) · LEEP.** A source model with Z source classes gives, on each target image x_i, its
# softmax probabilities θ(x_i) (a row of `probs`, shape (N, Z)). With target labels y_i in 0..C−1
# (`labels`, shape (N,), C = `labels.max() + 1`):
#
# 1. the empirical joint P̂(y, z) = (1/N) Σ_i θ_z(x_i) · 1[y_i = y], a (C, Z) matrix;
# 2. the conditional P̂(y | z) = P̂(y, z) / Σ_y' P̂(y', z);
# 3. LEEP = (1/N) Σ_i log Σ_z P̂(y_i | z) θ_z(x_i).
#
# Return a Python `float` (≤ 0; higher is better). Work in float64. Raise `ValueError` if `probs` is
# not 2-D or `labels` does not have shape (N,).

# %%
def leep(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """LEEP (Nguyen et al. 2020) from source probabilities (N, Z) and target labels (N,)."""
    # BEGIN SOLUTION
    if probs.ndim != 2 or labels.shape != (len(probs),):
        raise ValueError(f"expected probs (N, Z) and labels (N,), got {tuple(probs.shape)} and {tuple(labels.shape)}")
    p, y = probs.double(), labels.long()
    joint = torch.zeros(int(y.max()) + 1, p.shape[1], dtype=torch.float64).index_add_(0, y, p) / len(y)
    cond = joint / joint.sum(0, keepdim=True)
    return torch.log((p @ cond.T)[torch.arange(len(y)), y]).mean().item()
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
# a source that says nothing (uniform probabilities): the predictor is the class prior, LEEP = mean log prior
_y = torch.tensor([0, 0, 0, 1])
_got = leep(torch.full((4, 3), 1 / 3, dtype=torch.float64), _y)
assert isinstance(_got, float)
assert abs(_got - (3 * math.log(0.75) + math.log(0.25)) / 4) < 1e-9

# %%
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
# a source whose class z determines the target label: LEEP = 0, the best possible
_p = torch.eye(3)[[0, 1, 2, 0, 1, 2]]
assert type(leep(_p, torch.tensor([0, 1, 1, 0, 1, 1]))) is float
assert abs(leep(_p, torch.tensor([0, 1, 1, 0, 1, 1]))) < 1e-12
# a hand-computed case: P(y, z) = [[.35, .15], [.05, .45]], P(y | z) = [[.875, .25], [.125, .75]]
_p = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.0, 1.0]], dtype=torch.float64)
_want = (math.log(0.8125) + math.log(0.5625) + math.log(0.625) + math.log(0.75)) / 4
assert abs(leep(_p, torch.tensor([0, 0, 1, 1])) - _want) < 1e-9
# renumbering the source classes changes nothing; it agrees with the tested library on random data
assert abs(leep(_p[:, [1, 0]], torch.tensor([0, 0, 1, 1])) - _want) < 1e-9
_g = torch.Generator().manual_seed(0)
_p = torch.softmax(torch.randn(50, 7, generator=_g), 1)
_y = torch.randint(0, 3, (50,), generator=_g)
assert abs(leep(_p, _y) - transferability.leep(_p, _y)) < 1e-6
try:
    leep(_p, _y[:10])
    raise AssertionError("labels of the wrong length must raise ValueError")
except ValueError:
    pass

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3
# points: 2

# %% [markdown]
# **Q3 (2 pts) · Kendall's τ.** For two sequences `a`, `b` of n ≥ 2 numbers (paired: a[i] and b[i]
# belong to the same source model), count over all pairs i < j the *concordant* ones
# (sign(a[i] − a[j]) · sign(b[i] − b[j]) > 0) and the *discordant* ones (< 0); a pair tied in `a` or in
# `b` counts as neither. Return τ = (concordant − discordant) / (n(n−1)/2) as a `float` (this is τ-a; with
# no ties it equals `scipy.stats.kendalltau`). Raise `ValueError` if the lengths differ or n < 2.

# %%
def kendall_tau(a, b) -> float:
    """Kendall's tau-a between two equally long sequences of numbers."""
    # BEGIN SOLUTION
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two 1-D sequences of the same length >= 2, got shapes {a.shape} and {b.shape}")
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in itertools.combinations(range(len(a)), 2))
    return float(s / math.comb(len(a), 2))
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
assert abs(kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) - 4 / 6) < 1e-12  # one swapped pair out of 6

# %%
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
assert type(kendall_tau([1, 2, 3], [3, 1, 2])) is float
_rng = np.random.default_rng(0)
for _ in range(5):
    _a, _b = _rng.permutation(7), _rng.permutation(7)
    assert abs(kendall_tau(_a, _b) - kendalltau(_a, _b)[0]) < 1e-12
    assert abs(kendall_tau(np.exp(_a), _b) - kendall_tau(_a, _b)) < 1e-12  # only the order matters
assert kendall_tau([1, 1, 2], [1, 2, 3]) == 2 / 3  # the tied pair counts as neither
for _bad in (([1, 2, 3], [1, 2]), ([1], [1])):
    try:
        kendall_tau(*_bad)
        raise AssertionError("different lengths or n < 2 must raise ValueError")
    except ValueError:
        pass

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4
# points: 2

# %% [markdown]
# **Q4 (2 pts) · How large must τ be, with n models?** If a score were unrelated to the true ranking,
# every ordering of the n sources would be equally likely. Implement `tau_p_value(tau, n)`: the exact
# probability that a random ordering reaches a Kendall τ **at least** `tau` against a fixed one, by
# enumerating all n! permutations (`itertools.permutations`) and using your `kendall_tau`. Compare with
# a tolerance of 1e-9 (τ values are fractions). Raise `ValueError` unless 2 ≤ n ≤ 8 (8! = 40,320).

# %%
def tau_p_value(tau: float, n: int) -> float:
    """P(kendall_tau(random permutation, identity) >= tau) over all n! permutations of n items."""
    # BEGIN SOLUTION
    if not 2 <= n <= 8:
        raise ValueError(f"n must be between 2 and 8, got {n}")
    perms = list(itertools.permutations(range(n)))
    return sum(kendall_tau(p, range(n)) >= tau - 1e-9 for p in perms) / len(perms)
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
assert abs(tau_p_value(1.0, 3) - 1 / 6) < 1e-12  # only 1 of the 3! = 6 orderings is perfect
assert tau_p_value(-1.0, 3) == 1.0

# %%
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
assert type(tau_p_value(1.0, 4)) is float
assert abs(tau_p_value(1.0, 4) - 1 / 24) < 1e-12
assert abs(tau_p_value(2 / 3, 4) - 4 / 24) < 1e-12  # 1 ordering with 0 swapped pairs, 3 with 1
assert abs(tau_p_value(0.6, 6) - 49 / 720) < 1e-12  # at most 3 of 15 pairs swapped: 1+5+14+29 orderings
try:
    tau_p_value(0.5, 9)
    raise AssertionError("n > 8 must raise ValueError")
except ValueError:
    pass

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## Part B · The experiment
#
# **Target data.** A fixed random pool of PneumoniaMNIST training images (quick: 600 of 4,708; full: all
# of them) and the 624 official test images. Grayscale 28×28 becomes 3×32×32 with `features.to_rgb`.

# %%
N_POOL = cfg.pick(600, None)  # None: the whole training split
N_LABELLED = cfg.pick(400, 2000)  # labelled target images per resample
N_MMD = cfg.pick(200, 500)  # images per side for the MMD
N_RESAMPLES = cfg.pick(5, 10)

pneu = {s: data.load("pneumoniamnist", s) for s in ("train", "test")}
keep = torch.arange(len(pneu["train"]))
if N_POOL is not None:
    keep = torch.randperm(len(pneu["train"]), generator=torch.Generator().manual_seed(cfg.seed))[:N_POOL].sort().values
pool_x, pool_y = features.to_rgb(pneu["train"].images[keep], 32), pneu["train"].labels[keep]
test_x, test_y = features.to_rgb(pneu["test"].images, 32), pneu["test"].labels
print(f"pool {tuple(pool_x.shape)}, labels {pool_y.bincount().tolist()} | test {tuple(test_x.shape)}, "
      f"labels {test_y.bincount().tolist()} | classes {pneu['train'].classes}")

# %% [markdown]
# **One forward pass per source.** Each source network runs once (eval mode, no gradients) over the pool,
# the test images and `N_MMD` test images of its own source dataset, giving penultimate features (·, 64)
# and source-class probabilities. The two course-made sources are trained on first use and cached
# (`zoo.load`).

# %%
SOURCES = list(zoo.SOURCES)
outputs = {}
for name in tqdm(SOURCES, desc="forward passes"):
    net = zoo.load(name, device=cfg.device)
    pool_f, pool_p = zoo.source_outputs(net, pool_x, device=cfg.device)
    test_f, _ = zoo.source_outputs(net, test_x, device=cfg.device)
    src_x, _ = zoo.source_images(name, "test", N_MMD, seed=cfg.seed)
    src_f, _ = zoo.source_outputs(net, src_x, device=cfg.device)
    outputs[name] = {"pool_f": pool_f, "pool_p": pool_p, "test_f": test_f, "src_f": src_f.double()}
for name, o in outputs.items():
    print(f"{name:19s} source data {zoo.SOURCES[name].dataset:9s} Z = {o['pool_p'].shape[1]:3d} source classes")

# %% [markdown]
# **Your functions against the course's tested ones**, on these real features, before we rely on them:

# %%
o = outputs["cifar10-resnet20"]
torch.testing.assert_close(mmd2_rbf(o["src_f"], o["pool_f"][:N_MMD].double()),
                           adaptation.mmd2(o["src_f"], o["pool_f"][:N_MMD].double()))
assert abs(leep(o["pool_p"], pool_y) - transferability.leep(o["pool_p"], pool_y)) < 1e-6
_a, _b = np.random.default_rng(cfg.seed).random((2, 6))
assert abs(kendall_tau(_a, _b) - kendalltau(_a, _b)[0]) < 1e-12
print("mmd2_rbf, leep and kendall_tau agree with course_lib / scipy")

# %% [markdown]
# **Scores and probes.** How stable is the ranking? We draw `N_RESAMPLES` labelled sets of
# `N_LABELLED` images from the pool (the same set for every source within a resample). On each, for every
# source: −MMD² (the first `N_MMD` labelled images against the source images), LogME
# (`transferability.logme`, on the features and labels), LEEP (yours), and the linear probe trained on
# that set and scored on the 624 test images (AUC, and accuracy at p = 0.5).

# %%
def evaluate_source(o: dict, idx: torch.Tensor) -> dict[str, float]:
    """The three scores and the linear probe's test AUC / accuracy of one source, on the labelled pool rows idx."""
    f, y = o["pool_f"][idx], pool_y[idx]
    scaler = StandardScaler().fit(f.numpy())
    probe = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(f.numpy()), y.numpy())
    p = probe.predict_proba(scaler.transform(o["test_f"].numpy()))[:, 1]
    return {"-MMD²": -mmd2_rbf(o["src_f"], f[:N_MMD].double()).item(), "LogME": transferability.logme(f, y),
            "LEEP": leep(o["pool_p"][idx], y), "AUC": roc_auc_score(test_y.numpy(), p),
            "acc": float(((p > 0.5) == test_y.numpy()).mean())}


gen = torch.Generator().manual_seed(cfg.seed)
resamples = []  # one {source: row} per resample
for r in tqdm(range(N_RESAMPLES), desc="resamples"):
    idx = torch.randperm(len(pool_y), generator=gen)[:N_LABELLED]
    resamples.append({name: evaluate_source(outputs[name], idx) for name in SOURCES})

SCORES, COLS = ["-MMD²", "LogME", "LEEP"], ["-MMD²", "LogME", "LEEP", "AUC", "acc"]
print(f"resample 0 ({N_LABELLED} labelled target images):")
print(f"{'source':19s}" + "".join(f"{c:>9s}" for c in COLS))
for name, row in resamples[0].items():
    print(f"{name:19s}" + "".join(f"{row[c]:9.4f}" for c in COLS))
auc_all = np.array([[res[n]["AUC"] for n in SOURCES] for res in resamples])  # (resamples, sources)
print(f"\nlinear-probe test AUC over resamples: {auc_all.mean():.3f} (range {auc_all.min():.3f}-{auc_all.max():.3f})"
      f"  |  MedMNIST v2 paper, ResNet-18 (28 px) trained from scratch on all 4,708 images: AUC 0.944, ACC 0.854"
      f" (a different protocol)")

# %% [markdown]
# **Rank correlation with the probe's AUC**, per resample, with your τ and scipy's weighted τ, and the
# exact p-value of your Q4 for the resample-0 τ (one-sided: how often a score unrelated to the ranking
# would do at least as well).

# %%
taus = {s: np.array([kendall_tau([res[n][s] for n in SOURCES], [res[n]["AUC"] for n in SOURCES])
                     for res in resamples]) for s in SCORES}
wtaus = {s: np.array([weightedtau([res[n][s] for n in SOURCES], [res[n]["AUC"] for n in SOURCES])[0]
                      for res in resamples]) for s in SCORES}
n_src = len(SOURCES)
print(f"{'score':7s} {'tau (r0)':>9s} {'p (r0)':>7s} {'weighted (r0)':>14s}   tau over {N_RESAMPLES} resamples")
for s in SCORES:
    print(f"{s:7s} {taus[s][0]:+9.3f} {tau_p_value(taus[s][0], n_src):7.3f} {wtaus[s][0]:+14.3f}   "
          f"mean {taus[s].mean():+.2f}, range {taus[s].min():+.2f} to {taus[s].max():+.2f}")
print("\nFor reference (papers' observations on their benchmarks, not measured here): LogME and LEEP are judged by the")
print("weighted Kendall tau against fine-tuned accuracy over zoos of 10+ models; in TLlib's re-run LEEP's tau is")
print("negative on some targets (Aircraft: -0.26).")

fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
for ax, s in zip(axes, SCORES):
    sc = [resamples[0][n][s] for n in SOURCES]
    ax.scatter(sc, auc_all[0])
    for x_, y_, n in zip(sc, auc_all[0], SOURCES):
        ax.annotate(n.replace("-resnet", "-"), (x_, y_), fontsize=7)
    ax.set_xlabel(s), ax.set_title(f"resample 0: τ = {taus[s][0]:+.2f}", fontsize=9)
axes[0].set_ylabel("linear-probe test AUC")
for i, s in enumerate(SCORES):
    axes[3].plot([i] * N_RESAMPLES, taus[s], "o", alpha=0.6)
axes[3].axhline(0, color="gray", lw=0.8)
axes[3].set_xticks(range(len(SCORES)), SCORES), axes[3].set_ylabel("Kendall τ"), axes[3].set_ylim(-1.05, 1.05)
axes[3].set_title(f"τ in each of {N_RESAMPLES} resamples", fontsize=9)
fig.tight_layout()

# %% [markdown]
# **What holds, and what does not.**
#
# * **The MMD sees the input domain, not the task.** The grayscale sources (MNIST digits, Omniglot
#   strokes) are *much* farther from the X-rays than the CIFAR sources, although X-rays are grayscale
#   too: the discrepancy tracks the black-background images those networks were trained on. Whether that
#   predicts the probe's ranking is a separate question, and the numbers above answer it differently in
#   different resamples.
# * **With six sources, τ is a coarse and noisy measurement.** τ moves in steps of 2/15 ≈ 0.13 (one
#   swapped pair), and redrawing the labelled set changes every score's τ by at least two such steps
#   over the resamples. By your Q4, even τ = 0.6 would happen with probability about 0.07 for a score
#   that knows nothing. The AUCs of the four CIFAR sources lie within 0.07 of each other in every
#   resample, so their order is easy to flip. Other seeds (`course_lib.setup(seed=1)`, …) give other
#   τ values; try it. We therefore assert no sign and no ordering of the τ values: n is small.
# * What would make the comparison conclusive: more sources (the LogME paper ranks zoos of 10+ models),
#   several targets, and fine-tuned results averaged over seeds. Try it in the full profile, or add
#   deeper fine-tuning (`finetune.freeze(net, "partial")` + `strategies.train_classifier`) as the
#   ground truth.

# %%
mmd = {n: -np.mean([res[n]["-MMD²"] for res in resamples]) for n in SOURCES}
cifar, gray = [n for n in SOURCES if n.startswith("cifar10")], ["mnist-resnet20", "omniglot-resnet20"]
spread = [max(res[n]["AUC"] for n in cifar) - min(res[n]["AUC"] for n in cifar) for res in resamples]
print(f"MMD² to the X-rays: CIFAR sources <= {max(mmd[n] for n in cifar):.3f}, "
      f"MNIST / Omniglot sources >= {min(mmd[n] for n in gray):.3f}")
print(f"tau range over resamples: {', '.join(f'{s} {np.ptp(taus[s]):.2f}' for s in SCORES)}; "
      f"CIFAR sources' AUC spread per resample: max {max(spread):.3f}")
assert len(SOURCES) >= 6 and all(-1 <= t <= 1 for s in SCORES for t in taus[s])
assert all(res[n]["LEEP"] <= 0 for res in resamples for n in SOURCES)
# the small-n arithmetic behind "assert no sign": tau = 0.6 is not significant at 5% with 6 sources
assert n_src == 6 and 0.05 < tau_p_value(0.6, n_src) < 0.1 and tau_p_value(11 / 15, n_src) < 0.05
if cfg.quick:  # the measured claims above, in the quick profile
    assert min(mmd[n] for n in gray) > 1.5 * max(mmd[n] for n in cifar)
    assert all(np.ptp(taus[s]) >= 2 * 2 / 15 - 1e-9 for s in SCORES)  # every tau moves by two swapped pairs or more
    assert max(spread) < 0.07
