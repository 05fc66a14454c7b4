# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mirror: registry -> cache -> registry in one pass; each blob is read from the network once.

A pull followed by a push waits for the last byte of the last layer before the first
upload starts, and reads every layer back from disk. Here each blob that the target lacks
and the cache does not hold is downloaded into the cache (the same verified ingest as a
pull) while the very same buffer is uploaded to the target (see _handoff.py); the upload
is completed only after the cache verified the digest. Blobs the cache already holds are
uploaded from it. A dropped download resumes without breaking the stream; when a stream
does break (a download that starts over, a mismatch, a failed upload) the blob is
uploaded from the cache afterwards, with retries and resumable sessions. The cache is
left exactly as image_pull would leave it. When the target tag already has the image's
digest, nothing is read but the two HEADs (and, narrowed, the source's index).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils import _push
from ansible_collections.imagepusher.registry.plugins.module_utils._handoff import Handoff
from ansible_collections.imagepusher.registry.plugins.module_utils._names import cache_name, normalize_platforms
from ansible_collections.imagepusher.registry.plugins.module_utils._pull import PullJob


class Mirror:
    def __init__(self, puller, pusher, concurrency=4):
        self.puller = puller
        self.pusher = pusher
        self.concurrency = max(1, concurrency)

    def mirror(self, source, target, platforms=None, check_mode=False):
        # A current target is told from the source's digest (or, narrowed, the digest its index gives
        # the platforms) and one HEAD of the target, before the image is read: an empty cache, as in a
        # fresh AWX job, costs no more than that.
        wanted = normalize_platforms(platforms)
        source_digest = source.digest or self.puller.resolve(source)["digest"]
        job = PullJob(source, wanted)
        job.name, job.source_digest = cache_name(source, wanted), source_digest
        if self.puller.from_cache(job, source_digest):
            digest = job.tree.digest
        else:
            digest = self.puller.top_digest(source, source_digest, wanted)
        head = self.pusher.head_target_manifest(target)
        before = head["digest"] if head else None
        if digest and before == digest:
            # The target is current: a mirror has nothing to do, so the cache is not filled either.
            return self._current(job, target, before, head["media_type"])
        if not job.done:
            job = self.puller.prepare(source, platforms, check_mode, source_digest=source_digest)
        tree = job.tree
        if before == tree.digest:
            return self._current(job, target, before, head["media_type"])
        blob_plan, manifest_plan = self.pusher.plan(target, tree)
        if not check_mode:
            self.puller.begin(job)
            self._pipeline(job, target, blob_plan)
            self.puller.finish(job)
            self.pusher.finish(target, tree, blob_plan, manifest_plan)
        pushed = self.pusher.result(job.name, target, tree, blob_plan, manifest_plan, True, before)
        # Check mode fills no cache, but reports the bytes the real run would download.
        return self._result(job, pushed, cached=job.done or not check_mode, moved=True)

    def _current(self, job, target, digest, media_type):
        """The result for a target that already has the image: from the tree when it was read or
        cached, else from what the HEADs said (the image itself was not read)."""
        if job.tree is not None:
            return self._result(job, self.pusher.result(job.name, target, job.tree, [], [], False, digest),
                                cached=job.done, moved=False)
        result = self.pusher.result(job.name, target, _Unread(digest, media_type), [], [], False, digest)
        result.update({"source": str(job.reference), "source_digest": job.source_digest, "cache_name": job.name,
                       "cached": False, "bytes_downloaded": 0})
        return result

    def _pipeline(self, job, target, blob_plan):
        pulls = dict((p["digest"], p) for p in job.blob_plan)
        errors = []
        lock = threading.Lock()
        # Three pools, so that no kind of work waits for a thread another kind holds: downloads,
        # the uploads streaming beside them, and uploads from the cache. A download's thread is
        # free once it handed over its last byte: the next download starts while the target
        # still ingests what the sockets hold and answers the upload (on a busy target, that
        # is most of a second per blob), hence twice as many streams as downloads.
        with ThreadPoolExecutor(max_workers=self.concurrency) as uploads, \
                ThreadPoolExecutor(max_workers=2 * self.concurrency) as streams, \
                ThreadPoolExecutor(max_workers=self.concurrency) as fetches:

            def failed(exc):
                with lock:
                    errors.append(exc)

            def upload(item):
                try:
                    self.pusher.move(target, item)
                except Exception as exc:  # collected: the first failure is raised below
                    failed(exc)

            def stream(item, handoff):
                try:
                    self.pusher.upload_stream(target, item, handoff)
                    return
                except Exception:  # a broken stream is not an error yet, see below
                    pass
                # The download reports its own failure; a blob it verified into the cache is uploaded
                # from there, with retries and resumable sessions.
                if handoff.wait_download() and not errors:
                    upload(item)

            def fetch(item):
                pull = pulls[item["digest"]]
                try:
                    if self._streamable(pull, item):
                        handoff = Handoff(item["size"])
                        streams.submit(stream, item, handoff)
                        self._download(job, pull, handoff)
                        return
                    self.puller.fetch(job, pull)
                except Exception as exc:
                    failed(exc)
                    return
                with lock:
                    if not errors:
                        uploads.submit(upload, item)

            for item in sorted(blob_plan, key=lambda b: -b["size"]):
                fetches.submit(fetch, item)
            # Leaving the block waits for the fetches first (they start everything else), then the
            # streams, then the uploads from the cache.
        if errors:
            raise errors[0]

    def _streamable(self, pull, item):
        """Download and upload at once: the target lacks the blob, the cache has none of it yet."""
        return (item["action"] == _push.UPLOADED and not item.get("mount_from") and not item.get("done")
                and pull["action"] != _plan.CACHED and not pull.get("done") and item["size"] > 0
                and self.puller.cache.partial_size(item["digest"]) == 0)

    def _download(self, job, pull, handoff):
        """Download `pull` into the cache, handing every stored chunk to the upload beside it."""
        try:
            self.puller.fetch(job, pull, tee=handoff.put)
        except BaseException:
            handoff.abort("the download failed")
            raise
        handoff.finish()

    def _result(self, job, pushed, cached, moved):
        pulled = self.puller.result(job)
        result = dict(pushed)
        result.update({
            "source": str(job.reference),
            "source_digest": job.source_digest,
            "cache_name": job.name,
            "cached": cached,
            "bytes_downloaded": pulled["bytes_downloaded"] if moved else 0,
            "changed": pushed["changed"] or (moved and pulled["changed"]),
        })
        return result


class _Unread:
    """What a result needs of an image tree, for an image that was not read (its target was current)."""

    def __init__(self, digest, media_type):
        self.digest = digest
        self.media_type = media_type
        self.platforms = []
