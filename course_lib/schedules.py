"""Learning-rate schedules for fine-tuning, and the LR range test.

* Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017), stepped once per epoch like
  ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``: where a run of a given length ends inside
  its cycle (ERRATA 3.4: ``T_0=10, T_mult=2`` over 20 epochs ends at 0.578·max), and which run lengths
  end exactly at a cycle's end (10, 30, 70, ...).
* ULMFiT's slanted triangular LR (Howard & Ruder 2018): a short linear warm-up, a long linear decay.
* The LR range test (Smith 2017; fast.ai's ``lr_find``): raise the LR exponentially batch by batch,
  record the smoothed loss, stop when it diverges, suggest an LR, then put the model and optimizer
  back exactly as they were.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm


# ------------------------------------------------------------------ cosine with warm restarts (SGDR)
def _check_sgdr(T_0: int, T_mult: int) -> None:
    if not (isinstance(T_0, int) and T_0 >= 1 and isinstance(T_mult, int) and T_mult >= 1):
        raise ValueError(f"need integers T_0 >= 1 and T_mult >= 1 (as torch requires), "
                         f"got T_0={T_0!r}, T_mult={T_mult!r}")


def cycle_position(epoch: int, T_0: int, T_mult: int = 1) -> tuple[int, int, int]:
    """``(cycle, T_cur, T_i)`` for 0-based ``epoch``: cycle index, epochs since its restart, its length."""
    _check_sgdr(T_0, T_mult)
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    cycle, start, length = 0, 0, T_0
    while epoch >= start + length:
        start, length, cycle = start + length, length * T_mult, cycle + 1
    return cycle, epoch - start, length


def sgdr_factor(epoch: int, T_0: int, T_mult: int = 1, eta_min_ratio: float = 0.0) -> float:
    """LR used during 0-based ``epoch``, as a fraction of the maximum (torch after ``epoch`` steps).

    ``eta_min_ratio`` is ``eta_min / max_lr``; the factor is
    ``eta_min_ratio + (1 - eta_min_ratio) * (1 + cos(pi * T_cur / T_i)) / 2``.
    """
    if not 0.0 <= eta_min_ratio <= 1.0:
        raise ValueError(f"eta_min_ratio must be in [0, 1], got {eta_min_ratio}")
    _, t_cur, t_i = cycle_position(epoch, T_0, T_mult)
    return eta_min_ratio + (1 - eta_min_ratio) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


def final_lr_factor(epochs: int, T_0: int, T_mult: int = 1) -> float:
    """The LR factor of the *last* epoch of an ``epochs``-long run (1.0 = a fresh restart, ~0 = cycle end)."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return sgdr_factor(epochs - 1, T_0, T_mult)


def restart_epochs(T_0: int, T_mult: int, max_epochs: int) -> list[int]:
    """0-based epochs <= ``max_epochs`` at which the LR jumps back to its maximum: 10, 30, 70 for (10, 2).

    These are also the run lengths whose last epoch ends a cycle, with the LR nearly annealed.
    """
    _check_sgdr(T_0, T_mult)
    out, start, length = [], T_0, T_0 * T_mult
    while start <= max_epochs:
        out.append(start)
        start, length = start + length, length * T_mult
    return out


