# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the images of one task share when they run in parallel: the blob slots, and who moves which blob.

Images of a fleet share blobs (a base layer under a hundred repositories). Each image plans as
if it were alone; its endpoints are wrapped here so that, across the images of one task:

- `concurrency` bounds the blob transfers of the whole task (a download, with the upload that
  streams beside it, takes one slot; an upload from the cache takes one),
- a blob is downloaded once: the first image to need it downloads it, the others wait for
  that download and then find it in the cache (`cached`),
- a blob is uploaded once per target registry: the first image uploads it into its own
  repository, the others wait and then mount it from there (`mounted`; the registry falls
  back to an upload where it refuses the mount), once per repository: the other tags of
  that repository wait for the mount and find the blob there (`exists`),
- a manifest pushed by digest (an index's platform manifest) is pushed once per repository.

A claim whose work failed is taken over by the next image that needs the blob, so one
image's failure never fails another. Nobody waits while holding a slot, and an upload that
would stream from a download never waits for another image (it gives the stream up and
uploads from the cache afterwards): waiting in either place could deadlock the fleet.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan


class AnotherImageUploads(Exception):
    """A stream given up because another image of the task uploads this blob to the same registry."""


class _Claim:
    def __init__(self, owner):
        self.owner = owner  # the target repository of the image doing the work (uploads), or None
        self.ok = False
        self._done = threading.Event()

    def finish(self, ok):
        self.ok = ok
        self._done.set()

    @property
    def finished(self):
        return self._done.is_set()

    def wait(self):
        self._done.wait()


class Fleet:
    """The shared state of one task's images; wrap each image's cache and target with store() and target()."""

    def __init__(self, concurrency):
        self.slots = threading.BoundedSemaphore(max(1, concurrency))
        self._lock = threading.Lock()
        self._claims = {}  # ("download", digest) or ("upload", registry, digest) -> _Claim

    def store(self, store):
        return FleetStore(store, self)

    def target(self, target):
        return FleetTarget(target, self)

    def claim(self, key, owner=None):
        """(claim, mine): a new claim for the caller when nobody holds one or the last one failed."""
        with self._lock:
            claim = self._claims.get(key)
            if claim is None or (claim.finished and not claim.ok):
                claim = self._claims[key] = _Claim(owner)
                return claim, True
            return claim, False

    def done(self, key, owner=None):
        """Whether the work of `key` was done for the task (by `owner`, when given)."""
        with self._lock:
            claim = self._claims.get(key)
            return claim is not None and claim.finished and claim.ok and owner in (None, claim.owner)

    def busy(self, key):
        """Whether another image is doing the work of `key` right now."""
        with self._lock:
            claim = self._claims.get(key)
            return claim is not None and not claim.finished

    def run(self, key, work, owner=None, after_other=None, slot=True):
        """work() once per key for the task; the others wait for it and get after_other(claim)."""
        while True:
            claim, mine = self.claim(key, owner)
            if mine:
                ok = False
                try:
                    if slot:
                        with self.slots:
                            result = work()
                    else:
                        result = work()
                    ok = True
                    return result
                finally:
                    claim.finish(ok)
            claim.wait()
            if claim.ok:
                return after_other(claim)
            # The image that held it failed: the next one takes it over.


class _Wrapped:
    def __init__(self, inner, fleet):
        self.inner = inner
        self.fleet = fleet

    def __getattr__(self, name):
        return getattr(self.inner, name)


class FleetStore(_Wrapped):
    """The cache, shared: each blob downloaded once for the task."""

    def partial_size(self, digest):
        # A blob another image is downloading is not streamed again (the engine streams only from byte 0).
        size = self.inner.partial_size(digest)
        return size or (1 if self.fleet.busy(("download", digest)) else 0)

    def put_blob(self, digest, size, source, tee=None, on_bytes=None):
        def download():
            return self.inner.put_blob(digest, size, source, tee=tee, on_bytes=on_bytes)

        def downloaded_by_another(_claim):
            if self.inner.blob_exists(digest, size):
                return _plan.CACHED, 0
            return download()  # pruned meanwhile by another run: fetch it (under the cache's lock)

        return self.fleet.run(("download", digest), download, after_other=downloaded_by_another)


class FleetTarget(_Wrapped):
    """A target repository, shared: each blob uploaded once per registry, mounted into the other repositories."""

    def blob_known(self, digest):
        """Whether an image of this task uploaded or mounted `digest` into this repository: the other
        tags of the repository plan it as there without a HEAD."""
        registry, repository = self.inner.registry, self.inner.repository
        return (self.fleet.done(("upload", registry, digest), owner=repository)
                or self.fleet.done(("mount", registry, repository, digest)))

    def put_blob(self, digest, size, store, mount_from=(), on_bytes=None):
        def upload(mount=mount_from):
            return self.inner.put_blob(digest, size, store, mount_from=mount, on_bytes=on_bytes)

        def uploaded_by_another(claim):
            if claim.owner == self.inner.repository:
                return _plan.EXISTS, 0
            # One mount per repository: Distribution rewrites a repository's link to the blob in place
            # on each mount, and a manifest PUT of another tag that reads the link meanwhile finds it
            # empty (DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN). A second tag waits for the first's mount.
            mount = (claim.owner,) + tuple(r for r in mount_from if r != claim.owner)
            return self.fleet.run(("mount", self.inner.registry, self.inner.repository, digest),
                                  lambda: upload(mount), after_other=lambda _claim: (_plan.EXISTS, 0))

        return self.fleet.run(("upload", self.inner.registry, digest), upload, owner=self.inner.repository,
                              after_other=uploaded_by_another)

    def put_manifest(self, ref, manifest):
        """A manifest pushed by digest (a platform manifest of an index), once per repository for the task.

        Two tags of one image (1.2 and 1.2.3) push the same platform manifests into the same repository;
        Distribution rewrites the repository's link to a manifest in place on each PUT, and the other
        tag's index PUT, which reads those links to verify its platforms, would find one empty. A tag
        is pushed by each image: every tag needs its own PUT.
        """
        if ref != manifest.digest:
            return self.inner.put_manifest(ref, manifest)
        key = ("manifest", self.inner.registry, self.inner.repository, manifest.digest)
        return self.fleet.run(key, lambda: self.inner.put_manifest(ref, manifest),
                              after_other=lambda _claim: None, slot=False)

    def stream_blob(self, digest, size, handoff):
        claim, mine = self.fleet.claim(("upload", self.inner.registry, digest), self.inner.repository)
        if not mine:
            # Never wait here: the download feeding this stream would wait too. Give the stream up;
            # the engine uploads from the cache afterwards, through put_blob (which mounts).
            handoff.release("another image uploads this blob")
            raise AnotherImageUploads(digest)
        ok = False
        try:
            # No slot: the download that feeds this stream holds one.
            sent = self.inner.stream_blob(digest, size, handoff)
            ok = True
            return sent
        finally:
            claim.finish(ok)
