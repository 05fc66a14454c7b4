# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Upload one blob to a registry: from a file, resumably, or from a download's stream.

From a file, the blob goes up in one PATCH (or in chunks: when asked, when the registry
wants a minimum, when it refused one large request with 413, or for a big blob from our
own cache, so a killed push loses at most one chunk).  Each acknowledged chunk's session
is saved (_sessions.py); after a drop, or a status worth retrying, the upload asks the
registry where the session stands and goes on from there.  Its requests and its restarts
all draw from one retry budget for the blob.

From a stream (the one-pass mirror), the PATCH reads a Handoff while the download fills
it; the upload is completed only after the download verified the digest.

Each request body comes from the upload's `bodies` (open(offset, length)): a blob file's
(FileBodies), or a relay from the source registry (_relay.py, a mirror with cache: false),
which is told of each acknowledged piece and checks the digest before the PUT. When the
bodies' own source fails for good (BodySourceFailed) or their check finds another digest,
the session is abandoned (DELETE, best effort) and the error raised.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._blob_io import BlobReader
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    DigestMismatchError,
    RegistryError,
    TransportError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._handoff import HandoffBroken
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import repository_scope
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import should_retry_status

# Chunk size used after a registry refused a whole blob in one request (HTTP 413).
FALLBACK_CHUNK = 16 * 1024 * 1024
# Blobs above this go up in chunks of this size when pushing from the cache, so a killed push
# loses at most one chunk: the session (saved after each acknowledged chunk) resumes next run.
RESUMABLE_CHUNK = 128 * 1024 * 1024
# A blob up to this size goes up with the PUT that completes the session (POST, PUT: the
# monolithic upload of the distribution spec) instead of POST, PATCH, PUT. A fleet of small
# images is mostly such blobs (configs, small layers), and per blob a request is most of its
# cost. Its session is not saved: a killed run has nothing of it to resume.
MONOLITHIC_MAX = 4 * 1024 * 1024


class BodySourceFailed(Exception):
    """Raised from a request body whose source failed for good; `error` is that source's ImagePusherError.

    Not an ImagePusherError: neither the transport nor the upload takes it for a dropped connection."""

    def __init__(self, error):
        Exception.__init__(self, str(error))
        self.error = error


class FileBodies:
    """The request bodies of an upload from a blob file (the cache's, or a layout directory's)."""

    def __init__(self, path, on_bytes=None):
        self.path = path
        self.on_bytes = on_bytes

    def open(self, offset, length):
        """A request body: length, blocks, rewind (see _blob_io.BlobReader)."""
        return BlobReader(self.path, offset, length, on_bytes=self.on_bytes)

    checked_in_advance = True  # a blob file was verified when it entered the layout: it may go up with the PUT

    def acknowledged(self, offset):
        """The registry holds the bytes up to `offset` (a file is read again from anywhere)."""

    def check(self):
        """Before the PUT: a blob file was verified when it entered the layout."""

    def close(self):
        pass


def send_blob(client, target, digest, size, path, sessions, budget, chunk_size=None, resumable=True, on_bytes=None):
    """Stream the blob at `path` to `target`'s repository; returns (action, bytes sent): RESUMED when it went
    on from the session of an earlier run that the registry still held, else UPLOADED; EXISTS when the
    POST starting a session asked the registry for the blob (one that has honoured a mount, see
    RegistryClient.start_upload) and it holds it already.

    `sessions` keeps upload sessions across runs (_sessions.UploadSessions, or NoSessions);
    `resumable` chunks big blobs so a session is worth keeping. A resumed session sends
    only what the registry lacked. `budget` pays for the requests' retries and the restarts.
    `on_bytes(n)` hears of the bytes as they go. `path` may also be the upload's bodies
    (FileBodies, _relay.RelayBodies); they are closed at the end."""
    chunk = chunk_size or (RESUMABLE_CHUNK if resumable and size > RESUMABLE_CHUNK else None)
    upload = _Upload(client, target, digest, size, sessions, budget)
    bodies = path if hasattr(path, "acknowledged") else FileBodies(path, on_bytes)
    try:
        sent = upload.run(bodies, chunk)
    finally:
        bodies.close()
    if upload.found and not sent:
        return _plan.EXISTS, 0
    return (_plan.RESUMED if upload.resumed_from else _plan.UPLOADED), sent


