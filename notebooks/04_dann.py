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
# # 04 · Domain-adversarial training (DANN)
#
# <a href="https://colab.research.google.com/github/transfer-learning-course/transfer-learning-course/blob/main/notebooks/04_dann.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# **章との対応 (chapter section):** §3 「Domain Adaptation」: §3.1 「Domain Shiftの問題」、
# §3.2 「Domain Adversarial Neural Networks (DANN)」
#
# **概要:** ソースドメインで学習した分類器は、分布の異なるターゲットドメインで精度が大きく下がります。勾配反転層で
# ドメイン識別器と敵対的に学習し、ドメインに依らない特徴を作る DANN を MNIST → MNIST-M と MNIST → USPS で
# 実装し、ソースのみの学習や BatchNorm だけの対照実験と比べて、特徴が本当にドメイン不変になったかを測ります。
#
# **用語集 (glossary):** 英語と日本語の用語対応は [docs/glossary.md](../docs/glossary.md) にあります
# (Colab で開いている場合は docs/glossary.md in the course repository を見てください)。
#
# This lesson mirrors the chapter's **§3 Domain Adaptation**: §3.1 (domain shift) and **§3.2 DANN**. We have labelled
# images from a *source* domain (MNIST digits) and only *unlabelled* images from a *target* domain
# (MNIST-M: the same digits blended into colour photo patches; or USPS: digits scanned from envelopes).
# A classifier trained on the source alone loses much of its accuracy on the target. DANN (Ganin et al.,
# JMLR 2016) adds a second head that tries to tell the domains apart, and trains the feature extractor
# *against* it through a gradient reversal layer, so that the features stop carrying the domain.
#
# 1. the two tasks, and how far apart their domains are;
# 2. the chapter's code, run: five of its problems (ERRATA 4.1–4.5);
# 3. the parts built right: gradient reversal, λ(p) with a slider, the learning-rate annealing, a
#    network that fits 28×28 input;
# 4. MNIST → MNIST-M: source-only vs a BatchNorm-only control vs DANN vs a train-on-target oracle, over
#    three seeds, accuracy during training, the paper's numbers beside ours;
# 5. is the representation really domain-invariant? Domain-classifier accuracy, the proxy A-distance,
#    and a PCA picture of the features before and after;
# 6. MNIST → USPS, the same four runs.

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

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from IPython.display import display
from torch.utils.data import DataLoader, TensorDataset

import course_lib
from course_lib import adaptation, data, loops, plots, stats, widgets
from course_lib.adaptation import digits

cfg = course_lib.setup()
# Which profile runs, what this notebook reads, and what the full profile downloads the first time:
print(data.profile_note(["mnist", "mnist_m", "usps"]))

# %% [markdown]
# ## 1. Two domain shifts
#
# `adaptation.digits.load_pair` gives every split as tensors (N, 3, 28, 28) in [0, 1]: grayscale
# digits are repeated to three channels and USPS (16×16) is resized, so one network serves both pairs.
# In the `quick` profile the splits are carved from the official *test* sets (the offline mirror holds
# only those), so the source has 6,000 training images instead of 60,000; `full` uses the official
# training sets.

# %%
pairs = {t: digits.load_pair(t) for t in digits.TARGETS}
for name in ("mnist", *digits.TARGETS):
    print(f"{name:8s}", data.describe(name))
for t, pair in pairs.items():
    print(f"MNIST -> {t}: source train {len(pair.source_train[0]):,}, target train {len(pair.target_train[0]):,} "
          f"(labels unused), target val {len(pair.target_val[0]):,}, target test {len(pair.target_test[0]):,}")
mm = pairs["mnist_m"]
show = torch.cat([mm.source_train[0][:8], mm.target_train[0][:8], pairs["usps"].target_train[0][:8]])
plots.show_grid(show, torch.cat([mm.source_train[1][:8], mm.target_train[1][:8], pairs["usps"].target_train[1][:8]]),
                title="rows: MNIST (source), MNIST-M, USPS (targets)");

