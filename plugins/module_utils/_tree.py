# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ImageTree: every manifest and blob one reference reaches, whatever the source.

One walk (index -> manifests -> config and layers) serves the registry (children
fetched by digest), the cache and OCI layouts (children read from blobs/) and archives,
so pull, push, info, verify, prune and export all agree on what an image is.  The walk
refuses cycles and nesting deeper than a real image ever uses; both would otherwise let
a hostile registry run us forever.

It runs in two modes.  Strict: a refusal raises ManifestError and the loader's errors
propagate (what a copy needs).  Tolerant (a TreeScan): nothing raises for damage; what
is missing or damaged is recorded instead (what listing, verifying and pruning need).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json

from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    DigestMismatchError,
    ImagePusherError,
    ManifestError,
    NotCachedError,
    NotFoundError,
)

MAX_DEPTH = 3  # index -> index -> manifest is the deepest seen in practice
CONFIG_LIMIT = 4 * 1024 * 1024
# BuildKit's annotations on an index entry that is an attestation manifest (see attested_digest).
ATTESTATION_TYPE_KEY = "vnd.docker.reference.type"
ATTESTATION_TYPE = "attestation-manifest"
ATTESTATION_DIGEST_KEY = "vnd.docker.reference.digest"

# What a store-read walk starts from: index.json gives a digest, maybe a type and a size.
_Top = collections.namedtuple("_Top", ["digest", "media_type", "size"])


class ImageTree:
    """The manifests (children before parents: push order) and unique blobs of one image."""

    def __init__(self, digest, media_type=None):
        self.digest = digest
        self._media_type = media_type
        self.top = None  # the top Manifest, once read
        self.manifests = []
        self.blobs = []
        self.platforms = []
        self._by_digest = {}
        self._blob_digests = set()

    @property
    def media_type(self):
        return self.top.media_type if self.top is not None else self._media_type

    @property
    def by_digest(self):
        """digest -> Manifest, children inserted before parents."""
        return dict(self._by_digest)

    @property
    def digests(self):
        """Every manifest and blob digest the tree reaches."""
        return set(self._by_digest) | self._blob_digests

    @property
    def total_size(self):
        return sum(max(b.size, 0) for b in self.blobs) + sum(len(m.raw) for m in self.manifests)

    def manifest(self, digest):
        """The Manifest with `digest` in the tree, or None."""
        return self._by_digest.get(digest)

    def add_manifest(self, manifest):
        if manifest.digest not in self._by_digest:
            self._by_digest[manifest.digest] = manifest
            self.manifests.append(manifest)

    def add_blob(self, descriptor):
        """Note a blob; True when it is new to the tree."""
        if descriptor.digest in self._blob_digests:
            return False
        self._blob_digests.add(descriptor.digest)
        self.blobs.append(descriptor)
        return True


class TreeScan(ImageTree):
    """An ImageTree read tolerantly: it also says which manifests and blobs are missing or damaged."""

    def __init__(self, digest, media_type=None):
        super(TreeScan, self).__init__(digest, media_type)
        self.missing_manifests = []
        self.missing_blobs = []
        self.damaged = []  # {"digest", "reason"}

    @property
    def readable(self):
        """Every manifest is present and valid (so every blob the name needs is known)."""
        return not self.missing_manifests and not self.damaged

    @property
    def complete(self):
        return self.readable and not self.missing_blobs

    @property
    def missing(self):
        return self.missing_manifests + self.missing_blobs

    @property
    def size(self):
        return self.total_size


