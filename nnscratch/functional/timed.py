"""A backend whose ops time themselves: where a step's time goes, op by op.

    chosen, times = timed(backend)
    with using(chosen):
        step()
    times["conv2d_backward"]   # OpTime(calls=..., seconds=...)

An op's ``seconds`` are its own: an op that calls back into others (``residual_backward``
calls the branch's and the shortcut's backward) does not count the time spent in them.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable

from nnscratch.functional.backend import Backend


@dataclasses.dataclass
class OpTime:
    """How often an op ran and for how long, without the ops it called."""

    calls: int = 0
    seconds: float = 0.0


class _Running(threading.local):
    """This thread's timed ops in progress: for each, the seconds spent in ops it called."""

    def __init__(self) -> None:
        self.inner: list[float] = []


_running = _Running()


def timed(chosen: Backend) -> tuple[Backend, dict[str, OpTime]]:
    """``chosen`` with each op wrapped to add its calls and own seconds to the returned dict
    (one entry per op, in field order; shared by every thread that runs the backend)."""
    names = [f.name for f in dataclasses.fields(Backend) if f.name != "name"]
    times = {name: OpTime() for name in names}
    wrapped = {name: _timing(getattr(chosen, name), times[name]) for name in names}
    return dataclasses.replace(chosen, **wrapped), times


def _timing(op: Callable, into: OpTime) -> Callable:
    @functools.wraps(op)
    def run(*args, **kwargs):
        _running.inner.append(0.0)
        start = time.perf_counter()
        try:
            return op(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            inner = _running.inner.pop()
            if _running.inner:
                _running.inner[-1] += elapsed
            into.calls += 1
            into.seconds += elapsed - inner

    return run
