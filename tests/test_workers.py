"""Splitting a batch across worker threads: the shares, their results, BLAS's thread count."""

import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import TINY_FLAGS
from threadpoolctl import threadpool_info

import nnscratch.functional.fast as F
from nnscratch.cli import main
from nnscratch.functional.fast import flags, workers

BIG = workers.MIN_SPLIT_SIZE  # large enough to be split


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


@pytest.mark.parametrize("N, parts", [(10, 3), (64, 2), (2, 5), (1, 2), (7, 7)])
def test_shares_cover_the_batch_once_in_nearly_equal_runs(N, parts):
    runs = workers.shares(N, parts)
    assert len(runs) == min(N, parts)
    assert runs[0][0] == 0 and runs[-1][1] == N
    assert all(a[1] == b[0] for a, b in itertools.pairwise(runs))  # contiguous, no overlap
    sizes = [n1 - n0 for n0, n1 in runs]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


@pytest.fixture(autouse=True)
def four_cores(monkeypatch):
    """Up to 4 workers are allowed whatever this machine has (the tests split into 2-3)."""
    monkeypatch.setattr(workers, "_available_cores", lambda: 4)


def test_map_shares_runs_in_parallel_threads_and_keeps_the_order(monkeypatch):
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "2")
    both_started = threading.Barrier(2, timeout=10)  # fails unless two shares run at once

    def work(n0, n1):
        both_started.wait()
        return n0, n1, threading.current_thread().name

    (a0, a1, first), (b0, b1, second) = workers.map_shares(work, 9, size=BIG)
    assert (a0, a1, b0, b1) == (0, 4, 4, 9)
    assert first == threading.current_thread().name and second.startswith("nnscratch")


def test_blas_is_single_threaded_inside_and_restored_after(monkeypatch):
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "2")
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    before = blas_threads()
    inside = workers.map_shares(lambda n0, n1: blas_threads(), 4, size=BIG)
    assert inside == [[1] * len(before)] * 2
    assert blas_threads() == before


def test_nested_calls_run_whole_on_the_thread_of_their_share(monkeypatch):
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "2")

    def inner(n0, n1):
        return workers.map_shares(lambda a, b: (a, b, threading.current_thread().name), 6, size=BIG)

    outer = workers.map_shares(inner, 2, size=BIG)
    caller, worker = threading.current_thread().name, outer[1][0][2]
    assert outer == [[(0, 6, caller)], [(0, 6, worker)]] and worker.startswith("nnscratch")
    assert len(workers.map_shares(lambda a, b: (a, b), 6, size=BIG)) == 2  # and after, splits


def test_an_error_in_a_share_waits_for_the_others_then_propagates(monkeypatch):
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "3")
    finished = []
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    before = blas_threads()

    def work(n0, n1):
        if n0 == 0:
            raise ValueError("share 0 failed")
        threading.Event().wait(0.05)
        finished.append(n0)

    with pytest.raises(ValueError, match="share 0 failed"):
        workers.map_shares(work, 3, size=BIG)
    assert sorted(finished) == [1, 2]  # nobody still writing when the error arrives
    assert blas_threads() == before  # and the limit was lifted


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "positive integer"),
        ("-2", "positive integer"),
        ("two", "positive integer"),
        ("5", "more than the 4 cores"),
        ("1200", "more than the 4 cores"),
    ],
)
def test_a_bad_thread_count_is_named(value, message, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", value)
    with pytest.raises(ValueError, match=f"NNSCRATCH_NUM_THREADS.*{message}"):
        workers.num_workers()


def test_a_small_call_runs_whole_on_the_calling_thread(monkeypatch):
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "2")
    small = workers.MIN_SPLIT_SIZE - 1
    runs = workers.map_shares(lambda n0, n1: (n0, n1, threading.current_thread().name), 8, small)
    assert runs == [(0, 8, threading.current_thread().name)]


def _norm_and_relu_results(rng):
    """Forward and backward of batch norm (train, eval) and ReLU."""
    x = rng.standard_normal((5, 3, 4, 6)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta = (
        rng.uniform(0.5, 1.5, 3).astype(np.float32),
        rng.standard_normal(3).astype(np.float32),
    )
    out = []
    for training in (True, False):
        stats = [np.full(3, 0.3, np.float32), np.full(3, 2.0, np.float32)]
        y, cache = F.batch_norm2d_forward(x, gamma, beta, *stats, training=training)
        out += [y, *F.batch_norm2d_backward(dy, cache), *stats]
    y, cache = F.relu_forward(x)
    return [*out, y, F.relu_backward(dy, cache)]


@pytest.mark.parametrize("n", [2, 3])
def test_batch_norm_and_relu_split_equal_whole_bit_for_bit(n, monkeypatch):
    """Split by channel (statistics) and by image (elementwise passes): the same sums."""
    monkeypatch.setattr(workers, "MIN_SPLIT_SIZE", 0)
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "1")
    whole = _norm_and_relu_results(np.random.default_rng(0))
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", str(n))
    split = _norm_and_relu_results(np.random.default_rng(0))
    for a, b in zip(whole, split, strict=True):
        np.testing.assert_array_equal(a, b)


