"""Shared test helpers."""

import numpy as np
import pytest


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only copy: any in-place write into it by a backward raises ValueError."""
    a = np.array(a)
    a.setflags(write=False)
    return a


def kink_free(a: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """Push entries away from 0 so finite differences never cross ReLU's kink."""
    return np.where(np.abs(a) < margin, np.sign(a + 1e-12) * (margin + np.abs(a)), a)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