# %% [markdown]
# ## 2. The chapter's code, run
#
# ### ERRATA 4.2 · the network only accepts 3×32×32
#
# ```python
# # §3.2, DANN.__init__:
# nn.Conv2d(3, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
# nn.Conv2d(64, 128, 5), nn.ReLU(), nn.MaxPool2d(2),
# nn.Flatten(),
# nn.Linear(128 * 5 * 5, 1024), nn.ReLU(),
# ```
#
# `128 * 5 * 5` is the flattened size for a 32×32 input only (32 → 28 → 14 → 10 → 5). MNIST-M is
# 28×28 (→ 4×4), and MNIST has one channel, so 演習3 (Exercise 3, MNIST → MNIST-M) crashes as written:

# %%
chapter_features = nn.Sequential(nn.Conv2d(3, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(64, 128, 5), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(128 * 5 * 5, 1024), nn.ReLU())
mnist_raw = data.load("mnist", "train").images[:2]  # (2, 1, 28, 28), as torchvision would give it
for what, batch in (("MNIST-M 3x28x28", mm.target_train[0][:2]), ("MNIST 1x28x28", mnist_raw)):
    try:
        chapter_features(batch)
        raise AssertionError("the chapter's network should not accept this input")
    except RuntimeError as err:
        print(f"{what}: RuntimeError: {str(err).splitlines()[0]}")
print("3x32x32 works:", tuple(chapter_features(torch.rand(2, 3, 32, 32)).shape))

# %% [markdown]
# `adaptation.DANN` computes its flatten size from the input shape it is built for (and says so when
# a batch of another shape arrives). It is the paper's MNIST architecture (conv 32 → conv 48 → 768
# features; a 100-100-10 label head; a 100-2 domain head), with BatchNorm added:

# %%
for shape in ((3, 28, 28), (3, 32, 32), (1, 28, 28)):
    net = adaptation.DANN(10, shape)
    y, d, f = net(torch.rand(2, *shape))
    print(f"input {shape}: features {tuple(f.shape)}, class logits {tuple(y.shape)}, domain logits {tuple(d.shape)}")
    assert y.shape == (2, 10) and d.shape == (2, 2)

# %% [markdown]
# ### ERRATA 4.1 · `np` is never imported
#
# ```python
# # §3.2, train_dann:
# alpha = 2 / (1 + np.exp(-10 * epoch / epochs)) - 1
# ```
#
# The chapter's code block imports `torch`, `nn` and `F` only. Its usage example builds the model and
# never calls `train_dann`, so the crash never shows. Running that line in the block's namespace:

# %%
chapter_namespace = {"torch": torch, "nn": nn, "F": F, "epoch": 0, "epochs": 50}
try:
    exec("alpha = 2 / (1 + np.exp(-10 * epoch / epochs)) - 1", chapter_namespace)
    raise AssertionError("expected a NameError")
except NameError as err:
    print(f"NameError: {err}")

# %% [markdown]
# ### ERRATA 4.4 · λ per *epoch*, and no learning-rate annealing
#
# In the paper, p ∈ [0, 1] is training progress over **iterations**, and
#
# $$\lambda(p) = \frac{2}{1 + e^{-10 p}} - 1$$
#
# rises smoothly from 0. The chapter computes it once per epoch from `epoch / epochs`, so λ is a
# staircase, and **exactly 0 for the whole first epoch**: the feature extractor gets no domain
# gradient at all then. With the chapter's 50 epochs and our source split's batches per epoch (93 in quick):

# %%
epochs, per_epoch = 50, len(mm.source_train[0]) // 64
chapter_alpha = [2 / (1 + math.exp(-10 * e / epochs)) - 1 for e in range(epochs) for _ in range(per_epoch)]
total = epochs * per_epoch
paper_lambda = [adaptation.dann_lambda(i / total) for i in range(total)]
print("chapter, epochs 0, 1, 5, 10, 49:", [round(chapter_alpha[e * per_epoch], 4) for e in (0, 1, 5, 10, 49)])
print(f"iterations with λ = 0: chapter {sum(a == 0 for a in chapter_alpha)}, paper {sum(v == 0 for v in paper_lambda)}")
assert [round(chapter_alpha[e * per_epoch], 3) for e in (1, 5, 10)] == [0.100, 0.462, 0.762]  # ERRATA 4.4
assert sum(a == 0 for a in chapter_alpha) == per_epoch and sum(v == 0 for v in paper_lambda) == 1

fig, ax = plt.subplots(figsize=(7, 2.6))
steps_axis = np.arange(total) / per_epoch
ax.plot(steps_axis, chapter_alpha, label="chapter: α per epoch")
ax.plot(steps_axis, paper_lambda, "--", label="paper: λ(p) per iteration")
ax.plot(steps_axis, [adaptation.dann_lr(i / total) / 0.01 for i in range(total)], ":",
        label="paper: μ_p / μ_0 (the chapter keeps Adam at 1e-3)")
ax.set_xlabel("epoch"), ax.set_xlim(0, 12), ax.legend(fontsize=8)
ax.set_title("the first 12 of 50 epochs")
plt.show()

# %% [markdown]
# The paper also anneals the learning rate, μ_p = 0.01 / (1 + 10p)^0.75 with SGD (momentum 0.9), from
# 0.01 to 0.0017; the chapter uses a constant Adam at 1e-3 without saying it departs from the recipe.
#
# ### ERRATA 4.5 · `zip` ends the epoch at the shorter domain
#
# ```python
# # §3.2, train_dann:
# for (source_data, source_labels), (target_data, _) in zip(source_loader, target_loader):
# ```
#
# `zip` stops when either loader is exhausted. MNIST → USPS in our quick split has 6,000 source and
# 1,204 target images: with batches of 64, an epoch is cut after 18 steps and most source images are
# never seen. The fix cycles each domain on its own for a fixed number of steps (`adaptation.forever`
# below; `train_adapted` does the same with a fresh permutation of each domain per pass):

# %%
usps = pairs["usps"]
src_loader = DataLoader(TensorDataset(*usps.source_train), batch_size=64, shuffle=True, drop_last=True)
tgt_loader = DataLoader(TensorDataset(usps.target_train[0]), batch_size=64, shuffle=True, drop_last=True)
zipped = sum(1 for _ in zip(src_loader, tgt_loader))
cycled = sum(1 for _ in zip(range(len(src_loader)), adaptation.forever(tgt_loader)))
print(f"source batches {len(src_loader)}, target batches {len(tgt_loader)}: zip runs {zipped} steps, "
      f"cycling runs {cycled}; zip leaves {len(usps.source_train[0]) - 64 * zipped:,} source images unseen")
assert zipped == len(tgt_loader) < cycled == len(src_loader)  # zip stops at the shorter loader
if cfg.quick:
    assert (zipped, cycled) == (18, 93)  # the numbers quoted above (quick split)

# %% [markdown]
# ### ERRATA 4.3 · domain labels on the CPU
#
# ```python
# # §3.2, train_dann:
# torch.zeros(len(source_data), dtype=torch.long)
# ```
#
# The labels are always created on the CPU (and the batches are never moved), so on a GPU the loss
# fails with "Expected all tensors to be on the same device". This machine has no GPU; PyTorch's
# `meta` device stands in for it, and fails the same way:

# %%
domain_logits = torch.zeros(4, 2, device="meta")
try:
    F.cross_entropy(domain_logits, torch.zeros(4, dtype=torch.long))
    raise AssertionError("expected a device mismatch")
except RuntimeError as err:
    print(f"RuntimeError: {err}")
labels = adaptation.domain_labels(2, 2, domain_logits.device)  # the fix: labels made where the batch lives
print("adaptation.domain_labels(2, 2, 'meta') ->", labels.device, "| loss:", F.cross_entropy(domain_logits, labels).device)

# %% [markdown]
# One more, not an error but worth knowing: the chapter's `train_dann` prints only the last batch's
# total loss (ERRATA 4.6). In an adversarial game that number says little; below we log the class loss,
# the domain loss, the domain classifier's accuracy and the target accuracy separately.
#
# ## 3. The parts, built right
#
# ### Gradient reversal
#
# The forward pass is the identity; the backward pass multiplies the gradient by −α. An
# `autograd.Function` does it in a few lines (the chapter's version is correct, ERRATA 4.7):

# %%
class ReverseInline(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.alpha * grad, None


x = torch.randn(5, 3, requires_grad=True)
w = torch.randn(3)
grads = []
for reverse in (lambda t: ReverseInline.apply(t, 0.5), lambda t: adaptation.grad_reverse(t, 0.5)):
    x.grad = None
    (reverse(x) @ w).sum().backward()
    grads.append(x.grad.clone())
print("d/dx of sum(GRL(x, 0.5) @ w), first row:", grads[0][0].tolist(), " w:", w.tolist())
assert torch.allclose(grads[0], -0.5 * w.expand(5, 3)) and torch.equal(grads[0], grads[1])
assert torch.equal(adaptation.grad_reverse(x, 0.5), x)  # identity forward

# %% [markdown]
# ### λ(p) and the learning rate
#
# Inline from the paper, then checked against `course_lib`:

# %%
def lambda_inline(p, gamma=10.0):
    return 2 / (1 + math.exp(-gamma * p)) - 1


def lr_inline(p, lr0=0.01):
    return lr0 / (1 + 10 * p) ** 0.75


grid = [i / 20 for i in range(21)]
assert all(math.isclose(lambda_inline(p), adaptation.dann_lambda(p), rel_tol=1e-12) for p in grid)
assert all(math.isclose(lr_inline(p), adaptation.dann_lr(p), rel_tol=1e-12) for p in grid)
print(f"λ(0.1) = {adaptation.dann_lambda(0.1):.3f}, λ(0.5) = {adaptation.dann_lambda(0.5):.4f}; "
      f"μ at the end = {adaptation.dann_lr(1.0):.5f}")

# %% [markdown]
# **Slider.** γ sets how fast λ rises, λ_max how far. The reversed gradient that reaches the feature
# extractor is scaled by λ(p); the *step* it causes is also scaled by the annealed learning rate, so it
# peaks early and then shrinks. `widgets.dann_schedule` computes both curves; the slider only draws them.

# %%
gamma_slider = W.FloatLogSlider(value=10, base=10, min=0, max=2, step=0.05, description="γ")
lmax_slider = W.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05, description="λ_max")
schedule_out = W.Output()


def draw_schedule(_=None):
    curves = widgets.dann_schedule(gamma_slider.value, lmax_slider.value)
    with schedule_out:
        schedule_out.clear_output(wait=True)
        fig, ax = plt.subplots(figsize=(6, 2.8))
        for name, values in curves.series.items():
            ax.plot(curves.p, values, label=name)
        ax.set_xlabel("training progress p"), ax.set_ylim(0, 2.05), ax.legend(fontsize=8)
        ax.set_title(curves.title, fontsize=9)
        plt.show()


gamma_slider.observe(draw_schedule, names="value")
lmax_slider.observe(draw_schedule, names="value")
draw_schedule()
widgets.enable_colab()  # Colab needs its custom widget manager for ipywidgets 8; no-op elsewhere
display(W.VBox([W.HBox([gamma_slider, lmax_slider]), schedule_out]))

# %%
paper = widgets.dann_schedule(10, 1.0)
assert paper.series["λ(p)"][0] == 0 and math.isclose(paper.series["λ(p)"][-1], adaptation.dann_lambda(1.0))
peak = int(np.argmax(paper.series["λ(p)·μ_p/μ_0"]))
print(paper.title, f"| the effective step peaks at p = {paper.p[peak]:.2f}")
assert 0.1 < paper.p[peak] < 0.4  # the effective domain step peaks early in training
print(widgets.dann_schedule(2, 1.0).title)

# %% [markdown]
# ## 4. MNIST → MNIST-M
#
# Four runs with the same network, the same optimizer (SGD, momentum 0.9, μ_p), the same batches and the
# same number of steps, each for three seeds:
#
# * **source-only**: cross-entropy on MNIST; the target is never looked at;
# * **BatchNorm-only control** (`bn_only`): DANN's training with λ_max = 0. Every step pushes the source
#   batch *and the target batch* through the network together, as DANN does, so the BatchNorm layers
#   normalise with statistics of both domains (and their running averages, which the test uses, mix both:
#   the idea of AdaBN, Li et al. 2016), but no reversed gradient reaches the features. What this run gains
#   over source-only is not the adversary's doing;
# * **DANN**: the same, plus the domain loss through gradient reversal, λ(p) rising to λ_max;
# * **oracle**: trained on MNIST-M's *own labels*, an upper bound no adaptation method gets.
#
# A method's gain is only its own above the control that sees the same batches. We pair every comparison
# by seed (same initial weights, same batch order) and give a 95% t-interval over the seeds.
#
# **Choosing λ_max.** The paper uses λ_max = 1 with far longer training than our quick budget. 演習3 (Exercise 3)
# sweeps λ_max ∈ {0, 0.1, 0.3, 1} on these very runs, scores each on the target **validation** split
# (never the test split we report) and picks 0.3, 4 points above 0.1 on validation (3 points on a second
# draw of seeds; 1 is 6 points below). For USPS a smaller sweep, seed 0 only
# (`tools/sweep_adaptation.py --seeds 0` runs such sweeps), compared 0.03, 0.1 and 0.3 on the validation
# split (0.771, 0.756, 0.731) and picked 0.03. Note what that means: we used target labels to pick a hyperparameter, as UDA papers routinely do. A real unlabelled
# target has no such labels, which makes this number optimistic.
#
# **The runs are cached.** `adaptation.digits.experiments` trains every run of lessons 04-05 and 演習3 (Exercise 3)
# once, one CPU thread per run (`tools/warm_caches.py` runs it before the notebooks, in parallel shards),
# and `digits.trained` reads one back; if the cache is empty it trains the run now. Section 6 trains one run
# here and checks that it equals the cached one.

# %%
recipe = digits.RECIPES[cfg.profile]
STEPS = {t: recipe.steps(t) for t in digits.TARGETS}
LAMBDA_MAX = digits.LAMBDA_MAX["dann"]  # chosen on target validation accuracy, see above
SEEDS = list(recipe.seeds)
METHODS = ("source", "bn_only", "dann", "oracle")
PAPER = {"source": 0.5225, "dann": 0.7666, "oracle": 0.9596}  # Ganin et al. 2016, Table 2, MNIST -> MNIST-M
print(f"{STEPS['mnist_m']} steps of 64 + 64 images, seeds {SEEDS}, SGD with μ_0 = {recipe.lr0} "
      "(the paper: 0.01, with far longer training)")
if cfg.quick:
    print("quick profile: the source has 6,000 MNIST images; the paper trains on 60,000")


def run_all(target):
    """{method: (models, histories)} over SEEDS, read from digits.experiments' cache (or trained now)."""
    out = {}
    for method in METHODS:
        lam = LAMBDA_MAX[target] if method == "dann" else 0.0
        runs = [digits.trained(target, method, lam, seed, device=cfg.device, pair=pairs[target], progress=True)
                for seed in SEEDS]
        out[method] = ([m for m, _ in runs], [h for _, h in runs])
    return out


results = {"mnist_m": run_all("mnist_m")}

# %%
def accs(res, method):
    """Final target-test accuracy of each seed."""
    return [h[-1]["target_acc"] for h in res[method][1]]


def gap(res, a, b):
    """Mean and 95% half-width of accuracy(a) − accuracy(b), paired by seed."""
    return stats.t_ci([x - y for x, y in zip(accs(res, a), accs(res, b))])


def report(res, paper=None):
    print(f"{'target test accuracy':22s}{'mean ± 95% CI':>16s}{'paper':>8s}   per seed")
    for method in res:
        mean, half = stats.t_ci(accs(res, method))
        ref = f"{paper[method]:8.3f}" if paper and method in paper else f"{'':8s}"
        print(f"{method:22s}{mean:9.3f} ± {half:.3f}{ref}   {[round(a, 3) for a in accs(res, method)]}")
    print("gains, paired by seed:")
    for a, b in (("bn_only", "source"), ("dann", "bn_only"), ("dann", "source")):
        mean, half = gap(res, a, b)
        print(f"  {a} − {b}: {mean:+.3f} ± {half:.3f}")


def plot_runs(res, title):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3))
    for i, method in enumerate(res):
        for k, h in enumerate(res[method][1]):
            a1.plot([r["step"] for r in h], [r["target_acc"] for r in h], "o-", color=f"C{i}",
                    label=method if k == 0 else None)
    dann_h = res["dann"][1][0]
    a2.plot([r["step"] for r in dann_h], [r["domain_acc"] for r in dann_h], "o-", color="C1", label="domain accuracy")
    a2.plot([r["step"] for r in dann_h], [r["domain_loss"] for r in dann_h], "s--", color="C3", label="domain loss")
    a2.plot([r["step"] for r in dann_h], [r["class_loss"] for r in dann_h], "^--", color="C0", label="class loss")
    a2.axhline(0.5, color="gray", lw=1, ls=":")
    a1.set_xlabel("step"), a1.set_ylabel("target test accuracy"), a1.legend(fontsize=8)
    a2.set_xlabel("step"), a2.set_title(f"DANN, seed {SEEDS[0]}, averaged since the previous point", fontsize=9)
    a2.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


