"""course_lib.bench_record: the metrics a notebook records for tools/bench.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import course_lib
from course_lib import bench_record


@pytest.fixture(autouse=True)
def empty_registry(monkeypatch):
    monkeypatch.delenv(bench_record.STRICT_ENV, raising=False)
    bench_record.clear()
    yield
    bench_record.clear()


def test_values_become_floats_lists_and_string_keyed_dicts():
    course_lib.record("acc", torch.tensor(0.25))
    course_lib.record("recall", np.array([1, 2], dtype=np.int64))
    course_lib.record("grid", {(3.0, 0.5): np.float32(0.75), 10: (1, True)})
    course_lib.record("nested", {"a": [torch.tensor([0.5, 1.5]), {"b": 2}]})
    got = bench_record.recorded()
    assert got == {"acc": 0.25, "recall": [1.0, 2.0], "grid": {"3.0 | 0.5": 0.75, "10": [1.0, 1.0]},
                   "nested": {"a": [[0.5, 1.5], {"b": 2.0}]}}
    assert type(got["acc"]) is float and type(got["recall"][0]) is float
    got["acc"] = 1.0
    assert bench_record.recorded()["acc"] == 0.25  # a copy: the registry is not changed through it


@pytest.mark.parametrize("value", ["0.9", None, object(), {"a": "text"}, [1.0, b"x"]])
def test_anything_but_numbers_is_a_type_error_and_is_not_stored(value):
    with pytest.raises(TypeError, match="number, or a list / dict of numbers"):
        course_lib.record("bad", value)
    assert "bad" not in bench_record.recorded()


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_name_is_a_non_empty_string(name):
    with pytest.raises(ValueError, match="non-empty string"):
        course_lib.record(name, 1.0)


def test_under_the_bench_a_second_different_value_is_an_error(monkeypatch):
    monkeypatch.setenv(bench_record.STRICT_ENV, "1")
    course_lib.record("acc", 0.5)
    course_lib.record("acc", np.float64(0.5))  # the same value again: a re-run cell, fine
    with pytest.raises(ValueError, match="'acc' recorded twice with different values: 0.5, then 0.6"):
        course_lib.record("acc", 0.6)
    assert bench_record.recorded() == {"acc": 0.5}


def test_outside_the_bench_a_rerun_cell_replaces_the_value(capsys):
    course_lib.record("acc", 0.5)
    assert course_lib.record("acc", 0.6) is None  # returns nothing: no output as a cell's last line
    assert bench_record.recorded() == {"acc": 0.6}
    assert capsys.readouterr() == ("", "")  # records quietly
