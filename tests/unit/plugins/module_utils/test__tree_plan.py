# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree (walk, narrow, config_platform) and _plan (plan_pull, plan_manifests)."""

import json

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._download import download_blob
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ManifestError, PlatformNotFoundError
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import parse
from ansible_collections.imagepusher.registry.plugins.module_utils._plan import plan_manifests, plan_pull
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import RetryBudget
from ansible_collections.imagepusher.registry.plugins.module_utils._tree import (
    MAX_DEPTH,
    config_platform,
    is_config,
    narrow,
    walk,
)

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


# -- walk ------------------------------------------------------------------------------------

def test_walk_single_manifest():
    store = Store()
    image = store.image("amd64", [b"one", b"two"])
    tree = walk(image, store.load)
    assert tree.top is image and tree.digest == image.digest and tree.media_type == mt.OCI_MANIFEST
    assert tree.manifests == [image]
    assert [b.digest for b in tree.blobs] == [image.config.digest] + [layer.digest for layer in image.layers]
    assert tree.platforms == []
    assert tree.total_size == sum(len(store.blobs[b.digest]) for b in tree.blobs) + len(image.raw)
    assert store.loads == []


def test_walk_index_dedups_shared_layers_and_orders_children_first():
    store, top, (amd, arm, armv7, attestation) = multiarch(attestation=True)
    tree = walk(top, store.load)
    assert [m.digest for m in tree.manifests] == [amd.digest, arm.digest, armv7.digest, attestation.digest, top.digest]
    shared = of_bytes(b"shared base layer")
    assert [b.digest for b in tree.blobs] == [
        amd.config.digest, shared, of_bytes(b"amd64 app"),
        arm.config.digest, of_bytes(b"arm64 app"),
        armv7.config.digest, of_bytes(b"armv7 app"),
        attestation.config.digest, of_bytes(b"in-toto statement"),
    ]
    assert len(set(b.digest for b in tree.blobs)) == len(tree.blobs)
    # attestations are walked (their blobs are copied) but are not a platform
    assert tree.platforms == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]
    assert store.loads == [amd.digest, arm.digest, armv7.digest, attestation.digest]
    assert tree.total_size == (sum(len(store.blobs[b.digest]) for b in tree.blobs)
                               + sum(len(m.raw) for m in tree.manifests))


def test_walk_lists_a_manifest_named_twice_once():
    store = Store()
    image = store.image("amd64", [b"layer"])
    top = store.index([(image, AMD64), (image, {"os": "linux", "architecture": "amd64", "variant": "v2"})])
    tree = walk(top, store.load)
    assert [m.digest for m in tree.manifests] == [image.digest, top.digest]
    assert len(tree.blobs) == 2


def nested(levels):
    """`levels` indexes, each holding the next; the innermost holds one image."""
    store = Store()
    current = store.image("amd64", [b"deep layer"])
    chain = [current]
    for _level in range(levels):
        current = store.index([(current, AMD64)])
        chain.append(current)
    return store, chain


def test_walk_accepts_nesting_up_to_the_depth_cap():
    store, chain = nested(MAX_DEPTH)
    tree = walk(chain[-1], store.load)
    assert [m.digest for m in tree.manifests] == [m.digest for m in chain]  # innermost first
    assert tree.platforms == ["linux/amd64"]  # only the top index's entries are platforms


def test_walk_refuses_nesting_deeper_than_the_cap():
    store, chain = nested(MAX_DEPTH + 1)
    with pytest.raises(ManifestError) as info:
        walk(chain[-1], store.load)
    assert info.value.message == "index %s nests deeper than 3 levels; refusing it" % chain[1].digest


def test_walk_refuses_a_loader_made_cycle():
    store = Store()
    image = store.image("amd64", [b"x"])
    first = store.index([(image, AMD64)])
    second = store.index([(first, AMD64)])
    # A broken (or hostile) source answers `first` with `second`: second -> first -> second -> ...
    store.manifests[first.digest] = second
    with pytest.raises(ManifestError) as info:
        walk(second, store.load)
    assert info.value.message == "index %s refers to itself through %s; refusing it" % (second.digest, first.digest)


def test_walk_propagates_loader_errors():
    store, top, _children = multiarch()

    def failing(descriptor):
        raise ManifestError("manifest %s is gone" % descriptor.digest)
    with pytest.raises(ManifestError, match="manifest %s is gone" % top.manifests[0].digest):
        walk(top, failing)


