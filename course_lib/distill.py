"""Knowledge distillation (Hinton et al. 2015): the loss, a small CIFAR-10 student and its training loop.

* ``kd_loss``: α·T²·KL(p_T ‖ q_T) + (1 − α)·CE(y, q), where p_T / q_T are the teacher's / student's
  softmax at temperature T.  α weights the **soft** (distillation) term, as in the chapter (ERRATA 6.1).
* ``StudentCNN``: three conv blocks and one linear layer for 3×32×32 input, ~25k parameters at the
  default width, against ~850k for the CIFAR ResNet-56 teacher.
* ``teacher_logits``: a frozen teacher, run once over a training set.  Without data augmentation the
  teacher sees the same images every epoch, so caching its logits is exact and saves one teacher
  forward pass per batch.
* ``train_student``: a seeded loop on tensors, from scratch (no teacher) or distilled from cached
  logits or from a teacher run on every batch.  A label of ``UNLABELLED`` (−1) marks an image that
  only the teacher labels (Hinton et al.'s *transfer set* need not be labelled).
* ``count_params``, ``time_inference``: the size and speed columns of a compression table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import config
from .loops import fit, predict
from .models import Normalize

UNLABELLED = -1  # a target with no label: the hard term skips it, the soft term still uses it


class KDLoss(NamedTuple):
    """The three scalars ``kd_loss`` returns: ``total = alpha * soft + (1 - alpha) * hard``."""

    total: torch.Tensor
    soft: torch.Tensor  # T² · KL(teacher_T ‖ student_T), batch mean
    hard: torch.Tensor  # cross-entropy with the labels at T = 1, mean over the labelled samples


def _check_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor) -> None:
    if student_logits.ndim != 2:
        raise ValueError(f"student_logits must be (N, C), got shape {tuple(student_logits.shape)}")
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher_logits must have the student's shape {tuple(student_logits.shape)}, "
                         f"got {tuple(teacher_logits.shape)}")
    if targets.ndim != 1 or len(targets) != len(student_logits):
        raise ValueError(f"targets must be (N,) = ({len(student_logits)},) class indices, "
                         f"got shape {tuple(targets.shape)}")
    if targets.dtype not in (torch.int64, torch.int32, torch.uint8, torch.int16, torch.int8):
        raise ValueError(f"targets must hold integer class indices, got dtype {targets.dtype}")
    if len(targets) and (targets.min() < UNLABELLED or targets.max() >= student_logits.shape[1]):
        raise ValueError(f"targets must be class indices in [0, {student_logits.shape[1]}) or UNLABELLED "
                         f"({UNLABELLED}), got values in [{int(targets.min())}, {int(targets.max())}]")


def hard_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits (N, C) over the samples whose target (N,) is not ``UNLABELLED``; 0 if none is."""
    labelled = targets != UNLABELLED
    if not labelled.any():
        return logits.sum() * 0.0  # keeps the graph, so backward() still works
    return F.cross_entropy(logits[labelled], targets[labelled].long())


def soft_targets(logits: torch.Tensor, T: float) -> torch.Tensor:
    """softmax(logits / T) along the last dim: (..., C) -> (..., C).  T > 1 flattens the distribution."""
    if not T > 0:
        raise ValueError(f"temperature T must be > 0, got {T}")
    return F.softmax(logits / T, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
            T: float, alpha: float) -> KDLoss:
    """Hinton's distillation loss for student/teacher logits (N, C) and labels (N,).

    soft = T² · (1/N) Σᵢ KL(softmax(tᵢ/T) ‖ softmax(sᵢ/T)) (``reduction="batchmean"``; ``"mean"`` would
    also divide by C); the T² keeps its gradient on the same scale as the hard term's for every T.
    hard = cross-entropy of the student at T = 1 over the labelled samples (targets of ``UNLABELLED``
    are skipped).  total = alpha · soft + (1 − alpha) · hard, so ``alpha`` is the weight of the *soft*
    term; alpha = 0 is plain cross-entropy.  The teacher's logits are detached: no gradient flows into
    the teacher.
    """
    _check_logits(student_logits, teacher_logits, targets)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (the weight of the soft term) must be in [0, 1], got {alpha}")
    p_teacher = soft_targets(teacher_logits.detach(), T)
    log_q_student = F.log_softmax(student_logits / T, dim=1)
    soft = F.kl_div(log_q_student, p_teacher, reduction="batchmean") * T ** 2
    hard = hard_loss(student_logits, targets)
    return KDLoss(alpha * soft + (1 - alpha) * hard, soft, hard)


