# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mirror: registry -> cache -> registry in one pass, each blob pushed once it is verified.

A pull followed by a push waits for the last byte of the last layer before the first
upload starts. Here a small pool downloads blobs (largest first) into the cache, through
the same verified ingest as a pull, and each one is handed to the upload pool as soon as
it is stored: downloads, which a registry serves faster than it accepts uploads, hide
behind the uploads. The cache is left exactly as image_pull would leave it. When the
target tag already has the image's digest, nothing is fetched at all.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
from concurrent.futures import ThreadPoolExecutor

# Downloads in flight: few, so the first blobs are complete early and uploads start at once.
FETCH_WORKERS = 2


class Mirror:
    def __init__(self, puller, pusher, concurrency=4):
        self.puller = puller
        self.pusher = pusher
        self.concurrency = max(1, concurrency)

    def mirror(self, source, target, platforms=None, check_mode=False):
        job = self.puller.prepare(source, platforms, check_mode)
        tree = job.tree
        before = self.pusher.head_target(target)
        if before == tree.digest:
            # The target is current: a mirror has nothing to do, so the cache is not filled either.
            return self._result(job, self.pusher.result(job.name, target, tree, [], [], False, before),
                                cached=job.done)
        blob_plan, manifest_plan = self.pusher.plan(target, tree)
        if not check_mode:
            self.puller.begin(job)
            self._pipeline(job, target, blob_plan)
            self.puller.finish(job)
            self.pusher.finish(target, tree, blob_plan, manifest_plan)
        pushed = self.pusher.result(job.name, target, tree, blob_plan, manifest_plan, True, before)
        return self._result(job, pushed, cached=True)

    def _pipeline(self, job, target, blob_plan):
        pulls = dict((p["digest"], p) for p in job.blob_plan)
        errors = []
        lock = threading.Lock()
        with ThreadPoolExecutor(max_workers=self.concurrency) as uploads, \
                ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, self.concurrency)) as fetches:
            pending = []

            def upload(item):
                try:
                    self.pusher.move(target, item)
                except Exception as exc:  # collected: the first failure is raised below
                    with lock:
                        errors.append(exc)

            def fetch(item):
                try:
                    self.puller.fetch(job, pulls[item["digest"]])
                except Exception as exc:
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    if not errors:
                        pending.append(uploads.submit(upload, item))

            for item in sorted(blob_plan, key=lambda b: -b["size"]):
                fetches.submit(fetch, item)
            fetches.shutdown(wait=True)
            for future in list(pending):
                future.result()
        if errors:
            raise errors[0]

    def _result(self, job, pushed, cached):
        pulled = self.puller.result(job)
        result = dict(pushed)
        result.update({
            "source": str(job.reference),
            "source_digest": job.source_digest,
            "cache_name": job.name,
            "cached": cached,
            "bytes_downloaded": pulled["bytes_downloaded"] if cached else 0,
            "changed": pushed["changed"] or (cached and pulled["changed"]),
        })
        return result
