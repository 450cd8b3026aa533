"""Which tier of ops the layers run: the fast kernels (the default) or the readable ones.

``nnscratch.functional`` holds every op as plain NumPy written the way its math reads;
``nnscratch.functional.fast`` holds the ops that have a faster version (conv2d, batch
norm, ReLU, max pooling) with the same signatures and results. The ``nn`` layers ask
:func:`ops` which one to call, so ::

    with nnscratch.reference_mode():
        logits = model(x)          # every layer runs the readable op: step through it
        model.backward(dlogits)    # in a debugger, print inside it, change it

runs a whole network on the readable tier, and ``NNSCRATCH_REFERENCE=1`` does the same
for a whole process.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from types import ModuleType

ENV = "NNSCRATCH_REFERENCE"
_blocks: list[bool] = []  # one entry per reference_mode() block we are inside, innermost last


@contextlib.contextmanager
def reference_mode(enabled: bool = True) -> Iterator[None]:
    """Inside the block every layer runs the readable ops (``enabled=False``: the fast ones)."""
    _blocks.append(enabled)
    try:
        yield
    finally:
        _blocks.pop()


def reference_active() -> bool:
    """True inside ``reference_mode()``, or when ``NNSCRATCH_REFERENCE=1`` outside any block."""
    if _blocks:
        return _blocks[-1]
    value = os.environ.get(ENV, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{ENV} must be 0 or 1, got {value!r}")
    return value == "1"


def ops() -> ModuleType:
    """The module whose ops the layers call now: ``nnscratch.functional`` or its ``fast``
    (whose first use sets the allocator up, :mod:`nnscratch.functional.fast.allocator`)."""
    if reference_active():
        return importlib.import_module("nnscratch.functional")
    importlib.import_module("nnscratch.functional.fast.allocator").keep_freed_memory()
    return importlib.import_module("nnscratch.functional.fast")
