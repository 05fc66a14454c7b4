# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mirror: the copy registry -> registry, written through the cache in one pass.

The source image is read and planned as a pull (_pull.py) and the target as a push
(_push.py); the engine then runs both plans at once (Engine.copy): each blob is read from
the network once, and a blob the target lacks and the cache does not hold is uploaded
from the download's buffer while it is stored. The cache is left exactly as image_pull
would leave it. When the target tag already has the image's digest, nothing is read but
the two HEADs (and, narrowed, the source's index): an empty cache, as in a fresh AWX job,
costs no more than that.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._changes import mark_failure
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError


class Mirror:
    fills_cache = True  # a real run leaves the image in the cache (not so with cache: false, _relay_mirror.py)

    def __init__(self, pull, push):
        self.pull = pull  # _pull.Pull from the source registry into the cache
        self.push = push  # _push.Push from the cache to the target repository
        self.engine = pull.engine

    def run(self, source, platforms=None, check_mode=False):
        job = self.pull.new_job(source, platforms)
        head = self.push.head()
        # A target without the tag means the image is read (unless cached): then the source's tag is read by GET.
        entry = self.pull.cached_entry(job)
        job.source_digest = source_digest = self.pull.source_digest(job, entry, read_anyway=head is None)
        if self.pull.from_cache(job, source_digest, entry):
            digest = job.tree.digest
        else:
            digest = self.pull.reader.top_digest(source, source_digest, job.wanted)
        before = head["digest"] if head else None
        if digest and before == digest:
            # The target is current: a mirror has nothing to do, so the cache is not filled either.
            return self._current(job, before, head["media_type"])
        if not job.done:
            self.pull.prepare(job, source_digest)
        if before == job.tree.digest:
            return self._current(job, before, head["media_type"])
        sends, puts = self.push.plan(job.tree, check_mode, tag_exists=head is not None)
        plan = _plan.Plan(job.tree, job.plan.fetches, job.plan.stores, sends, puts)
        if check_mode:
            pulled = self._planned(job, plan)
        else:
            pulled, sends = self._move(job, plan)
        pushed = self.push.result(job.name, job.tree, sends, puts, True, before)
        return _result(job, pushed, pulled, cached=job.done or (self.fills_cache and not check_mode))

    def _planned(self, job, plan):
        """Check mode fills no cache, but reports the bytes the real run would download (a pull result)."""
        return self.pull.result(job, plan.fetches, plan.stores)

    def _move(self, job, plan):
        """Run `plan`: (the pull result, the send steps as done)."""
        try:
            fetched, sent = self.engine.copy(plan.pairs(), self.pull.source, self.pull.cache, self.push.target,
                                             done=self.pull.begin(job))
            pulled = self.pull.finish(job, fetched)
            return pulled, self.push.finish(job.tree, plan.sends, plan.puts, sent)
        except ImagePusherError as exc:
            raise mark_failure(exc, self.pull.cache.changes, self.push.target.changes)

    def _current(self, job, digest, media_type):
        """The result for a target that already has the image: from the tree when it was read or
        cached, else from what the HEADs said (the image itself was not read)."""
        if job.tree is not None:
            pushed = self.push.result(job.name, job.tree, [], [], False, digest)
            return _result(job, pushed, None, cached=job.done)
        result = self.push.result(job.name, _Unread(digest, media_type), [], [], False, digest)
        result.update({"source": str(job.reference), "source_digest": job.source_digest, "cache_name": job.name,
                       "cached": False, "bytes_downloaded": 0})
        return result


def _result(job, pushed, pulled, cached):
    """A push result with the source side added; `pulled` is the pull result when blobs moved, else None."""
    result = dict(pushed)
    result.update({
        "source": str(job.reference),
        "source_digest": job.source_digest,
        "cache_name": job.name,
        "cached": cached,
        "bytes_downloaded": pulled["bytes_downloaded"] if pulled else 0,
        "changed": pushed["changed"] or bool(pulled and pulled["changed"]),
    })
    return result


class _Unread:
    """What a result needs of an image tree, for an image that was not read (its target was current)."""

    def __init__(self, digest, media_type):
        self.digest = digest
        self.media_type = media_type
        self.platforms = []
