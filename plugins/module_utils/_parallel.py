# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded pools of work on threads the whole process shares (blob transfers are I/O bound).

A fleet runs each image's blobs on pools of their own (the HEADs of its blobs, its downloads, the
uploads beside them, the uploads from the cache). With a ThreadPoolExecutor per pool, a cold task
over 300 small images started about 2,500 threads and spent a tenth of its CPU on that. A Pool
here bounds how many of its functions run at once, like an executor, but runs them on the
process's idle worker threads, starting one only when none is idle; a worker idle for
IDLE_SECONDS ends. Threads are never the bound: only Pools are, so work that waits for other
work never waits for a thread.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import threading
from concurrent.futures import Future

IDLE_SECONDS = 5.0


class _Workers:
    """The process's worker threads: each runs one task after another, and ends when idle too long."""

    def __init__(self):
        self._lock = threading.Lock()
        self._more = threading.Condition(self._lock)
        self._tasks = collections.deque()
        self._idle = 0  # workers waiting that no task was handed to yet: always len(waiting) - len(_tasks)

    def run(self, task):
        """task() on an idle worker, else on a new one (RuntimeError when no thread can start)."""
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._tasks.append(task)
                self._more.notify()
                return
        threading.Thread(target=self._work, args=(task,), name="imagepusher-worker", daemon=True).start()

    def _work(self, task):
        while task is not None:
            task()  # a Pool's task: it never raises (it hands every outcome to a Future)
            task = self._next()

    def _next(self):
        with self._lock:
            self._idle += 1
            while not self._tasks:
                if not self._more.wait(IDLE_SECONDS) and not self._tasks:
                    self._idle -= 1  # no task is on its way to this worker: _tasks is empty
                    return None
            return self._tasks.popleft()


_WORKERS = _Workers()


class Pool:
    """submit(fn, *args) -> Future, running at most `limit` functions at once; leaving a `with` block waits for
    every function submitted, those submitted meanwhile included."""

    def __init__(self, limit):
        self.limit = max(1, limit)
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._queue = collections.deque()
        self._running = 0

    def submit(self, fn, *args):
        future = Future()
        with self._lock:
            if self._running >= self.limit:
                self._queue.append((future, fn, args))
                return future
            self._running += 1
        try:
            _WORKERS.run(lambda: self._drain(future, fn, args))
        except BaseException as exc:
            self._not_started(exc)
            raise
        return future

    def _drain(self, future, fn, args):
        """Run fn, then what waits in the queue, on this one worker."""
        while True:
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:  # the Future holds it, as an executor's would
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                if not self._queue:
                    self._running -= 1
                    if not self._running:
                        self._done.notify_all()
                    return
                future, fn, args = self._queue.popleft()

    def _not_started(self, exc):
        """No thread could start: what no running drain will take fails with `exc`."""
        with self._lock:
            self._running -= 1
            orphans = list(self._queue) if not self._running else []
            if orphans:
                self._queue.clear()
            if not self._running:
                self._done.notify_all()
        for future, _fn, _args in orphans:
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)

    def wait(self):
        with self._lock:
            while self._running or self._queue:
                self._done.wait()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.wait()


def parallel_map(fn, items, concurrency):
    """[fn(item) ...] in order, on up to `concurrency` threads.

    Every item runs to its end (no transfer is abandoned half-way), then the first failure,
    in item order, is raised.
    """
    items = list(items)
    workers = min(max(1, concurrency), len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    with Pool(workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
        results, errors = [], []
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:  # re-raised below: the first failure wins
                errors.append(exc)
        if errors:
            raise errors[0]
        return results


DONE, FAILED, NOT_STARTED = "done", "failed", "not started"


def map_until_failure(fn, items, concurrency):
    """[(state, value)] per item: fn(item) on up to `concurrency` threads, items started in their order.

    state is DONE (value: what fn returned), FAILED (value: the exception) or NOT_STARTED (value:
    None): once an item failed no other starts, and those already running run to their end.
    """
    items = list(items)
    outcomes = [(NOT_STARTED, None)] * len(items)
    state = {"next": 0, "failed": False}
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if state["failed"] or state["next"] >= len(items):
                    return
                number = state["next"]
                state["next"] += 1
            try:
                outcomes[number] = (DONE, fn(items[number]))
            except Exception as exc:  # reported in the outcomes: the caller decides what a failure means
                outcomes[number] = (FAILED, exc)
                with lock:
                    state["failed"] = True

    workers = min(max(1, concurrency), len(items))
    if workers <= 1:
        worker()
        return outcomes
    threads = [threading.Thread(target=worker) for _n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
