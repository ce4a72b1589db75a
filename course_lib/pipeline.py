"""The chapter's §5.1 ``TransferLearningPipeline``, rebuilt so that every step does what it says.

``TransferLearningPipeline(backbone, ...)`` on a binary medical task:

1. ``transferability(train)``: LogME of the frozen backbone's penultimate features, *before* training
   (the chapter's check used conv-map features and an undefined score, ERRATA 8.2–8.4);
2. ``fit(train, val)``: freezing + discriminative learning rates (``course_lib.finetune``; frozen
   BatchNorm stays in eval mode, 8.6), class-weighted loss for the imbalance, tensor augmentation
   suited to X-rays, early stopping on validation AUC, the best checkpoint **reloaded** at the end
   (8.8) from a run directory that is never the current directory; ``drop_last`` so a BatchNorm head
   never meets a batch of one (8.5); losses averaged per sample (8.16).  When only the head trains
   and there is no augmentation, the frozen features are computed once and cached;
3. ``distill(student, train, val)``: an optional knowledge-distillation stage (``distill.kd_loss``)
   from the fine-tuned network into a smaller student, so ``run(..., use_distillation=True)`` does
   something (8.7);
4. ``report(test, val)``: ``metrics.binary_report`` with the threshold chosen on validation.

A ``Backbone`` pairs a ResNet-style model (``conv1``, ``bn1``, ``layer1..K``, ``fc``) with the
preprocessing from course images (N, 1 or 3, H, W) in [0, 1] to the model's input; grayscale is
repeated to three channels explicitly.  ``cifar_backbone`` is the quick profile's (mirrored CIFAR-10
ResNet, 28 px); ``torchvision_backbone`` the full profile's (ImageNet ResNet-18 with
``weights.transforms()``, for 224-px MedMNIST+).
"""

from __future__ import annotations

import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import config, finetune, metrics, models
from .augment import XRayAugment
from .distill import freeze_teacher, kd_loss
from .images import to_rgb
from .loops import History, fit, new_run_dir, predict
from .transferability import logme

IMBALANCE = ("weighted_loss", "sampler", None)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be loaded (no network and no cached copy)."""


@dataclass
class Backbone:
    """``model``: logits (N, K) from ``preprocess(images)``; images (N, 1 or 3, H, W) float in [0, 1]."""

    model: nn.Module
    preprocess: Callable[[torch.Tensor], torch.Tensor]
    name: str


def cifar_backbone(depth: int = 20, pretrained: bool = True, num_classes: int = 2, data_dir=None) -> Backbone:
    """A mirrored CIFAR-10 ResNet with a new ``num_classes`` head; it normalises its own input.

    Preprocessing only repeats grayscale to 3 channels (``images.to_rgb``); 28-px input is fine
    because the network ends in global average pooling.
    """
    return Backbone(models.cifar_resnet(depth, pretrained, num_classes, data_dir), to_rgb,
                    f"cifar-resnet{depth}" + ("" if pretrained else " (random init)"))


def torchvision_backbone(weights: str | None = "DEFAULT", num_classes: int = 2) -> Backbone:
    """torchvision ResNet-18 with ``weights=ResNet18_Weights.DEFAULT`` (or ``None``: random init).

    Preprocessing is grayscale -> 3 channels, then ``ResNet18_Weights.DEFAULT.transforms()`` (resize
    256, centre crop 224, ImageNet mean/std), applied to tensors.  Without network access and without
    a cached copy of the weights this raises ``WeightsUnavailableError`` saying what to do.
    """
    from torchvision.models import ResNet18_Weights, resnet18

    if weights not in ("DEFAULT", None):
        raise ValueError(f"weights must be 'DEFAULT' or None, got {weights!r}")
    chosen = ResNet18_Weights.DEFAULT if weights == "DEFAULT" else None
    try:
        model = resnet18(weights=chosen)
    except (urllib.error.URLError, OSError) as err:
        raise WeightsUnavailableError(
            f"Could not load the ImageNet weights of ResNet-18 ({ResNet18_Weights.DEFAULT.url}): {err}.\n"
            "Fix: run once with internet access (torch caches them under $TORCH_HOME/hub/checkpoints), copy "
            "that file there by hand, or use the quick profile (COURSE_PROFILE=quick: CIFAR ResNet from the "
            "offline mirror).") from err
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    t = ResNet18_Weights.DEFAULT.transforms()  # resize 256, centre crop 224, ImageNet mean/std
    prep = ResizeCropNormalize(t.resize_size[0], t.crop_size[0], t.mean, t.std)
    return Backbone(model, prep, "resnet18-imagenet" if chosen else "resnet18 (random init)")


def _resize_matrix(n: int, size: int, crop: int) -> torch.Tensor:
    """(crop, n): row i holds the weights that bilinear, antialiased resizing of n pixels to ``size`` gives
    output pixel i of the centred ``crop``; found by resizing the identity, so it is exactly torchvision's."""
    eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, 1, n)  # n one-row images, one per input pixel
    rows = F.interpolate(eye, size=(1, size), mode="bilinear", antialias=True, align_corners=False)[:, 0, 0].T
    top = int(round((size - crop) / 2.0))
    return rows[top:top + crop].float()


