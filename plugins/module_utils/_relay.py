# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Relay: blobs read from the source registry while they go up to the target, kept nowhere on disk.

A mirror with `cache: false` uploads each blob from request bodies (RelayBodies.open) that
read the source registry with Range from the body's offset into one 1 MiB buffer, hashing
every byte as it passes. The upload is _upload.py's, from a file or from here alike: a big
blob goes up in pieces (_upload.RESUMABLE_CHUNK), and after each piece the registry
acknowledged, the hash state of that offset is kept (hashlib's copy()): the points a broken
upload goes on from.

- A source body that drops, or ends before the descriptor's size, is resumed with a Range
  request at the current offset inside the same request body: the upload does not notice.
  Each resume spends a retry of the blob's source budget (its GETs draw from it too); once
  it is spent, or when the source refuses the blob, BodySourceFailed ends the upload.
- An upload that drops asks the registry where its session stands and opens a body there.
  The hash of that offset is the snapshot its acknowledged piece left. A registry holding
  more than the last acknowledged piece (an offset with no snapshot) costs a re-read: the
  source bytes from the nearest snapshot below it up to it are hashed, not sent (at most
  one piece). Starting the session over instead would read those bytes anyway, and send
  again everything before them. Distribution 2.8 loses a session whose PATCH was cut (see
  bench/RESULTS.md), so there the upload starts a new session, from the snapshot of byte 0.
- A body cannot rewind once bytes went (a 401 answered after the body): RelayRewind, a
  TransportError, makes the upload ask where its session stands, as after a drop.
- check(), before the PUT: the bytes relayed hash to the digest and have the descriptor's
  size; else DigestMismatchError, and the upload abandons its session.

RelayStore is the store side of such a mirror: it holds nothing (every blob and manifest is
absent, so the planner reads the source and plans every blob the target lacks), takes no
lock and saves no upload session, and gives the relayed bodies. Manifests and the config
read while planning stay in memory (_source.SourceReader), bounded by their limits; such a
config, already verified, goes up from memory (keep()) instead of being read again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.imagepusher.registry.plugins.module_utils._blob_io import aligned_buffer
from ansible_collections.imagepusher.registry.plugins.module_utils._changes import Changes
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import DigestVerifier
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError, TransportError
from ansible_collections.imagepusher.registry.plugins.module_utils._sessions import NoSessions
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import ChunkReader
from ansible_collections.imagepusher.registry.plugins.module_utils._upload import BodySourceFailed
from ansible_collections.imagepusher.registry.plugins.module_utils._upload_lock import NoUploadLock


class RelayRewind(TransportError):
    """A relayed body was asked to start over after it sent bytes: the upload goes on from its session."""


class RelayBodies:
    """The request bodies of one blob's upload, read from `source` (an endpoint with opener(digest))."""

    checked_in_advance = False  # hashed as they pass: checked after the last PATCH, before the PUT

    def __init__(self, source, digest, size, on_bytes=None, on_read=None):
        self.source = source
        self.digest = digest
        self.size = size
        self.on_bytes = on_bytes  # progress: the bytes handed to the upload (a resent piece counts again)
        self.on_read = on_read  # the bytes read from the source (a resume or a re-read counts again)
        self._opener = self._budget = None  # opened on the first read: a mounted blob reads nothing
        self._view = None
        self._reader = self._close = None
        self._position = 0  # the offset of the next source byte; the verifier has hashed every byte before it
        self._verifier = DigestVerifier(digest, size)
        self._snapshots = {0: self._verifier.copy()}  # acknowledged offset -> hash state there

    # -- what the upload asks (see _upload.FileBodies) -------------------------------------

    def open(self, offset, length):
        """A request body of `length` bytes (None: to the end) from `offset`."""
        if offset != self._position:
            self._seek(offset)
        left = self.size - offset
        return RelayBody(self, offset, left if length is None else min(length, left))

    def acknowledged(self, offset):
        """The registry holds the bytes up to `offset`: a point to go on from."""
        if offset == self._position:
            self._snapshots[offset] = self._verifier.copy()

    def check(self):
        """Before the PUT: every byte of the blob was relayed and hashes to its digest (DigestMismatchError)."""
        if self._position != self.size:
            self._seek(self.size)  # the registry holds bytes the last body did not send: hash them
        self._verifier.check("blob %s relayed from %s" % (self.digest, self.source.name))

    def close(self):
        self._drop_source()
        self._view = None

    # -- the source side ------------------------------------------------------------------

    def pull(self, want):
        """The next bytes (at most `want`, at most a buffer) of the source, hashed: a view of the buffer."""
        if self._view is None:
            self._view = memoryview(aligned_buffer())
        want = min(want, len(self._view))
        while True:
            dropped = None
            try:
                if self._reader is None:
                    self._open_source()
                count = self._reader.readinto(self._view[:want])
            except TransportError as exc:
                count, dropped = 0, exc
            if count:
                chunk = self._view[:count]
                self._verifier.update(chunk)
                self._position += count
                if self.on_read is not None:
                    self.on_read(count)
                return chunk
            # A drop, or a body that ended before the descriptor's size: go on with Range from here.
            self._drop_source()
            if not self._budget.retry():
                raise BodySourceFailed(dropped or TransportError(
                    "blob %s: %s kept ending the body early (%d of %d bytes)"
                    % (self.digest, self.source.name, self._position, self.size)))

    def _open_source(self):
        if self._opener is None:
            self._opener, self._budget = self.source.opener(self.digest)
        try:
            body, start, close = self._opener(self._position)
        except TransportError:
            raise  # no answer: a retry of the budget, as a drop
        except ImagePusherError as exc:
            raise BodySourceFailed(exc)  # the source refuses the blob: resuming will not help
        self._reader = body if hasattr(body, "readinto") else ChunkReader(body)
        self._close = close
        if start != self._position:
            self._skip(self._position - start)  # the source ignored Range: read up to where we are

    def _skip(self, count):
        while count > 0:
            got = self._reader.readinto(self._view[:min(count, len(self._view))])
            if not got:
                raise TransportError("blob %s: %s ignored a Range request and then ended the body early"
                                     % (self.digest, self.source.name))
            count -= got

    def _seek(self, offset):
        """Be at `offset`: from the nearest snapshot at or below it, hashing the source bytes up to it."""
        start = max(o for o in self._snapshots if o <= offset)
        self._drop_source()
        self._verifier = self._snapshots[start].copy()
        self._position = start
        while self._position < offset:
            self.pull(offset - self._position)

    def _drop_source(self):
        if self._close is not None:
            self._close()
        self._reader = self._close = None


class RelayBody:
    """One request body: `length` bytes from `start`, pulled from the source as the request sends them."""

    def __init__(self, bodies, start, length):
        self._bodies = bodies
        self.start = start
        self.length = length
        self._sent = 0

    def __len__(self):
        return self.length

    def seek_start(self):
        if self._sent:
            raise RelayRewind("upload of blob %s: a relayed body cannot be sent again from its start"
                              % self._bodies.digest)

    def read(self, size=-1):
        """The next block (up to the buffer, whatever `size` asks) or b''."""
        left = self.length - self._sent
        if left <= 0:
            return b""
        chunk = self._bodies.pull(left)
        self._sent += len(chunk)
        if self._bodies.on_bytes is not None:
            self._bodies.on_bytes(len(chunk))
        return chunk

    def close(self):
        pass


class MemoryBodies:
    """The request bodies of a small blob held in memory, already verified (a config read while planning)."""

    checked_in_advance = True  # verified when it was read: it may go up with the PUT

    def __init__(self, data, on_bytes=None):
        self.data = memoryview(data)
        self.on_bytes = on_bytes

    def open(self, offset, length):
        return _MemoryBody(self.data[offset:] if length is None else self.data[offset:offset + length], self.on_bytes)

    def acknowledged(self, offset):
        pass

    def check(self):
        pass

    def close(self):
        pass


class _MemoryBody:
    def __init__(self, view, on_bytes):
        self._view = view
        self._on_bytes = on_bytes
        self._sent = 0

    def __len__(self):
        return len(self._view)

    def seek_start(self):
        self._sent = 0

    def read(self, size=-1):
        chunk = self._view[self._sent:self._sent + (1 << 20)]
        self._sent += len(chunk)
        if chunk and self._on_bytes is not None:
            self._on_bytes(len(chunk))
        return chunk

    def close(self):
        pass


class RelayStore:
    """The store side of a mirror with cache: false; see the module's docstring."""

    cache = None  # no OCI layout behind it
    root = None
    # The upload goes up in pieces, as from our own cache: each acknowledged piece is a point to go on from
    # within this run (the session itself is kept in memory only, see upload_sessions).
    keeps_sessions = True

    def __init__(self, source):
        self.source = source  # the source endpoint blobs are relayed from (a RegistryEndpoint or ForeignLayerSource)
        self.changes = Changes()  # never written: nothing is kept here
        self._lock = threading.Lock()
        self.bytes_read = 0  # from the source, resumes and re-reads included: the result's bytes_downloaded
        self._kept = {}  # digest -> verified bytes already read (a config)

    def exists(self):
        return False

    def blob_exists(self, digest, size=None):
        return False

    def partial_size(self, digest):
        return 0

    def stored(self, descriptors):
        return set()

    def stored_manifests(self, manifests):
        return set()

    def partials(self, descriptors):
        return {}

    def sources(self, digest):
        """Nowhere recorded: mounts come only from the images of the same task (_fleet.py)."""
        return []

    def upload_lock(self, target_name, digest):
        return NoUploadLock()

    def upload_sessions(self):
        return NoSessions()

    def keep(self, digest, data):
        """Bytes of `digest` read (and verified) while planning: uploaded from memory, not read again."""
        self._kept[digest] = data

    def blob_bodies(self, digest, size, on_bytes=None):
        if digest in self._kept and len(self._kept[digest]) == size:
            self._count(size)  # read from the source once, for the plan: counted when it goes up, as check mode does
            return MemoryBodies(self._kept[digest], on_bytes)
        return RelayBodies(self.source, digest, size, on_bytes, self._count)

    def _count(self, count):
        with self._lock:
            self.bytes_read += count
