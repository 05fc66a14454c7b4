# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One upload of a blob to a repository at a time, across the runs that share a cache.

Two runs pushing the same image to the same target (two playbooks, two forks) both plan
every blob as missing. Before it mounts or uploads a blob, a push takes a lock in the cache
named after (target registry/repository, blob digest): the first run uploads, the second
waits, then asks the target (HEAD) and finds the blob there. A lock taken without waiting
costs no HEAD, unless a run finished an upload under it since this run started (each leaves
the time in the lock file): the planner's HEAD may then have been made before that upload.
Sending the blob again would not only cost bytes: Distribution rewrites the repository's link
to the blob in place, and a manifest PUT of the other run that reads it meanwhile fails
(DIGEST_INVALID). Different blobs, or the same blob to another repository, take different
locks and never wait on each other.

No deadlock with the ingest lock: a push holds this lock only while it reads a blob
already in blobs/ (which takes no other lock), and a download never takes this one.

Best effort: a cache this user cannot write locks into (a shared cache mounted read-only,
or another tool's OCI layout, which is only read) pushes without the lock, as before:
two such runs may both upload a blob, which costs bytes, never correctness.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import struct
import time

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError

# Uploads finished under a lock since then may postdate this run's planning HEADs.
_RUN_STARTED = time.time()
_STAMP = struct.Struct("!d")  # the lock file holds the time the last upload under it finished


class UploadLock:
    """`with UploadLock(cache, "registry/repo", digest) as lock:` -- lock.waited says whether another run held it."""

    def __init__(self, cache, target_name, digest):
        key = hashlib.sha256(("%s@%s" % (target_name, digest)).encode("utf-8")).hexdigest()
        self._cache = cache
        self._name = "upload-" + key[:32]
        self._lock = None
        self._recent = False

    def __enter__(self):
        try:
            lock = self._cache.lock(self._name)
            lock.__enter__()
        except (OSError, CacheError):
            return self  # not writable here: push without coordination (see the module docstring)
        self._lock = lock
        self._recent = self._last_upload() >= _RUN_STARTED
        return self

    @property
    def waited(self):
        """Another upload held it first, or finished under it since this run started: it may have sent the
        blob since the planner looked (a HEAD tells)."""
        return self._lock is not None and (self._lock.waited or self._recent)

    def _last_upload(self):
        try:
            note = os.pread(self._lock.fileno(), _STAMP.size, 0)
        except OSError:
            return 0.0
        # A note we cannot read (the cache is shared) only costs a HEAD or a second upload.
        return _STAMP.unpack(note)[0] if len(note) == _STAMP.size else 0.0

    def __exit__(self, *exc_info):
        if self._lock is not None:
            if exc_info[0] is None:
                try:
                    os.pwrite(self._lock.fileno(), _STAMP.pack(time.time()), 0)
                except OSError:
                    pass  # best effort, as the lock itself
            self._lock.__exit__(*exc_info)
            self._lock = None


class NoUploadLock:
    """For a layout we only read: nothing to take, nothing held."""

    waited = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass
