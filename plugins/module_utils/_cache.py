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
import tempfile
import time

from ansible_collections.imagepusher.registry.plugins.module_utils import _blob_io
from ansible_collections.imagepusher.registry.plugins.module_utils import _cache_errors
from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    LockTimeoutError,
    MissingBlobError,
)

REF_NAME = "org.opencontainers.image.ref.name"
SOURCE_DIGEST = "io.imagepusher.source.digest"
PLATFORMS = "io.imagepusher.platforms"
LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}
STATE_DIR = ".imagepusher"
DEFAULT_LOCK_TIMEOUT = 6 * 3600  # a lock is held for one blob download at most


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "imagepusher")


def _os_error(exc, what, path, root=None):
    return _cache_errors.os_error(exc, what, path, root)


class FileLock:
    """An exclusive flock on a file; waits up to `timeout` seconds, polling."""

    def __init__(self, path, timeout=DEFAULT_LOCK_TIMEOUT, poll=0.05, root=None):
        self.path = path
        self.root = root  # the cache it locks, named in errors
        self.timeout = timeout
        self.poll = poll
        self._fd = None

    def __enter__(self):
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _os_error(exc, "opening cache lock %s" % os.path.basename(self.path), self.path, self.root)
        deadline = time.time() + self.timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(self._fd)
                    raise _os_error(exc, "locking %s" % os.path.basename(self.path), self.path, self.root)
            if time.time() >= deadline:
                os.close(self._fd)
                raise LockTimeoutError("timed out after %ds waiting for cache lock %s held by another run"
                                       % (self.timeout, self.path), path=self.path)
            time.sleep(self.poll)

    def __exit__(self, *exc_info):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, data):
    """Write bytes to a temp file beside `path`, fsync, rename over it."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


class PartialWriter:
    """A BlobWriter on one partial download whose OSErrors become CacheErrors naming the file."""

    def __init__(self, digest, path, offset, root=None):
        self.path = path
        self.root = root
        self._what = "writing blob %s" % digest
        self._writer = self._call(_blob_io.BlobWriter, path, offset)

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
        return os.path.isfile(os.path.join(self.root, "index.json"))

    def ensure(self):
        """Create the layout if needed (idempotent, safe against a concurrent creator)."""
        # An existing cache the user cannot write is not one being created: the message says which.
        what = "opening the cache" if self.exists() else "creating the cache"
        try:
            for sub in ("blobs", os.path.join(STATE_DIR, "ingest"), os.path.join(STATE_DIR, "locks")):
                os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            with self.lock("index"):
                layout = os.path.join(self.root, "oci-layout")
                if not os.path.exists(layout):
                    atomic_write(layout, json.dumps(LAYOUT_FILE).encode("utf-8"))
                index = os.path.join(self.root, "index.json")
                if not os.path.exists(index):
                    atomic_write(index, self._dump_index([]))
        except OSError as exc:
            raise _os_error(exc, what, self.root, self.root)
        return self

    def lock(self, name):
        locks = os.path.join(self._state, "locks")
        try:
            os.makedirs(locks, exist_ok=True)  # a layout made by another tool has no state dir yet
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
        try:
            found = os.stat(self.blob_path(digest)).st_size
        except OSError:
            return False
        return size is None or size < 0 or found == size

    def partial_size(self, digest):
        try:
            return os.stat(self.partial_path(digest)).st_size
        except OSError:
            return 0

    def open_blob(self, digest):
        try:
            return open(self.blob_path(digest), "rb")
        except OSError as exc:
            raise _os_error(exc, "reading blob %s" % digest, self.blob_path(digest), self.root)

    def read_small_blob(self, digest, limit):
        """Bytes of a manifest or config blob (bounded); re-verified, since they drive decisions."""
        path = self.blob_path(digest)
        try:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
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
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, data)
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
            verifier.update_from_file(partial)
        except OSError as exc:
            raise _os_error(exc, "reading blob %s" % digest, partial, self.root)

    def discard_partial(self, digest):
        _unlink(self.partial_path(digest))

    def commit_partial(self, digest, verifier):
        """Rename the partial file into blobs/ once `verifier` (fed with all its bytes) matches the digest.

        DigestMismatchError otherwise, with the partial left for the caller to discard.
        """
        verifier.check("blob %s" % digest)
        final = self.blob_path(digest)
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.rename(self.partial_path(digest), final)
            _fsync_dir(os.path.dirname(final))
        except OSError as exc:
            raise _os_error(exc, "storing blob %s" % digest, final, self.root)

    # -- references (index.json) -----------------------------------------

    def _index_path(self):
        return os.path.join(self.root, "index.json")

    @staticmethod
    def _dump_index(manifests):
        index = {"schemaVersion": 2, "mediaType": _media_types.OCI_INDEX, "manifests": manifests}
        return (json.dumps(index, indent=2, sort_keys=True) + "\n").encode("utf-8")

    def entries(self):
        """The descriptors in index.json (each with its ref name annotation)."""
        path = self._index_path()
        try:
            with open(path, "rb") as handle:
                data = json.loads(handle.read().decode("utf-8"))
        except (IOError, OSError) as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return []
            raise _os_error(exc, "reading index.json", path, self.root)
        except ValueError:
            raise CacheError("%s is not valid JSON: the cache is damaged" % path, path=path)
        manifests = data.get("manifests") if isinstance(data, dict) else None
        return [m for m in manifests or [] if isinstance(m, dict)]

    def get_ref(self, name):
        for entry in self.entries():
            if (entry.get("annotations") or {}).get(REF_NAME) == name:
                return entry
        return None

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
            manifests = self.entries()
            kept = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) != name]
            if len(kept) == len(manifests) - 1 and [m for m in manifests if m not in kept] == [entry]:
                return False
            kept.append(entry)
            kept.sort(key=lambda m: (m.get("annotations") or {}).get(REF_NAME, ""))
            try:
                atomic_write(self._index_path(), self._dump_index(kept))
            except OSError as exc:
                raise _os_error(exc, "updating index.json", self._index_path(), self.root)
        return True

    def remove_ref(self, name):
        with self.lock("index"):
            manifests = self.entries()
            kept = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) != name]
            if len(kept) == len(manifests):
                return False
            try:
                atomic_write(self._index_path(), self._dump_index(kept))
            except OSError as exc:
                raise _os_error(exc, "updating index.json", self._index_path(), self.root)
        return True

    # -- where blobs came from (for cross-repository mounts) -------------

    def _sources_path(self):
        return os.path.join(self._state, "sources.json")

    def _read_sources(self):
        try:
            with open(self._sources_path(), "rb") as handle:
                data = json.loads(handle.read().decode("utf-8"))
            return data if isinstance(data, dict) else {}
        except (IOError, OSError, ValueError):
            return {}

    def sources(self, digest):
        """Repositories ("registry/repo") known to hold this blob."""
        found = self._read_sources().get(digest)
        return [s for s in found if isinstance(s, str)] if isinstance(found, list) else []

    def record_sources(self, digests, repository_name):
        """Remember that `repository_name` holds each of `digests` (best effort)."""
        with self.lock("sources"):
            data = self._read_sources()
            changed = False
            for digest in digests:
                known = data.get(digest)
                if not isinstance(known, list):  # absent, or damaged by hand: start again
                    known = data[digest] = []
                if repository_name not in known:
                    known.append(repository_name)
                    changed = True
            if changed:
                try:
                    atomic_write(self._sources_path(), json.dumps(data, sort_keys=True).encode("utf-8"))
                except OSError as exc:
                    raise _os_error(exc, "recording blob sources", self._sources_path(), self.root)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass
