"""Checks of argument values that several commands share."""

from __future__ import annotations

import os
from pathlib import Path


def check_positive(**values: float) -> None:
    """Raise one ValueError naming every argument that is not > 0."""
    bad = [f"{k} must be positive, got {v}" for k, v in values.items() if not v > 0]
    if bad:
        raise ValueError("; ".join(bad))


def check_new_file(path: str | os.PathLike, command: str) -> Path:
    """``path`` as a Path; a FileExistsError naming it if it exists (commands never overwrite)."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; nnscratch {command} does not overwrite files")
    return path
