"""Benchmark metrics, recorded by the notebook next to the assert that checks them.

A lesson calls ``course_lib.record("mnist_m_dann", dann_acc)`` beside its assert; ``tools/bench.py`` reads
``recorded()`` in the same kernel after the last cell and fails the notebook when a metric it expects is
missing, so a renamed variable or a deleted line cannot drop a number silently.  Recording prints nothing.
"""

from __future__ import annotations

import numbers
import os

_REGISTRY: dict[str, object] = {}
STRICT_ENV = "COURSE_BENCH"  # set to "1" by tools/bench.py: a second, different value is then an error


def to_json(value):
    """``value`` as floats, or lists / dicts of them: tensors and arrays through ``.tolist()``, numbers as
    ``float``, dict keys as strings (a tuple key ``(a, b)`` becomes ``"a | b"``), tuples as lists.

    Raises ``TypeError`` for anything else (a string, None, an object), naming its type.
    """
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return {(" | ".join(map(str, k)) if isinstance(k, tuple) else str(k)): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    raise TypeError(f"a benchmark metric is a number, or a list / dict of numbers, not {type(value).__name__}")


def record(name: str, value) -> None:
    """Store ``value`` (converted by ``to_json``) as the benchmark metric ``name``.

    Re-running a cell replaces the value; under the benchmark (``$COURSE_BENCH=1``) a second record of
    ``name`` with a different value raises ``ValueError``: two lines claim the same metric.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a metric name is a non-empty string, not {name!r}")
    converted = to_json(value)
    if os.environ.get(STRICT_ENV) == "1" and name in _REGISTRY and _REGISTRY[name] != converted:
        raise ValueError(f"metric {name!r} recorded twice with different values: {_REGISTRY[name]!r}, then "
                         f"{converted!r}")
    _REGISTRY[name] = converted


def recorded() -> dict[str, object]:
    """A copy of every metric recorded in this process: {name: converted value}."""
    return dict(_REGISTRY)


def clear() -> None:
    """Forget every recorded metric (for tests)."""
    _REGISTRY.clear()