class _Walk:
    """One walk over a tree.  `load(descriptor)` returns the child Manifest; in a tolerant
    walk it returns None for a child it could not read (having recorded why), and
    `blob_present(descriptor)`, when given, says whether a blob is there."""

    def __init__(self, tree, load, tolerant=False, blob_present=None):
        self.tree = tree
        self.load = load
        self.tolerant = tolerant
        self.blob_present = blob_present

    def child(self, descriptor, depth, path):
        if self.tree.manifest(descriptor.digest) is not None:
            return  # named twice (e.g. under two platforms): walked once
        manifest = self.load(descriptor)
        if manifest is not None:
            self.manifest(manifest, depth, path)

    def manifest(self, manifest, depth, path):
        if manifest.is_index:
            if depth >= MAX_DEPTH:
                self.refuse("index %s nests deeper than %d levels; refusing it" % (manifest.digest, MAX_DEPTH),
                            manifest.digest, "index nests deeper than %d levels" % MAX_DEPTH)
                return
            for child in manifest.manifests:
                if child.digest in path:
                    self.refuse("index %s refers to itself through %s; refusing it" % (path[0], child.digest),
                                manifest.digest, "index refers to itself through %s" % child.digest)
                    continue
                if depth == 0 and child.platform_string and not child.platform_string.startswith("unknown/"):
                    self.tree.platforms.append(child.platform_string)
                self.child(child, depth + 1, path + (child.digest,))
        else:
            for blob in manifest.blobs():
                # A foreign layer is fetched from its urls by whoever runs the image: its absence is no damage.
                if self.tree.add_blob(blob) and self.blob_present and not self.blob_present(blob) and not is_foreign(blob):
                    self.tree.missing_blobs.append(blob.digest)
        self.tree.add_manifest(manifest)

    def refuse(self, message, digest, reason):
        if not self.tolerant:
            raise ManifestError(message)
        self.tree.damaged.append({"digest": digest, "reason": reason})


def walk(top, load_child, tolerant=False):
    """The ImageTree under the Manifest `top`; `load_child(descriptor)` returns a child Manifest.

    Tolerant: a TreeScan, where a refused index is recorded as damaged and `load_child`
    may return None for a child it could not read.
    """
    tree = TreeScan(top.digest, top.media_type) if tolerant else ImageTree(top.digest, top.media_type)
    tree.top = top
    _Walk(tree, load_child, tolerant=tolerant).manifest(top, depth=0, path=(top.digest,))
    return tree


# -- reading a tree from a store (the cache, an OCI layout) ----------------------------------

class _StoreReader:
    """Manifests and configs from a store: anything with `has_blob(digest, size)` and
    `read_small_blob(digest, limit)` (which re-verifies the bytes), such as _cache.Cache.

    `gone`: digests to treat as absent (what a removal would delete, for check mode).
    """

    def __init__(self, store, gone=frozenset()):
        self.store = store
        self.gone = gone

    def present(self, digest, size=None):
        return digest not in self.gone and self.store.has_blob(digest, size)

    def blob_present(self, descriptor):
        return self.present(descriptor.digest, descriptor.size)

    def load(self, descriptor):
        """The Manifest `descriptor` names (strict): NotCachedError when absent, the store's or parser's errors."""
        if not self.present(descriptor.digest, descriptor.size):
            raise NotCachedError("manifest %s is not cached" % descriptor.digest)
        return self.parse(descriptor)

    def parse(self, descriptor):
        raw = self.store.read_small_blob(descriptor.digest, _manifest.MAX_MANIFEST_BYTES)
        return _manifest.parse(raw, descriptor.media_type, expected_digest=descriptor.digest)

    def tolerant_loader(self, scan):
        """load() for a tolerant walk: None for a manifest it cannot read, noted in `scan`."""
        def load(descriptor):
            try:
                _digest.validate(descriptor.digest)
            except ImagePusherError as exc:
                scan.damaged.append({"digest": str(descriptor.digest), "reason": exc.message})
                return None
            if not self.present(descriptor.digest, descriptor.size):
                if descriptor.digest not in scan.missing_manifests:
                    scan.missing_manifests.append(descriptor.digest)
                return None
            try:
                return self.parse(descriptor)
            except ImagePusherError as exc:
                scan.damaged.append({"digest": descriptor.digest, "reason": exc.message})
                return None
        return load


def _declared_size(size):
    """A size from index.json is only trusted when it is an integer."""
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def read_tree(store, digest, media_type=None, size=None, tolerant=False, gone=frozenset()):
    """The tree stored under `digest`, with its platforms (a single image's from its config).

    Strict (default): an ImageTree; a missing manifest raises NotCachedError, damage raises
    (blobs are not checked: see complete_tree).  Tolerant: a TreeScan that never raises for
    damage and records what is missing or damaged.  `gone`: digests to treat as absent.
    """
    reader = _StoreReader(store, gone)
    top = _Top(digest, media_type, _declared_size(size))
    if tolerant:
        tree = TreeScan(digest, media_type)
        _Walk(tree, reader.tolerant_loader(tree), tolerant=True, blob_present=reader.blob_present).child(
            top, depth=0, path=(digest,))
        tree.top = tree.manifest(digest)
    else:
        tree = walk(reader.load(top), reader.load)
    _read_config_platform(reader, tree, tolerant)
    return tree


