"""Episodes, functional MAML (first and second order) and meta-distillation, on tiny synthetic inputs."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad

from course_lib import meta


def _images(n_classes: int = 6, per_class: int = 5, size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i has every pixel equal to i, so an image's identity can be read back from the episode."""
    n = n_classes * per_class
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, size, size).clone()
    return x, torch.arange(n_classes).repeat_interleave(per_class)


def _ids(x: torch.Tensor) -> list[int]:
    return x[:, 0, 0, 0].long().tolist()


# ---------------------------------------------------------------- the episode sampler
def test_episode_shapes_labels_and_disjoint_sets():
    x, y = _images()
    ep = meta.EpisodeSampler(x, y, n_way=3, k_shot=2, n_query=3, seed=0).sample()
    assert ep.support_x.shape == (6, 1, 4, 4) and ep.query_x.shape == (9, 1, 4, 4)
    assert ep.support_y.tolist() == [0, 0, 1, 1, 2, 2] and ep.query_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert not set(_ids(ep.support_x)) & set(_ids(ep.query_x))
    for xs, ys in ((ep.support_x, ep.support_y), (ep.query_x, ep.query_y)):  # label j is original class classes[j]
        assert [int(y[i]) for i in _ids(xs)] == ep.classes[ys].tolist()
    assert len(set(ep.classes.tolist())) == 3


def test_episodes_deterministic_per_seed_and_varied():
    x, y = _images()
    a = meta.EpisodeSampler(x, y, 3, 1, 2, seed=7).episodes(5)
    b = meta.EpisodeSampler(x, y, 3, 1, 2, seed=7).episodes(5)
    c = meta.EpisodeSampler(x, y, 3, 1, 2, seed=8).episodes(5)
    assert all(torch.equal(p.support_x, q.support_x) and torch.equal(p.query_x, q.query_x) for p, q in zip(a, b))
    assert any(not torch.equal(p.support_x, q.support_x) for p, q in zip(a, c))
    assert len({tuple(ep.classes.tolist()) for ep in a}) > 1  # classes and their label order change


def test_sampler_skips_small_classes_and_rejects_bad_input():
    x, y = _images(n_classes=4, per_class=3)
    sampler = meta.EpisodeSampler(x[:-1], y[:-1], 3, 1, 2)  # class 3 keeps 2 images: too few for 1 + 2
    assert all(3 not in sampler.sample().classes.tolist() for _ in range(10))
    with pytest.raises(ValueError, match="4-way episodes need 4 classes"):
        meta.EpisodeSampler(x[:-1], y[:-1], 4, 1, 2)
    with pytest.raises(ValueError, match=r"\(M, C, H, W\)"):
        meta.EpisodeSampler(x[:, 0], y, 2, 1, 1)
    with pytest.raises(ValueError, match="labels must have shape"):
        meta.EpisodeSampler(x, y[:-1], 2, 1, 1)
    with pytest.raises(ValueError, match=">= 1"):
        meta.EpisodeSampler(x, y, 2, 0, 1)


# ---------------------------------------------------------------- tiny models
def _linear(n_in: int = 16, n_way: int = 3, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, n_way))


def _episode(n_way: int = 3, k: int = 2, q: int = 2, seed: int = 0) -> meta.Episode:
    gen = torch.Generator().manual_seed(seed)
    ways = torch.arange(n_way)
    return meta.Episode(torch.randn(n_way * k, 1, 4, 4, generator=gen), ways.repeat_interleave(k),
                        torch.randn(n_way * q, 1, 4, 4, generator=gen), ways.repeat_interleave(q), ways)


def test_conv4_shapes_and_no_running_stats():
    net = meta.conv4(5, channels=8)
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 5) and net[:-1](torch.rand(3, 1, 28, 28)).shape == (3, 8)
    assert dict(net.named_buffers()) == {}
    with pytest.raises(ValueError, match="size must be >= 16"):
        meta.conv4(5, size=8)


def test_inner_loop_changes_the_query_loss():
    model, ep = _linear(), _episode()
    before, _ = meta.meta_loss(model, ep, steps=0, lr=0.5)
    after, _ = meta.meta_loss(model, ep, steps=1, lr=0.5)
    assert torch.allclose(before, F.cross_entropy(model(ep.query_x), ep.query_y))
    assert abs(before.item() - after.item()) > 1e-3


def test_each_inner_step_uses_the_current_parameters():
    """Two steps of lr differ from one step of 2·lr (the chapter's loop gives the same, ERRATA 7.2)."""
    model, ep = _linear(), _episode()
    theta = dict(model.named_parameters())
    two = meta.adapt(model, theta, ep.support_x, ep.support_y, 2, 0.5)
    one = meta.adapt(model, theta, ep.support_x, ep.support_y, 1, 1.0)
    assert not torch.allclose(two["1.weight"], one["1.weight"], atol=1e-4)