def _split_in_child(queue):
    queue.put(workers.map_shares(lambda n0, n1: (n0, n1), 4, size=BIG))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_gets_a_pool_of_its_own(monkeypatch):
    """The parent's pool threads do not exist in a forked child; it must not wait for them."""
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "2")
    workers.map_shares(lambda n0, n1: None, 2, size=BIG)  # the parent's pool exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_split_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung waiting for the parent's worker threads")
    assert child.exitcode == 0 and queue.get(timeout=5) == [(0, 2), (2, 4)]


# A child with a fresh pool: each share reports the cores its thread may run on, then the
# caller reports its own again after the split.
PINNING_CHILD = """
import json, os
from nnscratch.functional.fast import workers
inside = workers.map_shares(lambda n0, n1: sorted(os.sched_getaffinity(0)), 2, workers.MIN_SPLIT_SIZE)
print(json.dumps([inside, sorted(os.sched_getaffinity(0))]))
"""


def shares_cores(pin: str, threads: str = "2") -> tuple[list, list]:
    env = {**os.environ, "NNSCRATCH_PIN_THREADS": pin, "NNSCRATCH_NUM_THREADS": threads}
    out = subprocess.run(
        [sys.executable, "-c", PINNING_CHILD], env=env, capture_output=True, text=True, check=True
    )
    inside, after = json.loads(out.stdout)
    return inside, after


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="thread affinity is Linux's")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to pin to")
def test_each_thread_of_a_split_runs_on_a_core_of_its_own_and_the_caller_gets_its_cores_back():
    cores = sorted(os.sched_getaffinity(0))
    inside, after = shares_cores("1")
    assert inside == [[cores[0]], [cores[1]]]
    assert after == cores
    inside, after = shares_cores("0")  # turned off: every thread may run anywhere
    assert inside == [cores, cores] and after == cores
    inside, _ = shares_cores("1", threads="1")  # one thread: nothing to pin, nothing pinned
    assert inside == [cores]


def test_a_bad_pinning_setting_is_one_line_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_PIN_THREADS", "yes")
    with pytest.raises(ValueError, match="NNSCRATCH_PIN_THREADS must be 0 or 1, got 'yes'"):
        workers.pinning_enabled()
    assert main(["train", *TINY_FLAGS, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "NNSCRATCH_PIN_THREADS must be 0 or 1, got 'yes'" in err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()
    monkeypatch.setenv("NNSCRATCH_PIN_THREADS", "0")
    assert not workers.pinning_enabled()


def test_a_published_count_is_seen_by_a_polling_thread():
    counters = np.zeros(2, dtype=np.int64)
    assert not flags.poll(counters, 0, 1, 1000)  # nothing published: gives up
    publisher = threading.Timer(0.05, flags.publish, args=(counters, 0, 1))
    publisher.start()
    assert flags.poll(counters, 0, 1, 1 << 40)  # released by the other thread's store
    publisher.join()
    assert counters.tolist() == [1, 0]


@pytest.mark.parametrize("polls", [1, workers.POLLS])
def test_hand_overs_never_lose_a_wake_up(polls, monkeypatch):
    """Thousands of splits, with the threads sleeping between them (polls=1) or polling;
    run in a thread of its own so that a lost wake-up fails the test instead of hanging it."""
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "2")
    monkeypatch.setattr(workers, "POLLS", polls)
    results = []

    def splits():
        for k in range(2000):
            delay = (k % 7) * 1e-5
            got = workers.map_shares(lambda n0, n1, d=delay: (time.sleep(d), n0, n1)[1:], 10, BIG)
            results.append(got == [(0, 5), (5, 10)])

    runner = threading.Thread(target=splits, daemon=True)
    runner.start()
    runner.join(timeout=120)
    assert not runner.is_alive(), "a split hung: a wake-up was lost"
    assert len(results) == 2000 and all(results)


def test_two_callers_at_once_both_get_their_results(monkeypatch):
    """While one thread's split holds the workers, another's runs whole on its own thread."""
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "2")
    holding = threading.Barrier(2, timeout=10)
    outcomes = {}

    def first(n0, n1):
        if n0 == 0:
            holding.wait()  # the second caller runs while this split is in progress
            holding.wait()
        return n0, n1

    def caller():
        outcomes["first"] = workers.map_shares(first, 4, BIG)

    thread = threading.Thread(target=caller)
    thread.start()
    holding.wait()
    outcomes["second"] = workers.map_shares(lambda n0, n1: (n0, n1), 6, BIG)
    holding.wait()
    thread.join(timeout=10)
    assert outcomes == {"first": [(0, 2), (2, 4)], "second": [(0, 6)]}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="thread affinity is Linux's")
def test_a_core_taken_away_from_the_process_is_not_pinned_to(monkeypatch):
    def refuse(pid, cores):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    assert workers._pin(0) is None
