"""course_lib.setup(): profile resolution, seeding and the summary line."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import course_lib
from course_lib import config


def test_profile_from_env_and_argument(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert course_lib.setup(verbose=False).profile == "full"
    assert course_lib.setup("quick", verbose=False).profile == "quick"  # the argument wins


def test_default_profile_follows_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.resolve_profile() == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.resolve_profile() == "full"


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="Unknown profile 'fast'.*COURSE_PROFILE"):
        course_lib.setup()


def test_setup_seeds_python_numpy_and_torch():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    course_lib.setup(seed=7, verbose=False)
    a = draw()
    course_lib.setup(seed=7, verbose=False)
    assert draw() == a
    course_lib.setup(seed=8, verbose=False)
    assert draw() != a


def test_setup_returns_config_and_prints_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    cfg = course_lib.setup(seed=3)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "profile=quick" in out and "seed=3" in out
    assert cfg.data_dir == tmp_path / "d" and cfg.seed == 3 and isinstance(cfg.device, torch.device)
    assert cfg.pick(1, 100) == 1


def test_default_data_dir_is_a_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert config.data_dir() == tmp_path / "transfer-course" / "data"


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_quick_on_cpu_pins_the_thread_count(monkeypatch, restore_threads):
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    torch.set_num_threads(1)  # as if the machine had one core, or something else had changed it
    cfg = course_lib.setup("quick", verbose=False)
    assert cfg.threads == config.QUICK_THREADS == torch.get_num_threads()
    monkeypatch.setenv("COURSE_THREADS", "1")
    assert course_lib.setup("quick", verbose=False).threads == 1 == torch.get_num_threads()


def test_full_leaves_threads_alone_unless_asked(monkeypatch, restore_threads):
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    torch.set_num_threads(1)
    assert course_lib.setup("full", verbose=False).threads == 1
    assert config.cpu_threads("full", torch.device("cpu")) is None
    assert config.cpu_threads("quick", torch.device("cuda")) is None  # a GPU run: the CPU is not the bottleneck
    monkeypatch.setenv("COURSE_THREADS", "3")
    assert config.cpu_threads("full", torch.device("cpu")) == 3


@pytest.mark.parametrize("bad", ["0", "two", "-1", "1.5"])
def test_bad_thread_count_is_a_clear_error(monkeypatch, bad):
    monkeypatch.setenv("COURSE_THREADS", bad)
    with pytest.raises(ValueError, match="COURSE_THREADS.*positive integer"):
        course_lib.setup("quick", verbose=False)


def test_numerics_tag_names_the_device_and_cpu_threads(restore_threads):
    torch.set_num_threads(1)
    assert config.numerics_tag("cpu") == "cpu1t"
    torch.set_num_threads(2)
    assert config.numerics_tag(torch.device("cpu")) == "cpu2t"
    assert config.numerics_tag("cuda") == "cuda"  # a device object only: no GPU is needed to name it