mm_res = results["mnist_m"]
plot_runs(mm_res, "MNIST → MNIST-M (one line per seed)")
report(mm_res, PAPER)
src_acc, bn_acc, dann_acc, oracle_acc = (float(np.mean(accs(mm_res, m))) for m in METHODS)

# %% [markdown]
# What the numbers say, each checked below:
#
# * source-only transfers badly: on MNIST's own test images it is more than 30 points more accurate
#   than on MNIST-M's, and the oracle is more than 30 points better on the same MNIST-M images;
# * DANN reaches about 0.78 on average over the seeds, about 21 points above source-only; source-only
#   itself varies by several points between seeds, so that interval is wide. A second draw of three
#   seeds (3–5, trained once for this check, not read here) gave 0.772 and +0.20, so the notebook
#   asserts at least 0.72 and at least 15 points over source-only;
# * that is close to the paper's 0.77 (asserted within 5 points), but not a reproduction of its
#   protocol: the paper trains on all 60,000 MNIST images with μ_0 = 0.01 for far longer; we train on
#   6,000 for 2,000 steps with μ_0 = 0.03 and test on a carve of MNIST-M's test split;
# * **BatchNorm alone does a part of it**: the `bn_only` control is above source-only on average,
#   and accounts for roughly two fifths of DANN's gain over source-only (0.38 here, 0.44 on seeds 3–5;
#   between 20% and 60% asserted). With three seeds its own interval is wide;
# * **the adversary's own gain**, DANN above `bn_only` paired by seed, is more than 5 points on
#   **every** seed and at least 8 on average (about 13 here, 11 on seeds 3–5): the reversed gradient
#   does most of the work, though less than "DANN − source-only" suggests;
# * DANN stays more than 15 points below the oracle.

