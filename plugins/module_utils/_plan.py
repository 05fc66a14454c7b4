# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning: from an ImageTree and what already exists, the action for each blob.

Check mode and the real run call the same functions, so what check mode reports is
what the run does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOWNLOADED = "downloaded"
RESUMED = "resumed"
CACHED = "cached"


def plan_pull(tree, cache):
    """One entry per blob: digest, size, media_type, action and bytes still to fetch."""
    plan = []
    for blob in tree.blobs:
        if cache.has_blob(blob.digest, blob.size):
            action, missing = CACHED, 0
        else:
            partial = cache.partial_size(blob.digest)
            if 0 < partial <= blob.size:
                action, missing = RESUMED, blob.size - partial
            else:
                action, missing = DOWNLOADED, blob.size
        plan.append({"digest": blob.digest, "size": blob.size, "media_type": blob.media_type,
                     "action": action, "bytes": missing})
    return plan


def plan_manifests(tree, cache):
    """Manifests (children first) and whether each is already stored."""
    return [{"digest": m.digest, "media_type": m.media_type, "size": len(m.raw),
             "action": CACHED if cache.has_blob(m.digest, len(m.raw)) else DOWNLOADED}
            for m in tree.manifests]