def _read_config_platform(reader, tree, tolerant):
    """Set a single image's platform from its config, read once (an index's come from its entries)."""
    config = tree.top.config if tree.top is not None and not tree.top.is_index else None
    if config is None or config.size > CONFIG_LIMIT:
        return
    if tolerant:
        raw = stored_config(reader.store, config, reader.gone)
        if raw is None:
            return
    else:
        if not reader.blob_present(config):
            raise NotCachedError("config %s is not cached" % config.digest)
        raw = reader.store.read_small_blob(config.digest, CONFIG_LIMIT)
    platform = config_platform(raw)
    tree.platforms = [platform] if platform else []


def entry_tree(store, entry, gone=frozenset()):
    """The tree an index.json entry names, read tolerantly (a TreeScan)."""
    return read_tree(store, entry.get("digest"), entry.get("mediaType"), entry.get("size"), tolerant=True, gone=gone)


def complete_tree(store, digest, media_type=None, with_foreign=False):
    """The ImageTree stored under `digest` if every manifest and blob is present and intact, else None.

    A foreign layer (see is_foreign) need not be stored, unless `with_foreign` (a copy that fetches them).
    """
    try:
        tree = read_tree(store, digest, media_type)
    except (NotFoundError, CacheError, ManifestError, DigestMismatchError):
        return None
    if not all(store.has_blob(b.digest, b.size) for b in tree.blobs if with_foreign or not is_foreign(b)):
        return None
    return tree


def stored_config(store, descriptor, gone=frozenset()):
    """The bytes of a config blob the store holds intact (at most CONFIG_LIMIT), else None."""
    if descriptor.digest in gone or descriptor.size > CONFIG_LIMIT or not store.has_blob(descriptor.digest, descriptor.size):
        return None
    try:
        return store.read_small_blob(descriptor.digest, CONFIG_LIMIT)
    except CacheError:
        return None


def narrow_stored(store, tree, wanted):
    """A stored index `tree` narrowed to the `wanted` platforms, walked again from the store (strict)."""
    descriptor, narrowed = narrow(tree.top, wanted)
    reader = _StoreReader(store)
    narrowed_tree = walk(reader.load(descriptor) if descriptor is not None else narrowed, reader.load)
    if descriptor is not None and descriptor.platform_string:
        narrowed_tree.platforms = [descriptor.platform_string]
    return narrowed_tree


# -- platforms -----------------------------------------------------------------------------

def narrow(index, wanted):
    """The manifest to keep when only `wanted` platforms of `index` are asked for.

    One platform: that platform's own descriptor (its digest is preserved, as with
    `docker pull --platform`).  Several: a new index of the same type holding only
    their entries and the attestation manifests that describe them (a new digest; the
    index itself when that is every entry).  Returns (descriptor or None, new index or None).
    """
    selected = _manifest.select_platforms(index, wanted)
    if len(selected) == 1:
        return selected[0], None
    keep = set(d.digest for d in selected)
    keep.update(d.digest for d in index.manifests if attested_digest(d) in keep)
    if len(keep) == len(set(d.digest for d in index.manifests)):
        return None, index
    document = json.loads(index.raw.decode("utf-8"))
    document["manifests"] = [m for m in document.get("manifests", []) if m.get("digest") in keep]
    raw = json.dumps(document, indent=3, sort_keys=False).encode("utf-8")
    return None, _manifest.parse(raw, index.media_type)


def attested_digest(descriptor):
    """The platform manifest a BuildKit attestation manifest entry of an index describes, else None.

    BuildKit lists each attestation as an index entry of platform unknown/unknown annotated
    `vnd.docker.reference.type: attestation-manifest` and `vnd.docker.reference.digest: <its image>`.
    """
    annotations = descriptor.annotations or {}
    if annotations.get(ATTESTATION_TYPE_KEY) != ATTESTATION_TYPE:
        return None
    return annotations.get(ATTESTATION_DIGEST_KEY)


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


def is_foreign(descriptor):
    """A non-distributable (foreign) layer that names `urls`: not required from the registry nor pushed to one,
    as skopeo and crane do (the runtime fetches it from its urls)."""
    return _media_types.is_nondistributable(descriptor.media_type) and bool(descriptor.urls)