# %%
src_on_source = np.mean([loops.evaluate_accuracy(m.classify, *mm.source_test, batch_size=1000) for m in mm_res["source"][0]])
print(f"source-only: MNIST test {src_on_source:.3f}, MNIST-M test {src_acc:.3f}")
assert src_on_source - src_acc > 0.30 and oracle_acc - src_acc > 0.30
bn_gain, adv_gain, dann_gain = gap(mm_res, "bn_only", "source"), gap(mm_res, "dann", "bn_only"), gap(mm_res, "dann", "source")
print(f"share of DANN's gain that the BatchNorm-only control already has: {bn_gain[0] / dann_gain[0]:.2f}")
adv_each = [d - b for d, b in zip(accs(mm_res, "dann"), accs(mm_res, "bn_only"))]  # per seed
assert dann_acc >= 0.72 and dann_gain[0] >= 0.15
assert abs(dann_acc - PAPER["dann"]) < 0.05
assert bn_gain[0] > 0 and 0.2 < bn_gain[0] / dann_gain[0] < 0.6
assert adv_gain[0] >= 0.08 and min(adv_each) > 0.05  # the adversary's gain, on every seed
assert oracle_acc - dann_acc > 0.15
course_lib.record("mnist_m_source_only", src_acc)  # means over the seeds
course_lib.record("mnist_m_dann", dann_acc)
course_lib.record("mnist_m_train_on_target", oracle_acc)
course_lib.record("mnist_m", {"source": src_acc, "bn_only": bn_acc, "dann": dann_acc, "oracle": oracle_acc})
course_lib.record("mnist_m_gain", {"bn_only - source": list(bn_gain), "dann - bn_only": list(adv_gain),
                                   "dann - source": list(dann_gain)})  # paired [mean, 95% half-width]

