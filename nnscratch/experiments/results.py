"""Experiment results as files: every experiment returns plain data (dicts, lists, floats);
:func:`to_jsonable` makes it JSON-safe, :func:`save_json` and :func:`save_csv` write it
atomically."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from nnscratch.utils.atomic import atomic_write


def to_jsonable(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts.

    Arrays become lists, NumPy scalars Python numbers, tuples lists; NaN and
    infinities (a ratio whose denominator underflowed) become None.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_json(value: Any, path: str | os.PathLike) -> None:
    """Write ``to_jsonable(value)`` to ``path`` atomically (indented, strict JSON)."""
    with atomic_write(path, "w") as f:
        json.dump(to_jsonable(value), f, indent=1, allow_nan=False)


def save_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write flat dict rows to ``path`` as CSV atomically; columns in order of appearance."""
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
