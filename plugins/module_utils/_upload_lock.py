# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One upload of a blob to a repository at a time, across the runs that share a cache.

Two runs pushing the same image to the same target (two playbooks, two forks) both plan
every blob as missing. Before it mounts or uploads a blob, a push takes a lock in the cache
named after (target registry/repository, blob digest): the first run uploads, the second
waits, then asks the target (HEAD) and finds the blob there. A lock taken without waiting
costs no HEAD: the planner's HEAD said the blob was missing just before. Different blobs, or the same
blob to another repository, take different locks and never wait on each other.

No deadlock with the ingest lock: a push holds this lock only while it reads a blob
already in blobs/ (which takes no other lock), and a download never takes this one.

Best effort: a cache this user cannot write locks into (a shared cache mounted read-only,
or another tool's OCI layout, which is only read) pushes without the lock, as before:
two such runs may both upload a blob, which costs bytes, never correctness.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError


class UploadLock:
    """`with UploadLock(cache, "registry/repo", digest) as lock:` -- lock.waited says whether another run held it."""

    def __init__(self, cache, target_name, digest):
        key = hashlib.sha256(("%s@%s" % (target_name, digest)).encode("utf-8")).hexdigest()
        self._cache = cache
        self._name = "upload-" + key[:32]
        self._lock = None

    def __enter__(self):
        try:
            lock = self._cache.lock(self._name)
            lock.__enter__()
        except (OSError, CacheError):
            return self  # not writable here: push without coordination (see the module docstring)
        self._lock = lock
        return self

    @property
    def waited(self):
        """Another upload held it first: it may have sent the blob meanwhile (a HEAD tells)."""
        return self._lock is not None and self._lock.waited

    def __exit__(self, *exc_info):
        if self._lock is not None:
            self._lock.__exit__(*exc_info)
            self._lock = None


class NoUploadLock:
    """For a layout we only read: nothing to take, nothing held."""

    waited = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass
