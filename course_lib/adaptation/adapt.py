"""One training loop for unsupervised domain adaptation, so methods differ only in their extra loss.

``train_adapted`` draws a labelled source batch and an unlabelled target batch at every step, cycling
each domain independently (ERRATA 4.5: ``zip`` of two loaders stops at the shorter one), and uses the
paper's SGD recipe (momentum 0.9, μ_p = μ_0 / (1 + 10p)^0.75) for every method:

* ``"source"``: cross-entropy on the source only (the target batch is not used);
* ``"dann"``:   + the domain classifier's loss through gradient reversal with weight λ(p);
* ``"mmd"``:    + λ(p) · unbiased multi-kernel MMD² between source and target features (DAN-style).

Also here: the proxy A-distance, a measure of how separable two feature sets are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from ..loops import evaluate_accuracy, shuffled
from .dann import DANN, dann_lambda, dann_lr, domain_labels
from .mmd import mmd2

METHODS = ("source", "dann", "mmd")


def forever(loader: Iterable) -> Iterator:
    """Iterate a loader again and again (a new shuffle each pass), so the shorter domain never ends an epoch."""
    while True:
        empty = True
        for item in loader:
            empty = False
            yield item
        if empty:
            raise ValueError("cannot cycle an empty loader")


def shuffled_batches(n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Index batches (batch_size,) of a new permutation of range(n) each pass, the last partial batch dropped,
    forever: what a shuffling ``DataLoader`` with ``drop_last`` gives under ``forever``, without its per-item
    collation (which cost a third of a training step here)."""
    if not 0 < batch_size <= n:
        raise ValueError(f"need 0 < batch_size <= n, got batch_size={batch_size}, n={n}")
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield from shuffled(n, batch_size, gen, drop_last=True)


def _check_domains(source: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor, method: str,
                   batch_size: int) -> None:
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; use one of {METHODS}")
    xs, ys = source
    if len(xs) != len(ys):
        raise ValueError(f"source images and labels differ in length: {len(xs)} vs {len(ys)}")
    if xs.shape[1:] != target.shape[1:]:
        raise ValueError(f"source and target images must have the same shape, got {tuple(xs.shape[1:])} "
                         f"and {tuple(target.shape[1:])}; resize/convert them first (course_lib.images.to_rgb)")
    if min(len(xs), len(target)) < batch_size:
        raise ValueError(f"each domain needs at least batch_size={batch_size} images")


