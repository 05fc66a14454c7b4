# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a copy changed so far, so that a failure half-way tells the truth.

Each endpoint that writes (a target registry, the cache) keeps a Changes and notes every
blob, manifest and cache name it really wrote, from whichever thread wrote it. When a job
fails after something was written, mark_failure() puts `changed: true` and a `done`
summary into the error's details: _module.run returns them beside the message, so a
task that pushed a tag and then failed says so instead of `changed: false`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan

_DOWNLOADS = (_plan.DOWNLOADED, _plan.RESUMED)


class Changes:
    """Writes one endpoint made: blobs by action, manifests, cache names. Thread-safe."""

    def __init__(self, pushes=False):
        self.pushes = pushes  # a registry's (its manifests are pushed) or the cache's (stored)
        self._lock = threading.Lock()
        self.blobs = {}  # action -> [count, bytes]
        self.manifests = []  # refs (digests, or a tag) written
        self.names = []  # cache names pointed at an image

    def blob(self, action, count):
        """Note a blob written by `action` (downloaded, resumed, uploaded, mounted) and the bytes it moved."""
        if action in (_plan.CACHED, _plan.EXISTS):
            return
        with self._lock:
            totals = self.blobs.setdefault(action, [0, 0])
            totals[0] += 1
            totals[1] += count or 0

    def manifest(self, ref):
        with self._lock:
            self.manifests.append(ref)

    def name(self, name):
        with self._lock:
            self.names.append(name)

    @property
    def changed(self):
        return bool(self.blobs or self.manifests or self.names)


def summary(*changes):
    """The `done` of a failure: what the endpoints in `changes` wrote before it."""
    def total(actions, index):
        return sum(c.blobs.get(a, [0, 0])[index] for c in changes for a in actions)
    return {
        "blobs_downloaded": total(_DOWNLOADS, 0),
        "bytes_downloaded": total(_DOWNLOADS, 1),
        "blobs_uploaded": total((_plan.UPLOADED,), 0),
        "blobs_mounted": total((_plan.MOUNTED,), 0),
        "bytes_uploaded": total((_plan.UPLOADED,), 1),
        "manifests_pushed": [ref for c in changes if c.pushes for ref in c.manifests],
        "manifests_stored": sum(len(c.manifests) for c in changes if not c.pushes),
        "cache_names": [name for c in changes for name in c.names],
    }


def mark_failure(exc, *changes):
    """Add `changed: true` and `done` to the details of `exc` when any of `changes` wrote something.

    The error keeps its type, message and attributes; returns it, for `raise mark_failure(...)`.
    """
    if any(c.changed for c in changes):
        exc.details["changed"] = True
        exc.details["done"] = summary(*changes)
    return exc
