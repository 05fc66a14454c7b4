# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_endpoints: a registry repository (over an in-memory client) and an OCI layout (a real cache)."""

import os

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint, StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import DigestMismatchError, RegistryError
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import Descriptor
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._sessions import NoSessions, UploadSessions

from tests.unit.plugins.module_utils.fake_registry import FakeRegistryClient
from tests.unit.plugins.module_utils.memory_endpoints import blob
from tests.unit.plugins.module_utils.tree_builders import Store, multiarch

TARGET = ImageReference.parse("reg.test/prod/app:v1")
DATA = b"layer bytes " * 300
DIGEST = of_bytes(DATA)


@pytest.fixture
def cache(tmp_path):
    return Cache(str(tmp_path / "cache")).ensure()


def endpoint(client, **kwargs):
    return RegistryEndpoint(client, TARGET, writable=True, **kwargs)


def test_put_blob_tries_each_mount_source_in_turn_then_uploads(cache):
    cache.write_blob_bytes(DIGEST, DATA)
    client = FakeRegistryClient()
    action = endpoint(client).put_blob(DIGEST, len(DATA), StoreEndpoint(cache), mount_from=("team/a", "team/b"))
    assert action == (_plan.UPLOADED, len(DATA))
    assert client.seen("mount_blob") == [("mount_blob", "prod/app", (DIGEST, "team/a")),
                                         ("mount_blob", "prod/app", (DIGEST, "team/b"))]
    assert client.seen("finish_upload") == [("finish_upload", "prod/app", DIGEST)]
    assert client.repo("prod/app").blobs[DIGEST] == DATA
    assert client.transport.budgets == 1  # one budget for the mounts and the upload


def test_put_blob_stops_at_the_first_mount_that_works(cache):
    client = FakeRegistryClient()
    client.repo("team/b").blobs[DIGEST] = DATA
    action = endpoint(client).put_blob(DIGEST, len(DATA), StoreEndpoint(cache), mount_from=("team/a", "team/b", "team/c"))
    assert action == (_plan.MOUNTED, 0)
    assert [c[2][1] for c in client.seen("mount_blob")] == ["team/a", "team/b"]
    assert client.seen("start_upload", "upload_chunk") == []
    assert client.repo("prod/app").blobs[DIGEST] == DATA


def test_put_manifest_refuses_a_registry_that_stored_other_bytes():
    store = Store()
    top = store.image("amd64", [b"layer"])
    client = FakeRegistryClient()
    endpoint(client).put_manifest("v1", top)  # the digest it reports is ours: fine
    client.reported_digest = "sha256:" + "0" * 64
    with pytest.raises(RegistryError) as info:
        endpoint(client).put_manifest("v1", top)
    assert top.digest in info.value.message and client.reported_digest in info.value.message


def test_get_manifest_checks_the_size_the_index_declares():
    store, index, (amd, _arm, _armv7) = multiarch()
    client = FakeRegistryClient()
    client.publish("prod/app", "v1", store, index)
    right = Descriptor(amd.media_type, amd.digest, len(amd.raw))
    assert endpoint(client).get_manifest(amd.digest, right).raw == amd.raw
    wrong = Descriptor(amd.media_type, amd.digest, len(amd.raw) + 1)
    with pytest.raises(DigestMismatchError) as info:
        endpoint(client).get_manifest(amd.digest, wrong)
    assert "declares %d bytes but the registry sent %d" % (len(amd.raw) + 1, len(amd.raw)) in info.value.message


def test_get_manifest_by_tag_and_a_head(cache):
    store, index, _children = multiarch()
    client = FakeRegistryClient()
    client.publish("prod/app", "v1", store, index)
    registry = endpoint(client)
    assert registry.get_manifest("v1").digest == index.digest
    assert registry.manifest_exists("v1")["digest"] == index.digest
    assert registry.manifest_exists("v2") is None
    assert registry.retry_count == 0


def test_blobs_downloaded_through_the_opener_land_verified_in_the_store(cache):
    client = FakeRegistryClient()
    client.repo("prod/app").blobs[DIGEST] = DATA
    store, seen = StoreEndpoint(cache), []
    assert store.put_blob(DIGEST, len(DATA), endpoint(client), on_bytes=seen.append) == ("downloaded", len(DATA))
    assert cache.has_blob(DIGEST, len(DATA)) and sum(seen) == len(DATA)
    assert store.put_blob(DIGEST, len(DATA), endpoint(client)) == ("cached", 0)
    assert len(client.seen("open_blob")) == 1


def test_store_stored_checks_the_size_and_stored_manifests_the_raw_length(cache):
    store, index, (amd, arm, _armv7) = multiarch()
    layer = amd.layers[1]
    cache.write_blob_bytes(layer.digest, store.blobs[layer.digest])
    cache.write_blob_bytes(amd.digest, amd.raw)
    endpoint_ = StoreEndpoint(cache)
    wrong_size = Descriptor(layer.media_type, layer.digest, layer.size + 1)
    assert endpoint_.stored([layer, wrong_size, arm.layers[1]]) == {layer.digest}
    assert endpoint_.stored([wrong_size]) == set()
    assert endpoint_.stored_manifests([amd, arm, index]) == {amd.digest}
    assert endpoint_.blob_exists(layer.digest) and not endpoint_.blob_exists(arm.layers[1].digest)


def test_store_partials_report_the_bytes_a_killed_download_left(cache):
    first, second = blob(b"first " * 100), blob(b"second " * 100)
    os.makedirs(os.path.dirname(cache.partial_path(first.digest)), exist_ok=True)
    with open(cache.partial_path(first.digest), "wb") as handle:
        handle.write(b"first " * 10)
    assert StoreEndpoint(cache).partials([first, second]) == {first.digest: 60, second.digest: 0}


def test_store_get_manifest_verifies_what_it_reads(cache):
    store = Store()
    top = store.image("amd64", [b"layer"])
    cache.write_blob_bytes(top.digest, top.raw)
    assert StoreEndpoint(cache).get_manifest(top.digest).raw == top.raw
    config = top.config
    cache.write_blob_bytes(config.digest, store.blobs[config.digest])
    assert StoreEndpoint(cache).get_small_blob(config.digest, 1000) == store.blobs[config.digest]


def test_only_our_own_cache_keeps_upload_sessions(cache):
    own = StoreEndpoint(cache).upload_sessions()
    assert isinstance(own, UploadSessions) and own.directory.startswith(cache.root)
    layout = StoreEndpoint(cache, keeps_sessions=False)
    assert isinstance(layout.upload_sessions(), NoSessions) and layout.keeps_sessions is False


def test_a_registry_endpoint_without_sessions_keeps_none():
    registry = RegistryEndpoint(FakeRegistryClient(), TARGET)
    assert isinstance(registry.sessions, NoSessions)
    assert registry.name == "reg.test/prod/app" and registry.repository == "prod/app"
