"""The backend the layers run: one object holding every op, the fast tier's or the readable one's.

``nnscratch.functional`` holds every op as plain NumPy written the way its math reads;
``nnscratch.functional.fast`` holds the same ops (the ones without a faster version
re-exported from the readable tier) with the same signatures and results. Each tier is
gathered once into a :class:`Backend`, and every ``nn`` layer calls its ops through
:func:`backend`, so ::

    with nnscratch.reference_mode():
        logits = model(x)          # every layer runs the readable op: step through it
        model.backward(dlogits)    # in a debugger, print inside it, change it

runs a whole network on the readable tier, and ``NNSCRATCH_REFERENCE=1`` does the same
for a whole process. The switch is per thread, as PyTorch's grad mode is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import os
import threading
from collections.abc import Callable, Iterator
from types import ModuleType

ENV = "NNSCRATCH_REFERENCE"


@dataclasses.dataclass(frozen=True)
class Backend:
    """Every op a layer calls, by the name it has in both tiers (``name``: the tier's module)."""

    name: str
    conv2d_forward: Callable
    conv2d_backward: Callable
    conv2d_bn_inference: Callable
    batch_norm2d_forward: Callable
    batch_norm2d_backward: Callable
    relu_forward: Callable
    relu_backward: Callable
    residual_backward: Callable
    tanh_forward: Callable
    tanh_backward: Callable
    sigmoid_forward: Callable
    sigmoid_backward: Callable
    max_pool2d_forward: Callable
    max_pool2d_backward: Callable
    global_avg_pool2d_forward: Callable
    global_avg_pool2d_backward: Callable
    linear_forward: Callable
    linear_backward: Callable
    cross_entropy_forward: Callable
    cross_entropy_backward: Callable
    bce_with_logits_forward: Callable
    bce_with_logits_backward: Callable

    @classmethod
    def from_module(cls, module: ModuleType) -> Backend:
        """Gather a tier's ops; a tier that lacks one is a bug, named here."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "name"]
        missing = [n for n in names if not hasattr(module, n)]
        if missing:
            raise AttributeError(f"{module.__name__} lacks the ops {', '.join(missing)}")
        return cls(module.__name__, **{n: getattr(module, n) for n in names})


@functools.cache
def readable() -> Backend:
    """The readable tier (plain NumPy, ``nnscratch/functional/<family>.py``)."""
    return Backend.from_module(importlib.import_module("nnscratch.functional"))


@functools.cache
def fast() -> Backend:
    """The fast tier; gathering it imports numba and sets the process up for it
    (:func:`nnscratch.functional.fast.setup`)."""
    module = importlib.import_module("nnscratch.functional.fast")
    module.setup()
    return Backend.from_module(module)


class _Switches(threading.local):
    """This thread's ``using()`` blocks (``reference_mode()`` among them), innermost last."""

    def __init__(self) -> None:
        self.stack: list[Backend] = []


_switches = _Switches()


@contextlib.contextmanager
def using(chosen: Backend) -> Iterator[None]:
    """Inside the block this thread's layers run ``chosen``'s ops."""
    _switches.stack.append(chosen)
    try:
        yield
    finally:
        _switches.stack.pop()


def reference_mode(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """Inside the block this thread's layers run the readable ops (``enabled=False``: the fast ones)."""
    return using(readable() if enabled else fast())


def backend() -> Backend:
    """The backend the layers call now: the innermost ``using()`` block's, else the
    process default (``NNSCRATCH_REFERENCE``: 1 the readable tier, 0 or unset the fast one)."""
    if _switches.stack:
        return _switches.stack[-1]
    return _process_default(os.environ.get(ENV, "0").strip())


@functools.cache
def _process_default(setting: str) -> Backend:
    if setting not in ("0", "1", ""):
        raise ValueError(f"{ENV} must be 0 or 1, got {setting!r}")
    return readable() if setting == "1" else fast()