# ------------------------------------------------------------------ ULMFiT's slanted triangular LR
def slanted_triangular(step: int, total_steps: int, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """STLR factor at ``step`` of ``total_steps`` (Howard & Ruder 2018, eq. 3): 1/ratio -> 1 -> 1/ratio.

    The factor rises linearly for the first ``cut = floor(total_steps * cut_frac)`` steps, peaks at
    1 at step ``cut``, then falls linearly back to ``1/ratio`` at ``step = total_steps``.
    """
    if total_steps < 1 or not 0 < cut_frac < 1 or ratio < 1:
        raise ValueError(f"need total_steps >= 1, 0 < cut_frac < 1, ratio >= 1; got {total_steps}, {cut_frac}, {ratio}")
    if not 0 <= step <= total_steps:
        raise ValueError(f"step must be in [0, {total_steps}], got {step}")
    cut = max(1, math.floor(total_steps * cut_frac))
    p = step / cut if step < cut else 1 - (step - cut) / max(total_steps - cut, 1)
    return (1 + p * (ratio - 1)) / ratio


def stlr_lambda(total_steps: int, cut_frac: float = 0.1, ratio: float = 32.0) -> Callable[[int], float]:
    """A ``LambdaLR`` factor function: step the scheduler once per batch, ``total_steps`` times in all.

    Every group keeps its own peak LR (its initial ``lr``), so this composes with discriminative LRs.
    """
    slanted_triangular(0, total_steps, cut_frac, ratio)  # validate now, not at the first step
    return lambda step: slanted_triangular(min(step, total_steps), total_steps, cut_frac, ratio)


# ------------------------------------------------------------------ LR range test
@dataclass
class RangeTest:
    """The LRs tried (the top group's LR) and the smoothed, bias-corrected loss after each batch."""

    lrs: list[float]
    losses: list[float]
    diverged: bool

    def suggest(self, method: str = "steepest", skip_start: int = 5) -> float:
        """An LR from the curve: ``"steepest"`` (most negative d loss / d log lr) or ``"min/10"``.

        Only the curve up to its minimum is searched for the steepest slope: past the minimum the loss
        is already rising.  ``skip_start`` drops the first, noisiest points.
        """
        if method not in ("steepest", "min/10"):
            raise ValueError(f"method must be 'steepest' or 'min/10', got {method!r}")
        if len(self.losses) < skip_start + 3:
            raise ValueError(f"only {len(self.losses)} points recorded; run the test for more iterations")
        lrs = torch.tensor(self.lrs[skip_start:], dtype=torch.float64)
        losses = torch.tensor(self.losses[skip_start:], dtype=torch.float64)
        i_min = int(losses.argmin())
        if method == "min/10":
            return float(lrs[i_min]) / 10
        end = max(i_min, 2) + 1
        slope = torch.diff(losses[:end]) / torch.diff(lrs[:end].log())
        return float(lrs[int(slope.argmin())])


def lr_range_test(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable,
                  start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100, beta: float = 0.98,
                  diverge_factor: float = 4.0, loss_fn=F.cross_entropy,
                  device: torch.device | str | None = None, progress: bool = True) -> RangeTest:
    """Train for up to ``num_iter`` batches while the LR grows from ``start_lr`` to ``end_lr`` geometrically.

    ``batches`` yields ``(x, y)`` (a DataLoader is cycled if it runs out).  With several parameter
    groups, every group keeps its ratio to the largest initial LR, and ``lrs`` records the largest.
    The loss is smoothed with an exponential moving average (``beta``) with bias correction; the test
    stops once it exceeds ``diverge_factor`` times its minimum (or is not finite).  Afterwards the
    model's ``state_dict`` (weights and BatchNorm statistics), its train/eval mode and the optimizer's
    ``state_dict`` (moments and LRs) are restored exactly.
    """
    if not 0 < start_lr < end_lr or num_iter < 2 or not 0 <= beta < 1 or diverge_factor <= 1:
        raise ValueError(f"need 0 < start_lr < end_lr, num_iter >= 2, 0 <= beta < 1, diverge_factor > 1; got "
                         f"{start_lr}, {end_lr}, {num_iter}, {beta}, {diverge_factor}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    gamma = (end_lr / start_lr) ** (1 / (num_iter - 1))
    try:
        return _sweep(model, optimizer, _cycle(batches), [start_lr * gamma ** i for i in range(num_iter)], beta,
                      diverge_factor, loss_fn, device, progress)
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        model.train(was_training)


def _cycle(batches: Iterable) -> Iterator:
    """Re-iterate a DataLoader when it runs out; a one-shot iterator simply ends the test."""
    first = True
    while True:
        n = 0
        for n, b in enumerate(batches, 1):  # noqa: B007 (n counts the batches: read after the loop)
            yield b
        if n == 0:
            if first:
                raise ValueError("batches is empty")
            return
        first = False


def _sweep(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator, schedule: list[float],
           beta: float, diverge_factor: float, loss_fn, device: torch.device, progress: bool) -> RangeTest:
    """One SGD step per learning rate of ``schedule`` (scaled per group) until the smoothed loss diverges."""
    top = max(g["lr"] for g in optimizer.param_groups)
    ratios = [g["lr"] / top for g in optimizer.param_groups]
    lrs, losses, avg, best, diverged = [], [], 0.0, math.inf, False
    model.train()
    for i, (lr, (x, y)) in enumerate(tqdm(zip(schedule, batches), total=len(schedule), desc="LR range test",
                                          disable=not progress, leave=False)):
        for g, r in zip(optimizer.param_groups, ratios):
            g["lr"] = lr * r
        loss = loss_fn(model(x.to(device)), torch.as_tensor(y).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        avg = beta * avg + (1 - beta) * loss.item()
        smoothed = avg / (1 - beta ** (i + 1))
        if not math.isfinite(smoothed) or smoothed > diverge_factor * best:
            diverged = True
            break
        best = min(best, smoothed)
        lrs.append(lr)
        losses.append(smoothed)
    return RangeTest(lrs, losses, diverged)
