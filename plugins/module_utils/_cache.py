# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The on-host image cache: one OCI image layout shared by every image.

    <root>/oci-layout, <root>/index.json, <root>/blobs/<alg>/<hex>   the OCI layout
    <root>/.imagepusher/ingest/<alg>-<hex>.partial                  downloads in progress
    <root>/.imagepusher/locks/                                      flock files
    <root>/.imagepusher/sources.json                                repositories each blob was seen in

Invariants: a file under blobs/ is always complete and matches its name (bytes are
hashed while written to a partial file outside blobs/ and renamed in by commit_partial
only after the digest and size match); index.json is replaced atomically under a lock
and only ever names trees whose every blob is present; a partial file survives a killed
process and the next download (_download.py) resumes from its length.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import json
import os
import stat
import threading
import time

from ansible_collections.imagepusher.registry.plugins.module_utils import _blob_io
from ansible_collections.imagepusher.registry.plugins.module_utils import _blob_sources
from ansible_collections.imagepusher.registry.plugins.module_utils import _cache_errors
from ansible_collections.imagepusher.registry.plugins.module_utils import _cache_index
from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _safe_files
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    LockTimeoutError,
    MissingBlobError,
)

REF_NAME = _cache_index.REF_NAME
SOURCE_DIGEST = "io.imagepusher.source.digest"
PLATFORMS = "io.imagepusher.platforms"
LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}
STATE_DIR = ".imagepusher"
DEFAULT_LOCK_TIMEOUT = 6 * 3600  # a lock is held for one blob download at most
# index.json is read whole: 16 MiB holds about 40,000 names; beyond that it is refused, not read.
INDEX_LIMIT = 16 * 1024 * 1024


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "imagepusher")


def _os_error(exc, what, path, root=None):
    return _cache_errors.os_error(exc, what, path, root)


_THREAD_LOCKS = {}  # lock file path -> threading.Lock, for the threads of this process
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path):
    """The in-process lock of a lock file: threads of one process wait on it and are woken as soon as it is
    released, where flock alone would make them poll as separate processes must (50 ms a wait: images
    running in parallel take the index lock once each)."""
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(path, threading.Lock())


class FileLock:
    """An exclusive flock on a file; waits up to `timeout` seconds (for another process: polling).

    The lock file is opened without following links below `root` (default: its directory); a link
    or other non-regular entry in its place is removed and a regular file made instead. `waited`
    says whether another thread or process held it when it was asked for.
    """

    def __init__(self, path, timeout=DEFAULT_LOCK_TIMEOUT, poll=0.05, root=None):
        self.path = path
        self.timeout = timeout
        self.poll = poll
        self.root = root or os.path.dirname(path)  # the cache it locks, also named in errors
        self._fd = None
        self._threads = _thread_lock(path)
        self.waited = False

    def _open(self):
        try:
            return _safe_files.open_file(self.root, self.path, os.O_RDWR | os.O_CREAT)
        except _safe_files.UnsafeEntryError:
            _safe_files.remove_entry(self.root, self.path)  # never a lock of ours: a regular file takes its place
            return _safe_files.open_file(self.root, self.path, os.O_RDWR | os.O_CREAT)

    def _timed_out(self):
        return LockTimeoutError("timed out after %ds waiting for cache lock %s held by another run"
                                % (self.timeout, self.path), path=self.path)

    def __enter__(self):
        deadline = time.time() + self.timeout
        self.waited = not self._threads.acquire(False)
        if self.waited and not self._threads.acquire(timeout=max(0.0, self.timeout)):
            raise self._timed_out()
        try:
            self._flock(deadline)
        except BaseException:
            self._threads.release()
            raise
        return self

    def _flock(self, deadline):
        try:
            self._fd = self._open()
        except OSError as exc:
            raise _os_error(exc, "opening cache lock %s" % os.path.basename(self.path), self.path, self.root)
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(self._fd)
                    raise _os_error(exc, "locking %s" % os.path.basename(self.path), self.path, self.root)
            self.waited = True
            if time.time() >= deadline:
                os.close(self._fd)
                raise self._timed_out()
            time.sleep(self.poll)

    def fileno(self):
        """The lock file's descriptor while held: a holder may leave a note in the file for the next one."""
        return self._fd

    def __exit__(self, *exc_info):
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        finally:
            self._fd = None
            self._threads.release()


def atomic_write(path, data, root=None):
    """Write bytes to a temp file beside `path`, fsync, rename over it; no link below `root` (default: the
    file's directory) is followed, and the file's mode follows the umask."""
    _safe_files.replace_file(root or os.path.dirname(path), path, data)


