"""Few-shot episodes, MAML with functional inner loops, and a working meta-distillation (lesson 07).

* ``EpisodeSampler``: seeded N-way K-shot episodes from a labelled image set; every episode relabels
  its classes 0..N-1 in a random order, and support and query never share an image
  (``sample_indices`` gives the same episodes as indices, for methods that embed every image once).
* ``conv4``: the 4-block conv net of MAML (conv 3×3, BatchNorm, ReLU, max-pool 2).  Its BatchNorm keeps
  no running statistics (as in PyTorch's ``functorch/examples/maml_omniglot``), so a functional call
  has no buffers to update and always normalises with the statistics of the batch it is given.
* ``adapt``: the inner loop, run with ``torch.func.functional_call`` on the *current* adapted
  parameters; second order (``create_graph=True``) or first order (FOMAML).  Its loss is
  ``(1 − α) · CE(support) + α · T² · KL(teacher ‖ student)`` (α = 0: plain MAML).
* ``PrototypeTeacher``: a frozen embedding network (e.g. a trained ProtoNet, ``meta_grid.teacher_of``); its
  logits for an episode are minus the scaled squared distances to class prototypes computed from the
  support set, so they always refer to the episode's own classes (ERRATA 7.7).
* ``meta_loss`` / ``meta_train`` / ``episode_accuracies`` / ``mean_ci``: the outer loop and the meta-test.
* ``zero_head_params``: the parameters of a pretrained ``conv4`` with a zero N-way head, for the
  fine-tuning baseline.

The inner loss with a teacher is ``distill.kd_loss``: Hinton et al.'s batchmean × T² distillation loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from . import config
from .distill import kd_loss

Params = dict[str, torch.Tensor]


# ---------------------------------------------------------------- episodes
@dataclass(frozen=True)
class Episode:
    """One N-way K-shot task.  Labels are 0..N-1; ``classes[j]`` is the original class of label j.

    support_x (N·K, C, H, W), support_y (N·K,), query_x (N·Q, C, H, W), query_y (N·Q,), classes (N,).
    Both sets are ordered by label (label j's K (or Q) examples are consecutive).
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor

    def to(self, device: torch.device | str) -> Episode:
        """The same episode with every tensor on ``device``."""
        return Episode(*(t.to(device) for t in (self.support_x, self.support_y, self.query_x, self.query_y,
                                                self.classes)))


class EpisodeSampler:
    """Seeded N-way K-shot episodes from ``images`` (M, C, H, W) with integer ``labels`` (M,).

    Only classes with at least ``k_shot + n_query`` images take part.  Two samplers with the same
    arguments and seed give the same episodes.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, n_way: int, k_shot: int, n_query: int,
                 seed: int = 0):
        if images.ndim != 4:
            raise ValueError(f"images must have shape (M, C, H, W), got {tuple(images.shape)}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
        if min(n_way, k_shot, n_query) < 1:
            raise ValueError(f"n_way, k_shot and n_query must be >= 1, got {n_way}, {k_shot}, {n_query}")
        self.images, self.n_way, self.k_shot, self.n_query = images, n_way, k_shot, n_query
        need = k_shot + n_query
        self.pools = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]
        self.pools = [p for p in self.pools if len(p) >= need]
        self.pool_classes = [int(labels[p[0]]) for p in self.pools]
        if len(self.pools) < n_way:
            raise ValueError(f"{n_way}-way episodes need {n_way} classes with >= {need} images each "
                             f"({k_shot} support + {n_query} query); only {len(self.pools)} have that many")
        self.gen = torch.Generator().manual_seed(seed)

    def sample_indices(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The next episode as indices into ``images``: support (N·K,), query (N·Q,), both ordered by label,
        and the original classes (N,) of labels 0..N-1 (N random classes in random label order)."""
        picks = torch.randperm(len(self.pools), generator=self.gen)[:self.n_way]
        support, query = [], []
        for c in picks.tolist():
            pool = self.pools[c]
            idx = pool[torch.randperm(len(pool), generator=self.gen)[:self.k_shot + self.n_query]]
            support.append(idx[:self.k_shot])
            query.append(idx[self.k_shot:])
        return torch.cat(support), torch.cat(query), torch.tensor([self.pool_classes[c] for c in picks.tolist()])

    def sample(self) -> Episode:
        """The next episode: N random classes (in random label order), K + Q random images of each."""
        support, query, classes = self.sample_indices()
        ways = torch.arange(self.n_way)
        return Episode(self.images[support], ways.repeat_interleave(self.k_shot),
                       self.images[query], ways.repeat_interleave(self.n_query), classes)

    def episodes(self, n: int) -> list[Episode]:
        """The next ``n`` episodes (a fixed test set when taken from a fresh sampler)."""
        return [self.sample() for _ in range(n)]


# ---------------------------------------------------------------- the network
def conv4(n_way: int, channels: int = 32, in_channels: int = 1, size: int = 28,
          track_running_stats: bool = False) -> nn.Sequential:
    """MAML's 4-block conv net: (N, in_channels, size, size) -> logits (N, n_way).

    Each block is conv 3×3 (padding 1), BatchNorm, ReLU, max-pool 2 (28 -> 14 -> 7 -> 3 -> 1), then a
    linear head on the ``channels · (size // 16)²`` features; ``net[:-1]`` is the embedding network.
    """
    if size < 16:
        raise ValueError(f"conv4 halves the image four times: size must be >= 16, got {size}")
    blocks: list[nn.Module] = []
    c = in_channels
    for _ in range(4):
        blocks += [nn.Conv2d(c, channels, 3, padding=1),
                   nn.BatchNorm2d(channels, track_running_stats=track_running_stats), nn.ReLU(), nn.MaxPool2d(2)]
        c = channels
    return nn.Sequential(*blocks, nn.Flatten(), nn.Linear(channels * (size // 16) ** 2, n_way))


def check_functional(model: nn.Module) -> None:
    """Refuse a model in train mode whose BatchNorm keeps running statistics: functional calls would write them.

    MAML's conv4 keeps none (``track_running_stats=False``).  A pretrained network that does keep them
    can still be adapted functionally in eval mode: its running statistics are then only read.
    """
    tracked = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
               and m.track_running_stats and m.training]
    if tracked:
        raise ValueError(f"BatchNorm layers {tracked} would update their running statistics in train mode; "
                         f"use track_running_stats=False (as MAML does) or put the model in eval mode")


# ---------------------------------------------------------------- losses and the teacher
def inner_loss(logits: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None = None,
               alpha: float = 0.0, T: float = 1.0) -> torch.Tensor:
    """(1 − α) · CE(logits, y) + α · T² · KL(teacher ‖ student); logits (B, N), y (B,), teacher_logits (B, N).

    α weighs the soft (teacher) term, as in Hinton et al. and the chapter's Ex6; the weights sum to 1, so
    the teacher changes the *direction* of the inner step, not its size.  α = 0 or no teacher: plain CE.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha weighs the teacher term and must be in [0, 1], got {alpha}")
    if teacher_logits is None or alpha == 0:
        return F.cross_entropy(logits, y)
    return kd_loss(logits, teacher_logits, y, T, alpha).total


class PrototypeTeacher:
    """A frozen embedding network used as a teacher for any N-way episode.

    ``logits(support_x, support_y, x)`` = −scale · ‖e(x) − c_j‖², with e the embedding (L2-normalised
    unless ``normalize=False``, as for a trained ProtoNet with scale 1) and c_j the mean embedding of
    label j's support images: (M, N) logits over the episode's labels.
    The network is put in eval mode with ``requires_grad=False``; the teacher is not an ``nn.Module``,
    so it never shows up in a student's ``parameters()`` (ERRATA 7.6).
    """

    def __init__(self, embedding: nn.Module, scale: float = 10.0, normalize: bool = True):
        self.embedding = embedding.eval().requires_grad_(False)
        self.scale, self.normalize = scale, normalize

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(M, C, H, W) -> embeddings (M, D), unit-length if ``normalize`` (a ProtoNet's are used as they are)."""
        e = self.embedding(x).flatten(1)
        return F.normalize(e, dim=1) if self.normalize else e

    @torch.no_grad()
    def logits(self, support_x: torch.Tensor, support_y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """support_x (M, C, H, W), support_y (M,) labels covering 0..N-1, x (B, C, H, W) -> logits (B, N)."""
        if support_y.ndim != 1 or len(support_y) != len(support_x) or len(support_y) == 0 \
                or torch.bincount(support_y).min() == 0:
            raise ValueError(f"support_y must be (M,) labels covering 0..N-1 for M = {len(support_x)} support images, "
                             f"got {support_y.tolist()}")
        n_way = int(support_y.max()) + 1
        es = self.embed(support_x)
        protos = torch.stack([es[support_y == j].mean(0) for j in range(n_way)])
        return -self.scale * torch.cdist(self.embed(x), protos) ** 2


# ---------------------------------------------------------------- MAML: inner loop, meta-loss, outer loop
def adapt(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
          first_order: bool = False, teacher_logits: torch.Tensor | None = None, alpha: float = 0.0,
          T: float = 1.0) -> Params:
    """``steps`` SGD steps on ``inner_loss`` from ``params`` (name -> tensor); returns the adapted ones.

    x (B, C, H, W), y (B,) labels, teacher_logits (B, N) or None.  Each step evaluates the model at the
    *current* adapted parameters.  Second order: the steps stay in the graph (``create_graph=True``), so a
    loss on the result differentiates through them back to ``params``.  First order: each gradient is a
    constant, so d(adapted)/d(params) = I (FOMAML).
    """
    if steps < 0 or x.shape[0] != y.shape[0]:
        raise ValueError(f"need steps >= 0 and one label per input, got steps={steps}, {x.shape[0]} inputs, "
                         f"{y.shape[0]} labels")
    buffers = dict(model.named_buffers())
    for _ in range(steps):
        logits = functional_call(model, {**params, **buffers}, (x,))
        loss = inner_loss(logits, y, teacher_logits, alpha, T)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        params = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    return params


def forward_with(model: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """The model's logits at ``params`` (its buffers passed explicitly): (B, C, H, W) -> (B, N)."""
    return functional_call(model, {**params, **dict(model.named_buffers())}, (x,))


def support_targets(teacher: PrototypeTeacher | None, episode: Episode, alpha: float) -> torch.Tensor | None:
    """The teacher's logits (N·K, N) for the support set, computed once per episode with no graph (ERRATA 7.5).

    None when there is no teacher or α = 0 (plain MAML).
    """
    if teacher is None or alpha == 0:
        return None
    return teacher.logits(episode.support_x, episode.support_y, episode.support_x)


def meta_loss(model: nn.Module, episode: Episode, steps: int, lr: float, first_order: bool = False,
              teacher: PrototypeTeacher | None = None, alpha: float = 0.0, T: float = 1.0
              ) -> tuple[torch.Tensor, float]:
    """Query cross-entropy of the *adapted* parameters, and the query accuracy.

    With a teacher and α > 0 the inner loss is meta-distillation's; the query loss is plain CE either way.
    """
    teacher_logits = support_targets(teacher, episode, alpha)
    adapted = adapt(model, dict(model.named_parameters()), episode.support_x, episode.support_y, steps, lr,
                    first_order, teacher_logits, alpha, T)
    logits = forward_with(model, adapted, episode.query_x)
    return F.cross_entropy(logits, episode.query_y), (logits.argmax(1) == episode.query_y).float().mean().item()


def meta_train(model: nn.Module, sampler: EpisodeSampler, steps: int, meta_batch: int, inner_steps: int,
               inner_lr: float, outer_lr: float = 1e-3, first_order: bool = False,
               teacher: PrototypeTeacher | None = None, alpha: float = 0.0, T: float = 1.0,
               progress: bool = True, desc: str = "meta-train") -> list[dict]:
    """Adam on the mean ``meta_loss`` of ``meta_batch`` episodes per step; returns ``{step, loss, acc}`` per step
    (the mean query loss and accuracy of that step's episodes, after adaptation).

    Only ``model.parameters()`` are optimised; the teacher stays frozen and outside the optimizer.
    """
    if steps < 1 or meta_batch < 1:
        raise ValueError(f"steps and meta_batch must be >= 1, got {steps} and {meta_batch}")
    model.train()
    check_functional(model)
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=outer_lr)
    history = []
    for step in tqdm(range(steps), desc=desc, leave=False, disable=not progress):
        opt.zero_grad(set_to_none=True)
        losses, accs = [], []
        for _ in range(meta_batch):
            loss, acc = meta_loss(model, sampler.sample().to(device), inner_steps, inner_lr, first_order,
                                  teacher, alpha, T)
            (loss / meta_batch).backward()
            losses.append(loss.item())
            accs.append(acc)
        opt.step()
        history.append({"step": step + 1, "loss": sum(losses) / meta_batch, "acc": sum(accs) / meta_batch})
    return history


def adapted_accuracy(model: nn.Module, episode: Episode, steps: int, lr: float, params: Params | None = None,
                     teacher: PrototypeTeacher | None = None, alpha: float = 0.0, T: float = 1.0) -> float:
    """Query accuracy after ``steps`` inner steps on the support set from ``params`` (default: the model's).

    Meta-test: no outer graph is kept; the model itself is never changed.  The episode may be on any device:
    it is moved to the model's.
    """
    episode = episode.to(config.device_of(model))
    start = {n: p.detach().requires_grad_(True) for n, p in (params or dict(model.named_parameters())).items()}
    teacher_logits = support_targets(teacher, episode, alpha)
    with torch.enable_grad():
        adapted = adapt(model, start, episode.support_x, episode.support_y, steps, lr, True, teacher_logits, alpha, T)
    with torch.no_grad():
        return (forward_with(model, adapted, episode.query_x).argmax(1) == episode.query_y).float().mean().item()


def episode_accuracies(model: nn.Module, episodes: list[Episode], steps: int, lr: float, params: Params | None = None,
             teacher: PrototypeTeacher | None = None, alpha: float = 0.0, T: float = 1.0,
             progress: bool = False, desc: str = "meta-test") -> torch.Tensor:
    """Query accuracy of each episode after adaptation: (E,) floats in [0, 1]."""
    check_functional(model)
    device = next(model.parameters()).device
    return torch.tensor([adapted_accuracy(model, ep.to(device), steps, lr, params, teacher, alpha, T)
                         for ep in tqdm(episodes, desc=desc, leave=False, disable=not progress)])


def prototype_accuracy(teacher: PrototypeTeacher, episodes: list[Episode]) -> torch.Tensor:
    """Query accuracy of the teacher alone (nearest prototype) on each episode: (E,) floats."""
    device = next(teacher.embedding.parameters()).device
    out = []
    for ep in episodes:
        ep = ep.to(device)
        out.append((teacher.logits(ep.support_x, ep.support_y, ep.query_x).argmax(1) == ep.query_y).float().mean())
    return torch.stack(out).cpu()


def mean_ci(values: torch.Tensor, z: float = 1.96) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval, for (E,) values (E >= 2)."""
    values = torch.as_tensor(values, dtype=torch.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"need a 1-D tensor of at least 2 values, got shape {tuple(values.shape)}")
    return values.mean().item(), z * values.std(unbiased=True).item() / math.sqrt(len(values))


# ---------------------------------------------------------------- the fine-tuning baseline
def zero_head_params(backbone: nn.Sequential, n_way: int) -> Params:
    """Parameters for fine-tuning a pretrained ``conv4`` on an N-way episode: its body, and a zero N-way head.

    With a zero head, the first SGD step sets each class's weights to (its mean feature − the mean over
    classes)/N·lr, a prototype-like start.  Use with a ``conv4(n_way, ...)`` of the same width.
    """
    head = backbone[-1]
    params = {n: p.detach() for n, p in backbone.named_parameters() if not n.startswith(f"{len(backbone) - 1}.")}
    params[f"{len(backbone) - 1}.weight"] = torch.zeros(n_way, head.in_features, device=head.weight.device)
    params[f"{len(backbone) - 1}.bias"] = torch.zeros(n_way, device=head.weight.device)
    return params
