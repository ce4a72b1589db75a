"""data.cache: one home for stamped, atomic cache entries and the ``cached(path, build)`` pattern."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch

from course_lib.data import cache
from course_lib.data.integrity import ChecksumError


def _counting(value):
    calls = []

    def build():
        calls.append(1)
        return value
    return build, calls


def test_a_miss_builds_once_and_a_hit_returns_the_stored_value(tmp_path):
    path = cache.path_for("zoo", "demo", tmp_path)
    build, calls = _counting({"w": torch.arange(4.0)})
    first = cache.cached(path, build)
    assert calls == [1] and path.exists() and path.with_name(path.name + ".sha256").exists()
    again = cache.cached(path, lambda: pytest.fail("a hit must not call build"))
    assert torch.equal(again["w"], first["w"]) and again is not first  # read back from disk


def test_a_failed_build_or_save_leaves_no_file_behind(tmp_path):
    path = cache.path_for("digits", "broken", tmp_path)

    def boom():
        raise RuntimeError("training diverged")
    with pytest.raises(RuntimeError, match="diverged"):
        cache.cached(path, boom)
    assert not path.exists()
    with pytest.raises((pickle.PicklingError, AttributeError)):  # torch.save cannot pickle a local lambda
        cache.cached(path, lambda: {"f": lambda x: x})
    assert list(path.parent.iterdir()) == []  # neither the entry, nor its stamp, nor a temporary file
    with pytest.raises((pickle.PicklingError, AttributeError)):
        cache.atomic_save(lambda x: x, path)
    assert list(path.parent.iterdir()) == []


def test_a_corrupted_or_incomplete_entry_raises_naming_the_file(tmp_path):
    path = cache.path_for("kd_curves", "run", tmp_path)
    cache.save_stamped(torch.ones(3), path)
    blob = path.read_bytes()
    path.write_bytes(blob[:-10])
    with pytest.raises(ChecksumError, match=f"{path.name} does not match its checksum"):
        cache.cached(path, lambda: pytest.fail("must not rebuild over a corrupted entry"))
    path.write_bytes(blob)
    assert torch.equal(cache.load_stamped(path), torch.ones(3))
    path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(ChecksumError, match=f"{path.name} is incomplete"):
        cache.load_stamped(path)


def test_paths_carry_the_folder_and_the_version(tmp_path, monkeypatch):
    assert cache.path_for("datasets", "cifar10_quick_28", tmp_path) == tmp_path / "cache" / "cifar10_quick_28.v1.pt"
    assert cache.path_for("zoo_outputs", "outputs_x", tmp_path).name == f"outputs_x.v{cache.STORES['zoo'][1]}.1.pt"
    folder = cache.path_for("label_curves", "quick_abc_cpu1t", tmp_path, suffix="")
    assert folder == tmp_path / "cache" / "curves" / "quick_abc_cpu1t.v1"
    before = cache.path_for("digits", "k", tmp_path)
    monkeypatch.setitem(cache.STORES, "digits", ("digits", "3"))
    after = cache.path_for("digits", "k", tmp_path)
    assert after != before and after.name == "k.v3.pt"
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "elsewhere"))
    assert cache.path_for("digits", "k").is_relative_to(tmp_path / "elsewhere" / "cache" / "digits")
    with pytest.raises(ValueError, match="Unknown cache"):
        cache.path_for("nope", "k", tmp_path)


def test_an_unwritable_cache_still_returns_the_value(tmp_path, monkeypatch, capsys):
    def read_only(obj, path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(cache, "save_stamped", read_only)
    path = cache.path_for("datasets", "x", tmp_path)
    assert cache.cached(path, lambda: 7) == 7
    assert "could not cache x.v1.pt" in capsys.readouterr().out and not path.exists()


_WRITER = """
import sys, torch
from pathlib import Path
from course_lib.data import cache
path = Path(sys.argv[1])
for i in range(300):
    cache.save_stamped(torch.full((20_000,), float(i)), path)
"""


def test_a_reader_never_sees_a_new_file_beside_an_old_stamp(tmp_path):
    """One process rewrites an entry with a different value 300 times while this one reads it: every read
    returns one whole value (the folder lock keeps each file and its stamp together)."""
    path = cache.path_for("zoo", "contended", tmp_path)
    cache.save_stamped(torch.full((20_000,), -1.0), path)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)])
    seen = set()
    try:
        while writer.poll() is None:
            value = cache.load_stamped(path)
            assert bool((value == value[0]).all())
            seen.add(float(value[0]))
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0 and len(seen) > 10  # the reads really interleaved with the writes


def test_the_same_value_saved_twice_gives_the_same_bytes(tmp_path):
    """``torch.save`` given a path names the archive after it; saved through a file object it does not, so a
    value rebuilt by another process matches the stamp already there."""
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    for path in (first, second):
        cache.save_stamped({"x": torch.arange(10)}, path)
    assert first.read_bytes() == second.read_bytes()
