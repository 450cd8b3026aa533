"""Scratch space and chunking shared by the fast convolutions.

Scratch arrays are reused from call to call instead of being allocated (and page-
faulted in) anew: one set per thread, so concurrent calls from two threads are safe.
A share of the batch is worked through in chunks of images whose working set fills
about ``CHUNK_BYTES``, one core's L2 cache.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

# Bytes of im2col columns built at once, per worker thread: about one core's L2 cache,
# still GEMMs of hundreds to thousands of columns. (With both cores at work, 16 MB chunks
# spilled out of the shared L3 and made ResNet-18's first-stage convolutions 15-30% slower.)
CHUNK_BYTES = 2 << 20
ALIAS_BYTES = 4096  # one page: the stride at which rows alias in the L1 and L2 caches

_scratch = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A reusable array of ``shape`` (contents undefined) that must not outlive the call."""
    buffers = _scratch.__dict__.setdefault("buffers", {})
    size = int(np.prod(shape))
    key = (name, np.dtype(dtype))
    flat = buffers.get(key)
    if flat is None or flat.size < size:
        flat = buffers[key] = np.empty(size, dtype=dtype)
    return flat[:size].reshape(shape)


def image_chunks(n0: int, n1: int, rows: int, L: int, itemsize: int) -> Iterator[tuple[int, int]]:
    """Split images [n0, n1) into runs [a, b) whose (rows, nb * L) matrices fill about CHUNK_BYTES.

    Where it can, nb keeps the rows' length in bytes off multiples of ALIAS_BYTES: rows at
    such a stride fall into the same cache sets, and a product over them runs at half
    speed (32-channel Winograd products: 50 GFLOP/s with 1024 tiles a row, 107 with 960).
    """
    per_image = max(1, rows * L * itemsize)
    nb = int(min(n1 - n0, max(1, CHUNK_BYTES // per_image)))
    if ALIAS_BYTES:
        nb = next((k for k in range(nb, 0, -1) if k * L * itemsize % ALIAS_BYTES), nb)
    for a in range(n0, n1, nb):
        yield a, min(n1, a + nb)