class ResizeCropNormalize:
    """torchvision's ``ImageClassification`` preset (resize the short side to ``size``, centre-crop ``crop``,
    normalise) for square batches, as two matrix products per image: resizing is linear and separable, so
    out = A · X · Aᵀ with A (crop, H) from ``_resize_matrix``, and only the crop is computed.  The rows of A
    sum to 1, so normalising commutes with resizing: it is done first, on the small input.  The second product,
    which writes the output, skips the zero weights of the banded A (``_bands``).
    images (N, 1 or 3, H, H) -> (N, 3, crop, crop).
    """

    def __init__(self, size: int, crop: int, mean: list[float], std: list[float]):
        self.size, self.crop = size, crop
        std_t = torch.tensor(std).view(1, 3, 1, 1)
        self.scale, self.shift = 1 / std_t, -torch.tensor(mean).view(1, 3, 1, 1) / std_t  # (x - m) / s = x / s - m / s
        self._a: dict[tuple[int, torch.device], tuple[torch.Tensor, list]] = {}  # A and its bands, per H

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[2] != x.shape[3]:
            raise ValueError(f"expected square images (N, 1 or 3, H, H), got {tuple(x.shape)}")
        n, h = len(x), x.shape[2]
        if (h, x.device) not in self._a:
            a = _resize_matrix(h, self.size, self.crop).to(x.device)
            self._a[h, x.device] = a, self._bands(a)
        a, bands = self._a[h, x.device]
        u = a @ torch.addcmul(self.shift.to(x.device), x.float(), self.scale.to(x.device))  # (N, 3, crop, H)
        # writing the output is most of the cost: matrix multiplies write it in place, (N·3·crop, H) @ (H, crop)
        out = torch.empty(n, 3, self.crop, self.crop, device=x.device)
        for out_cols, in_cols, a_t in bands:
            torch.mm(u.view(-1, h)[:, in_cols], a_t, out=out.view(-1, self.crop)[:, out_cols])
        return out

    @staticmethod
    def _bands(a: torch.Tensor, parts: int = 2) -> list[tuple[slice, slice, torch.Tensor]]:
        """A (crop, H) split into ``parts`` blocks of output pixels, each with only the input pixels where its
        weights are non-zero (resizing weights are local): [(output slice, input slice, that block of Aᵀ)]."""
        bands = []
        for idx in torch.arange(len(a)).chunk(parts):
            used = a[idx].ne(0).any(0).nonzero().view(-1)
            out_px, in_px = slice(idx[0].item(), idx[-1].item() + 1), slice(used[0].item(), used[-1].item() + 1)
            bands.append((out_px, in_px, a[out_px, in_px].T))
        return bands


def make_head(in_features: int, num_classes: int, hidden: int) -> nn.Sequential:
    """The chapter's head (§5.1): Dropout, Linear, ReLU, **BatchNorm1d**, Dropout, Linear: (N, D) -> (N, K)."""
    return nn.Sequential(nn.Dropout(0.5), nn.Linear(in_features, hidden), nn.ReLU(), nn.BatchNorm1d(hidden),
                         nn.Dropout(0.3), nn.Linear(hidden, num_classes))