# %% [markdown]
# ## 5. Did the features become domain-invariant?
#
# Three measures on the *test* images of both domains, for the source-only and the DANN network:
#
# * the **domain classifier's accuracy** during DANN training (right panel above): 0.5 would mean it
#   cannot tell the domains apart;
# * the **proxy A-distance** (Ben-David et al. 2007), 2(1 − 2ε), where ε is the test error of a fresh
#   linear classifier trained to separate source from target features: 2 = fully separable, 0 = not at all;
# * a **PCA** picture of the features.

# %%
n_show = 1000
feats = {}
for method in ("source", "dann"):
    model = mm_res[method][0][0]
    fs = loops.predict(model.embed, mm.source_test[0][:n_show], batch_size=1000)
    ft = loops.predict(model.embed, mm.target_test[0][:n_show], batch_size=1000)
    feats[method] = (fs, ft)
pad = {m: adaptation.proxy_a_distance(*feats[m], seed=cfg.seed) for m in feats}
dom_acc = mm_res["dann"][1][0][-1]["domain_acc"]
print(f"proxy A-distance: source-only {pad['source']:.3f}, DANN {pad['dann']:.3f}")
print(f"DANN's own domain classifier, last {STEPS['mnist_m'] // recipe.evals} steps: accuracy {dom_acc:.3f}")
assert pad["dann"] < pad["source"] and pad["dann"] > 1.0  # lower, and still far from 0
# the claims of the next paragraph: a small drop; PAD > 1.6 means the probe separates > 90% of the images
assert pad["source"] - pad["dann"] < 0.2 and pad["dann"] > 1.6 and dom_acc > 0.5
course_lib.record("mnist_m_proxy_a_distance", pad)
course_lib.record("mnist_m_dann_domain_acc", dom_acc)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
for ax, (method, (fs, ft)) in zip(axes, feats.items()):
    z = torch.cat([fs, ft])
    z = (z - z.mean(0)) / (z.std(0) + 1e-6)
    u, s, v = torch.pca_lowrank(z, q=2, center=True)
    xy = z @ v[:, :2]
    ax.scatter(*xy[:n_show].T, s=3, alpha=0.5, label="MNIST (source)")
    ax.scatter(*xy[n_show:].T, s=3, alpha=0.5, label="MNIST-M (target)")
    ax.set_title(f"{method}: PAD {pad[method]:.2f}", fontsize=9), ax.set_xticks([]), ax.set_yticks([])