class StudentCNN(nn.Module):
    """(N, 3, 32, 32) in [0, 1] -> logits (N, num_classes): three conv-BN-ReLU-maxpool blocks
    (width, 2·width, 4·width channels; 32 -> 16 -> 8 -> 4), global average pooling, one linear layer.

    It normalises its input like the CIFAR ResNets, so both take the same tensors.  Global pooling
    makes it accept any H, W ≥ 8 (unlike the chapter's flatten sizes, ERRATA 6.3).
    """

    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        if width < 1 or num_classes < 2:
            raise ValueError(f"need width >= 1 and num_classes >= 2, got {width}, {num_classes}")
        self.normalize = Normalize()
        blocks, c_in = [], 3
        for c_out in (width, 2 * width, 4 * width):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(self.normalize(x)))


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def time_inference(model: nn.Module, batch: torch.Tensor, repeats: int = 5, threads: int | None = None) -> float:
    """Median wall-clock seconds of one eval-mode forward pass on ``batch`` (N, ...), after one warm-up; the
    batch may be on any device (it is moved to the model's first, outside the timing).

    ``threads`` sets torch's CPU thread count for the measurement (restored afterwards); one thread
    gives ratios between models that do not depend on how busy a shared machine is.
    """
    if repeats < 1 or (threads is not None and threads < 1):
        raise ValueError(f"need repeats >= 1 and threads >= 1 (or None), got {repeats}, {threads}")
    batch = batch.to(config.device_of(model))
    sync = torch.cuda.synchronize if batch.is_cuda else (lambda: None)
    was_training, before = model.training, torch.get_num_threads()
    model.eval()
    torch.set_num_threads(threads or before)
    try:
        model(batch)
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            model(batch)
            sync()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
        model.train(was_training)
    return sorted(times)[len(times) // 2]


def freeze_teacher(teacher: nn.Module) -> nn.Module:
    """Eval mode (BatchNorm uses its running statistics) and ``requires_grad_(False)``; returns it."""
    return teacher.eval().requires_grad_(False)


def teacher_logits(teacher: nn.Module, images: torch.Tensor, batch_size: int = 256,
                   progress: bool = False) -> torch.Tensor:
    """The teacher's logits (N, C) on the CPU for images (N, 3, H, W), in batches; freezes the teacher first."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    return predict(freeze_teacher(teacher), images, batch_size=batch_size, progress=progress, desc="teacher logits")


def train_student(student: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int, *,
                  cached_logits: torch.Tensor | None = None, teacher: nn.Module | None = None,
                  T: float = 4.0, alpha: float = 0.9, lr: float = 2e-3, batch_size: int = 128,
                  seed: int = 0, progress: bool = True, desc: str = "student",
                  loss_fn: Callable[..., torch.Tensor] | None = None) -> list[dict]:
    """Adam with a cosine-annealed learning rate (per step) on images (N, 3, H, W) and labels (N,).

    * neither ``cached_logits`` nor ``teacher``: from scratch, plain cross-entropy;
    * labels of ``UNLABELLED`` (−1): images only the soft term learns from (distillation only);
    * ``cached_logits`` (N, C): distilled with ``kd_loss(T, alpha)`` from logits computed once;
    * ``teacher``: distilled, running the (frozen) teacher on every batch;
    * ``loss_fn(student_logits, teacher_logits, targets, T, alpha) -> total``: a distillation loss to use
      instead of ``kd_loss`` (e.g. one written in an exercise); its history has ``soft`` = ``hard`` = NaN.

    With the same ``seed`` every variant starts from the weights ``student`` holds and sees the same
    batches in the same order, so runs differ only in their loss.  Returns one dict per epoch with
    the mean ``total``, ``soft`` and ``hard`` losses (``soft`` is 0 from scratch) and ``seconds``.
    """
    _check_student_inputs(images, labels, cached_logits, teacher, loss_fn)
    if teacher is not None:
        freeze_teacher(teacher)
    device = config.device_of(student)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * -(-len(images) // batch_size))

    def batches(epoch: int):
        for idx in torch.randperm(len(images), generator=gen).split(batch_size):
            yield images[idx].to(device), labels[idx].to(device), idx

    def loss(logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> KDLoss:
        if cached_logits is None and teacher is None:
            hard = hard_loss(logits, y)
            return KDLoss(hard, torch.zeros(()), hard)
        with torch.no_grad():
            t_logits = cached_logits[idx].to(device) if teacher is None else teacher(images[idx].to(device))
        if loss_fn is None:
            return kd_loss(logits, t_logits, y, T, alpha)
        nan = torch.full((), float("nan"))
        return KDLoss(loss_fn(logits, t_logits, y, T, alpha), nan, nan)

    history = fit(student, batches, None, epochs, loss_fn=loss, optimizer=opt, scheduler=sched, step_scheduler=True,
                  progress=progress, desc=desc)
    return history.epochs


def _check_student_inputs(images: torch.Tensor, labels: torch.Tensor, cached_logits: torch.Tensor | None,
                          teacher: nn.Module | None, loss_fn: Callable | None) -> None:
    if cached_logits is not None and teacher is not None:
        raise ValueError("pass cached_logits or teacher, not both")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need one label per image (> 0), got {len(images)} images and {len(labels)} labels")
    if cached_logits is None and teacher is None and (labels == UNLABELLED).any():
        raise ValueError("training from scratch needs a label for every image; UNLABELLED images need a teacher")
    if cached_logits is not None and cached_logits.shape[0] != len(images):
        raise ValueError(f"cached_logits must be (N, C) with N = {len(images)}, got {tuple(cached_logits.shape)}")
    if loss_fn is not None and cached_logits is None and teacher is None:
        raise ValueError("loss_fn is a distillation loss: pass cached_logits or teacher with it")