def _query_loss_of(model: nn.Module, ep: meta.Episode, lr: float):
    """L_q(θ − lr·∇L_s(θ)) as a pure function of θ, written with torch.func only (an independent reference)."""
    def support_loss(p):
        return F.cross_entropy(functional_call(model, p, (ep.support_x,)), ep.support_y)

    def query_loss(p):
        g = grad(support_loss)(p)
        return F.cross_entropy(functional_call(model, {n: p[n] - lr * g[n] for n in p}, (ep.query_x,)), ep.query_y)
    return query_loss, support_loss


def test_second_order_gradient_reaches_meta_parameters_and_differs_from_first_order():
    model, ep = _linear(), _episode()
    theta = {n: p.detach() for n, p in model.named_parameters()}
    query_loss, support_loss = _query_loss_of(model, ep, 0.5)
    exact = grad(query_loss)(theta)
    adapted = {n: theta[n] - 0.5 * g for n, g in grad(support_loss)(theta).items()}
    fo_reference = grad(lambda p: F.cross_entropy(functional_call(model, p, (ep.query_x,)), ep.query_y))(adapted)

    grads = {}
    for first_order in (False, True):
        model.zero_grad()
        meta.meta_loss(model, ep, 1, 0.5, first_order=first_order)[0].backward()
        grads[first_order] = {n: p.grad.clone() for n, p in model.named_parameters()}
    for n in theta:
        assert torch.allclose(grads[False][n], exact[n], atol=1e-5)
        assert torch.allclose(grads[True][n], fo_reference[n], atol=1e-5)
    assert (grads[False]["1.weight"] - grads[True]["1.weight"]).abs().max() > 1e-3  # the Hessian term matters


def test_first_order_adapted_parameters_carry_no_second_order_graph():
    model, ep = _linear(), _episode()
    theta = dict(model.named_parameters())
    r = torch.randn(3, 16)  # a random direction (a plain sum would cancel: CE gradients sum to 0 over classes)
    fo = meta.adapt(model, theta, ep.support_x, ep.support_y, 1, 0.5, first_order=True)
    d_fo = torch.autograd.grad((fo["1.weight"] * r).sum(), theta["1.weight"])[0]
    assert torch.equal(d_fo, r)  # θ' = θ − lr·g with g a constant: dθ'/dθ = I
    so = meta.adapt(model, theta, ep.support_x, ep.support_y, 1, 0.5, first_order=False)
    d_so = torch.autograd.grad((so["1.weight"] * r).sum(), theta["1.weight"])[0]
    assert (d_so - r).abs().max() > 1e-3


# ---------------------------------------------------------------- meta-distillation
def _teacher(n_in: int = 16, dim: int = 5, scale: float = 3.0) -> meta.PrototypeTeacher:
    torch.manual_seed(1)
    return meta.PrototypeTeacher(nn.Sequential(nn.Flatten(), nn.Linear(n_in, dim)), scale)


def test_prototype_teacher_logits_by_hand():
    teacher, ep = _teacher(), _episode()
    w, b = teacher.embedding[1].weight, teacher.embedding[1].bias
    e = lambda x: F.normalize(x.flatten(1) @ w.T + b, dim=1)
    protos = torch.stack([e(ep.support_x)[ep.support_y == j].mean(0) for j in range(3)])
    by_hand = -3.0 * ((e(ep.query_x)[:, None, :] - protos[None]) ** 2).sum(-1)
    assert torch.allclose(teacher.logits(ep.support_x, ep.support_y, ep.query_x), by_hand, atol=1e-5)
    assert not any(p.requires_grad for p in teacher.embedding.parameters()) and not teacher.embedding.training
    with pytest.raises(ValueError, match="covering"):
        teacher.logits(ep.support_x, ep.support_y * 2, ep.query_x)  # label 1 has no support image


