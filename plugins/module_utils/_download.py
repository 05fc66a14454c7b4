# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Download one blob into the cache: verified, resumable, and within one retry budget.

The bytes go to the blob's partial file (under the blob's lock, so two runs never
fetch it twice), are hashed as they are written, and enter blobs/ only when digest and
size match.  A dropped connection or a body that ends early is resumed with a Range
request from the bytes already written; each resume spends a retry of the transfer's
budget, which the requests of the download draw from too.  A digest mismatch discards
the partial file and fetches the blob once more from zero before giving up.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _blob_io
from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import DigestMismatchError, TransportError
from ansible_collections.imagepusher.registry.plugins.module_utils._plan import CACHED, DOWNLOADED, RESUMED
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import ChunkReader


def download_blob(cache, digest, size, opener, budget, tee=None, on_bytes=None):
    """Fetch a blob into `cache` unless present; returns (action, bytes transferred).

    `opener(offset)` returns (body, start offset actually served, close callable); a
    body has readinto(view) (or is an iterable of byte chunks) and raises TransportError
    when the connection drops. action is "cached", "downloaded" or "resumed". Bytes are
    hashed as they are written, so the blob is read once; only a resumed partial file is
    read back, to hash what it holds. `budget` (a _retry.RetryBudget) pays for resumes;
    give the opener's requests the same one. `tee` (a _handoff.Handoff), when given, is
    offered every chunk as it is received, then waited for (wait_sent) before the buffer is
    reused: the one-pass mirror uploads the chunk while it is hashed and written. An offset
    that jumps back means the download started over.
    """
    if cache.has_blob(digest, size):
        return CACHED, 0
    with cache.lock(_digest.split(digest)[1]):
        # Another run may have finished this blob while we waited for the lock.
        if cache.has_blob(digest, size):
            return CACHED, 0
        download = _Download(cache, digest, size, opener, budget, tee, on_bytes)
        transferred, resumed = 0, False
        for fresh_attempt in (False, True):
            try:
                attempt_resumed, count, verifier = download.fill_partial(fresh_attempt)
                transferred += count
                resumed = resumed or attempt_resumed
                cache.commit_partial(digest, verifier)
                break
            except DigestMismatchError:
                cache.discard_partial(digest)
                if fresh_attempt:
                    raise
    return (RESUMED if resumed else DOWNLOADED), transferred


class _Download:
    """One blob's way into its partial file: what its attempts and resumes share."""

    def __init__(self, cache, digest, size, opener, budget, tee, on_bytes):
        self.cache = cache
        self.digest = digest
        self.size = size if size is not None and size >= 0 else None
        self.opener = opener
        self.budget = budget
        self.tee = tee
        self.on_bytes = on_bytes
        self.view = memoryview(_blob_io.aligned_buffer())
        self.opened = False
        self.recount = False

    def fill_partial(self, fresh):
        """Append to the partial file until it holds `size` bytes, resuming after drops.

        Returns (resumed, bytes transferred, DigestVerifier fed with every byte of the file).
        """
        # The fresh download after a mismatch opens the blob again: reported as a retry, like a
        # resume, but it is the policy's one second chance, not a draw on the budget.
        self.recount = fresh and self.opened
        offset, verifier = self._start()
        resumed, transferred = offset > 0, 0
        with self.cache.open_partial(self.digest, offset) as writer:
            while self.size is None or offset < self.size:
                body, start, close = self._open(offset)
                try:
                    if start != offset:  # the server ignored our Range: start over (not a resume, then)
                        offset, resumed, verifier = 0, False, self._verifier()
                        writer.truncate()
                    reader = body if hasattr(body, "readinto") else ChunkReader(body)
                    count, dropped = self._copy(reader, writer, verifier, offset)
                finally:
                    close()
                offset += count
                transferred += count
                if dropped is None and (self.size is None or offset >= self.size):
                    break
                self._resume_or_raise(dropped, offset)
                resumed = True
            if self.tee is not None:
                # Verified: the upload beside it may complete while the file is synced and renamed in.
                verifier.check("blob %s" % self.digest)
                self.tee.verified()
            writer.sync()
        return resumed, transferred, verifier

    def _verifier(self):
        return _digest.DigestVerifier(self.digest, self.size)

    def _start(self):
        """(offset to go on from, verifier already fed with what the partial file holds)."""
        offset = self.cache.partial_size(self.digest)
        if self.size is not None and offset > self.size:
            self.cache.discard_partial(self.digest)
            offset = 0
        verifier = self._verifier()
        if offset:
            self.cache.hash_partial(self.digest, verifier)
        return offset, verifier

    def _open(self, offset):
        if self.recount:
            self.budget.count()
            self.recount = False
        self.opened = True
        return self.opener(offset)

    def _copy(self, reader, writer, verifier, offset):
        """Store one body from `offset` on: (bytes stored, the TransportError when it dropped, else None)."""
        copied = 0
        while True:
            # Read one byte past the declared size: a registry sending more is caught here.
            left = None if self.size is None else self.size - offset - copied + 1
            want = len(self.view) if left is None else min(len(self.view), left)
            count, dropped = _fill(reader, self.view[:want])
            if left is not None and count >= left:
                raise DigestMismatchError("blob %s: registry sent more than the %d bytes the manifest "
                                          "declares" % (self.digest, self.size))
            if count:
                chunk = self.view[:count]
                if self.tee is not None:
                    self.tee.offer(offset + copied, chunk)  # sent while it is hashed and written (see _handoff.py)
                try:
                    verifier.update(chunk)
                    writer.write(chunk)
                finally:
                    if self.tee is not None:
                        self.tee.wait_sent()  # the buffer is reused for the next read
                copied += count
                if self.on_bytes:
                    self.on_bytes(count)
            if dropped is not None or count < want:
                return copied, dropped

    def _resume_or_raise(self, dropped, offset):
        """After a drop or a body that ended early: resume if the budget allows, else give up."""
        if self.budget.retry():
            return
        if dropped is not None:
            raise dropped
        # A transport failure, not corruption: the partial is kept and the next run resumes it.
        raise TransportError("blob %s: the registry kept ending the body early (%d of %d bytes); "
                             "the bytes received are kept and a rerun resumes from them"
                             % (self.digest, offset, self.size))


def _fill(reader, view):
    """Read until `view` is full or the body ends: (count, TransportError when it dropped, else None)."""
    count = 0
    while count < len(view):
        try:
            got = reader.readinto(view[count:])
        except TransportError as exc:
            return count, exc
        if not got:
            break
        count += got
    return count, None
