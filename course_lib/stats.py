"""Confidence intervals for a handful of seeds.

With 3 seeds the normal approximation (±1.96 standard errors) is too narrow: Student's t with 2 degrees
of freedom puts the 95% interval at ±4.30 standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as _st


def t_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean of ``values`` (at least 2) and the half-width of its Student-t confidence interval."""
    xs = [float(v) for v in values]
    if len(xs) < 2 or not 0 < level < 1:
        raise ValueError(f"need at least 2 values and 0 < level < 1, got {len(xs)} values and level {level}")
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return mean, float(_st.t.ppf(0.5 + level / 2, len(xs) - 1)) * sd / math.sqrt(len(xs))
