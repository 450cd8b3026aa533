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
``NNSCRATCH_NUM_THREADS`` sets the number of workers (default: the cores this process
may run on); 1 turns the splitting off.

Each worker thread stays on a core of its own, and the calling thread, while it runs a
share, on the first one (Linux; ``NNSCRATCH_PIN_THREADS=0`` turns it off). Unpinned,
the threads woke up after any pause on whichever core the scheduler chose, often on
one core together, until the kernel moved one away: the first steps after a pause ran
10-25% slower.

A share is handed over through a counter that the waiting thread polls without the GIL
(:mod:`.flags`) for about a millisecond before it sleeps on a condition: a training step
splits some 180 times, and waking a sleeping thread took 60-100 microseconds here.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from nnscratch.functional.fast.flags import poll, publish

T = TypeVar("T")

# Elements below which a call runs whole on the calling thread: handing a share to a
# worker and waiting for it costs some 10-50 microseconds.
MIN_SPLIT_SIZE = 1 << 15

# Polls of a hand-over counter before a thread sleeps instead (25 ns a poll here: ~0.8 ms).
POLLS = 1 << 15

_state = threading.local()  # .in_worker: True on the threads running a share (no nesting)
_lanes: list[_Lane] = []  # one per worker thread, made as first needed
_lanes_busy = threading.Lock()  # held by the one caller whose split uses the lanes
_cores: list[int] | None = None  # the caller's core, then each worker's ([]: not pinned)
_blas: ThreadpoolController | None = None


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's threads: it starts workers of its own."""
    global _lanes, _lanes_busy, _cores, _blas
    _lanes, _lanes_busy, _cores, _blas = [], threading.Lock(), None, None


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


def _pin(core: int) -> set[int] | None:
    """Hold the calling thread on ``core``; returns the cores it could use before (None,
    and the thread left as it was, when the core is no longer this process's)."""
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {core})
    except OSError:
        return None
    return before


def shares(N: int, workers: int) -> list[tuple[int, int]]:
    """Split images 0 .. N-1 into ``min(N, workers)`` contiguous runs of nearly equal size."""
    parts = max(1, min(N, workers))
    bounds = [N * k // parts for k in range(parts + 1)]
    return list(itertools.pairwise(bounds))


class _Lane:
    """One worker thread and the counters a share is handed over with: ``counters[0]``
    counts the shares posted to it, ``counters[1]`` the shares it has finished."""

    def __init__(self, index: int, core: int | None):
        self.counters = np.zeros(2, dtype=np.int64)
        self.posted = 0
        self.task: tuple[Callable[[int, int], Any], int, int] | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.sleeping = {0: False, 1: False}  # a thread asleep until counters[k] moves
        self.condition = threading.Condition()
        thread = threading.Thread(
            target=self._serve, args=(core,), name=f"nnscratch_{index}", daemon=True
        )
        thread.start()

    def post(self, work: Callable[[int, int], Any], n0: int, n1: int) -> None:
        self.task = (work, n0, n1)
        self.posted += 1
        self._publish(0, self.posted)

    def collect(self) -> tuple[Any, BaseException | None]:
        """The posted share's result and error, once the worker has finished it."""
        self._wait(1, self.posted)
        return self.result, self.error

    def _serve(self, core: int | None) -> None:
        _state.in_worker = True
        if core is not None:
            _pin(core)
        finished = 0
        while True:
            self._wait(0, finished + 1)
            work, n0, n1 = self.task
            try:
                self.result, self.error = work(n0, n1), None
            except BaseException as error:  # handed to the caller, which raises it
                self.result, self.error = None, error
            finished += 1
            self._publish(1, finished)

    def _publish(self, k: int, value: int) -> None:
        publish(self.counters, k, value)
        if self.sleeping[k]:  # read after the store: a sleeper set it before its last check
            with self.condition:
                self.condition.notify_all()

    def _wait(self, k: int, value: int) -> None:
        if poll(self.counters, k, value, POLLS):
            return
        with self.condition:
            self.sleeping[k] = True
            while self.counters[k] != value:
                self.condition.wait()
            self.sleeping[k] = False


def _enter(workers: int) -> list[_Lane] | None:
    """Start a split over ``workers`` threads: the lanes it needs (made on first use),
    BLAS held to one thread. None when another thread's split holds the lanes."""
    global _cores, _blas
    if not _lanes_busy.acquire(blocking=False):
        return None
    if _cores is None:
        cores = sorted(os.sched_getaffinity(0)) if pinning_enabled() else []
        _cores = cores if len(cores) >= workers else []  # a core for every thread, or none
        _blas = ThreadpoolController().select(user_api="blas")
    while len(_lanes) < workers - 1:
        place = len(_lanes) + 1
        _lanes.append(_Lane(place, _cores[place] if place < len(_cores) else None))
    return _lanes[: workers - 1]


def map_shares(work: Callable[[int, int], T], N: int, size: int) -> list[T]:
    """``[work(n0, n1) for each share of the N items]``, the shares running in parallel.

    ``size`` is the number of array elements the whole call touches: below
    ``MIN_SPLIT_SIZE`` a thread hand-off would cost more than it saves. The calling
    thread runs the first share itself. Inside a share (a nested call), with one worker,
    for a small call, or while another thread splits, everything runs on the calling
    thread, in one share.
    """
    small = size < MIN_SPLIT_SIZE
    workers = 1 if small or getattr(_state, "in_worker", False) else num_workers()
    runs = shares(N, workers)
    lanes = _enter(len(runs)) if len(runs) > 1 else None
    if lanes is None:
        return [work(0, N)]
    try:
        cores_before = _pin(_cores[0]) if _cores else None
        blas_limit = _blas.limit(limits=1)
        _state.in_worker = True
        try:
            for lane, (n0, n1) in zip(lanes, runs[1:], strict=True):
                lane.post(work, n0, n1)
            try:
                first = work(*runs[0])
            finally:  # no share may still be writing when the caller moves on
                collected = [lane.collect() for lane in lanes]
        finally:
            _state.in_worker = False
            blas_limit.restore_original_limits()
            if cores_before is not None:
                os.sched_setaffinity(0, cores_before)
        for _, error in collected:
            if error is not None:
                raise error
        return [first, *(result for result, _ in collected)]
    finally:
        _lanes_busy.release()