def upload_stream(client, target, digest, size, handoff, budget=None):
    """Upload one blob from a Handoff while it downloads: one PATCH, then the PUT once verified.

    Raises (HandoffBroken, or the registry's error) when the stream or the upload fails;
    the caller then uploads from the cache, with retries and resumable sessions. The
    session of a failed stream is abandoned: the registry never saw a digest for it.
    A registry that turns out to hold the blob (the POST asks, see start_upload) ends the
    stream the same way (HandoffBroken): the upload from the cache then finds it there.
    Returns the bytes sent.
    """
    repo = target.repository
    what = "upload of blob %s to %s" % (digest, repo)
    budget = budget or client.transport.new_budget()
    try:
        location, _min_chunk = client.start_upload(repo, budget=budget, probe=digest)
        if location is None:
            raise HandoffBroken("registry %s holds blob %s already" % (target.registry, digest))
        location, _status = client.upload_chunk(repo, location, handoff, 0, what, budget=budget)
        if not handoff.wait_finished():
            raise HandoffBroken("the download did not verify")
        client.finish_upload(repo, location, digest, what, budget=budget)
    finally:
        handoff.release()
    return size


class _TargetHolds(Exception):
    """The registry answered the POST that would start a session: it holds the blob already."""


class _Upload:
    """One blob's upload session: where it stands, and how it goes on after a failure."""

    def __init__(self, client, target, digest, size, sessions, budget):
        self.client = client
        self.registry = target.registry
        self.repo = target.repository
        self.digest = digest
        self.size = size
        self.sessions = sessions
        self.budget = budget
        self.what = "upload of blob %s to %s" % (digest, self.repo)
        self.location = None
        self.offset = 0
        self.resumed_from = 0  # where a session an earlier run left went on: the bytes not sent again
        self.found = False  # a POST starting a session found the blob there (start_upload asks, where mounts work)
        # The byte ranges the registry acknowledged from this run, whatever failed after them: the bytes
        # sent are their union, so a piece sent again (to a session started over) is counted once.
        self._acked = []

    @property
    def sent(self):
        """Bytes of the blob the registry holds from this run (each counted once)."""
        total, end = 0, 0
        for start, stop in sorted(self._acked):
            total += max(0, stop - max(start, end))
            end = max(end, stop)
        return total

    def _ack(self, start, stop):
        if stop <= start:
            return  # nothing new (a registry that now holds less than it acknowledged)
        if self._acked and self._acked[-1][1] == start:
            self._acked[-1] = (self._acked[-1][0], stop)  # the next piece of the same session: one range
        else:
            self._acked.append((start, stop))

    def run(self, bodies, chunk):
        try:
            return self._run(bodies, chunk)
        except _TargetHolds:
            # Before the first byte, or after a failure (our own PUT may have landed unanswered):
            # what the registry holds under this digest is the blob, so nothing more goes up.
            self.found = True
            if self.location:
                self._abandon()  # the session this run started before a failure, and its saved state
            return self.sent
        except (BodySourceFailed, DigestMismatchError) as exc:
            # The bytes we would send are wrong or gone: the registry must never complete this session.
            self._abandon()
            raise exc.error if isinstance(exc, BodySourceFailed) else exc

    def _run(self, bodies, chunk):
        # A small blob whose bytes were verified before (a file of a layout) goes up with the PUT itself;
        # relayed bytes are checked after the last PATCH, before the PUT that completes the session.
        whole = not chunk and self.size <= MONOLITHIC_MAX and bodies.checked_in_advance
        if whole:
            min_chunk = self._start(save=False)
        else:
            try:
                min_chunk = self._reopen()
                self.resumed_from = self.offset
            except (TransportError, RegistryError):
                # A saved session from a registry that no longer knows it, or refuses a GET on it.
                min_chunk = self._start()
        if min_chunk:
            chunk = max(chunk or 0, min_chunk)
        while True:
            try:
                if whole and not chunk and self.offset == 0:
                    self._put_whole(bodies)
                    return self.sent
                self._send_from(bodies, chunk)
                bodies.check()  # DigestMismatchError before the PUT, when the bodies were relayed
                self.client.finish_upload(self.repo, self.location, self.digest, self.what, budget=self.budget)
                self.sessions.clear(self.registry, self.repo, self.digest)
                return self.sent
            except (TransportError, RegistryError) as exc:
                status = getattr(exc, "status", None)
                if isinstance(exc, RegistryError) and status == 413 and not chunk:
                    chunk = FALLBACK_CHUNK
                    self._start()
                    continue
                # A dropped connection, or a status the transport would retry (the PATCH body is a
                # stream it cannot replay): back off, ask where the session stands, go on from there.
                if isinstance(exc, RegistryError) and not should_retry_status(status):
                    raise
                if not self.budget.retry():
                    raise
                self._reopen()

    def _abandon(self):
        self.sessions.clear(self.registry, self.repo, self.digest)
        if self.location:
            self.client.cancel_upload(self.repo, self.location, budget=self.budget)

    def _remember(self, location, offset):
        self.location, self.offset = location, offset
        self.sessions.save(self.registry, self.repo, self.digest, location, offset)

    def _start(self, save=True):
        """A new session from zero; returns the registry's minimum chunk length, if it has one."""
        location, min_chunk = self.client.start_upload(self.repo, budget=self.budget, probe=self.digest)
        if location is None:
            raise _TargetHolds()
        if save:
            self._remember(location, 0)
        else:
            self.location, self.offset = location, 0
        return min_chunk

    def _reopen(self):
        """Continue the saved session when the registry still has it, else start a new one."""
        saved = self.location or self.sessions.load(self.registry, self.repo, self.digest)
        if saved and not self.location and self.client.mounts_work and self.client.head_blob(
                self.repo, self.digest, [repository_scope(self.repo, "pull", "push")], self.budget) is not None:
            # An earlier run's session, where the plan may have asked no HEAD (mounts work, see _push.py):
            # asked first, and not needed.
            self.sessions.clear(self.registry, self.repo, self.digest)
            raise _TargetHolds()
        status = self.client.upload_status(self.repo, saved, budget=self.budget) if saved else None
        if status is not None and 1 < status[0] <= self.size:
            if self.location:  # our session: what it holds past the last acknowledged piece came with our PATCH
                self._ack(self.offset, status[0])
            self._remember(status[1], status[0])
            return None
        return self._start()

    def _put_whole(self, bodies):
        """The whole blob as the body of the PUT that completes the session."""
        body = bodies.open(0, self.size)
        try:
            self.client.finish_upload(self.repo, self.location, self.digest, self.what, budget=self.budget, body=body)
        finally:
            body.close()
        self._ack(0, len(body))

    def _send_from(self, bodies, chunk):
        """PATCH from the session's offset to the end: in one request, or chunk by chunk."""
        while self.offset < self.size:
            body = bodies.open(self.offset, chunk)  # a request body: length, blocks, rewind
            try:
                location, _status = self.client.upload_chunk(self.repo, self.location, body, self.offset, self.what,
                                                             budget=self.budget)
            finally:
                body.close()
            self._ack(self.offset, self.offset + len(body))
            self._remember(location, self.offset + len(body))
            bodies.acknowledged(self.offset)
