"""Split a batch across the cores: one share of the images per worker thread.

The convolutions run im2col, a GEMM and col2im over a batch. With one GEMM on every core
(multithreaded BLAS) the copy kernels in between run on one core while the others wait,
and each column matrix is built by one core and multiplied by all of them. Here instead
each worker takes a contiguous share of the images, ``[n0, n1)``, and runs the whole
sequence for it: its own im2col, a single-threaded GEMM and its own col2im, with its
columns staying in its own core's cache. The numba kernels and NumPy's GEMM release the
GIL, so the workers run in parallel.

While the workers run, BLAS is held to one thread (through ``threadpoolctl``); it gets
its own thread count back afterwards, so NumPy code outside nnscratch is unaffected.

Each worker thread stays on a core of its own, and the calling thread, while it runs a
share, on the first one (Linux; ``NNSCRATCH_PIN_THREADS=0`` turns it off). Unpinned,
the threads woke up after any pause on whichever core the scheduler chose, often on
one core together, until the kernel moved one away: the first steps after a pause ran
10-25% slower.
``NNSCRATCH_NUM_THREADS`` sets the number of workers (default: the cores this process
may run on); 1 turns the splitting off.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from threadpoolctl import ThreadpoolController

T = TypeVar("T")

# Elements below which a call runs whole on the calling thread: handing a share to a
# worker and waiting for it costs some 10-50 microseconds.
MIN_SPLIT_SIZE = 1 << 15

_state = threading.local()  # .in_worker: True on the threads running a share (no nesting)
_started = itertools.count(1)  # the next worker thread's place in _cores
_cores: list[int] = []  # the caller's core, then each worker's (empty: threads not pinned)
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_blas: ThreadpoolController | None = None
_blas_limit = None  # the active threadpoolctl limit while any split runs
_active = 0  # splits running now (from several caller threads at most)


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's threads: it starts a pool of its own."""
    global _pool, _blas, _blas_limit, _active, _lock, _started, _cores
    _pool, _blas, _blas_limit, _active, _cores = None, None, None, 0, []
    _lock = threading.Lock()
    _started = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def num_workers() -> int:
    """``NNSCRATCH_NUM_THREADS`` if set, else the number of cores this process may use.

    More workers than cores would only take turns on them, so a larger value is refused.
    """
    cores = _available_cores()
    value = os.environ.get("NNSCRATCH_NUM_THREADS", "").strip()
    if not value:
        return cores
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"NNSCRATCH_NUM_THREADS must be a positive integer, got {value!r}")
    if int(value) > cores:
        raise ValueError(
            f"NNSCRATCH_NUM_THREADS={value} is more than the {cores} cores this process may use"
        )
    return int(value)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pinning_enabled() -> bool:
    """False when ``NNSCRATCH_PIN_THREADS=0``: the threads then run wherever the scheduler puts them."""
    value = os.environ.get("NNSCRATCH_PIN_THREADS", "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"NNSCRATCH_PIN_THREADS must be 0 or 1, got {value!r}")
    return value == "1" and hasattr(os, "sched_setaffinity")


def _pin(core: int) -> set[int]:
    """Hold the calling thread on ``core``; returns the cores it could use before."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    return before


def shares(N: int, workers: int) -> list[tuple[int, int]]:
    """Split images 0 .. N-1 into ``min(N, workers)`` contiguous runs of nearly equal size."""
    parts = max(1, min(N, workers))
    bounds = [N * k // parts for k in range(parts + 1)]
    return list(itertools.pairwise(bounds))


def _start_worker() -> None:
    _state.in_worker = True
    place = next(_started)
    if place < len(_cores):
        _pin(_cores[place])


def _enter() -> set[int] | None:
    """Start a split: the pool (made on first use), BLAS held to one thread, and the
    calling thread held on its core; returns the cores it could use before, if it was."""
    global _pool, _blas, _blas_limit, _active, _cores
    with _lock:
        if _pool is None:
            size = max(1, num_workers() - 1)
            cores = sorted(os.sched_getaffinity(0)) if pinning_enabled() else []
            _cores = cores[: size + 1] if len(cores) > size else []  # a core for every thread
            _pool = ThreadPoolExecutor(
                size, thread_name_prefix="nnscratch", initializer=_start_worker
            )
            _blas = ThreadpoolController().select(user_api="blas")
        first = _active == 0
        if first:
            _blas_limit = _blas.limit(limits=1)
        _active += 1
    return _pin(_cores[0]) if first and _cores else None


def _leave(cores_before: set[int] | None) -> None:
    global _blas_limit, _active
    if cores_before is not None:
        os.sched_setaffinity(0, cores_before)
    with _lock:
        _active -= 1
        if _active == 0:
            _blas_limit.restore_original_limits()
            _blas_limit = None


def map_shares(work: Callable[[int, int], T], N: int, size: int) -> list[T]:
    """``[work(n0, n1) for each share of the N items]``, the shares running in parallel.

    ``size`` is the number of array elements the whole call touches: below
    ``MIN_SPLIT_SIZE`` a thread hand-off would cost more than it saves. The calling
    thread runs the first share itself. Inside a share (a nested call), with one worker
    or for a small call, everything runs on the calling thread, in one share.
    """
    small = size < MIN_SPLIT_SIZE
    workers = 1 if small or getattr(_state, "in_worker", False) else num_workers()
    runs = shares(N, workers)
    if len(runs) == 1:
        return [work(0, N)]
    cores_before = _enter()
    _state.in_worker = True
    try:
        futures = [_pool.submit(work, n0, n1) for n0, n1 in runs[1:]]
        try:
            first = work(*runs[0])
        finally:
            wait(futures)  # no share may still be writing when the caller moves on
        return [first, *(future.result() for future in futures)]
    finally:
        _state.in_worker = False
        _leave(cores_before)
