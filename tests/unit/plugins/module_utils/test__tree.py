# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree: the one walk (strict and tolerant), reading a tree from a store, narrow, config_platform.

Stores here are in memory (tree_builders.MemoryStore): no disk.
"""

import json

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import parse
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    InvalidDigestError,
    ManifestError,
    NotCachedError,
    PlatformNotFoundError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._tree import (
    CONFIG_LIMIT,
    MAX_DEPTH,
    ImageTree,
    TreeScan,
    attested_digest,
    complete_tree,
    config_platform,
    entry_tree,
    is_foreign,
    narrow,
    narrow_stored,
    read_tree,
    stored_config,
    walk,
)
from tests.support import images
from tests.unit.plugins.module_utils.tree_builders import (
    AMD64,
    ARM64,
    ARMV7,
    ATTESTATION,
    MemoryStore,
    Store,
    config_of,
    desc,
    multiarch,
    nested,
)


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


# -- config_platform -----------------------------------------------------------------------------

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


# -- the tolerant walk -------------------------------------------------------------------------

def test_tolerant_walk_records_too_deep_nesting_instead_of_raising():
    store, chain = nested(MAX_DEPTH + 1)
    scan = walk(chain[-1], store.load, tolerant=True)
    assert isinstance(scan, TreeScan) and not scan.readable and not scan.complete
    assert scan.damaged == [{"digest": chain[1].digest, "reason": "index nests deeper than 3 levels"}]
    # the refused index is not part of the tree; what lies above it is
    assert [m.digest for m in scan.manifests] == [m.digest for m in chain[2:]]
    assert scan.blobs == [] and scan.platforms == ["linux/amd64"]


def test_tolerant_walk_records_a_cycle_and_goes_on():
    store = Store()
    image = store.image("amd64", [b"x"])
    first = store.index([(image, AMD64)])
    second = store.index([(first, AMD64)])
    store.manifests[first.digest] = second  # second -> "first" (really second) -> second ...
    scan = walk(second, store.load, tolerant=True)
    assert scan.damaged == [{"digest": second.digest, "reason": "index refers to itself through %s" % first.digest}]
    assert [m.digest for m in scan.manifests] == [second.digest]
    assert scan.platforms == ["linux/amd64"]


def test_tolerant_walk_skips_children_the_loader_could_not_read():
    store, top, (amd, arm, armv7) = multiarch()
    scan = walk(top, lambda d: None if d.digest == arm.digest else store.load(d), tolerant=True)
    assert [m.digest for m in scan.manifests] == [amd.digest, armv7.digest, top.digest]
    assert scan.platforms == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]  # from the index entries
    assert scan.readable  # the loader records what it could not read, the walk does not guess
    assert scan.missing_blobs == [] and scan.missing == []


def test_strict_walk_is_an_image_tree_without_damage_records():
    store, top, _children = multiarch()
    tree = walk(top, store.load)
    assert isinstance(tree, ImageTree) and not isinstance(tree, TreeScan)
    assert not hasattr(tree, "damaged")
    assert tree.by_digest == dict((m.digest, m) for m in tree.manifests)
    assert tree.digests == set(m.digest for m in tree.manifests) | set(b.digest for b in tree.blobs)
    assert tree.manifest(top.digest) is top and tree.manifest("sha256:" + "0" * 64) is None


# -- read_tree from a store: strict ------------------------------------------------------------

def test_read_tree_strict_single_image_takes_its_platform_from_the_config():
    store = Store()
    image = store.image("arm64", [b"one"], variant="v8")
    memory = MemoryStore.of(store)
    tree = read_tree(memory, image.digest)
    assert isinstance(tree, ImageTree) and not isinstance(tree, TreeScan)
    assert tree.top.raw == image.raw and tree.media_type == mt.OCI_MANIFEST
    assert tree.platforms == ["linux/arm64/v8"]
    assert memory.reads.count(image.config.digest) == 1  # the config is read once


def test_read_tree_strict_index_platforms_come_from_its_entries():
    store, top, (amd, arm, armv7, _attestation) = multiarch(attestation=True)
    memory = MemoryStore.of(store)
    tree = read_tree(memory, top.digest, mt.OCI_INDEX, top.size)
    assert tree.platforms == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]
    assert [m.digest for m in tree.manifests][:3] == [amd.digest, arm.digest, armv7.digest]
    assert tree.manifests[-1].digest == top.digest
    assert not any(digest in memory.reads for digest in (amd.config.digest, arm.config.digest))


def test_read_tree_strict_raises_for_a_missing_or_damaged_manifest():
    store, top, (_amd, arm, _armv7) = multiarch()
    memory = MemoryStore.of(store)
    memory.corrupt(arm.digest)
    with pytest.raises(CacheError, match="does not match its digest"):
        read_tree(memory, top.digest)
    del memory.files[arm.digest]
    with pytest.raises(NotCachedError) as info:
        read_tree(memory, top.digest)
    assert info.value.message == "manifest %s is not cached" % arm.digest
    with pytest.raises(NotCachedError):
        read_tree(memory, top.digest, gone=frozenset([top.digest]))


def test_read_tree_strict_refuses_too_deep_nesting():
    store, chain = nested(MAX_DEPTH + 1)
    with pytest.raises(ManifestError) as info:
        read_tree(MemoryStore.of(store), chain[-1].digest)
    assert info.value.message == "index %s nests deeper than 3 levels; refusing it" % chain[1].digest


def test_read_tree_strict_does_not_check_blobs_but_complete_tree_does():
    store = Store()
    image = store.image("amd64", [b"layer one", b"layer two"])
    memory = MemoryStore.of(store)
    assert complete_tree(memory, image.digest, mt.OCI_MANIFEST).platforms == ["linux/amd64"]
    del memory.files[of_bytes(b"layer two")]
    assert [b.digest for b in read_tree(memory, image.digest).blobs][-1] == of_bytes(b"layer two")
    assert complete_tree(memory, image.digest) is None


def test_complete_tree_is_none_for_any_damage():
    store, top, (amd, arm, _armv7) = multiarch()
    memory = MemoryStore.of(store)
    assert complete_tree(memory, top.digest) is not None
    assert complete_tree(MemoryStore(), top.digest) is None  # nothing stored
    damaged_config = MemoryStore.of(store)
    damaged_config.corrupt(amd.config.digest)
    assert complete_tree(damaged_config, amd.digest) is None  # its config cannot give the platform
    wrong_size = MemoryStore.of(store)
    wrong_size.files[arm.digest] += b" "
    assert complete_tree(wrong_size, top.digest) is None
    store_deep, chain = nested(MAX_DEPTH + 1)
    assert complete_tree(MemoryStore.of(store_deep), chain[-1].digest) is None
    with pytest.raises(InvalidDigestError):
        complete_tree(memory, "../../etc/passwd")  # never a path, never silently "absent"


# -- read_tree from a store: tolerant ----------------------------------------------------------

def test_read_tree_tolerant_records_an_invalid_top_digest():
    scan = read_tree(MemoryStore(), "not-a-digest", tolerant=True)
    assert scan.top is None and not scan.readable
    assert [d["digest"] for d in scan.damaged] == ["not-a-digest"]
    assert "not-a-digest" in scan.damaged[0]["reason"]


def test_read_tree_tolerant_ignores_a_size_that_is_not_an_integer():
    store, top, _children = multiarch()
    assert read_tree(MemoryStore.of(store), top.digest, size="12", tolerant=True).complete
    assert read_tree(MemoryStore.of(store), top.digest, size=top.size + 1, tolerant=True).missing == [top.digest]


def test_read_tree_tolerant_single_image_without_a_readable_config_has_no_platform():
    store = Store()
    image = store.image("amd64", [b"one"])
    memory = MemoryStore.of(store)
    memory.corrupt(image.config.digest)
    scan = read_tree(memory, image.digest, tolerant=True)
    assert scan.platforms == [] and scan.complete  # a blob's bytes are verify's business, not the walk's
    assert read_tree(MemoryStore.of(store), image.digest, tolerant=True,
                     gone=frozenset([image.config.digest])).platforms == []


def test_entry_tree_reads_an_index_json_entry():
    idx = images.multi_arch_index()
    memory = MemoryStore.of_images(idx)
    scan = entry_tree(memory, {"digest": idx.digest, "mediaType": idx.media_type, "size": idx.size})
    assert isinstance(scan, TreeScan) and scan.complete
    scan = entry_tree(memory, {"digest": idx.digest, "size": idx.size}, gone=frozenset([idx.digest]))
    assert scan.missing_manifests == [idx.digest] and scan.top is None


# -- stored_config, narrow_stored ---------------------------------------------------------------

def test_stored_config():
    store = Store()
    image = store.image("amd64", [b"one"])
    memory = MemoryStore.of(store)
    assert stored_config(memory, image.config) == store.blobs[image.config.digest]
    assert stored_config(memory, image.config, gone=frozenset([image.config.digest])) is None
    memory.corrupt(image.config.digest)
    assert stored_config(memory, image.config) is None
    del memory.files[image.config.digest]
    assert stored_config(memory, image.config) is None
    image.config.size = CONFIG_LIMIT + 1
    assert stored_config(MemoryStore.of(store), image.config) is None


def test_narrow_stored_to_one_platform_keeps_its_manifest():
    store, top, (_amd, arm, _armv7) = multiarch()
    memory = MemoryStore.of(store)
    tree = narrow_stored(memory, complete_tree(memory, top.digest), ["linux/arm64"])
    assert tree.digest == arm.digest and tree.top.raw == arm.raw
    assert [m.digest for m in tree.manifests] == [arm.digest]
    assert tree.platforms == ["linux/arm64/v8"]


def test_narrow_stored_to_two_platforms_walks_a_new_index():
    store, top, (amd, arm, _armv7) = multiarch()
    memory = MemoryStore.of(store)
    tree = narrow_stored(memory, complete_tree(memory, top.digest), ["linux/amd64", "linux/arm64"])
    assert tree.digest != top.digest and tree.top.is_index
    assert [m.digest for m in tree.manifests][:2] == [amd.digest, arm.digest]
    assert tree.platforms == ["linux/amd64", "linux/arm64/v8"]
    assert of_bytes(b"armv7 app") not in tree.digests


# -- read_tree tolerant over a real image layout's content (was _cache_admin.scan_tree) ----------

def expected_files(*objs):
    digests = set()
    for obj in objs:
        digests |= set(obj.blobs) | set(obj.manifests)
    return digests


@pytest.fixture
def cache():
    return MemoryStore.of_images(images.oci_single(), images.multi_arch_index(), images.docker_v2())


def test_scan_complete_index(cache):
    idx = images.multi_arch_index()
    scan = read_tree(cache, idx.digest, idx.media_type, idx.size, tolerant=True)
    assert scan.complete and scan.readable
    assert scan.platforms == ["linux/amd64", "linux/arm64/v8", "linux/s390x"]
    assert scan.digests == expected_files(idx)
    assert scan.manifests[-1].digest == idx.digest  # children first
    assert scan.size == sum(len(d) for d in idx.blobs.values()) + sum(len(m) for _t, m in idx.manifests.values())


def test_scan_single_platform_from_config(cache):
    img = images.docker_v2()
    scan = read_tree(cache, img.digest, tolerant=True)
    assert scan.platforms == ["linux/amd64"] and scan.complete


def test_scan_reports_missing_and_damaged(cache):
    idx = images.multi_arch_index()
    arm = idx.image_for("arm64")
    del cache.files[arm.layers[1].digest]
    scan = read_tree(cache, idx.digest, tolerant=True)
    assert scan.readable and not scan.complete
    assert scan.missing_blobs == [arm.layers[1].digest]

    cache.corrupt(arm.digest)  # same size, other bytes
    scan = read_tree(cache, idx.digest, tolerant=True)
    assert not scan.readable
    assert [d["digest"] for d in scan.damaged] == [arm.digest]

    cache.files[arm.digest] += b" "  # another size than the index says: as good as missing
    assert read_tree(cache, idx.digest, tolerant=True).missing_manifests == [arm.digest]

    del cache.files[arm.digest]
    scan = read_tree(cache, idx.digest, tolerant=True)
    assert scan.missing_manifests == [arm.digest] and not scan.readable

    gone = read_tree(cache, idx.digest, tolerant=True, gone=frozenset([idx.digest]))
    assert gone.top is None and gone.missing_manifests == [idx.digest]


# -- attestations kept with their platforms ------------------------------------------------------

def _attested_index():
    """An index of three platforms, each followed by a BuildKit attestation manifest describing it."""
    store = Store()
    images = [store.image("amd64", [b"base", b"amd"]), store.image("arm64", [b"base", b"arm"], variant="v8"),
              store.image("arm", [b"base", b"armv7"], variant="v7")]
    entries = []
    for image, platform in zip(images, (AMD64, ARM64, ARMV7)):
        entries.append(desc(image.media_type, image.raw, platform=platform))
        statement = store.image("unknown", [image.digest.encode()], os_name="unknown")
        entries.append(desc(statement.media_type, statement.raw, platform=ATTESTATION, annotations={
            "vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": image.digest}))
    top = store.add(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}).encode())
    return top, entries


def test_narrow_keeps_the_attestations_of_the_kept_platforms():
    top, entries = _attested_index()
    _descriptor, new_index = narrow(top, ["linux/amd64", "linux/arm/v7"])
    assert [d.digest for d in new_index.manifests] == [entries[i]["digest"] for i in (0, 1, 4, 5)]
    assert attested_digest(new_index.manifests[1]) == entries[0]["digest"]
    assert attested_digest(new_index.manifests[0]) is None


def test_narrow_to_every_platform_of_an_attested_index_keeps_the_index():
    top, _entries = _attested_index()
    descriptor, same = narrow(top, ["linux/amd64", "linux/arm64", "linux/arm/v7"])
    assert descriptor is None and same is top


def test_narrow_to_one_platform_of_an_attested_index_is_its_manifest():
    top, entries = _attested_index()
    descriptor, new_index = narrow(top, ["linux/arm64"])
    assert new_index is None and descriptor.digest == entries[2]["digest"]


# -- foreign layers --------------------------------------------------------------------------------

def _foreign_image():
    """An image whose second layer is foreign (non-distributable, with urls) and not stored."""
    store = Store()
    image = store.image("amd64", [b"ordinary"])
    document = json.loads(image.raw)
    foreign = desc(mt.OCI_LAYER_NONDISTRIBUTABLE_GZIP, b"windows base layer", urls=["https://example.test/base"])
    document["layers"].append(foreign)
    return store, store.add(json.dumps(document).encode()), foreign


def test_is_foreign_wants_a_nondistributable_type_and_urls():
    _store, image, _foreign = _foreign_image()
    assert [is_foreign(layer) for layer in image.layers] == [False, True]
    assert not is_foreign(parse(json.dumps(dict(json.loads(image.raw), layers=[
        desc(mt.DOCKER_FOREIGN_LAYER, b"no urls")])).encode()).layers[0])


def test_a_missing_foreign_layer_leaves_the_tree_complete_unless_it_is_wanted():
    store, image, foreign = _foreign_image()
    memory = MemoryStore.of(store)
    assert foreign["digest"] not in memory.files
    assert complete_tree(memory, image.digest) is not None
    assert complete_tree(memory, image.digest, with_foreign=True) is None
    scan = read_tree(memory, image.digest, tolerant=True)
    assert scan.complete and scan.missing_blobs == []
    assert foreign["digest"] in [b.digest for b in scan.blobs]  # still part of the image