def adapted_loss(model: DANN, method: str, x_s: torch.Tensor, y_s: torch.Tensor, x_t: torch.Tensor,
                 lam: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """One step's loss for ``method``: (loss, source class logits (n_s, K), extra logged values).

    x_s (n_s, C, H, W) with labels y_s (n_s,) and x_t (n_t, C, H, W), all on the model's device.
    """
    if method == "source":
        logits, _, _ = model(x_s)
        return F.cross_entropy(logits, y_s), logits, {}
    logits, dom, f = model(torch.cat([x_s, x_t]), alpha=lam)
    logits, ns = logits[: len(x_s)], len(x_s)
    if method == "dann":
        labels = domain_labels(ns, len(x_t), x_s.device)
        dloss = F.cross_entropy(dom, labels)
        extra = {"domain_loss": dloss.item(), "domain_acc": (dom.argmax(1) == labels).float().mean().item()}
        return F.cross_entropy(logits, y_s) + dloss, logits, extra  # the GRL already scales G_f's gradient by λ
    gap = mmd2(f[:ns], f[ns:], kernel="multi")
    return F.cross_entropy(logits, y_s) + lam * gap, logits, {"mmd2": gap.item()}


def train_adapted(model: DANN, source: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor, steps: int,
                  method: str = "dann", batch_size: int = 64, lambda_max: float = 1.0, gamma: float = 10.0,
                  lr0: float = 0.01, target_test: tuple[torch.Tensor, torch.Tensor] | None = None,
                  eval_every: int | None = None, seed: int = 0, progress: bool = True) -> list[dict]:
    """Train ``model`` for ``steps`` iterations; λ(p) and μ_p are set before each, p = (step - 1) / steps.

    source: (images (N, C, H, W), labels (N,)); target: unlabelled images (M, C, H, W).
    Returns one dict per evaluation (every ``eval_every`` steps, default only at the end), averaged over the steps
    since the last one: step, lambda, lr, class_loss, and domain_loss + domain_acc (dann) or mmd2 (mmd);
    target_acc when ``target_test`` (images, labels) is given.  ``seed`` fixes the batch order of each
    domain (independently); dropout draws from the global RNG, which ``course_lib.setup`` seeds.  The model
    is switched to ``channels_last`` memory format (faster convolutions; the same numbers up to rounding).
    """
    _check_domains(source, target, method, batch_size)
    eval_every = eval_every or steps
    if steps < 1 or eval_every < 1:
        raise ValueError(f"steps and eval_every must be >= 1, got {steps} and {eval_every}")
    (xs, ys), device = source, next(model.parameters()).device
    model.to(memory_format=torch.channels_last)  # ~30% faster convolutions on a CPU, same results up to rounding
    batches = zip(shuffled_batches(len(xs), batch_size, seed), shuffled_batches(len(target), batch_size, seed + 1))
    opt = torch.optim.SGD(model.parameters(), lr=lr0, momentum=0.9)
    history, sums, n = [], {}, 0
    model.train()
    for step in tqdm(range(1, steps + 1), desc=method, disable=not progress, leave=False):
        i_s, i_t = next(batches)
        x_s, y_s = xs[i_s].to(device), ys[i_s].to(device)
        p = (step - 1) / steps
        lam = dann_lambda(p, gamma, lambda_max)
        for g in opt.param_groups:
            g["lr"] = dann_lr(p, lr0)
        loss, logits, extra = adapted_loss(model, method, x_s, y_s, target[i_t].to(device), lam)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for k, v in {"class_loss": F.cross_entropy(logits.detach(), y_s).item(), **extra}.items():
            sums[k] = sums.get(k, 0.0) + v
        n += 1
        if step % eval_every == 0 or step == steps:
            history.append(_row(model, step, lam if method != "source" else 0.0, opt, sums, n, target_test))
            sums, n = {}, 0
    return history


def _row(model: DANN, step: int, lam: float, opt: torch.optim.Optimizer, sums: dict, n: int,
         target_test: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
    """One history row: the schedule's values and the means of ``sums`` over ``n`` steps (+ target_acc)."""
    row = {"step": step, "lambda": lam, "lr": opt.param_groups[0]["lr"], **{k: v / n for k, v in sums.items()}}
    if target_test is not None:
        row["target_acc"] = evaluate_accuracy(model.classify, *target_test, batch_size=1000)
    return row


def proxy_a_distance(source: torch.Tensor, target: torch.Tensor, seed: int = 0) -> float:
    """Proxy A-distance 2(1 - 2ε) (Ben-David et al. 2007): ε is the test error of a linear domain classifier.

    source (N, D) and target (M, D) features; the classifier (logistic regression on standardised
    features) is trained on a random half of each and tested on the other half.  About 2 when the
    domains are perfectly separable, about 0 (or slightly below) when they are indistinguishable.
    """
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"expected features (N, D) and (M, D), got {tuple(source.shape)} and {tuple(target.shape)}")
    if min(len(source), len(target)) < 4:
        raise ValueError("need at least 4 samples per domain")
    x = torch.cat([source, target]).detach().double().cpu().numpy()
    d = np.r_[np.zeros(len(source)), np.ones(len(target))]
    rng = np.random.default_rng(seed)
    train = np.zeros(len(x), dtype=bool)
    for dom in (0, 1):  # half of each domain for training
        idx = np.flatnonzero(d == dom)
        train[rng.permutation(idx)[: len(idx) // 2]] = True
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x[train]), d[train])
    err = 1.0 - clf.score(scaler.transform(x[~train]), d[~train])
    return 2.0 * (1.0 - 2.0 * err)
