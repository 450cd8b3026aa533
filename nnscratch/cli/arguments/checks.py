"""Checks of argument values that several commands share."""

from __future__ import annotations


def check_positive(**values: float) -> None:
    """Raise one ValueError naming every argument that is not > 0."""
    bad = [f"{k} must be positive, got {v}" for k, v in values.items() if not v > 0]
    if bad:
        raise ValueError("; ".join(bad))
