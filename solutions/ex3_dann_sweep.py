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
# # 演習3 (Exercise 3): DANN on MNIST → MNIST-M, how strong should the adversary be?
#
# <a href="https://colab.research.google.com/github/transfer-learning-course/transfer-learning-course/blob/main/solutions/ex3_dann_sweep.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# **章との対応 (chapter section):** 「演習問題」の 「演習3:DANNの実装と評価」; 関連する節は
# §3.2 「Domain Adversarial Neural Networks (DANN)」
#
# **概要:** 勾配反転層の強さ λ_max を変えて MNIST → MNIST-M で DANN を学習し、ターゲットの精度とドメイン不変性
# (proxy A-distance、ドメイン識別器の精度) のトレードオフを測ります。λ_max はターゲットの検証データで選び、
# テストデータでは一度だけ評価します。
#
# **用語集 (glossary):** 英語と日本語の用語対応は [docs/glossary.md](../docs/glossary.md) にあります
# (Colab で開いている場合は docs/glossary.md in the course repository を見てください)。
#
# The chapter's 演習3 (Exercise 3) asks: *train DANN on MNIST → MNIST-M, vary α, and see how domain
# adaptation changes.* As printed it cannot be done (ERRATA, "Exercises" 3): the chapter's network only
# accepts 3×32×32 input (ERRATA 4.2) and its `train_dann` never imports `np` (4.1); its α is a per-epoch
# schedule with nothing to vary (4.4); and "how it changes" names no measurement. This exercise makes it
# well-posed:
#
# * **what is varied**: λ_max in the paper's per-iteration schedule λ(p) = λ_max · (2 / (1 + e^(−10p)) − 1)
#   (the chapter's "α"), with the corrected network and training loop of lesson 04 (`adaptation.digits.run`);
# * **what is measured**: target accuracy *and* domain invariance: the proxy A-distance (PAD) of the
#   learnt features, and the accuracy of DANN's own domain classifier on held-out images;
# * **the protocol**: λ_max is chosen on the target **validation** split and the target **test**
#   accuracy of that one choice is reported once. Choosing with target labels is what UDA papers
#   routinely do, and it is *optimistic*: a truly unlabelled target has no validation labels.
#
# Questions 1–4 (autograded, synthetic tensors) build the pieces; the experiment at the end runs them on
# the real digits. Questions: `q1` gradient reversal (2 pts), `q2` the λ(p) schedule (1 pt), `q3` the
# proxy A-distance (2 pts), `q4` choosing λ_max on validation (1 pt).

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
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F  # noqa: F401 (for your code)
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

import course_lib
from course_lib import adaptation, loops, stats
from course_lib.adaptation import digits

cfg = course_lib.setup()
# Which profile runs, what this notebook reads, and what the full profile downloads the first time:
print(course_lib.data.profile_note(["mnist", "mnist_m"]))
if cfg.device.type == "cpu":
    torch.set_num_threads(1)  # small convolutions; leaves the other core free

# %% [markdown]
# ## Part 1 · The pieces (autograded)
#
# A DANN has a feature extractor G_f, a label classifier G_y and a domain classifier G_d. G_d learns to
# tell source features from target features; G_f is trained *against* it through a **gradient reversal
# layer** (GRL) placed between them: the identity in the forward pass, a multiplication of the gradient
# by −λ in the backward pass. So one backward pass trains G_d to separate the domains and pushes G_f, by
# the same gradient reversed, towards features G_d cannot separate.

# %% [raw]
# # BEGIN QUESTION
# name: q1
# points: 2

# %% [markdown]
# **Q1 (2 pts).** Complete the `torch.autograd.Function` `GradReverse`: `GradReverse.apply(x, lambd)`
# returns a tensor equal to `x` (any shape), and in the backward pass turns the incoming gradient `g`
# (the shape of `x`) into `−lambd · g`. `lambd` is a Python float and gets no gradient (return `None`
# for it). Hint: return `x.view_as(x)` rather than `x` itself, so autograd records a new node.

