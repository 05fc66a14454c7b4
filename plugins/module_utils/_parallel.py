# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one function over many items on a bounded thread pool (blob transfers are I/O bound)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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
