"""Repeating an experiment over seeds: checking the seeds, and the spread of a number or a
curve across them.

For values v_1..v_n (one per seed) the spread is the mean, the sample standard deviation
sqrt(Σ(v_i - mean)² / (n - 1)) (0 for a single seed), the minimum and the maximum. NaN
values (a run that diverged, or was never measured) are left out; a spread of no values
is all NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list, or a ValueError unless they are distinct integers >= 0 (one at least)."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds: give at least one seed")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0]
    if bad:
        raise ValueError(f"seeds must be integers >= 0, got {bad}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds must be distinct, {repeated} repeated")
    return [int(s) for s in seeds]


def spread(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "std", "min", "max"}`` of the finite-or-infinite (non-NaN) ``values``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if not v.size:
        return dict.fromkeys(("mean", "std", "min", "max"), float("nan"))
    std = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "min": float(v.min()), "max": float(v.max())}


def band(curves: Sequence[Sequence[float]]) -> dict[str, Any]:
    """The spread at each index of several curves (one per seed) over their common length.

    Returns ``{"mean", "std", "min", "max"}``, each a list as long as the shortest curve
    (a diverged run's curve stops early, and so does the band).
    """
    length = min(len(c) for c in curves)
    stacked = np.array([list(c)[:length] for c in curves], dtype=np.float64).reshape(-1, length)
    std = stacked.std(axis=0, ddof=1) if len(stacked) > 1 else np.zeros(length)
    return {
        "mean": stacked.mean(axis=0).tolist(),
        "std": std.tolist(),
        "min": stacked.min(axis=0).tolist(),
        "max": stacked.max(axis=0).tolist(),
    }
