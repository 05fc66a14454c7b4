# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image trees in memory for the _tree and _plan tests: manifests and blobs built on the fly.

Imported as ``tests.unit.plugins.module_utils.tree_builders`` (the repo root is on sys.path).
"""

import json

from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import parse

# -- builders ------------------------------------------------------------------------

IMAGE_TYPES = {mt.OCI_INDEX: (mt.OCI_MANIFEST, mt.OCI_CONFIG, mt.OCI_LAYER_GZIP),
               mt.DOCKER_MANIFEST_LIST: (mt.DOCKER_MANIFEST, mt.DOCKER_CONFIG, mt.DOCKER_LAYER)}


def desc(media_type, content, **extra):
    result = {"mediaType": media_type, "digest": of_bytes(content), "size": len(content)}
    result.update(extra)
    return result


def config_of(architecture, os_name="linux", variant=None):
    config = {"architecture": architecture, "os": os_name, "rootfs": {"type": "layers", "diff_ids": []}}
    if variant:
        config["variant"] = variant
    return json.dumps(config, sort_keys=True).encode()


class Store:
    """Blobs and manifests by digest, as a registry or the cache would hold them."""

    def __init__(self):
        self.blobs = {}
        self.manifests = {}
        self.loads = []

    def blob(self, content):
        self.blobs[of_bytes(content)] = content
        return content

    def image(self, architecture, layers, variant=None, os_name="linux", kind=mt.OCI_MANIFEST):
        manifest_type, config_type, layer_type = {
            mt.OCI_MANIFEST: IMAGE_TYPES[mt.OCI_INDEX], mt.DOCKER_MANIFEST: IMAGE_TYPES[mt.DOCKER_MANIFEST_LIST]}[kind]
        config = self.blob(config_of(architecture, os_name, variant))
        document = {"schemaVersion": 2, "mediaType": manifest_type, "config": desc(config_type, config),
                    "layers": [desc(layer_type, self.blob(layer)) for layer in layers]}
        return self.add(json.dumps(document, indent=2).encode())

    def index(self, children, kind=mt.OCI_INDEX, annotations=None):
        """children: [(Manifest, platform dict or None)]."""
        entries = []
        for child, platform in children:
            entry = desc(child.media_type, child.raw)
            if platform:
                entry["platform"] = platform
            entries.append(entry)
        document = {"schemaVersion": 2, "mediaType": kind, "manifests": entries}
        if annotations:
            document["annotations"] = annotations
        return self.add(json.dumps(document, indent=2).encode())

    def add(self, raw):
        manifest = parse(raw)
        self.manifests[manifest.digest] = manifest
        return manifest

    def load(self, descriptor):
        self.loads.append(descriptor.digest)
        return self.manifests[descriptor.digest]


AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}
ARMV7 = {"os": "linux", "architecture": "arm", "variant": "v7"}
ATTESTATION = {"os": "unknown", "architecture": "unknown"}


def multiarch(kind=mt.OCI_INDEX, attestation=False, annotations=None):
    store = Store()
    manifest_kind = IMAGE_TYPES[kind][0]
    amd = store.image("amd64", [b"shared base layer", b"amd64 app"], kind=manifest_kind)
    arm = store.image("arm64", [b"shared base layer", b"arm64 app"], variant="v8", kind=manifest_kind)
    armv7 = store.image("arm", [b"shared base layer", b"armv7 app"], variant="v7", kind=manifest_kind)
    children = [(amd, AMD64), (arm, ARM64), (armv7, ARMV7)]
    if attestation:
        children.append((store.image("unknown", [b"in-toto statement"], os_name="unknown", kind=manifest_kind),
                         ATTESTATION))
    top = store.index(children, kind=kind, annotations=annotations)
    return store, top, [child for child, _platform in children]


def nested(levels):
    """`levels` indexes, each holding the next; the innermost holds one image."""
    store = Store()
    current = store.image("amd64", [b"deep layer"])
    chain = [current]
    for _level in range(levels):
        current = store.index([(current, AMD64)])
        chain.append(current)
    return store, chain


class MemoryStore:
    """A cache's blobs/ in a dict, read the way _cache.Cache reads it (has_blob, read_small_blob)."""

    def __init__(self, files=None):
        self.files = dict(files or {})  # digest -> bytes
        self.reads = []

    @classmethod
    def of(cls, store):
        """Everything a Store holds: blobs and manifests."""
        files = dict(store.blobs)
        files.update((digest, manifest.raw) for digest, manifest in store.manifests.items())
        return cls(files)

    @classmethod
    def of_images(cls, *objects):
        """Everything tests.support.images objects (Image, Index) hold."""
        files = {}
        for obj in objects:
            files.update(obj.blobs)
            files.update((digest, raw) for digest, (_type, raw) in obj.manifests.items())
        return cls(files)

    def has_blob(self, digest, size=None):
        _digest.split(digest)  # validates, as Cache.blob_path does: a digest is never a path
        data = self.files.get(digest)
        return data is not None and (size is None or size < 0 or len(data) == size)

    def read_small_blob(self, digest, limit):
        self.reads.append(digest)
        data = self.files.get(digest)
        if data is None:
            raise CacheError("cannot read blob %s: no such file" % digest)
        if len(data) > limit:
            raise CacheError("cached blob %s is larger than %d bytes" % (digest, limit))
        if of_bytes(data, _digest.split(digest)[0]) != digest:
            raise CacheError("cached blob %s does not match its digest" % digest)
        return data

    def corrupt(self, digest):
        """Same size, other bytes."""
        data = bytearray(self.files[digest])
        data[len(data) // 2] ^= 0xFF
        self.files[digest] = bytes(data)
