"""adaptation.adapt: the shared DA loop (train_adapted), DANN's evaluation methods and the proxy A-distance.

All data are synthetic: 1x16x16 images whose class is a bar's orientation; the target domain is the
source with lower contrast and a brighter background.  ``forever`` is tested in test_dann.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import adaptation, loops
from course_lib.adaptation import dann_lambda, dann_lr, proxy_a_distance, train_adapted

SHAPE = (1, 16, 16)
K = 3
BASE_KEYS = {"step", "lambda", "lr", "class_loss"}
EXTRA_KEYS = {"source": set(), "dann": {"domain_loss", "domain_acc"}, "mmd": {"mmd2"}}




def images(n: int, seed: int, target: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, 16, 16) images in [0, 1] and labels (n,): 0 = horizontal bar, 1 = vertical, 2 = centre square."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % K
    x = torch.rand(n, *SHAPE, generator=g) * 0.25
    x[y == 0, :, 6:10, 2:14] += 0.75
    x[y == 1, :, 2:14, 6:10] += 0.75
    x[y == 2, :, 5:11, 5:11] += 0.75
    if target:  # the domain shift: half the contrast on a bright background
        x = 0.5 * x + 0.45
    return x, y


def fresh_model(seed: int = 0) -> adaptation.DANN:
    torch.manual_seed(seed)
    return adaptation.DANN(K, SHAPE)


def run(model, method, steps, *, target=None, seed=0, rng=0, **kw):
    """train_adapted on a copy-free model with the global RNG (dropout) fixed; returns the history."""
    source = images(48, 0)
    target = images(48, 1, target=True)[0] if target is None else target
    torch.manual_seed(rng)
    return train_adapted(model, source, target, steps, method, batch_size=16, seed=seed, progress=False, **kw)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------ history rows


@pytest.mark.parametrize("with_test", [False, True])
@pytest.mark.parametrize("method", ["source", "dann", "mmd"])
def test_history_rows_have_the_documented_keys(method, with_test):
    model = fresh_model()
    test = images(30, 7, target=True) if with_test else None
    hist = run(model, method, 5, eval_every=2, target_test=test)
    assert [row["step"] for row in hist] == [2, 4, 5]  # every eval_every steps, and at the end
    want = BASE_KEYS | EXTRA_KEYS[method] | ({"target_acc"} if with_test else set())
    for row in hist:
        assert set(row) == want
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in row.values())
        assert row["class_loss"] > 0
    if method == "dann":
        assert all(0 <= row["domain_acc"] <= 1 and row["domain_loss"] > 0 for row in hist)
    if with_test:
        assert all(0 <= row["target_acc"] <= 1 for row in hist)
        assert hist[-1]["target_acc"] == pytest.approx(loops.evaluate_accuracy(model.classify, *test, batch_size=1000))


@pytest.mark.parametrize("method", ["source", "dann", "mmd"])
def test_last_row_is_the_last_step_with_the_scheduled_lambda_and_lr(method):
    steps, gamma, lambda_max, lr0 = 7, 5.0, 0.3, 0.05
    hist = run(fresh_model(), method, steps, eval_every=100, gamma=gamma, lambda_max=lambda_max, lr0=lr0)
    assert len(hist) == 1 and hist[0]["step"] == steps
    p = (steps - 1) / steps  # progress = iterations done before this step / total
    want_lam = 0.0 if method == "source" else dann_lambda(p, gamma, lambda_max)
    assert hist[0]["lambda"] == pytest.approx(want_lam, rel=1e-12, abs=1e-15)
    assert hist[0]["lr"] == pytest.approx(dann_lr(p, lr0), rel=1e-12)


def test_schedules_are_updated_at_every_step():
    steps, gamma, lambda_max, lr0 = 6, 8.0, 2.0, 0.02
    hist = run(fresh_model(), "dann", steps, eval_every=1, gamma=gamma, lambda_max=lambda_max, lr0=lr0)
    assert [row["step"] for row in hist] == list(range(1, steps + 1))
    assert hist[0]["lambda"] == 0.0 and hist[0]["lr"] == pytest.approx(lr0)  # the first step has p = 0
    for row in hist:
        p = (row["step"] - 1) / steps
        assert row["lambda"] == pytest.approx(dann_lambda(p, gamma, lambda_max))
        assert row["lr"] == pytest.approx(dann_lr(p, lr0))
    lams = [row["lambda"] for row in hist]
    assert all(a < b for a, b in zip(lams, lams[1:]))


@pytest.mark.parametrize("method", ["dann", "mmd"])
def test_rows_average_the_losses_since_the_previous_row(method):
    fine = run(fresh_model(), method, 6, eval_every=1)
    coarse = run(fresh_model(), method, 6, eval_every=3)
    assert [row["step"] for row in coarse] == [3, 6]
    for j, row in enumerate(coarse):
        for key in row.keys() - {"step", "lambda", "lr"}:
            mean = sum(r[key] for r in fine[3 * j: 3 * j + 3]) / 3
            assert row[key] == pytest.approx(mean, rel=1e-6), key
        assert row["lambda"] == fine[3 * j + 2]["lambda"]


# ------------------------------------------------------------------ reproducibility and what is looked at


@pytest.mark.parametrize("method", ["source", "dann", "mmd"])
def test_same_seed_same_weights(method):
    a, b, c = fresh_model(), fresh_model(), fresh_model()
    assert same_weights(a, b)
    ha, hb = run(a, method, 5, seed=3), run(b, method, 5, seed=3)
    assert same_weights(a, b) and ha == hb
    run(c, method, 5, seed=4)  # another batch order
    assert not same_weights(a, c)
    assert not same_weights(a, fresh_model())  # and training did change the weights


def test_source_only_never_looks_at_the_target():
    x_t = images(48, 1, target=True)[0]
    other = torch.rand(48, *SHAPE, generator=torch.Generator().manual_seed(9)) * 5 - 2  # nothing like it
    models = {}
    for method in ("source", "dann"):
        a, b = fresh_model(), fresh_model()
        ha, hb = run(a, method, 6, target=x_t), run(b, method, 6, target=other)
        models[method] = (same_weights(a, b), ha == hb)
    assert models["source"] == (True, True)
    assert models["dann"] == (False, False)  # the check can tell when the target is used


def test_the_extra_loss_is_weighted_by_lambda():
    """λ_max = 0: DANN and MMD are both plain cross-entropy on the joint batch; λ_max > 0 changes G_f."""
    def trained(method, lambda_max):
        model = fresh_model()
        run(model, method, 5, lambda_max=lambda_max)
        return {k: v for k, v in model.state_dict().items() if not k.startswith("domain.")}

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    dann0, mmd0 = trained("dann", 0.0), trained("mmd", 0.0)
    assert same(dann0, mmd0)
    assert not same(dann0, trained("dann", 1.0))
    assert not same(mmd0, trained("mmd", 1.0))
    assert not same(dann0, fresh_model().state_dict())


def test_source_only_does_not_depend_on_the_target_size():
    x_t = images(64, 1, target=True)[0]
    a, b = fresh_model(), fresh_model()
    run(a, "source", 6, target=x_t[:48])
    run(b, "source", 6, target=x_t)  # 3 target batches per pass instead of 4
    assert same_weights(a, b)


def test_source_only_learns_the_source():
    model = fresh_model()
    x_test, y_test = images(60, 11)
    before = loops.evaluate_accuracy(model.classify, x_test, y_test)
    hist = run(model, "source", 30, eval_every=10)
    after = loops.evaluate_accuracy(model.classify, x_test, y_test)
    assert after >= 0.8 and after > before + 0.3  # chance is 1/3
    losses = [row["class_loss"] for row in hist]
    assert all(a > b for a, b in zip(losses, losses[1:])) and losses[-1] < 0.7 * losses[0]


# ------------------------------------------------------------------ bad input


def test_train_adapted_bad_input():
    x_s, y_s = images(48, 0)
    x_t = images(48, 1, target=True)[0]
    model = fresh_model()
    kw = {"steps": 2, "batch_size": 16, "progress": False}
    with pytest.raises(ValueError, match="Unknown method 'coral'"):
        train_adapted(model, (x_s, y_s), x_t, method="coral", **kw)
    with pytest.raises(ValueError, match="same shape"):
        train_adapted(model, (x_s, y_s), torch.rand(48, 3, 16, 16), **kw)
    with pytest.raises(ValueError, match="same shape"):
        train_adapted(model, (x_s, y_s), torch.rand(48, 1, 20, 20), **kw)
    with pytest.raises(ValueError, match="batch_size=16"):
        train_adapted(model, (x_s[:10], y_s[:10]), x_t, **kw)
    with pytest.raises(ValueError, match="batch_size=16"):
        train_adapted(model, (x_s, y_s), x_t[:15], **kw)
    with pytest.raises(ValueError, match="differ in length: 48 vs 47"):
        train_adapted(model, (x_s, y_s[:47]), x_t, **kw)
    assert same_weights(model, fresh_model())  # nothing was trained


# ------------------------------------------------------------------ evaluation helpers


def test_classify_and_embed_are_the_forward_pass_heads():
    model = fresh_model()
    x, y = images(25, 3)
    model.train()
    f = loops.predict(model.embed, x, batch_size=7)
    logits = loops.predict(model.classify, x, batch_size=7)
    assert model.training  # mode restored
    assert f.shape == (25, model.feature_dim) and logits.shape == (25, K)
    model.eval()
    with torch.no_grad():
        want_logits, _, want_f = model(x)
    assert torch.allclose(logits, want_logits, atol=1e-5) and torch.allclose(f, want_f, atol=1e-6)
    acc = loops.evaluate_accuracy(model.classify, x, y)
    assert not model.training  # eval mode kept as it was
    assert acc == pytest.approx((want_logits.argmax(1) == y).float().mean().item())
    assert loops.evaluate_accuracy(model.classify, x, want_logits.argmax(1)) == 1.0
    with pytest.raises(ValueError, match="built for input"):
        model.classify(torch.rand(2, 3, 16, 16))


def gauss(n, d, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) + shift


def test_pad_is_about_two_for_separable_domains():
    pad = proxy_a_distance(gauss(60, 4, 0), gauss(50, 4, 1, shift=4.0))
    assert 1.8 < pad <= 2.0


def test_pad_is_about_zero_for_one_distribution():
    pads = [proxy_a_distance(gauss(200, 4, 2 * s), gauss(200, 4, 2 * s + 1), seed=s) for s in range(3)]
    assert all(abs(p) < 0.5 for p in pads)
    mid = proxy_a_distance(gauss(200, 4, 0), gauss(200, 4, 1, shift=0.7))
    assert max(pads) < mid < 1.8  # overlapping domains sit in between


def test_pad_is_deterministic_for_a_seed_and_the_seed_picks_the_split():
    s, t = gauss(80, 3, 0), gauss(80, 3, 1, shift=0.3)
    assert proxy_a_distance(s, t, seed=5) == proxy_a_distance(s, t, seed=5)
    assert len({proxy_a_distance(s, t, seed=k) for k in range(5)}) > 1


@pytest.mark.parametrize("s,t", [
    (torch.zeros(10), torch.zeros(10, 3)),
    (torch.zeros(10, 3), torch.zeros(10, 4)),
    (torch.zeros(10, 3, 1), torch.zeros(10, 3, 1)),
    (torch.zeros(3, 2), torch.ones(10, 2)),
])
def test_pad_bad_shapes(s, t):
    with pytest.raises(ValueError):
        proxy_a_distance(s, t)
