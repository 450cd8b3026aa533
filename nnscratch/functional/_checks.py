"""Input validation shared by the functional ops: clear errors instead of numba tracebacks."""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class InputShapeError(ValueError):
    """An op received an array of the wrong rank or size."""


class InputDtypeError(TypeError):
    """An op received something that is not a float32/float64 array, or mixed dtypes."""


def check_float_array(op: str, name: str, x: object, layout: str | None = None) -> np.ndarray:
    """Return ``x`` if it is a float32/float64 ndarray whose rank matches ``layout``.

    ``layout`` is the expected axes as letters separated by commas, e.g. ``"N, C, H, W"``;
    its length gives the required number of dimensions, and a leading ``N`` (a batch)
    may not be 0.
    """
    if not isinstance(x, np.ndarray):
        raise InputDtypeError(f"{op}: expected {name} to be a numpy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise InputDtypeError(f"{op}: expected {name} of dtype float32 or float64, got {x.dtype}")
    if layout is not None:
        ndim = len(layout.split(","))
        if x.ndim != ndim:
            raise InputShapeError(
                f"{op}: expected {name} of shape ({layout}) with {ndim} dimensions, "
                f"got shape {x.shape}"
            )
        if layout.startswith("N,") and x.shape[0] == 0:
            raise InputShapeError(f"{op}: {name} is an empty batch (shape {x.shape}); pass N >= 1")
    return x


def check_same_dtype(op: str, reference: str, arrays: dict[str, np.ndarray | None]) -> None:
    """Raise ``TypeError`` unless every non-None array has the dtype of ``arrays[reference]``."""
    dtype = arrays[reference].dtype
    for name, a in arrays.items():
        if a is not None and a.dtype != dtype:
            raise InputDtypeError(
                f"{op}: {name} has dtype {a.dtype} but {reference} has dtype {dtype}; "
                "cast them to one dtype (e.g. model.to(np.float32))"
            )


def pair(op: str, name: str, value: int | tuple[int, int], minimum: int) -> tuple[int, int]:
    """Normalise an int or a pair of ints to a pair, each at least ``minimum``."""
    pair_value = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair_value) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair_value):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair_value) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return int(pair_value[0]), int(pair_value[1])


def require_cache(op: str, cache: object) -> None:
    """Raise a clear error when a backward is called without a forward cache."""
    if cache is None:
        raise RuntimeError(
            f"{op}: backward called without a forward cache (call forward first; "
            "each forward allows one backward)"
        )


def check_upstream(op: str, dy: object, expected: tuple[int, ...]) -> np.ndarray:
    """Return ``dy`` if it is a float array of the output's shape ``expected``."""
    check_float_array(f"{op} backward", "dy", dy)
    if dy.shape != tuple(expected):
        raise InputShapeError(
            f"{op} backward: expected dy of shape {tuple(expected)}, got {dy.shape}"
        )
    return dy
