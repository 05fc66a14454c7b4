# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one function over many items on a bounded thread pool (blob transfers are I/O bound)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
from concurrent.futures import ThreadPoolExecutor


def parallel_map(fn, items, concurrency):
    """[fn(item) ...] in order, on up to `concurrency` threads.

    Every item runs to its end (no transfer is abandoned half-way), then the first failure,
    in item order, is raised.
    """
    items = list(items)
    workers = min(max(1, concurrency), len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
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