axes[0].legend(fontsize=8, markerscale=4)
fig.suptitle("features of test images, first two principal components")
fig.tight_layout()
plt.show()

# %% [markdown]
# The proxy A-distance falls, but only a little (less than 0.2), and stays above 1.6: a linear probe
# still separates the domains with more than 90% accuracy, and DANN's own domain classifier is still
# right more often than chance. At
# this budget (and λ_max) DANN makes the features *less* domain-specific, far from domain-free. The PCA
# picture shows the same: the two clouds still sit apart.
#
# So the reversed gradient buys accuracy (section 4) while leaving the domains almost as separable as
# before: it aligns what the label classifier needs more than it removes the domain. 演習3 (Exercise 3) measures
# this across λ_max, with DANN's own domain head on held-out images beside the fresh probe.
#
# ## 6. MNIST → USPS
#
# The same four runs. Here the shift is in stroke width, framing (USPS digits fill the frame) and
# size, not colour and texture.

# %%
results["usps"] = run_all("usps")
us_res = results["usps"]
plot_runs(us_res, "MNIST → USPS (one line per seed)")
report(us_res)
print("references, each with its own network and schedule: TLlib's digits benchmark source-only 0.821, "
      "DANN 0.917; PyKale's DANN tutorial source-only 0.495, DANN 0.804 (mean of 10 seeds)")
