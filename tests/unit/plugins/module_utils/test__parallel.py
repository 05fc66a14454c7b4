# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _parallel
from ansible_collections.imagepusher.registry.plugins.module_utils._parallel import DONE, FAILED, NOT_STARTED, map_until_failure, parallel_map


@pytest.mark.parametrize("concurrency", [1, 2, 4, 16])
def test_results_keep_item_order(concurrency):
    def slow_first(n):
        time.sleep(0.02 if n == 0 else 0)  # the first item finishes last
        return n * n
    assert parallel_map(slow_first, range(6), concurrency) == [0, 1, 4, 9, 16, 25]


def test_no_items_no_calls():
    assert parallel_map(lambda n: 1 / 0, [], 4) == []


def test_items_may_be_any_iterable():
    assert parallel_map(str, (n for n in range(3)), 2) == ["0", "1", "2"]


def test_concurrency_one_runs_inline_in_order():
    caller, seen = threading.current_thread(), []

    def record(n):
        seen.append((n, threading.current_thread()))
        return n
    assert parallel_map(record, [3, 1, 2], 1) == [3, 1, 2]
    assert seen == [(3, caller), (1, caller), (2, caller)]


@pytest.mark.parametrize("concurrency", [0, -2])
def test_concurrency_below_one_is_one(concurrency):
    caller = threading.current_thread()
    assert parallel_map(lambda n: threading.current_thread() is caller, [1, 2], concurrency) == [True, True]


def test_a_single_item_runs_inline_whatever_the_concurrency():
    caller = threading.current_thread()
    assert parallel_map(lambda n: threading.current_thread() is caller, [1], 8) == [True]


def test_runs_at_most_concurrency_at_once_and_uses_the_threads():
    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def work(n):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.05)  # long enough for the pool to fill on a busy machine
        with lock:
            state["now"] -= 1
        return n
    assert parallel_map(work, range(12), 3) == list(range(12))
    assert state["most"] == 3


def test_every_item_runs_then_the_first_failure_in_item_order_is_raised():
    done, lock = [], threading.Lock()

    def work(n):
        if n == 1:
            time.sleep(0.05)  # fails last in time, first in item order
            raise ValueError("item 1")
        if n == 3:
            raise KeyError("item 3")
        time.sleep(0.01)
        with lock:
            done.append(n)
        return n
    with pytest.raises(ValueError, match="item 1"):
        parallel_map(work, range(6), 3)
    assert sorted(done) == [0, 2, 4, 5]  # no transfer abandoned half-way


def test_inline_failure_stops_at_the_failing_item():
    done = []

    def work(n):
        if n == 1:
            raise ValueError("item 1")
        done.append(n)
    with pytest.raises(ValueError):
        parallel_map(work, range(4), 1)
    assert done == [0]


# -- map_until_failure ---------------------------------------------------------------------------

def test_map_until_failure_keeps_item_order():
    def slow_first(n):
        time.sleep(0.03 if n == 0 else 0)
        return n * 2
    assert map_until_failure(slow_first, range(5), 3) == [(DONE, n * 2) for n in range(5)]


def test_map_until_failure_starts_nothing_after_a_failure():
    started = []

    def work(n):
        started.append(n)
        if n == 1:
            raise ValueError("entry 1")
        return n
    outcomes = map_until_failure(work, range(5), 1)
    assert [state for state, _value in outcomes] == [DONE, FAILED, NOT_STARTED, NOT_STARTED, NOT_STARTED]
    assert isinstance(outcomes[1][1], ValueError) and started == [0, 1]


def test_map_until_failure_lets_running_items_finish():
    second_started = threading.Event()

    def work(n):
        if n == 0:
            second_started.wait(5)
            raise ValueError("fails while item 1 runs")
        second_started.set()
        time.sleep(0.05)
        return n
    outcomes = map_until_failure(work, range(6), 2)
    assert outcomes[0][0] == FAILED and outcomes[1] == (DONE, 1)
    assert [state for state, _value in outcomes[2:]] == [NOT_STARTED] * 4


def test_map_until_failure_of_nothing():
    assert map_until_failure(lambda n: n, [], 4) == []


# -- Pool: bounded work on the process's shared worker threads ------------------------------------

def test_a_pool_runs_at_most_its_limit_at_once_and_futures_hold_results_and_failures():
    running, most, lock = [0], [0], threading.Lock()

    def work(n):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        if n == 3:
            raise ValueError("item 3")
        return n

    with _parallel.Pool(2) as pool:
        futures = [pool.submit(work, n) for n in range(8)]
    assert most[0] == 2
    assert all(f.done() for f in futures)  # leaving the block waited for every one
    assert [f.result() for f in futures if f is not futures[3]] == [0, 1, 2, 4, 5, 6, 7]
    with pytest.raises(ValueError, match="item 3"):
        futures[3].result()


def test_leaving_the_block_waits_for_work_submitted_meanwhile():
    done = []
    with _parallel.Pool(1) as later:
        with _parallel.Pool(2) as first:
            for n in range(3):
                first.submit(lambda n=n: later.submit(lambda: (time.sleep(0.01), done.append(n))))
    assert sorted(done) == [0, 1, 2]


def test_idle_workers_are_reused_by_the_next_pool_and_end_when_idle_too_long(monkeypatch):
    monkeypatch.setattr(_parallel, "IDLE_SECONDS", 0.3)
    workers = _parallel._Workers()
    monkeypatch.setattr(_parallel, "_WORKERS", workers)
    started = []
    real_start = threading.Thread.start

    def counting_start(thread):
        started.append(thread.name)
        real_start(thread)
    monkeypatch.setattr(threading.Thread, "start", counting_start)

    def names(count):
        seen, barrier = set(), threading.Barrier(count)

        def work():
            barrier.wait(5)  # all at once: each on its own worker
            seen.add(threading.current_thread().ident)
        with _parallel.Pool(count) as pool:
            for _n in range(count):
                pool.submit(work)
        return seen

    first = names(3)
    time.sleep(0.05)  # the workers are back, waiting
    assert names(3) == first  # the same threads again...
    assert len(started) == 3  # ...none started for the second pool
    deadline = time.monotonic() + 5
    while workers._idle and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers._idle == 0  # idle past IDLE_SECONDS: they ended
    assert not [t for t in threading.enumerate() if t.ident in first]


def test_when_no_thread_can_start_submit_says_so_and_nothing_waits_forever(monkeypatch):
    workers = _parallel._Workers()
    monkeypatch.setattr(_parallel, "_WORKERS", workers)

    def no_thread(_thread):
        raise RuntimeError("can't start new thread")
    monkeypatch.setattr(threading.Thread, "start", no_thread)
    pool = _parallel.Pool(1)
    with pytest.raises(RuntimeError):
        pool.submit(lambda: 1)
    pool.wait()  # returns: nothing counts as running
