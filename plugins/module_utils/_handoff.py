# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hand each chunk a download stores to an upload running in another thread, without a copy.

The one-pass mirror downloads a blob into the cache and uploads the same bytes to the
target while they are still in the download's buffer: the producer (the cache ingest)
offers each chunk as soon as it is received, hashes and writes it while the consumer (an
HTTP request body, which gets the view from read()) sends it, then waits in wait_sent()
until the consumer asks for the next block, which http.client does only after sending
the previous one. So the disk write and the upload of a chunk overlap, the buffer is
never overwritten while it is being sent, and memory stays at one buffer per stream.

The upload may only be completed (the PUT with the digest) after verified(): the producer
says so once the whole blob was verified; its file is then synced and renamed into the
cache while the upload completes (the target's copy does not wait for the cache's disk),
and finish() says it is stored. A download that starts over (an
offset that jumps back), fails, or ends short breaks the handoff; so does an upload that
fails. Either side then stops waiting for the other. The download's outcome is kept
apart from the stream's (wait_download): a broken stream whose download still verified
the blob is uploaded from the cache instead.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading


class HandoffBroken(Exception):
    """The stream between a download and its upload was cut; the reason says by which side."""


class Handoff:
    """One producer, one consumer, `length` bytes in order from offset 0."""

    def __init__(self, length):
        self.length = length
        self._cond = threading.Condition()
        self._view = None  # the chunk handed over, until the consumer asks for the next one
        self._taken = False  # the consumer has _view (it is being sent)
        self._produced = 0  # offset of the next byte the producer must put
        self._consumed = 0
        self._verified = False  # the producer verified the whole blob
        self._finished = False  # ... and stored it in the cache
        self._aborted = False  # the producer failed: there is no blob to upload
        self._broken = None

    # -- producer (the download) -------------------------------------------------

    def offer(self, offset, view):
        """Hand over one chunk and return at once: the producer may read `view` meanwhile (hash it, write it
        to disk) but must not change it before wait_sent() returned."""
        with self._cond:
            if self._broken is not None:
                return
            if offset != self._produced or offset + len(view) > self.length:
                self._break("the download started over at byte %d" % offset)
                return
            self._view, self._taken = view, False
            self._produced += len(view)
            self._cond.notify_all()

    def wait_sent(self):
        """Wait until the consumer has sent the chunk offered last (or gave up): its buffer is free again."""
        with self._cond:
            while self._view is not None and self._broken is None:
                self._cond.wait()

    def verified(self):
        """Every byte was put and verified against the digest: the upload may complete (the blob's file
        is synced and renamed into the cache meanwhile)."""
        with self._cond:
            if self._produced != self.length:
                self._break("the download handed over %d of %d bytes" % (self._produced, self.length))
            self._verified = True
            self._cond.notify_all()

    def finish(self):
        """The blob is verified and stored in the cache: an upload may also read it from there."""
        self.verified()
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def abort(self, reason):
        """The download failed: the upload stops, and there is no verified blob to fall back on."""
        with self._cond:
            self._aborted = True
            self._break(reason)

    # -- consumer (a request body) ---------------------------------------------------

    def __len__(self):
        return self.length

    def seek_start(self):
        """A request body is rewound to be sent again: impossible once bytes are gone."""
        if self._consumed:
            raise HandoffBroken("the upload was asked to start over, which a one-pass stream cannot")

    def read(self, size=-1):
        """The next chunk (whatever `size` asks), b'' after `length` bytes; HandoffBroken when cut."""
        with self._cond:
            if self._taken:
                self._view, self._taken = None, False  # it has been sent: the producer may reuse its buffer
                self._cond.notify_all()
            if self._consumed >= self.length:
                return b""
            while self._view is None and self._broken is None:
                self._cond.wait()
            if self._broken is not None:
                raise HandoffBroken(self._broken)
            self._consumed += len(self._view)
            self._taken = True
            return self._view

    def wait_finished(self):
        """True once the producer verified the blob; False when the handoff broke instead."""
        with self._cond:
            while not self._verified and self._broken is None:
                self._cond.wait()
            return self._broken is None

    def wait_download(self):
        """Wait for the download's end, however the stream went: True when it verified the blob."""
        with self._cond:
            while not self._finished and not self._aborted:
                self._cond.wait()
            return self._finished

    def release(self, reason="the upload stopped"):
        """The consumer is done with the stream (sent, or failed): never keep the producer waiting."""
        with self._cond:
            self._view, self._taken = None, False
            if self._consumed < self.length or not self._verified:
                self._break(reason)
            self._cond.notify_all()

    def _break(self, reason):
        if self._broken is None:
            self._broken = reason
        self._cond.notify_all()