def as_xy(data) -> tuple[torch.Tensor, torch.Tensor]:
    """An ``ImageDataset`` or an ``(images, labels)`` pair -> images (N, C, H, W) float, labels (N,) int64."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        x, y = data.images, data.labels
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (torch.as_tensor(d) for d in data)
    else:
        raise ValueError("data must be an ImageDataset or an (images, labels) pair")
    if x.ndim != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
        raise ValueError(f"images must be float (N, 1 or 3, H, W) in [0, 1], got {x.dtype} {tuple(x.shape)}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"labels must have shape ({len(x)},), got {tuple(y.shape)}")
    if y.is_floating_point() or y.min() < 0:
        raise ValueError("labels must be non-negative integer class indices")
    return x, y.long()


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """w_c = N / (K · n_c): every class contributes the same total weight; mean weight per sample = 1."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    if (counts == 0).any():
        raise ValueError(f"every class needs training examples, got counts {counts.tolist()}")
    return len(labels) / (num_classes * counts)


@dataclass
class PipelineResult:
    logme: float
    history: History
    student_history: History | None = None


class TransferLearningPipeline:
    """Transferability check, fine-tuning with early stopping on val AUC, optional distillation.

    freeze: ``finetune.freeze`` strategy ("all" = head only, "partial" = last stage + head, "none",
    or an int).  lr: the head's learning rate; each lower stage gets ``lr / lr_factor**k``.
    head_hidden: if set, the chapter's MLP head with BatchNorm1d of that width.  imbalance:
    "weighted_loss" (``class_weights``), "sampler" (draw examples with probability ∝ 1 / n_class) or
    None.  augment: called on each training batch (None = no augmentation).  Training drops the last
    incomplete batch, so there must be at least ``batch_size`` training examples.
    """

    def __init__(self, backbone: Backbone, *, freeze: str | int = "partial", lr: float = 1e-3,
                 lr_factor: float = 2.6, head_hidden: int | None = None, batch_size: int = 64,
                 max_epochs: int = 10, patience: int = 3, imbalance: str | None = "weighted_loss",
                 augment: Callable | None = XRayAugment(), device: torch.device | str | None = None,  # noqa: B008 (read-only settings)
                 run_dir: str | Path | None = None, seed: int = 0, progress: bool = True):
        if imbalance not in IMBALANCE:
            raise ValueError(f"imbalance must be one of {IMBALANCE}, got {imbalance!r}")
        if batch_size < 2 or max_epochs < 1 or patience < 1:
            raise ValueError(f"need batch_size >= 2, max_epochs >= 1, patience >= 1; got {batch_size}, "
                             f"{max_epochs}, {patience}")
        self.backbone, self.model, self.preprocess = backbone, backbone.model, backbone.preprocess
        if head_hidden:
            self.model.fc = make_head(_in_features(self.model.fc), _out_features(self.model.fc), head_hidden)
        self.num_classes = _out_features(self.model.fc)
        finetune.freeze(self.model, freeze)
        self.lr, self.lr_factor, self.batch_size = lr, lr_factor, batch_size
        self.max_epochs, self.patience, self.imbalance, self.augment = max_epochs, patience, imbalance, augment
        self.device = torch.device(device) if device is not None else config.default_device()
        self.run_dir = Path(run_dir) if run_dir is not None else new_run_dir("pipeline")
        if self.run_dir.resolve() == Path.cwd().resolve():
            raise ValueError("run_dir must not be the current directory (ERRATA 8.8); use loops.new_run_dir()")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.seed, self.progress = seed, progress
        self.model.to(self.device)
        self.student: Backbone | None = None
        self._feature_cache: list[tuple[object, torch.Tensor]] = []  # (data object, its features)

    # ------------------------------------------------------------------ frozen features and LogME
    @property
    def head_only(self) -> bool:
        """True when no backbone parameter trains: frozen features can be cached."""
        fc = set(map(id, self.model.fc.parameters()))
        return not any(p.requires_grad for p in self.model.parameters() if id(p) not in fc)

    @torch.no_grad()
    def features(self, data, batch_size: int = 256) -> torch.Tensor:
        """Penultimate features (N, D) of the backbone in eval mode (the model with ``fc`` replaced by
        identity).  While only the head trains, they are cached per ``data`` object (dataset or tensor)."""
        for key, value in self._feature_cache:
            if key is data:
                return value
        x = data if isinstance(data, torch.Tensor) else as_xy(data)[0]
        head = self.model.fc
        self.model.fc = nn.Identity()
        try:
            out = predict(lambda xb: self.model(self.preprocess(xb)), x, batch_size=batch_size, device=self.device,
                          module=self.model)
        finally:
            self.model.fc = head
        if self.head_only:
            self._feature_cache.append((data, out))
        return out

    def transferability(self, data) -> float:
        """LogME (higher = better) of the frozen features on ``data``'s labels, before any training."""
        return logme(self.features(data), as_xy(data)[1])

    # ------------------------------------------------------------------ training
    def _batches(self, y: torch.Tensor, gen: torch.Generator) -> list[torch.Tensor]:
        """Index batches for one epoch, the last incomplete one dropped (ERRATA 8.5)."""
        n = len(y)
        if self.imbalance == "sampler":
            w = class_weights(y, self.num_classes)[y]
            order = torch.multinomial(w, n, replacement=True, generator=gen)
        else:
            order = torch.randperm(n, generator=gen)
        return list(order[: n - n % self.batch_size].split(self.batch_size))

    def _loop(self, net: nn.Module, forward: Callable, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor,
              y_val: torch.Tensor, loss_fn: Callable, optimizer: torch.optim.Optimizer, name: str,
              augment: Callable | None) -> History:
        """``loops.fit`` with early stopping on val AUC; reloads ``run_dir/name.pt`` (the best).

        ``loss_fn(logits, yb, xb, idx)`` sees the (augmented) batch and its indices into ``x``.
        """
        if len(x) < self.batch_size:
            raise ValueError(f"{len(x)} training examples < batch_size {self.batch_size}: lower batch_size")
        gen = torch.Generator().manual_seed(self.seed)

        def batches(epoch: int):
            for idx in self._batches(y, gen):
                xb, yb = x[idx].to(self.device), y[idx].to(self.device)
                xb = augment(xb, gen) if augment is not None else xb
                yield xb, yb, xb, idx

        def validate() -> dict[str, float]:
            probs = _probs(net, forward, x_val, self.device)
            return {"val_loss": F.nll_loss(probs.clamp_min(1e-12).log(), y_val).item(),
                    "val_acc": (probs.argmax(1) == y_val).float().mean().item(),
                    "val_auc": metrics.roc_auc(y_val, probs[:, 1])}

        return fit(net, batches, validate, self.max_epochs, loss_fn=loss_fn, optimizer=optimizer, forward=forward,
                   monitor="val_auc", patience=self.patience, run_dir=self.run_dir, name=name, overwrite=True,
                   progress=self.progress, desc=name)

    def _loss(self, y: torch.Tensor) -> Callable:
        w = (class_weights(y, self.num_classes) if self.imbalance == "weighted_loss"
             else torch.ones(self.num_classes)).to(self.device)
        return lambda logits, yb, xb, idx: (w[yb] * F.cross_entropy(logits, yb, reduction="none")).mean()

    def fit(self, train, val) -> History:
        """Fine-tune on ``train``, early-stop on ``val`` AUC; ``self.model`` ends with the best weights."""
        (x, y), (xv, yv) = as_xy(train), as_xy(val)
        self._check_binary(y, yv)
        optimizer = torch.optim.Adam(finetune.param_groups(self.model, self.lr, self.lr_factor))
        if self.head_only and self.augment is None:  # frozen features are exact: compute them once
            fx, fv = self.features(train), self.features(val)
            forward = lambda f: self.model.fc(f)
            return self._loop(self.model, forward, fx, y, fv, yv, self._loss(y), optimizer, "best", None)
        self._feature_cache.clear()  # the backbone is about to change
        forward = lambda xb: self.model(self.preprocess(xb))
        return self._loop(self.model, forward, x, y, xv, yv, self._loss(y), optimizer, "best", self.augment)

    def distill(self, student: Backbone, train, val, T: float = 4.0, alpha: float = 0.9, lr: float = 2e-3,
                augment: bool = True) -> History:
        """Train ``student`` on ``distill.kd_loss`` against this pipeline's (fitted) model as teacher.

        With ``augment`` the teacher sees the same augmented batch as the student; without, its logits
        are computed once and cached (exact: the frozen teacher gives the same output every epoch).
        ``alpha=0`` is the control run: the same student and batches, plain cross-entropy.  The best
        student (val AUC) is reloaded and kept in ``self.student`` (a ``Backbone``).
        """
        (x, y), (xv, yv) = as_xy(train), as_xy(val)
        self._check_binary(y, yv)
        teacher = freeze_teacher(self.model)
        teach = lambda xb: teacher(self.preprocess(xb))
        cached = None if augment else predict(teach, x, batch_size=512, device=self.device, module=teacher)
        net = student.model.to(self.device)

        def loss_fn(logits, yb, xb, idx):
            with torch.no_grad():
                t_logits = teach(xb) if cached is None else cached[idx].to(self.device)
            return kd_loss(logits, t_logits, yb, T, alpha).total

        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        history = self._loop(net, lambda xb: net(student.preprocess(xb)), x, y, xv, yv, loss_fn, optimizer,
                             "student", self.augment if augment else None)
        self.student = student
        return history

    def run(self, train, val, use_distillation: bool = False, student: Backbone | None = None) -> PipelineResult:
        """LogME check, then ``fit``, then (if ``use_distillation``) ``distill`` into ``student``."""
        if use_distillation and student is None:
            raise ValueError("use_distillation=True needs a student Backbone "
                             "(e.g. cifar_backbone(20, pretrained=False))")
        score = self.transferability(train)
        history = self.fit(train, val)
        student_history = self.distill(student, train, val) if use_distillation else None
        return PipelineResult(score, history, student_history)

    # ------------------------------------------------------------------ prediction and evaluation
    def predict_proba(self, data, student: bool = False) -> torch.Tensor:
        """Softmax probabilities (N, K) of the fitted model (or the distilled student) on the CPU."""
        x = data if isinstance(data, torch.Tensor) else as_xy(data)[0]
        if student and self.student is None:
            raise ValueError("no student yet: call distill() first")
        net, prep = (self.student.model, self.student.preprocess) if student else (self.model, self.preprocess)
        return _probs(net, lambda xb: net(prep(xb)), x, self.device)

    def report(self, test, val, student: bool = False) -> metrics.Report:
        """``metrics.binary_report`` on ``test`` with the threshold chosen on ``val``."""
        (xt, yt), (xv, yv) = as_xy(test), as_xy(val)
        return metrics.binary_report(yt, self.predict_proba(xt, student), yv, self.predict_proba(xv, student))

    def _check_binary(self, y: torch.Tensor, y_val: torch.Tensor) -> None:
        if self.num_classes != 2 or y.max() > 1 or y_val.max() > 1:
            raise ValueError("this pipeline scores binary tasks (AUC, sensitivity/specificity): "
                             f"need a 2-class head and 0/1 labels, got {self.num_classes} classes")
        if len(torch.unique(y_val)) < 2:
            raise ValueError("the validation split needs both classes to compute AUC")


def _probs(net: nn.Module, forward: Callable, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Softmax of ``forward`` over x (N, ...) in batches, ``net`` in eval mode: (N, K) on the CPU."""
    return F.softmax(predict(forward, x, batch_size=512, device=device, module=net), 1)


def _linears(head: nn.Module) -> list[nn.Linear]:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"the model's fc must be or contain nn.Linear, got {type(head).__name__}")
    return linears


def _in_features(head: nn.Module) -> int:
    return _linears(head)[0].in_features


def _out_features(head: nn.Module) -> int:
    return _linears(head)[-1].out_features
