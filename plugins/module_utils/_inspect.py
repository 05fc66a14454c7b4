# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Describe an image without changing anything: in a registry, or in the on-host cache.

The same description serves both sources: digest, media type, every platform with its
own manifest digest, layers and config summary, and the total size (unique blobs plus
manifests, what a pull of the whole image stores).  Only read-only requests are made:
manifest HEAD/GET, small config blobs (bounded by _tree.CONFIG_LIMIT and verified), and
the tag list when asked for.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.imagepusher.registry.plugins.module_utils import _close_names
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types
from ansible_collections.imagepusher.registry.plugins.module_utils import _names
from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    DigestMismatchError,
    NotFoundError,
)


def _strings(value):
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else None


def _string(value):
    return value if isinstance(value, str) and value != "" else None


def _keys(value):
    return sorted(k for k in value if isinstance(k, str)) if isinstance(value, dict) else []


def summarize_config(raw):
    """The parts of an image config people ask about, from its bytes; None when it is not JSON."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    config = document.get("config") if isinstance(document.get("config"), dict) else {}
    labels = config.get("Labels") if isinstance(config.get("Labels"), dict) else {}
    return {
        "created": _string(document.get("created")),
        "author": _string(document.get("author")),
        "architecture": _string(document.get("architecture")),
        "os": _string(document.get("os")),
        "variant": _string(document.get("variant")),
        "labels": dict((k, v) for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)),
        "entrypoint": _strings(config.get("Entrypoint")),
        "cmd": _strings(config.get("Cmd")),
        "env": _strings(config.get("Env")) or [],
        "working_dir": _string(config.get("WorkingDir")),
        "user": _string(config.get("User")),
        "exposed_ports": _keys(config.get("ExposedPorts")),
        "volumes": _keys(config.get("Volumes")),
        "stop_signal": _string(config.get("StopSignal")),
    }


def _layer(descriptor):
    return {"digest": descriptor.digest, "size": descriptor.size, "media_type": descriptor.media_type}


def describe(top, manifests, read_config):
    """Description of the tree under `top`.

    manifests:   digest -> Manifest for every manifest that could be read (children of an
                 index that are not in it are listed without layers or config)
    read_config: descriptor -> config bytes, or None when not available
    """
    def image(manifest, platform, descriptor=None):
        entry = {"platform": platform, "digest": descriptor.digest if descriptor else manifest.digest,
                 "media_type": descriptor.media_type if descriptor else manifest.media_type,
                 "size": descriptor.size if descriptor else manifest.size,
                 "layers": [], "config_digest": None, "config": None, "total_size": None}
        if manifest is None or manifest.is_index:
            return entry
        config = manifest.config
        raw = None
        if config is not None:
            entry["config_digest"] = config.digest
            if config.media_type in _media_types.CONFIG_TYPES and config.size <= _tree.CONFIG_LIMIT:
                raw = read_config(config)
        entry["config"] = summarize_config(raw) if raw is not None else None
        entry["platform"] = platform or (_tree.config_platform(raw) if raw is not None else None)
        entry["layers"] = [_layer(layer) for layer in manifest.layers]
        entry["total_size"] = manifest.size + sum(b.size for b in manifest.blobs())
        return entry

    if top.is_index:
        platforms = []
        for child in top.manifests:
            platform = child.platform_string
            if not platform or platform.startswith("unknown/"):
                continue  # attestations and other non-image entries
            platforms.append(image(manifests.get(child.digest), platform, child))
    else:
        platforms = [image(top, None)]
    blobs, seen = 0, set()
    for manifest in manifests.values():
        for blob in manifest.blobs():
            if blob.digest not in seen:
                seen.add(blob.digest)
                blobs += blob.size
    single = None if top.is_index else platforms[0]
    return {
        "exists": True,
        "digest": top.digest,
        "media_type": top.media_type,
        "manifest_size": top.size,
        "annotations": dict(top.annotations),
        "platforms": platforms,
        "layers": single["layers"] if single else [],
        "config": single["config"] if single else None,
        "total_size": blobs + sum(m.size for m in manifests.values()),
    }


def absent(reference_text):
    return {"exists": False, "reference": reference_text, "digest": None, "media_type": None, "manifest_size": None,
            "annotations": {}, "platforms": [], "layers": [], "config": None, "total_size": None}


# -- registry -------------------------------------------------------------------------

def inspect_registry(client, reference, list_tags=False):
    """Describe `reference` (an ImageReference) as the registry serves it; exists=False when unknown."""
    repository = reference.repository
    result = absent(str(reference))
    head = client.head_manifest(repository, reference.ref)
    top = None
    if head is not None:
        digest = reference.digest or head.get("digest")
        try:
            top = client.get_manifest(repository, digest or reference.ref, expected_digest=digest)
        except NotFoundError:
            top = None  # deleted between HEAD and GET

    if top is not None:
        def load(descriptor):
            child = client.get_manifest(repository, descriptor.digest, expected_digest=descriptor.digest)
            if child.size != descriptor.size:
                raise DigestMismatchError("manifest %s of %s: the index declares %d bytes but the registry sent %d"
                                          % (descriptor.digest, reference, descriptor.size, child.size))
            return child

        tree = _tree.walk(top, load)

        def read_config(descriptor):
            return client.get_small_blob(repository, descriptor.digest, _tree.CONFIG_LIMIT)

        result = describe(top, tree.by_digest, read_config)
        result["reference"] = str(reference)
    if list_tags:
        try:
            result["tags"] = sorted(client.list_tags(repository))
        except NotFoundError:
            result["tags"] = []
    result["source"] = "registry"
    return result


# -- cache ------------------------------------------------------------------------------

def inspect_cache(cache, name, list_tags=False):
    """Describe the image the cache names `name`; exists=False when it holds no such name."""
    entries = cache.entries() if cache.exists() else []
    matches = _names.resolve(entries, name)
    result = absent(name)
    cache_name = None
    if matches:
        cache_name, entry = matches[0]
        scan = _tree.entry_tree(cache, entry)
        top = scan.top
        if top is None:
            problem = ("is missing" if scan.missing_manifests else
                       "is damaged (%s)" % (scan.damaged[0]["reason"] if scan.damaged else "unreadable"))
            raise CacheError("image %s in the cache %s cannot be described: its manifest %s %s; pull it again with "
                             "imagepusher.registry.image_pull, or check the cache with image_cache state=verified"
                             % (cache_name, cache.root, entry.get("digest"), problem), path=cache.root)

        result = describe(top, scan.by_digest, lambda descriptor: _tree.stored_config(cache, descriptor))
        result["reference"] = cache_name
        result["complete"] = scan.complete
        result["missing"] = scan.missing
    else:
        close = _close_names.close_names(name, [_names.entry_name(e) for e in entries])
        result["msg"] = "image %s is not in the cache %s%s" % (name, cache.root, _close_names.hint(close))
    if list_tags:
        repository = _names.repository_of(cache_name or name)
        result["tags"] = _names.cache_tags(entries, repository) if repository else []
    result["source"] = "cache"
    result["cache_name"] = cache_name
    result["cache_dir"] = cache.root
    return result
