"""Prototypical networks (Snell et al. 2017) for few-shot episodes (lesson 07 and Exercise 5).

An embedding network e maps an image to a vector; an episode's **prototype** c_j is the mean embedding of
label j's support images, and a query x gets the logits −‖e(x) − c_j‖² (squared Euclidean distance, as in
the paper).  Training draws many-way episodes from the meta-train classes and minimises the query
cross-entropy of those logits, so the embedding learns to make nearest-prototype classification work.

* ``with_rotations``: every class rotated by 0°, 90°, 180° and 270° becomes four classes (as in the MAML and
  ProtoNet papers' Omniglot setup).
* ``embedding``: ``meta.conv4`` without its head, with ordinary BatchNorm (running statistics; eval mode at
  test time, so a test episode's images are embedded one by one, not transductively).
* ``train``: Adam on the episodic loss; ``embed`` / ``episode_accuracy``: the meta-test from cached embeddings.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import config
from .meta import conv4


def with_rotations(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """images (M, C, H, W), labels (M,) in 0..L-1 -> (4M, C, H, W), (4M,): rotation r of class c is class c + r·L."""
    if images.ndim != 4 or images.shape[-1] != images.shape[-2] or labels.shape != (len(images),):
        raise ValueError(f"need square images (M, C, H, W) and labels (M,), got {tuple(images.shape)}, "
                         f"{tuple(labels.shape)}")
    n_classes = int(labels.max()) + 1
    return (torch.cat([torch.rot90(images, r, dims=(2, 3)) for r in range(4)]),
            torch.cat([labels + r * n_classes for r in range(4)]))


def embedding(channels: int = 64, in_channels: int = 1, size: int = 28) -> nn.Sequential:
    """conv4's body with running BatchNorm statistics: (N, in_channels, size, size) -> (N, channels·(size//16)²)."""
    return conv4(1, channels, in_channels, size, track_running_stats=True)[:-1]


def prototype_logits(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """−‖query − c_j‖² for support embeddings (S, D), labels (S,) covering 0..N-1, query (B, D) -> (B, N)."""
    if support.ndim != 2 or query.ndim != 2 or support_y.shape != (len(support),) or support.shape[1] != query.shape[1]:
        raise ValueError(f"need support (S, D), support_y (S,), query (B, D); got {tuple(support.shape)}, "
                         f"{tuple(support_y.shape)}, {tuple(query.shape)}")
    n_way = int(support_y.max()) + 1
    counts = torch.bincount(support_y, minlength=n_way)
    if (counts == 0).any():
        raise ValueError(f"every label 0..{n_way - 1} needs a support example, got counts {counts.tolist()}")
    protos = torch.zeros(n_way, support.shape[1], device=support.device, dtype=support.dtype)
    protos = protos.index_add(0, support_y, support) / counts[:, None].to(support.dtype)
    return -torch.cdist(query, protos) ** 2


def episode_loss(net: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                 query_y: torch.Tensor) -> tuple[torch.Tensor, float]:
    """ProtoNet's query cross-entropy and accuracy for one episode; support and query go through ``net`` together."""
    emb = net(torch.cat([support_x, query_x])).flatten(1)
    logits = prototype_logits(emb[:len(support_x)], support_y, emb[len(support_x):])
    return F.cross_entropy(logits, query_y), (logits.argmax(1) == query_y).float().mean().item()


def train(net: nn.Module, sampler, episodes: int, lr: float = 1e-3, progress: bool = True,
          desc: str = "ProtoNet") -> list[dict]:
    """Adam on ``episodes`` episodes from ``sampler`` (a ``meta.EpisodeSampler``); returns ``{episode, loss, acc}``
    per episode.  ``net`` is left in eval mode."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    device = config.device_of(net)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    history = []
    for i in tqdm(range(episodes), desc=desc, leave=False, disable=not progress):
        ep = sampler.sample().to(device)
        loss, acc = episode_loss(net, ep.support_x, ep.support_y, ep.query_x, ep.query_y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"episode": i + 1, "loss": loss.item(), "acc": acc})
    net.eval()
    return history


@torch.no_grad()
def embed(net: nn.Module, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Eval-mode embeddings of images (M, C, H, W) on the CPU: (M, D)."""
    net.eval()
    device = config.device_of(net)
    return torch.cat([net(b.to(device)).flatten(1).cpu() for b in images.split(batch)])


def episode_accuracy(emb: torch.Tensor, episodes: list[tuple[torch.Tensor, torch.Tensor]], n_way: int,
                     k_shot: int, n_query: int) -> torch.Tensor:
    """Nearest-prototype query accuracy per episode, from embeddings (M, D) of the images that
    ``episodes`` index: each item is (support indices (N·K,), query indices (N·Q,)) ordered by label -> (E,)."""
    sy, qy = torch.arange(n_way).repeat_interleave(k_shot), torch.arange(n_way).repeat_interleave(n_query)
    return torch.tensor([(prototype_logits(emb[s], sy, emb[q]).argmax(1) == qy).float().mean().item()
                         for s, q in episodes])
