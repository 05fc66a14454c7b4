# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ImageTree: every manifest and blob one reference reaches, whatever the source.

The same walk serves the registry (children fetched by digest) and the cache
(children read from blobs/), so pull, push, check mode and the idempotency test all
agree on what an image is.  The walk refuses cycles and nesting deeper than a
real image ever uses; both would otherwise let a hostile registry run us forever.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ManifestError

MAX_DEPTH = 3  # index -> index -> manifest is the deepest seen in practice
CONFIG_LIMIT = 4 * 1024 * 1024


class ImageTree:
    """The manifests (children before parents: push order) and unique blobs of one image."""

    def __init__(self, top):
        self.top = top
        self.manifests = []
        self.blobs = []
        self.platforms = []
        self._blob_digests = set()

    @property
    def digest(self):
        return self.top.digest

    @property
    def media_type(self):
        return self.top.media_type

    def add_blob(self, descriptor):
        if descriptor.digest not in self._blob_digests:
            self._blob_digests.add(descriptor.digest)
            self.blobs.append(descriptor)

    @property
    def total_size(self):
        return sum(max(b.size, 0) for b in self.blobs) + sum(len(m.raw) for m in self.manifests)


def walk(top, load_child):
    """Build the ImageTree under `top`; `load_child(descriptor)` returns the child Manifest."""
    tree = ImageTree(top)
    _walk(tree, top, load_child, depth=0, path=(top.digest,))
    return tree


def _walk(tree, manifest, load_child, depth, path):
    if manifest.is_index:
        if depth >= MAX_DEPTH:
            raise ManifestError("index %s nests deeper than %d levels; refusing it" % (manifest.digest, MAX_DEPTH))
        for child in manifest.manifests:
            if child.digest in path:
                raise ManifestError("index %s refers to itself through %s; refusing it"
                                    % (path[0], child.digest))
            if depth == 0 and child.platform_string and not child.platform_string.startswith("unknown/"):
                tree.platforms.append(child.platform_string)
            _walk(tree, load_child(child), load_child, depth + 1, path + (child.digest,))
    else:
        for blob in manifest.blobs():
            tree.add_blob(blob)
    if all(m.digest != manifest.digest for m in tree.manifests):
        tree.manifests.append(manifest)


def narrow(index, wanted):
    """The manifest to keep when only `wanted` platforms of `index` are asked for.

    One platform: that platform's own descriptor (its digest is preserved, as with
    `docker pull --platform`).  Several: a new index of the same type holding only
    their entries (a new digest).  Returns (descriptor or None, new index or None).
    """
    selected = _manifest.select_platforms(index, wanted)
    if len(selected) == 1:
        return selected[0], None
    if len(selected) == len(index.manifests):
        return None, index
    document = json.loads(index.raw.decode("utf-8"))
    keep = set(d.digest for d in selected)
    document["manifests"] = [m for m in document.get("manifests", []) if m.get("digest") in keep]
    raw = json.dumps(document, indent=3, sort_keys=False).encode("utf-8")
    return None, _manifest.parse(raw, index.media_type)


def config_platform(config_bytes):
    """'os/arch[/variant]' from an image config, or None."""
    try:
        config = json.loads(config_bytes.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(config, dict) or not config.get("os") or not config.get("architecture"):
        return None
    parts = [str(config["os"]), str(config["architecture"])]
    if config.get("variant"):
        parts.append(str(config["variant"]))
    return "/".join(parts)


def is_config(descriptor):
    return descriptor.media_type in _media_types.CONFIG_TYPES
