"""adaptation.digits: the benchmark pairs as tensors, and ``run`` with its checksummed cache."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from course_lib.adaptation import digits
from course_lib.data.integrity import ChecksumError


def test_load_pair_shapes_and_unknown_target(fake_mirror):
    pair = digits.load_pair("usps")
    assert pair.profile == "quick" and pair.data_dir == fake_mirror
    for x, y in (pair.source_train, pair.source_test, pair.target_train, pair.target_val, pair.target_test):
        assert x.shape[1:] == (3, 28, 28) and x.dtype == torch.float32 and len(x) == len(y) > 0
        assert 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="Unknown target"):
        digits.load_pair("svhn")


@pytest.fixture
def pair(fake_mirror):
    p = digits.load_pair("mnist_m")
    small = lambda t: (t[0][:80], t[1][:80])
    return digits.DigitPair(p.target, p.profile, p.data_dir, small(p.source_train), small(p.source_test),
                            small(p.target_train), small(p.target_val), small(p.target_test))


def test_run_caches_and_a_hit_returns_what_training_gave(pair, monkeypatch):
    torch.manual_seed(123)
    model, hist = digits.run(pair, "dann", steps=2, lambda_max=0.5, seed=1, batch_size=8, progress=False)
    after_miss = torch.rand(3)
    cached = list((pair.data_dir / "cache" / "digits").glob("*.pt"))
    assert len(cached) == 1 and cached[0].with_name(cached[0].name + ".sha256").exists()
    monkeypatch.setattr(digits, "train_adapted", lambda *a, **k: pytest.fail("a cache hit must not train"))
    torch.manual_seed(123)
    model2, hist2 = digits.run(pair, "dann", steps=2, lambda_max=0.5, seed=1, batch_size=8, progress=False)
    assert torch.equal(torch.rand(3), after_miss)  # the caller's RNG is untouched either way
    assert hist2 == hist and hist[-1]["step"] == 2 and "target_acc" in hist[-1]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_run_keys_the_cache_on_every_setting_but_not_the_thread_count(pair):
    digits.run(pair, "source", steps=2, seed=0, batch_size=8, progress=False)
    digits.run(pair, "source", steps=2, seed=1, batch_size=8, progress=False)
    digits.run(pair, "source", steps=2, seed=0, batch_size=8, lr0=0.03, progress=False)
    digits.run(pair, "mmd", steps=2, lambda_max=1.0, seed=0, batch_size=8, progress=False)
    digits.run(pair, "source", steps=2, seed=0, batch_size=8, progress=False, cache=False)
    assert len(list((pair.data_dir / "cache" / "digits").glob("*.pt"))) == 4
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # runs train on one thread: the cache serves every thread count
    digits.run(pair, "source", steps=2, seed=0, batch_size=8, progress=False)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(threads)
    names = sorted(p.name for p in (pair.data_dir / "cache" / "digits").glob("*.pt"))
    assert len(names) == 4 and all("_cpu1t." in n for n in names), names


def test_bn_only_is_dann_at_lambda_zero(pair):
    _, h = digits.run(pair, "bn_only", steps=2, lambda_max=0.7, batch_size=8, progress=False)
    assert h[-1]["lambda"] == 0.0 and "domain_acc" in h[-1]
    no_adversary = digits.cache_path(pair, "dann", 2, 0.0, batch_size=8)
    assert digits.cache_path(pair, "bn_only", 2, 0.7, batch_size=8) == no_adversary
    assert digits.cache_path(pair, "dann", 2, 0.1, batch_size=8) != no_adversary


def test_experiments_fills_the_cache_in_shards(pair, monkeypatch):
    monkeypatch.setitem(digits.RECIPES, "quick", digits.Recipe(2, 2, (0, 1), batch_size=8, evals=1))
    monkeypatch.setattr(digits, "load_pair", lambda target, profile=None, data_dir=None: replace(pair, target=target))
    runs = digits.experiment_runs("quick")
    assert len(runs) == len(set(runs)) == 2 * (5 + 5 + len(digits.SWEEP) - 2)
    assert ("mnist_m", "bn_only", 0.0, 1) in runs and ("mnist_m", "dann", 1.0, 0) in runs
    first = digits.experiments("quick", progress=False, shard=(0, 2))
    assert set(first) == set(runs[0::2])  # a fixed split: the even-numbered runs
    trained = []
    train = digits.train_adapted
    monkeypatch.setattr(digits, "train_adapted", lambda *a, **k: trained.append(1) or train(*a, **k))
    digits.experiments("quick", progress=False, shard=(1, 2))  # starting later, it trains only its own half
    assert len(trained) == len(runs[1::2])
    every = digits.experiments("quick", progress=False, shard=(0, 1))
    assert set(every) == set(runs) and all(every[r] == h for r, h in first.items())
    monkeypatch.setattr(digits, "train_adapted", lambda *a, **k: pytest.fail("all cached"))
    assert digits.experiments("quick", progress=False) == every
    model, hist = digits.trained("mnist_m", "dann", 1.0, seed=0, profile="quick")
    assert hist == every["mnist_m", "dann", 1.0, 0] and isinstance(model, digits.DANN)
    with pytest.raises(ValueError, match="shard"):
        digits.experiments("quick", shard=(2, 2))


def test_oracle_trains_on_target_labels(pair, monkeypatch):
    seen = {}

    def fake(model, source, target, steps, method, **kw):
        seen.update(source=source, method=method, lam=kw["lambda_max"])
        return [{"step": steps}]

    monkeypatch.setattr(digits, "train_adapted", fake)
    digits.run(pair, "oracle", steps=2, lambda_max=0.7, batch_size=8, progress=False, cache=False)
    assert seen["source"] is pair.target_train and seen["method"] == "source" and seen["lam"] == 0.0
    with pytest.raises(ValueError, match="Unknown method"):
        digits.run(pair, "coral", steps=2)
    with pytest.raises(ValueError, match="Unknown target"):
        digits.RECIPES["quick"].steps("svhn")


def test_corrupted_cache_raises_instead_of_retraining(pair, monkeypatch):
    digits.run(pair, "source", steps=2, batch_size=8, progress=False)
    path = next((pair.data_dir / "cache" / "digits").glob("*.pt"))
    path.write_bytes(path.read_bytes()[:-10])
    monkeypatch.setattr(digits, "train_adapted", lambda *a, **k: pytest.fail("must not retrain over a corrupted cache"))
    with pytest.raises(ChecksumError, match="Delete both files"):
        digits.run(pair, "source", steps=2, batch_size=8, progress=False)
    path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(ChecksumError, match="missing"):
        digits.run(pair, "source", steps=2, batch_size=8, progress=False)


@pytest.mark.parametrize("method", ["source", "bn_only", "dann", "mmd", "oracle"])
def test_run_on_a_cuda_device_matches_the_cpu(pair, method):
    """Under fake_cuda() a run takes its CUDA code paths on the CPU, with the pair's CPU tensors."""
    from fakecuda import fake_cuda

    _, on_cpu = digits.run(pair, method, steps=3, lambda_max=0.5, batch_size=8, progress=False, cache=False)
    with fake_cuda():
        model, on_cuda = digits.run(pair, method, steps=3, lambda_max=0.5, batch_size=8, progress=False,
                                    cache=False, device="cuda")
    assert on_cuda[-1]["target_acc"] == on_cpu[-1]["target_acc"]
    assert on_cuda[-1]["class_loss"] == pytest.approx(on_cpu[-1]["class_loss"], rel=1e-5)