# -- narrow ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
@pytest.mark.parametrize("wanted, position", [
    (["linux/amd64"], 0),
    ("linux/amd64", 0),
    (["linux/arm64"], 1),  # arm64 without a variant means v8
    (["linux/arm/v7"], 2),
])
def test_narrow_to_one_platform_keeps_its_descriptor(kind, wanted, position):
    _store, top, children = multiarch(kind)
    descriptor, new_index = narrow(top, wanted)
    assert new_index is None
    assert descriptor == top.manifests[position]
    assert descriptor.digest == children[position].digest  # digest preserved


@pytest.mark.parametrize("wanted", [["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
                                    ["linux/arm/v7", "linux/amd64", "linux/arm64"]])
def test_narrow_to_every_platform_is_the_same_index(wanted):
    _store, top, _children = multiarch()
    descriptor, new_index = narrow(top, wanted)
    assert descriptor is None
    assert new_index is top


@pytest.mark.parametrize("kind", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_narrow_to_two_of_three_makes_a_new_index(kind):
    annotations = {"org.opencontainers.image.version": "1.0"} if kind == mt.OCI_INDEX else None
    _store, top, (amd, arm, armv7) = multiarch(kind, annotations=annotations)
    descriptor, new_index = narrow(top, ["linux/arm64", "linux/amd64"])
    assert descriptor is None
    document = json.loads(new_index.raw)
    original = json.loads(top.raw)
    assert [m["digest"] for m in document["manifests"]] == [amd.digest, arm.digest]  # index order kept
    assert document["manifests"] == original["manifests"][:2]  # entries copied as they were
    assert {k: v for k, v in document.items() if k != "manifests"} == \
        {k: v for k, v in original.items() if k != "manifests"}
    assert new_index.media_type == kind
    assert new_index.digest == of_bytes(new_index.raw) != top.digest
    assert [d.digest for d in new_index.manifests] == [amd.digest, arm.digest]
    assert armv7.digest not in new_index.raw.decode()


def test_narrow_drops_attestations_with_the_unselected_platforms():
    _store, top, (amd, arm, _armv7, attestation) = multiarch(attestation=True)
    _descriptor, new_index = narrow(top, ["linux/amd64", "linux/arm64"])
    assert [d.digest for d in new_index.manifests] == [amd.digest, arm.digest]


def test_narrow_to_a_missing_platform():
    _store, top, _children = multiarch()
    with pytest.raises(PlatformNotFoundError) as info:
        narrow(top, ["linux/amd64", "linux/s390x"])
    assert info.value.message == ("Platform 'linux/s390x' not found in image index %s; available: linux/amd64, "
                                  "linux/arm64/v8, linux/arm/v7." % top.digest)


def test_narrow_an_image_manifest():
    store = Store()
    with pytest.raises(ManifestError, match="is an image manifest, not an index"):
        narrow(store.image("amd64", [b"x"]), ["linux/amd64"])


# -- config_platform / is_config -----------------------------------------------------------------

@pytest.mark.parametrize("config, expected", [
    (config_of("amd64"), "linux/amd64"),
    (config_of("arm64", variant="v8"), "linux/arm64/v8"),
    (config_of("amd64", os_name="windows"), "windows/amd64"),
    (b'{"os": "linux", "architecture": "arm", "variant": ""}', "linux/arm"),
    (b'{"os": "linux"}', None),
    (b'{"architecture": "amd64"}', None),
    (b'{"os": "", "architecture": "amd64"}', None),
    (b"[]", None),
    (b"null", None),
    (b"not json", None),
    (b"\xff\xfe", None),
    (b"", None),
])
def test_config_platform(config, expected):
    assert config_platform(config) == expected


@pytest.mark.parametrize("media_type, expected", [
    (mt.OCI_CONFIG, True), (mt.DOCKER_CONFIG, True), (mt.OCI_LAYER_GZIP, False), (mt.OCI_MANIFEST, False),
])
def test_is_config(media_type, expected):
    store = Store()
    image = store.image("amd64", [b"x"])
    descriptor = image.config
    descriptor.media_type = media_type
    assert is_config(descriptor) is expected


# -- plan_pull / plan_manifests ----------------------------------------------------------------

@pytest.fixture
def cache(tmp_path):
    return Cache(str(tmp_path / "cache")).ensure()


def serve(content):
    def opener(offset):
        return iter([content[offset:]]), offset, lambda: None
    return opener


def seed_partial(cache, digest, content):
    with open(cache.partial_path(digest), "wb") as handle:
        handle.write(content)


def big_image():
    store = Store()
    layers = [b"cached layer " * 50, b"partial layer " * 80, b"absent layer " * 30, b"overlong partial " * 20]
    return store, store.image("amd64", layers), layers


def prepare(cache, store, layers):
    cached, partial, _absent, overlong = layers
    download_blob(cache, of_bytes(cached), len(cached), serve(cached), RetryBudget(3))
    seed_partial(cache, of_bytes(partial), partial[:300])
    seed_partial(cache, of_bytes(overlong), overlong + b"junk")


def test_plan_pull_states(cache):
    store, image, layers = big_image()
    prepare(cache, store, layers)
    tree = walk(image, store.load)
    config = store.blobs[image.config.digest]
    cached, partial, absent, overlong = layers
    assert plan_pull(tree, cache) == [
        {"digest": of_bytes(config), "size": len(config), "media_type": mt.OCI_CONFIG, "action": "downloaded",
         "bytes": len(config)},
        {"digest": of_bytes(cached), "size": len(cached), "media_type": mt.OCI_LAYER_GZIP, "action": "cached",
         "bytes": 0},
        {"digest": of_bytes(partial), "size": len(partial), "media_type": mt.OCI_LAYER_GZIP, "action": "resumed",
         "bytes": len(partial) - 300},
        {"digest": of_bytes(absent), "size": len(absent), "media_type": mt.OCI_LAYER_GZIP, "action": "downloaded",
         "bytes": len(absent)},
        {"digest": of_bytes(overlong), "size": len(overlong), "media_type": mt.OCI_LAYER_GZIP,
         "action": "downloaded", "bytes": len(overlong)},
    ]


def test_plan_pull_says_what_ingest_then_does(cache):
    """Check mode and the real run agree: same action, same byte count, for every blob."""
    store, image, layers = big_image()
    prepare(cache, store, layers)
    tree = walk(image, store.load)
    plan = plan_pull(tree, cache)
    done = [dict(entry, action=None, bytes=None) for entry in plan]
    for entry, result in zip(plan, done):
        content = store.blobs[entry["digest"]]
        result["action"], result["bytes"] = download_blob(cache, entry["digest"], entry["size"], serve(content), RetryBudget(3))
    assert done == plan
    assert [e["action"] for e in plan_pull(tree, cache)] == ["cached"] * len(plan)


def test_plan_pull_of_a_complete_partial_agrees_with_ingest(cache):
    store = Store()
    layer = b"complete but not renamed " * 10
    image = store.image("amd64", [layer])
    download_blob(cache, image.config.digest, image.config.size, serve(store.blobs[image.config.digest]), RetryBudget(3))
    seed_partial(cache, of_bytes(layer), layer)
    tree = walk(image, store.load)
    planned = [(e["action"], e["bytes"]) for e in plan_pull(tree, cache)]
    assert planned[1] == download_blob(cache, of_bytes(layer), len(layer), serve(layer), RetryBudget(3))


def test_plan_manifests(cache):
    store, top, (amd, arm, armv7) = multiarch()
    cache.write_blob_bytes(arm.digest, arm.raw)
    tree = walk(top, store.load)
    assert plan_manifests(tree, cache) == [
        {"digest": amd.digest, "media_type": mt.OCI_MANIFEST, "size": len(amd.raw), "action": "downloaded"},
        {"digest": arm.digest, "media_type": mt.OCI_MANIFEST, "size": len(arm.raw), "action": "cached"},
        {"digest": armv7.digest, "media_type": mt.OCI_MANIFEST, "size": len(armv7.raw), "action": "downloaded"},
        {"digest": top.digest, "media_type": mt.OCI_INDEX, "size": len(top.raw), "action": "downloaded"},
    ]


def test_plans_of_an_empty_cache_for_a_multiarch_image(cache):
    store, top, _children = multiarch()
    tree = walk(top, store.load)
    plan = plan_pull(tree, cache)
    assert [e["action"] for e in plan] == ["downloaded"] * len(tree.blobs)
    assert sum(e["bytes"] for e in plan) == sum(len(store.blobs[b.digest]) for b in tree.blobs)
    assert [e["action"] for e in plan_manifests(tree, cache)] == ["downloaded"] * 4