class PartialWriter:
    """A BlobWriter on one partial download whose OSErrors become CacheErrors naming the file."""

    def __init__(self, digest, path, offset, root):
        self.path = path
        self.root = root
        self._what = "writing blob %s" % digest
        self._writer = self._call(_blob_io.BlobWriter, path, offset, self._call(self._open, root))

    def _open(self, root):
        flags = os.O_WRONLY | os.O_CREAT
        try:
            return _safe_files.open_file(root, self.path, flags, create_dirs=True)
        except _safe_files.UnsafeEntryError:
            _safe_files.remove_entry(root, self.path)  # a planted link is never written through
            return _safe_files.open_file(root, self.path, flags, create_dirs=True)

    def _call(self, operation, *args):
        try:
            return operation(*args)
        except OSError as exc:
            raise _os_error(exc, self._what, self.path, self.root)

    def write(self, view):
        self._call(self._writer.write, view)

    def truncate(self):
        self._call(self._writer.truncate, 0)

    def sync(self):
        self._call(self._writer.sync)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._writer.close()


class Cache:
    """An OCI image layout used as a content-addressed, verified, resumable store."""

    def __init__(self, root, lock_timeout=DEFAULT_LOCK_TIMEOUT):
        self.root = os.path.abspath(os.path.expanduser(root))
        self.lock_timeout = lock_timeout
        self._state = os.path.join(self.root, STATE_DIR)

    # -- layout -----------------------------------------------------------

    def exists(self):
        """Whether index.json is there (anything but a regular file is refused when it is read)."""
        try:
            return _safe_files.entry_stat(self.root, self._index_path()) is not None
        except OSError:
            return False

    def ensure(self):
        """Create the layout if needed (idempotent, safe against a concurrent creator)."""
        # An existing cache the user cannot write is not one being created: the message says which.
        # (lexists, not exists(): only the wording depends on it, and it must hold when nothing can be opened)
        what = "opening the cache" if os.path.lexists(self._index_path()) else "creating the cache"
        try:
            os.makedirs(self.root, exist_ok=True)  # the root is the user's choice: links allowed there
            for sub in ("blobs", os.path.join(STATE_DIR, "ingest"), os.path.join(STATE_DIR, "locks")):
                with _safe_files.Directory(self.root, os.path.join(self.root, sub), create=True):
                    pass
            with self.lock("index"):
                layout = os.path.join(self.root, "oci-layout")
                if _safe_files.entry_stat(self.root, layout) is None:
                    atomic_write(layout, json.dumps(LAYOUT_FILE).encode("utf-8"), self.root)
                if _safe_files.entry_stat(self.root, self._index_path()) is None:
                    atomic_write(self._index_path(), _cache_index.dump([]), self.root)
        except OSError as exc:
            raise _os_error(exc, what, self.root, self.root)
        return self

    def lock(self, name):
        locks = os.path.join(self._state, "locks")
        try:
            os.makedirs(self.root, exist_ok=True)
            # a layout made by another tool has no state dir yet
            with _safe_files.Directory(self.root, locks, create=True):
                pass
        except OSError as exc:
            raise _os_error(exc, "creating the lock directory", locks, self.root)
        return FileLock(os.path.join(locks, name + ".lock"), timeout=self.lock_timeout, root=self.root)

    # -- blobs ------------------------------------------------------------

    def blob_path(self, digest):
        algorithm, hexdigest = _digest.split(digest)  # validates: a digest is never a path
        return os.path.join(self.root, "blobs", algorithm, hexdigest)

    def partial_path(self, digest):
        algorithm, hexdigest = _digest.split(digest)
        return os.path.join(self._state, "ingest", "%s-%s.partial" % (algorithm, hexdigest))

    def has_blob(self, digest, size=None):
        """Whether the blob is a regular file (a link or anything else is never trusted) of `size` bytes."""
        try:
            found = _safe_files.regular_size(self.root, self.blob_path(digest))
        except (OSError, CacheError):
            return False
        return found is not None and (size is None or size < 0 or found == size)

    def partial_size(self, digest):
        """The length of the blob's partial download; 0 when there is none or it is not a regular file."""
        try:
            return _safe_files.regular_size(self.root, self.partial_path(digest)) or 0
        except (OSError, CacheError):
            return 0

    def open_blob(self, digest):
        try:
            return os.fdopen(_safe_files.open_file(self.root, self.blob_path(digest), os.O_RDONLY), "rb")
        except OSError as exc:
            raise _os_error(exc, "reading blob %s" % digest, self.blob_path(digest), self.root)

    def read_small_blob(self, digest, limit):
        """Bytes of a manifest or config blob (bounded); re-verified, since they drive decisions."""
        path = self.blob_path(digest)
        try:
            data = _safe_files.read_bounded(self.root, path, limit)
        except OSError as exc:
            raise _os_error(exc, "reading blob %s" % digest, path, self.root)
        if len(data) > limit:
            raise CacheError("cached blob %s is larger than %d bytes" % (digest, limit), path=path)
        if _digest.of_bytes(data, _digest.split(digest)[0]) != digest:
            raise CacheError("cached blob %s does not match its digest: the cache is damaged; "
                             "run image_cache with state=verified" % digest, path=path)
        return data

    def write_blob_bytes(self, digest, data):
        """Store small bytes (a manifest) under their digest. True when newly written."""
        verifier = _digest.DigestVerifier(digest, len(data))
        verifier.update(data)
        verifier.check("manifest %s" % digest)
        path = self.blob_path(digest)
        if self.has_blob(digest, len(data)):
            try:
                self.read_small_blob(digest, len(data))
                return False
            except CacheError:
                pass  # damaged by something outside us: rewrite it below
        try:
            atomic_write(path, data, self.root)
        except OSError as exc:
            raise _os_error(exc, "storing %s" % digest, path, self.root)
        return True

    # -- partial downloads (written by _download.py) ---------------------

    def open_partial(self, digest, offset):
        """The partial file of `digest`, cut to `offset` bytes and open to append (a context manager)."""
        return PartialWriter(digest, self.partial_path(digest), offset, self.root)

    def hash_partial(self, digest, verifier):
        """Feed what the partial file holds to `verifier` (resuming must hash the bytes kept)."""
        partial = self.partial_path(digest)
        try:
            with os.fdopen(_safe_files.open_file(self.root, partial, os.O_RDONLY), "rb") as handle:
                for chunk in iter(lambda: handle.read(_blob_io.BUFFER_SIZE), b""):
                    verifier.update(chunk)
        except OSError as exc:
            raise _os_error(exc, "reading blob %s" % digest, partial, self.root)

    def discard_partial(self, digest):
        try:
            _safe_files.remove_entry(self.root, self.partial_path(digest))
        except OSError:
            pass

    def commit_partial(self, digest, verifier):
        """Rename the partial file into blobs/ once `verifier` (fed with all its bytes) matches the digest.

        DigestMismatchError otherwise, with the partial left for the caller to discard.
        """
        verifier.check("blob %s" % digest)
        final = self.blob_path(digest)
        try:
            found = _safe_files.entry_stat(self.root, final)
            if found is not None and stat.S_ISDIR(found.st_mode):
                raise _safe_files.refuse(final)  # rename cannot replace a directory: say why
            _safe_files.move_file(self.root, self.partial_path(digest), final)
        except OSError as exc:
            raise _os_error(exc, "storing blob %s" % digest, final, self.root)

    # -- references (index.json) -----------------------------------------

    def _index_path(self):
        return os.path.join(self.root, "index.json")

    def _index(self):
        """The Index of index.json as it is now (an empty one when there is no file)."""
        path = self._index_path()
        try:
            raw = _safe_files.read_bounded(self.root, path, INDEX_LIMIT)
        except (IOError, OSError) as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return _cache_index.Index(b"", [])
            raise _os_error(exc, "reading index.json", path, self.root)
        if len(raw) > INDEX_LIMIT:
            raise CacheError("%s is larger than %d MiB, more than an image index of the cache may be; it is "
                             "left as it is: move it away or fix it by hand" % (path, INDEX_LIMIT >> 20), path=path)
        return _cache_index.parse(path, raw)

    def _write_index(self, index):
        try:
            atomic_write(self._index_path(), index.raw, self.root)
        except OSError as exc:
            raise _os_error(exc, "updating index.json", self._index_path(), self.root)
        _cache_index.keep(self._index_path(), index)

    def entries(self):
        """The descriptors in index.json (each with its ref name annotation).

        A malformed index.json is a CacheError, never read as empty: the next write would lose its names.
        """
        return self._index().entries()

    def get_ref(self, name):
        return self._index().find(name)

    def set_ref(self, name, descriptor, annotations=None, require=()):
        """Point `name` at a descriptor (replacing any previous one). True when index.json changed.

        `require` lists every digest the name reaches. They are checked under the index lock,
        which prune holds while it deletes, so a name never points at a blob prune removed.
        """
        entry = dict(descriptor)
        entry["annotations"] = dict(annotations or {})
        entry["annotations"][REF_NAME] = name
        with self.lock("index"):
            missing = [d for d in require if not self.has_blob(d)]
            if missing:
                raise MissingBlobError("%d blob(s) of %s vanished from the cache before it was named (a concurrent "
                                       "prune?), e.g. %s" % (len(missing), name, missing[0]), digest=missing[0])
            index = self._index().with_entry(name, entry)
            if index is None:
                return False
            self._write_index(index)
        return True

    def remove_ref(self, name):
        with self.lock("index"):
            index = self._index().without(name)
            if index is None:
                return False
            self._write_index(index)
        return True

    # -- where blobs came from (for cross-repository mounts) -------------

    def _sources_path(self):
        return os.path.join(self._state, "sources.json")

    def _sources(self):
        return _blob_sources.BlobSources(self.root, self._sources_path(), lambda: self.lock("sources"),
                                         self._write_sources)

    def _write_sources(self, data):
        try:
            atomic_write(self._sources_path(), data, self.root)
        except OSError as exc:
            raise _os_error(exc, "recording blob sources", self._sources_path(), self.root)

    def sources(self, digest):
        """Repositories ("registry/repo") known to hold this blob."""
        return self._sources().of(digest)

    def record_sources(self, digests, repository_name):
        """Remember that `repository_name` holds each of `digests` (best effort; written within a second or at
        the end of the run, see _blob_sources.py)."""
        self._sources().record(digests, repository_name)
