# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_source: reading the image a copy starts from, cache-first, narrowed to platforms."""

import os

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint, StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    DigestMismatchError,
    NotFoundError,
    PlatformNotFoundError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import Descriptor
from ansible_collections.imagepusher.registry.plugins.module_utils._names import normalize_platforms
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._source import SourceReader

from tests.unit.plugins.module_utils.fake_registry import FakeRegistryClient
from tests.unit.plugins.module_utils.tree_builders import Store, config_of, multiarch

REF = ImageReference.parse("reg.test/team/app:v1")
ARM64 = normalize_platforms(["linux/arm64"])
TWO = normalize_platforms(["linux/amd64", "linux/arm64"])


def reader_for(tmp_path, store, top):
    client = FakeRegistryClient()
    client.publish("team/app", "v1", store, top)
    cache = Cache(str(tmp_path / "cache")).ensure()
    return SourceReader(RegistryEndpoint(client, REF), StoreEndpoint(cache)), client, cache


def single_image():
    store = Store()
    return store, store.image("amd64", [b"one layer"])


def test_resolve_of_a_missing_tag_raises_not_found(tmp_path):
    reader, client, _cache = reader_for(tmp_path, *single_image())
    missing = ImageReference.parse("reg.test/team/app:nope")
    with pytest.raises(NotFoundError) as info:
        reader.resolve(missing)
    assert "no tag 'nope'" in info.value.message and info.value.status == 404
    assert client.calls == [("head_manifest", "team/app", "nope")]


def test_resolve_gives_what_the_head_says(tmp_path):
    store, top = single_image()
    reader, _client, _cache = reader_for(tmp_path, store, top)
    assert reader.resolve(REF) == {"digest": top.digest, "media_type": top.media_type, "size": len(top.raw)}


def test_a_manifest_the_cache_holds_is_not_fetched(tmp_path):
    store, top = single_image()
    reader, client, cache = reader_for(tmp_path, store, top)
    cache.write_blob_bytes(top.digest, top.raw)
    assert reader.load(top.digest).raw == top.raw
    assert client.seen("get_manifest") == []


def test_a_damaged_cached_manifest_is_fetched_again(tmp_path):
    store, top = single_image()
    reader, client, cache = reader_for(tmp_path, store, top)
    cache.write_blob_bytes(top.digest, top.raw)
    path = cache.blob_path(top.digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:  # same size, other bytes
        handle.write(b"X")
    assert reader.load(top.digest).raw == top.raw
    assert client.seen("get_manifest") == [("get_manifest", "team/app", top.digest)]


def test_a_manifest_read_from_the_registry_is_read_once_per_run(tmp_path):
    store, top = single_image()
    reader, client, _cache = reader_for(tmp_path, store, top)
    reader.load(top.digest)
    reader.load(top.digest)
    assert len(client.seen("get_manifest")) == 1


def test_narrowing_an_index_to_one_platform_keeps_that_platforms_manifest(tmp_path):
    store, index, (_amd, arm, _armv7) = multiarch()
    reader, _client, _cache = reader_for(tmp_path, store, index)
    tree, served, config_raw = reader.read(REF, index.digest, ARM64)
    assert served == index.digest
    assert tree.digest == arm.digest and tree.top.raw == arm.raw
    assert [m.digest for m in tree.manifests] == [arm.digest]
    assert config_raw == config_of("arm64", variant="v8")  # single-platform now: its config was read


def test_narrowing_an_index_to_two_platforms_makes_a_new_index(tmp_path):
    store, index, (amd, arm, armv7) = multiarch()
    reader, _client, _cache = reader_for(tmp_path, store, index)
    tree, served, config_raw = reader.read(REF, index.digest, TWO)
    assert served == index.digest and tree.top.is_index and tree.digest != index.digest
    assert sorted(d.digest for d in tree.top.manifests) == sorted([amd.digest, arm.digest])
    assert armv7.digest not in tree.digests and tree.manifests[-1] is tree.top
    assert config_raw is None


def test_a_whole_index_is_read_as_served(tmp_path):
    store, index, children = multiarch()
    reader, _client, _cache = reader_for(tmp_path, store, index)
    tree, served, config_raw = reader.read(REF, None, None)
    assert tree.digest == served == index.digest
    assert [m.digest for m in tree.manifests] == [c.digest for c in children] + [index.digest]
    assert config_raw is None


def test_a_single_platform_image_for_another_platform_is_refused(tmp_path):
    reader, _client, _cache = reader_for(tmp_path, *single_image())
    with pytest.raises(PlatformNotFoundError) as info:
        reader.read(REF, None, ARM64)
    assert "single-platform image for linux/amd64, not linux/arm64/v8" in info.value.message


def test_a_single_platform_image_for_the_wanted_platform_is_read(tmp_path):
    store, top = single_image()
    reader, _client, _cache = reader_for(tmp_path, store, top)
    tree, served, _config = reader.read(REF, None, normalize_platforms(["linux/amd64"]))
    assert tree.digest == served == top.digest and tree.platforms == ["linux/amd64"]


def test_top_digest_without_platforms_is_the_source_digest_and_costs_nothing(tmp_path):
    store, index, _children = multiarch()
    reader, client, _cache = reader_for(tmp_path, store, index)
    assert reader.top_digest(REF, index.digest, None) == index.digest
    assert client.calls == []
    assert reader.top_digest(REF, None, None) == index.digest  # only a tag: the manifest is read


def test_top_digest_with_platforms_is_what_the_narrowed_copy_stores(tmp_path):
    store, index, (_amd, arm, _armv7) = multiarch()
    reader, client, _cache = reader_for(tmp_path, store, index)
    assert reader.top_digest(REF, index.digest, ARM64) == arm.digest
    two = reader.top_digest(REF, index.digest, TWO)
    assert [c[2] for c in client.seen("get_manifest")] == [index.digest]  # read once, then remembered
    assert client.seen("open_blob", "get_small_blob") == []  # only the index
    assert two == reader.read(REF, index.digest, TWO)[0].digest


def test_top_digest_of_a_narrowed_single_platform_image_needs_a_full_read(tmp_path):
    store, top = single_image()
    reader, _client, _cache = reader_for(tmp_path, store, top)
    assert reader.top_digest(REF, top.digest, ARM64) is None


def test_config_bytes_are_returned_only_when_fetched_from_the_registry(tmp_path):
    store, top = single_image()
    reader, client, cache = reader_for(tmp_path, store, top)
    tree, _served, config_raw = reader.read(REF, top.digest, None)
    assert config_raw == store.blobs[tree.top.config.digest] and tree.platforms == ["linux/amd64"]
    assert client.seen("get_small_blob") == [("get_small_blob", "team/app", tree.top.config.digest)]

    cache.write_blob_bytes(tree.top.config.digest, config_raw)
    again = SourceReader(RegistryEndpoint(client, REF), StoreEndpoint(cache))
    tree, _served, config_raw = again.read(REF, top.digest, None)
    assert config_raw is None and tree.platforms == ["linux/amd64"]
    assert len(client.seen("get_small_blob")) == 1  # the cached config was not fetched again


def test_a_cached_child_is_held_to_the_size_its_index_declares(tmp_path):
    store, top = single_image()
    reader, _client, cache = reader_for(tmp_path, store, top)
    cache.write_blob_bytes(top.digest, top.raw)
    lying = Descriptor(top.media_type, top.digest, len(top.raw) + 1)
    with pytest.raises(DigestMismatchError):
        reader.registry.get_manifest(top.digest, lying)  # what the registry path does
    with pytest.raises(DigestMismatchError):
        reader.load(top.digest, lying)