us_src, us_bn, us_dann, us_oracle = (float(np.mean(accs(us_res, m))) for m in METHODS)
us_bn_gain, us_adv_gain, us_dann_gain = gap(us_res, "bn_only", "source"), gap(us_res, "dann", "bn_only"), gap(us_res, "dann", "source")
print(f"share of DANN's gain that the BatchNorm-only control already has: {us_bn_gain[0] / us_dann_gain[0]:.2f}")
assert us_dann_gain[0] >= 0.10 and us_bn_gain[0] / us_dann_gain[0] > 0.6 and us_adv_gain[0] < 0.05
assert us_oracle - us_dann > 0.1  # "far below the oracle" (summary)
course_lib.record("usps_source_only", us_src)
course_lib.record("usps_bn_only", us_bn)
course_lib.record("usps_dann", us_dann)
course_lib.record("usps_train_on_target", us_oracle)

# %% [markdown]
# On USPS the control tells the whole story: DANN beats source-only by about 15 points on average, but
# the `bn_only` run, with no adversary at all, already has most of that (more than 60% asserted, about
# 90% here). What the adversary adds on top is under 5 points (about 1 here): at this budget, "DANN
# adapts MNIST to USPS" is mostly "BatchNorm saw USPS". Both stay far below the oracle.

# %% [markdown]
# **One run, trained here.** Every number above came from the cache. The cheapest run, USPS source-only
# with seed 0, is trained again here with the same recipe (`digits.run` with `cache=False`): on a CPU it
# gives exactly the cached history, because both train on one thread from the same seed.

