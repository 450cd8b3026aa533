"""A switch for inference: under ``no_grad()`` layers keep no cache for backward."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_grad_enabled = True


def is_grad_enabled() -> bool:
    """True unless inside :func:`no_grad`."""
    return _grad_enabled


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Run forwards without keeping caches (less memory); backward is then unavailable.

    Use it for evaluation and feature extraction. It is independent of ``eval()``,
    which changes what batch norm computes, exactly as in PyTorch.
    """
    global _grad_enabled
    previous = _grad_enabled
    _grad_enabled = False
    try:
        yield
    finally:
        _grad_enabled = previous
