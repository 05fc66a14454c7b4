# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Upload sessions saved in the cache, so a push killed mid-blob resumes on the next run.

After every chunk the registry acknowledges, the session's Location (which carries the
registry's signed offset) is written to <cache>/.imagepusher/uploads/<key>.json. The next
run asks the registry where that session stands and continues from there; when the
registry no longer has it, the upload restarts from zero. Nothing here is trusted
blindly: the Location is checked against the target registry before it is used.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

from ansible_collections.imagepusher.registry.plugins.module_utils import _safe_files
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import STATE_DIR, atomic_write
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError

SESSION_LIMIT = 64 * 1024  # a Location and an offset; anything larger was not written by us


class UploadSessions:
    """Saved upload Locations, keyed by (registry, repository, blob digest)."""

    def __init__(self, cache_root):
        self.root = cache_root
        self.directory = os.path.join(cache_root, STATE_DIR, "uploads")

    def _path(self, registry, repository, digest):
        key = hashlib.sha256(("%s/%s@%s" % (registry, repository, digest)).encode("utf-8")).hexdigest()
        return os.path.join(self.directory, key + ".json")

    def load(self, registry, repository, digest):
        """The saved Location, or None."""
        try:  # never through a link, bounded
            data = json.loads(_safe_files.read_bounded(self.root, self._path(registry, repository, digest),
                                                       SESSION_LIMIT).decode("utf-8"))
        except (IOError, OSError, ValueError, CacheError):
            return None
        location = data.get("location") if isinstance(data, dict) else None
        return location if isinstance(location, str) else None

    def save(self, registry, repository, digest, location, offset):
        """Best effort: losing a session costs a restart of that blob, never correctness."""
        try:
            os.makedirs(self.root, exist_ok=True)  # the root is the user's choice; below it no link is followed
            atomic_write(self._path(registry, repository, digest), json.dumps(
                {"location": location, "offset": offset, "digest": digest}).encode("utf-8"), self.root)
        except (OSError, CacheError):
            pass

    def clear(self, registry, repository, digest):
        try:
            _safe_files.remove_entry(self.root, self._path(registry, repository, digest))
        except (OSError, CacheError):
            pass


class NoSessions:
    """For pushes from a foreign OCI layout, which we only read: sessions live for one run."""

    def load(self, registry, repository, digest):
        return None

    def save(self, registry, repository, digest, location, offset):
        pass

    def clear(self, registry, repository, digest):
        pass