# %%
_, inline_hist = digits.run(pairs["usps"], "source", lambda_max=0.0, seed=SEEDS[0], device=cfg.device, cache=False,
                            **digits.recipe_args("usps"))
cached_hist = us_res["source"][1][0]
print(f"USPS source-only, seed {SEEDS[0]}: target test accuracy trained here {inline_hist[-1]['target_acc']:.4f}, "
      f"cached {cached_hist[-1]['target_acc']:.4f}")
if cfg.device.type == "cpu":
    assert inline_hist == cached_hist
else:  # a GPU's nondeterministic kernels may move a few images across the decision boundary
    assert abs(inline_hist[-1]["target_acc"] - cached_hist[-1]["target_acc"]) < 0.03

# %% [markdown]
# ## Summary
#
# * The chapter's DANN does not run on its own exercise's data (28×28, 1 channel), never imports `np`,
#   puts domain labels on the CPU, freezes λ at 0 for a whole epoch, and drops batches with `zip`.
# * The corrected recipe: λ(p) and μ_p per **iteration**, domains cycled independently, a network built
#   for its input, every loss logged separately.
# * Measure a DA method against the control that sees the same batches: DANN with λ_max = 0. On
#   MNIST → MNIST-M that control, where only BatchNorm sees the target, already has about 40% of DANN's
#   gain over source-only, and the adversary's own gain is the larger rest (about 13 points); on
#   MNIST → USPS, with its shorter budget, the control has nearly all of it.
# * DANN stays far below the oracle on both pairs; the proxy A-distance shows the features became less
#   domain-specific, not domain-free.
# * λ_max was chosen with target validation labels: an optimistic protocol to keep in mind when
#   reading any UDA table.
#
# Next: `05_mmd` (§3.3), aligning the domains with a kernel two-sample statistic instead of an adversary.

# %% [markdown]
# ## References
#
# The papers this notebook cites. A number labelled *the paper's* is that paper's own result on its own setting,
# quoted for comparison; it was not measured here. The course-wide bibliography is
# [docs/references.md](../docs/references.md) (docs/references.md in the course repository).
#
# * **Ganin, Ustinova, Ajakan, Germain, Larochelle, Laviolette, Marchand & Lempitsky (2016).** Domain-Adversarial Training of Neural Networks. *Journal of Machine Learning Research* 17(59). The paper's MNIST → MNIST-M results (Table 2): source-only 0.5225, DANN 0.7666, train on target 0.9596; its schedules λ(p) = 2/(1 + e^(−10p)) − 1 with λ_max = 1 and μ_p = 0.01 / (1 + 10p)^0.75 (SGD, momentum 0.9); its MNIST network (conv 32 → conv 48 → 768 features, a 100-100-10 label head, a 100-2 domain head); 60,000 MNIST training images.
# * **Ben-David, Blitzer, Crammer & Pereira (2007).** Analysis of Representations for Domain Adaptation. *NIPS 2006 (Advances in Neural Information Processing Systems 19).* The proxy A-distance, 2(1 − 2ε); no number quoted.
# * **Li, Wang, Shi, Liu & Hou (2016).** Revisiting Batch Normalization For Practical Domain Adaptation (AdaBN). *arXiv:1603.04779.* The idea behind the BatchNorm-only control; no number quoted.
# * *Not papers:* TLlib's digits benchmark (MNIST → USPS: source-only 0.821, DANN 0.917) and PyKale's DANN tutorial (source-only 0.495, DANN 0.804, mean of 10 seeds), each with its own network and schedule.