# %%
class GradReverse(torch.autograd.Function):
    """Gradient reversal: forward y = x; backward dL/dx = −lambd · dL/dy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:
        # BEGIN SOLUTION
        ctx.lambd = lambd
        return x.view_as(x)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        # BEGIN SOLUTION
        return -ctx.lambd * grad, None
        # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
_x = torch.randn(4, 3, requires_grad=True)
_y = GradReverse.apply(_x, 0.5)
assert isinstance(_y, torch.Tensor) and torch.equal(_y, _x), "the forward pass must be the identity"
(_y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
assert torch.allclose(_x.grad, -0.5 * torch.tensor([1.0, 2.0, 3.0]).expand(4, 3)), "backward must give -lambd * g"

# %%
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
for _lambd in (0.0, 0.1, 1.0, 3.0):  # any λ, any shape, and the gradient flows on into earlier layers
    _w = torch.randn(2, 5, 3, requires_grad=True)
    _h = _w * 2.0
    _out = GradReverse.apply(_h, _lambd)
    assert type(_out) is torch.Tensor and _out.shape == _h.shape and torch.equal(_out, _h)
    (_out ** 2).sum().backward()
    assert torch.allclose(_w.grad, -_lambd * 2.0 * 2 * _h.detach()), _lambd

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# The reversed gradient is scaled by λ, which the paper raises from 0 over training, so that the domain
# signal does not disturb the first, noisy steps: with p = (iterations done) / (total iterations),
#
# λ(p) = λ_max · (2 / (1 + exp(−γ·p)) − 1),   γ = 10.
#
# The paper uses λ_max = 1; the chapter's "vary α" is varying λ_max. (The chapter computes its α once per
# *epoch* and keeps it at 0 for the whole first epoch, ERRATA 4.4.)

# %% [raw]
# # BEGIN QUESTION
# name: q2
# points: 1

# %% [markdown]
# **Q2 (1 pt).** Implement `dann_lambda(p, lambda_max=1.0, gamma=10.0)` for a progress `p` in [0, 1]
# (a float); raise a `ValueError` when `p` is outside [0, 1].

# %%
def dann_lambda(p: float, lambda_max: float = 1.0, gamma: float = 10.0) -> float:
    """λ(p) = lambda_max · (2 / (1 + exp(−gamma · p)) − 1) for training progress p in [0, 1]."""
    # BEGIN SOLUTION
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p is training progress and must be in [0, 1], got {p}")
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
assert dann_lambda(0.0) == 0.0, "λ(0) = 0"
assert abs(dann_lambda(1.0) - (2 / (1 + math.exp(-10)) - 1)) < 1e-12, "λ(1) with λ_max = 1"
assert abs(dann_lambda(0.5, lambda_max=0.3) - 0.3 * (2 / (1 + math.exp(-5)) - 1)) < 1e-12

# %%
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
_vals = [dann_lambda(i / 50, lambda_max=0.1) for i in range(51)]
assert all(type(v) is float for v in _vals)
assert all(a < b for a, b in zip(_vals, _vals[1:])) and 0.0999 < _vals[-1] < 0.1
assert abs(dann_lambda(0.2, 2.0, gamma=3.0) - 2.0 * (2 / (1 + math.exp(-0.6)) - 1)) < 1e-12
for _bad in (-0.1, 1.5):
    try:
        dann_lambda(_bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"p = {_bad} must raise a ValueError")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# **How domain-invariant are the features?** Ben-David et al. (2007) bound the target error by the source
# error plus a divergence between the two feature distributions, and estimate that divergence with any
# classifier trained to tell the domains apart: if its error on *held-out* examples is ε, the **proxy
# A-distance** is PAD = 2(1 − 2ε). It is about 2 when the domains are perfectly separable and about 0
# when they cannot be told apart. The held-out part matters: with 768-dimensional features and a few
# hundred images, a linear classifier separates even two samples of the *same* distribution on its
# training set.

# %% [raw]
# # BEGIN QUESTION
# name: q3
# points: 2

# %% [markdown]
# **Q3 (2 pts).** Implement `proxy_a_distance(source, target, seed=0)` for features `source` (N, D) and
# `target` (M, D): put a random half of each domain (use `np.random.default_rng(seed)`) in a training
# set, fit a linear domain classifier on it (`StandardScaler` then `LogisticRegression(max_iter=2000)`,
# both imported above), measure its error ε on the other halves, and return 2(1 − 2ε) as a float.
# Raise a `ValueError` when the inputs are not 2-D with the same D.

# %%
def proxy_a_distance(source: torch.Tensor, target: torch.Tensor, seed: int = 0) -> float:
    """PAD = 2(1 − 2ε), ε = held-out error of a linear classifier of source (N, D) vs target (M, D)."""
    # BEGIN SOLUTION
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"expected features (N, D) and (M, D), got {tuple(source.shape)} and {tuple(target.shape)}")
    x = torch.cat([source, target]).detach().double().cpu().numpy()
    d = np.r_[np.zeros(len(source)), np.ones(len(target))]
    rng = np.random.default_rng(seed)
    train = np.zeros(len(x), dtype=bool)
    for dom in (0, 1):
        idx = np.flatnonzero(d == dom)
        train[rng.permutation(idx)[: len(idx) // 2]] = True
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x[train]), d[train])
    err = 1.0 - clf.score(scaler.transform(x[~train]), d[~train])
    return float(2.0 * (1.0 - 2.0 * err))
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
_g = torch.Generator().manual_seed(0)
_a = torch.randn(400, 2, generator=_g)
_pad_far = proxy_a_distance(_a, torch.randn(400, 2, generator=_g) + 20.0)
_pad_same = proxy_a_distance(_a, torch.randn(400, 2, generator=_g))
assert isinstance(_pad_far, float) and abs(_pad_far - 2.0) < 1e-9, "separable domains: PAD = 2"
assert abs(_pad_same) < 0.3, "one distribution: PAD about 0"

# %%
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
_g = torch.Generator().manual_seed(1)
_shift = torch.tensor([1.0, 0.0, 0.0])  # means ±1 on one axis: Bayes error Φ(−1) = 0.159, PAD = 1.365
_pad_mid = proxy_a_distance(torch.randn(1000, 3, generator=_g) - _shift, torch.randn(1000, 3, generator=_g) + _shift)
assert type(_pad_mid) is float and abs(_pad_mid - 1.365) < 0.2, _pad_mid
# 200-D, 100 images per domain, one distribution: separable on the training half, not on the held-out half
_pad_hd = proxy_a_distance(torch.randn(100, 200, generator=_g), torch.randn(100, 200, generator=_g))
assert _pad_hd < 0.8, f"PAD {_pad_hd}: is ε measured on the held-out halves?"
try:
    proxy_a_distance(torch.randn(10, 3), torch.randn(10, 4))
except ValueError:
    pass
else:
    raise AssertionError("features of different widths must raise a ValueError")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4
# points: 1

# %% [markdown]
# **Q4 (1 pt).** The protocol: choose λ_max on the target *validation* accuracy, then report the *test*
# accuracy of that one choice, never the best test accuracy. Implement `choose_and_report(val_acc,
# test_acc)`: both are dicts {λ_max: accuracy} with the same keys; return `(best_lambda, its_test_acc)`,
# where `best_lambda` has the highest validation accuracy (on a tie, the smaller λ_max). Raise a
# `ValueError` when the dicts are empty or their keys differ.

# %%
def choose_and_report(val_acc: dict[float, float], test_acc: dict[float, float]) -> tuple[float, float]:
    """(λ_max with the best validation accuracy, ties to the smaller; the test accuracy of that λ_max)."""
    # BEGIN SOLUTION
    if not val_acc or set(val_acc) != set(test_acc):
        raise ValueError(f"need non-empty dicts with the same λ_max keys, got {sorted(val_acc)} and {sorted(test_acc)}")
    best = min(val_acc, key=lambda lam: (-val_acc[lam], lam))
    return best, test_acc[best]
    # END SOLUTION


# %% [raw]
# # BEGIN TESTS

# %%
assert choose_and_report({0.1: 0.66, 1.0: 0.57}, {0.1: 0.64, 1.0: 0.70}) == (0.1, 0.64), "choose on validation"

# %%
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
_r = choose_and_report({1.0: 0.6, 0.3: 0.6, 0.1: 0.5}, {1.0: 0.1, 0.3: 0.2, 0.1: 0.9})
assert type(_r) is tuple and len(_r) == 2 and type(_r[0]) is float and type(_r[1]) is float and _r == (0.3, 0.2)
assert choose_and_report({0.0: 0.4}, {0.0: 0.45}) == (0.0, 0.45)
for _v, _t in (({}, {}), ({0.1: 0.5}, {0.3: 0.5})):
    try:
        choose_and_report(_v, _t)
    except ValueError:
        pass
    else:
        raise AssertionError("empty or mismatched dicts must raise a ValueError")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## Part 2 · The experiment
#
# Your functions first meet the tested versions in `course_lib` on real data; the training runs then
# use `course_lib` (`adaptation.digits.trained`, lesson 04's runs, cached on disk, so a re-run does not
# retrain).

# %%
pair = digits.load_pair("mnist_m")
print(f"MNIST -> MNIST-M: source train {len(pair.source_train[0]):,}, target train {len(pair.target_train[0]):,} "
      f"(labels unused), target val {len(pair.target_val[0]):,}, target test {len(pair.target_test[0]):,}")

torch.manual_seed(cfg.seed)
probe = adaptation.DANN(10, (3, 28, 28)).eval()
feats = [probe.features(pair.target_val[0][:16]).detach().requires_grad_(True) for _ in range(2)]  # (16, 768)
w = torch.randn(feats[0].shape[1])
(GradReverse.apply(feats[0], 0.3) @ w).sum().backward()
(adaptation.grad_reverse(feats[1], 0.3) @ w).sum().backward()
assert torch.equal(GradReverse.apply(feats[0], 0.3), feats[0]) and torch.allclose(feats[0].grad, feats[1].grad)
for lmax in (0.1, 0.3, 1.0):
    assert all(math.isclose(dann_lambda(i / 20, lmax), adaptation.dann_lambda(i / 20, lambda_max=lmax), rel_tol=1e-12)
               for i in range(21))
print("GradReverse and dann_lambda agree with course_lib (real DANN features; p in [0, 1])")

# %% [markdown]
# **The runs.** Source-only, then DANN with λ_max ∈ `GRID`, for each of lesson 04's seeds, all with the
# same initialisation per seed, the same batches and the same number of steps (`STEPS` of 64 source + 64
# target images, lesson 04's recipe). λ_max = 0 is worth a run of its own: the network, the domain head and
# the mixed source + target batches are all there, but no reversed gradient reaches the features (lesson 04's
# `bn_only` control). Whatever λ_max = 0 gains over source-only is *not* the adversary's doing.
#
# These are lesson 04's runs: `digits.trained` reads them from the cache that `digits.experiments` fills
# before the notebooks run (or trains them now, if the cache is empty). The accuracies, PAD and domain-head
# accuracy below are means over the seeds.

# %%
recipe = digits.RECIPES[cfg.profile]
STEPS, SEEDS = recipe.steps("mnist_m"), list(recipe.seeds)
GRID = [0.0, 0.1, 0.3, 1.0]
N_PAD = 500  # test images per domain for the invariance measures
print(f"{STEPS} steps, seeds {SEEDS}, SGD with μ_0 = {recipe.lr0}"
      + (" on 6,000 MNIST images; the paper trains far longer on 60,000" if cfg.quick else ""))
runs = {"source": [digits.trained("mnist_m", "source", 0.0, s, device=cfg.device, pair=pair) for s in SEEDS]}
for lmax in tqdm(GRID, desc="λ_max grid"):
    runs[lmax] = [digits.trained("mnist_m", "dann", lmax, s, device=cfg.device, pair=pair) for s in SEEDS]


@torch.no_grad()
def domain_head_accuracy(model: adaptation.DANN, xs: torch.Tensor, xt: torch.Tensor) -> float:
    """Accuracy of DANN's own domain classifier on held-out source (N, 3, 28, 28) and target (M, 3, 28, 28) images,
    on any device (they are moved to the model's, as course_lib's functions do)."""
    model.eval()
    device = course_lib.config.device_of(model)
    hits = (model(xs.to(device))[1].argmax(1) == 0).sum() + (model(xt.to(device))[1].argmax(1) == 1).sum()
    return hits.item() / (len(xs) + len(xt))


xs_test, xt_test = pair.source_test[0][:N_PAD], pair.target_test[0][:N_PAD]
val_seeds, test_seeds, pad, head_acc = {}, {}, {}, {}
for key, seed_runs in tqdm(runs.items(), desc="measure"):
    val_seeds[key] = [loops.evaluate_accuracy(model.classify, *pair.target_val, batch_size=1000) for model, _ in seed_runs]
    test_seeds[key] = [history[-1]["target_acc"] for _, history in seed_runs]  # target test, after the last step
    pads = []
    for model, _ in seed_runs:
        fs = loops.predict(model.embed, xs_test, batch_size=1000)
        ft = loops.predict(model.embed, xt_test, batch_size=1000)
        pads.append(adaptation.proxy_a_distance(fs, ft, seed=cfg.seed))
    pad[key] = float(np.mean(pads))
    if key != "source":  # source-only never trains its domain head
        head_acc[key] = float(np.mean([domain_head_accuracy(model, xs_test, xt_test) for model, _ in seed_runs]))
val_acc = {k: float(np.mean(v)) for k, v in val_seeds.items()}
test_acc = {k: float(np.mean(v)) for k, v in test_seeds.items()}
model01 = runs[0.1][0][0]
mine = proxy_a_distance(*[loops.predict(model01.embed, x, batch_size=1000) for x in (xs_test, xt_test)], seed=cfg.seed)
lib = adaptation.proxy_a_distance(*[loops.predict(model01.embed, x, batch_size=1000) for x in (xs_test, xt_test)],
                                  seed=cfg.seed)
print(f"PAD of the λ_max = 0.1 features, seed {SEEDS[0]}: yours {mine:.3f}, course_lib {lib:.3f}")
assert abs(mine - lib) < 0.1

print(f"means over seeds {SEEDS}")
print(f"{'':16s}{'target val acc':>15s}{'PAD':>8s}{'domain head acc':>17s}")
for key in runs:
    name = "source-only" if key == "source" else f"λ_max = {key:g}"
    head = f"{head_acc[key]:17.3f}" if key in head_acc else f"{'—':>17s}"
    print(f"{name:16s}{val_acc[key]:15.3f}{pad[key]:8.3f}{head}")

# %%
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
xpos = np.arange(len(GRID))
a1.plot(xpos, [val_acc[lam] for lam in GRID], "o-", label="DANN")
a1.axhline(val_acc["source"], color="gray", ls="--", label="source-only")
a1.set_ylabel("target validation accuracy")
a2.plot(xpos, [pad[lam] for lam in GRID], "o-", color="C1", label="PAD (fresh linear probe)")
a2.axhline(pad["source"], color="C1", ls="--", lw=1, label="PAD, source-only")
a2.plot(xpos, [2 * (2 * head_acc[lam] - 1) for lam in GRID], "s-", color="C3",
        label="2(2·acc − 1), DANN's own domain head")
a2.set_ylim(0, 2.05), a2.set_ylabel("domain separability (2 = separable)")
for ax in (a1, a2):
    ax.set_xticks(xpos, [f"{lam:g}" for lam in GRID]), ax.set_xlabel("λ_max"), ax.legend(fontsize=8)
fig.suptitle(f"MNIST → MNIST-M, {STEPS} steps, mean of seeds {SEEDS}: held-out images")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Choose on validation, report test once.** Your `choose_and_report` picks λ_max from the mean validation
# accuracy over the seeds; only that choice's target *test* accuracy is reported, beside source-only, the
# λ_max = 0 control and the paper's numbers. Gains are paired by seed (same initial weights, same batches)
# with a 95% t-interval.

# %%
best, best_test = choose_and_report({lam: val_acc[lam] for lam in GRID}, {lam: test_acc[lam] for lam in GRID})
assert best == max(GRID, key=lambda lam: (val_acc[lam], -lam))
assert best == 0.3 and val_acc[0.3] - val_acc[0.1] > 0.01  # lesson 04 uses 0.3
paired = lambda a, b: stats.t_ci([x - y for x, y in zip(test_seeds[a], test_seeds[b])])
gains = {"λ_max = 0 − source-only (BatchNorm sees the target)": paired(0.0, "source"),
         f"λ_max = {best:g} − λ_max = 0 (the adversary's own gain)": paired(best, 0.0),
         f"λ_max = {best:g} − source-only (all of it)": paired(best, "source")}
PAPER = {"source-only": 0.5225, "DANN": 0.7666, "train on target": 0.9596}  # Ganin et al. 2016, Table 2
print(f"chosen on target validation: λ_max = {best:g} (optimistic: it used target labels)")
print(f"{'MNIST -> MNIST-M, target test':32s}{'measured':>10s}{'Ganin et al.':>14s}")
print(f"{'source-only':32s}{test_acc['source']:10.3f}{PAPER['source-only']:14.3f}")
print(f"{'λ_max = 0 (BatchNorm only)':32s}{test_acc[0.0]:10.3f}{'—':>14s}")
print(f"{'DANN (λ_max = ' + format(best, 'g') + ')':32s}{best_test:10.3f}{PAPER['DANN']:14.3f}")
print(f"{'train on target (lesson 04)':32s}{'—':>10s}{PAPER['train on target']:14.3f}")
print("the paper: λ_max = 1, its own architecture and schedule, 60,000 MNIST images and far longer training")
print("\ntarget test accuracy gains, paired by seed (mean ± 95% CI):")
for name, (m, h) in gains.items():
    print(f"  {name:52s}{m:+.3f} ± {h:.3f}")

# %% [markdown]
# ## What the numbers say
#
# Each claim below is asserted:
#
# * λ_max = 0.3 is chosen, more than 1 point above 0.1 on validation (4 points here; on a second draw of
#   seeds, 3–5, trained once for this check, 3 points), so lesson 04 uses it;
# * DANN with the λ_max chosen on validation beats source-only on the target **test** split by at least
#   15 points on average over the seeds, and lands within 5 points of the paper's 0.77 (which it reached
#   with μ_0 = 0.01, far longer training and 60,000 images: close, not a reproduction);
# * **λ_max = 0 already gains** over source-only on average, and that is between a quarter and three
#   quarters of the chosen λ_max's gain. No reversed gradient reaches the features there: the gain comes
#   from the target images passing through the feature extractor in the same batches as the source ones,
#   so its BatchNorm layers normalise with statistics of both domains (the idea of AdaBN, Li et al. 2016).
#   Part of "what DANN does" at this budget is not adversarial at all, which only a λ_max = 0 run reveals.
#   With three seeds, and source-only varying by several points between seeds, its interval is wide;
# * **the adversary's own gain**, the chosen λ_max above λ_max = 0 paired by seed, is at least 4 points
#   on the test split, with a 95% interval above 0;
# * too strong an adversary hurts: λ_max = 1 (the paper's value, at our short budget) is at least
#   3 points below the chosen λ_max on validation;
# * **invariance is only partial**: DANN's own domain head, on held-out images, is most accurate with
#   λ_max = 0 (nothing fights it) and less accurate at every λ_max > 0; but a *fresh* linear probe still
#   separates the two domains almost perfectly at every λ_max: PAD > 1.7 on average for every run
#   (2 = fully separable; about 1.8-1.9 here, no lower with an adversary than without). Fooling the adversary one trains against is not the same as removing the
#   domain from the features.

# %%
bn_gain, adv_gain, all_gain = gains.values()
assert all_gain[0] >= 0.15 and abs(test_acc[best] - PAPER["DANN"]) < 0.05
assert bn_gain[0] > 0 and 0.25 < bn_gain[0] / all_gain[0] < 0.75
assert adv_gain[0] >= 0.04 and adv_gain[0] - adv_gain[1] > 0
assert val_acc[best] - val_acc[1.0] >= 0.03
assert head_acc[0.0] > max(head_acc[lam] for lam in GRID if lam > 0)
assert min(pad.values()) > 1.7 and min(pad[lam] for lam in GRID if lam > 0) > pad[0.0] - 0.1
course_lib.record("target_val_acc", val_acc)
course_lib.record("target_test_acc", test_acc)
course_lib.record("proxy_a_distance", pad)
course_lib.record("domain_head_acc", head_acc)
course_lib.record("chosen_lambda_max", best)
course_lib.record("chosen_test_acc", best_test)

# %% [markdown]
# ## Summary
#
# * Made well-posed, the chapter's 演習3 (Exercise 3) varies λ_max of the per-iteration schedule λ(p), measures
#   target accuracy *and* domain invariance, chooses λ_max on target validation (optimistic: it uses target
#   labels) and reports the test accuracy of that choice once.
# * Accuracy is not monotone in λ_max: a moderate adversary helped most here, and the paper's λ_max = 1
#   was too strong for our short training.
# * Measure against the right control: λ_max = 0 already has a large part of the gain, from BatchNorm
#   seeing both domains; the adversary's own gain is what is left above it, paired by seed.
# * The domain classifier DANN trains against gets fooled; a fresh probe is not. Report an independent
#   measure such as the proxy A-distance, not only the adversary's own accuracy.

# %% [markdown]
# ## References
#
# The papers this notebook cites. A number labelled *the paper's* is that paper's own result on its own setting,
# quoted for comparison; it was not measured here. The course-wide bibliography is
# [docs/references.md](../docs/references.md) (docs/references.md in the course repository).
#
# * **Ganin, Ustinova, Ajakan, Germain, Larochelle, Laviolette, Marchand & Lempitsky (2016).** Domain-Adversarial Training of Neural Networks. *Journal of Machine Learning Research* 17(59). The paper's MNIST → MNIST-M results (Table 2): source-only 0.5225, DANN 0.7666, train on target 0.9596; its λ(p) schedule with λ_max = 1; 60,000 MNIST training images.
# * **Ben-David, Blitzer, Crammer & Pereira (2007).** Analysis of Representations for Domain Adaptation. *NIPS 2006 (Advances in Neural Information Processing Systems 19).* The proxy A-distance; no number quoted.
# * **Li, Wang, Shi, Liu & Hou (2016).** Revisiting Batch Normalization For Practical Domain Adaptation (AdaBN). *arXiv:1603.04779.* The idea behind the λ_max = 0 control's gain (BatchNorm statistics of both domains); no number quoted.