def test_meta_distillation_loss_matches_a_direct_formula():
    """Linear student z = xW^T + b: the inner gradient of (1 − α)·CE + α·T²·KL with respect to z is
    (1/B)·[(1 − α)(p − Y) + α·T·(p_T − q_T)], with q_T the teacher's softened probabilities."""
    model, ep, teacher = _linear(), _episode(), _teacher()
    lr, alpha, T = 0.7, 0.5, 2.0
    xs, xq = ep.support_x.flatten(1), ep.query_x.flatten(1)
    W, b = model[1].weight.detach(), model[1].bias.detach()
    t = teacher.logits(ep.support_x, ep.support_y, ep.support_x)
    z = xs @ W.T + b
    dz = ((1 - alpha) * (z.softmax(1) - F.one_hot(ep.support_y, 3))
          + alpha * T * ((z / T).softmax(1) - (t / T).softmax(1))) / len(z)
    W1, b1 = W - lr * dz.T @ xs, b - lr * dz.sum(0)
    direct = F.cross_entropy(xq @ W1.T + b1, ep.query_y)
    loss, acc = meta.meta_loss(model, ep, 1, lr, teacher=teacher, alpha=alpha, T=T)
    assert torch.allclose(loss, direct, atol=1e-5)
    assert acc == ((xq @ W1.T + b1).argmax(1) == ep.query_y).float().mean().item()
    plain, _ = meta.meta_loss(model, ep, 1, lr)
    assert abs(loss.item() - plain.item()) > 1e-4  # the teacher changes the result (unlike ERRATA 7.1)


def test_inner_loss_weights_labels_and_teacher():
    logits, y, t = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]), torch.randn(6, 3)
    q = (t / 2).softmax(1)
    kl = (q * (q.log() - (logits / 2).log_softmax(1))).sum(1).mean() * 4  # T² · batchmean KL, by hand
    ce = F.cross_entropy(logits, y)
    assert torch.allclose(meta.inner_loss(logits, y, t, alpha=0.3, T=2.0), 0.7 * ce + 0.3 * kl)
    assert torch.equal(meta.inner_loss(logits, y, t, alpha=0.0), ce) and torch.equal(meta.inner_loss(logits, y), ce)
    assert torch.allclose(meta.inner_loss(logits, (y + 1) % 3, t, alpha=1.0, T=2.0), kl)  # α = 1: labels ignored
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        meta.inner_loss(logits, y, t, alpha=1.5)


def test_meta_train_updates_the_student_but_never_the_teacher():
    x = torch.rand(40, 1, 4, 4)
    y = torch.arange(8).repeat_interleave(5)
    teacher = _teacher()
    t_before = copy.deepcopy(teacher.embedding.state_dict())
    model = _linear(n_way=2)
    s_before = copy.deepcopy(model.state_dict())
    hist = meta.meta_train(model, meta.EpisodeSampler(x, y, 2, 1, 2, seed=0), steps=2, meta_batch=2, inner_steps=1,
                           inner_lr=0.4, outer_lr=0.01, teacher=teacher, alpha=0.5, T=2.0, progress=False)
    assert [h["step"] for h in hist] == [1, 2]
    assert all(torch.equal(v, teacher.embedding.state_dict()[k]) for k, v in t_before.items())
    assert all(p.grad is None for p in teacher.embedding.parameters())
    assert not torch.equal(s_before["1.weight"], model.state_dict()["1.weight"])


def test_evaluate_leaves_the_model_unchanged_and_returns_per_episode_accuracy():
    model, eps = _linear(), [_episode(seed=s) for s in range(3)]
    before = copy.deepcopy(model.state_dict())
    accs = meta.episode_accuracies(model, eps, steps=2, lr=0.5)
    assert accs.shape == (3,) and ((accs >= 0) & (accs <= 1)).all()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert torch.equal(meta.episode_accuracies(model, eps, steps=0, lr=0.5),
                       torch.tensor([(model(e.query_x).argmax(1) == e.query_y).float().mean().item() for e in eps]))


def test_functional_calls_refuse_batchnorm_that_would_update_running_stats():
    tracked = meta.conv4(2, channels=4, track_running_stats=True)
    with pytest.raises(ValueError, match="running statistics"):
        meta.check_functional(tracked)
    meta.check_functional(tracked.eval())  # eval mode only reads them
    meta.check_functional(meta.conv4(2, channels=4))


def test_zero_head_params_keeps_the_body_and_zeroes_a_new_head():
    pre = meta.conv4(7, channels=4)
    params = meta.zero_head_params(pre, 3)
    assert params["17.weight"].shape == (3, 4) and params["17.weight"].abs().sum() == 0
    assert torch.equal(params["0.weight"], pre[0].weight) and not params["0.weight"].requires_grad
    assert set(params) == {n for n, _ in meta.conv4(3, channels=4).named_parameters()}


def test_mean_ci():
    mean, half = meta.mean_ci(torch.tensor([0.5, 0.7, 0.6, 0.8]))
    assert mean == pytest.approx(0.65)
    assert half == pytest.approx(1.96 * torch.tensor([0.5, 0.7, 0.6, 0.8]).std().item() / 2)
    with pytest.raises(ValueError, match="at least 2"):
        meta.mean_ci(torch.tensor([0.5]))
