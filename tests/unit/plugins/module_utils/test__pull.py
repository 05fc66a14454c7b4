# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_pull: registry -> cache against an in-memory registry client and a real cache."""

import json
import os

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _cache as cache_mod
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint, StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Engine
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheFullError,
    CachePermissionError,
    DigestMismatchError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._pull import Pull
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference

from tests.unit.plugins.module_utils.fake_registry import FakeRegistryClient
from tests.unit.plugins.module_utils.tree_builders import AMD64, Store, multiarch

REF = ImageReference.parse("reg.test/team/app:v1")
NAME = "reg.test/team/app:v1"


def setup(tmp_path, store, top):
    client = FakeRegistryClient()
    client.publish("team/app", "v1", store, top)
    cache = Cache(str(tmp_path / "cache"))
    return client, cache


def pull(client, cache):
    return Pull(RegistryEndpoint(client, REF), StoreEndpoint(cache), Engine(2))


def blob_sizes(store):
    return sum(len(b) for b in store.blobs.values())


def test_a_first_pull_downloads_everything_and_names_the_image(tmp_path):
    store, index, children = multiarch()
    client, cache = setup(tmp_path, store, index)
    result = pull(client, cache).run(REF)
    assert result["changed"] is True
    assert result["digest"] == result["source_digest"] == index.digest and result["digest_changed"] is False
    assert result["cache_name"] == NAME and result["reference"] == NAME
    assert sorted(b["digest"] for b in result["blobs"]) == sorted(store.blobs)
    assert set(b["action"] for b in result["blobs"]) == {"downloaded"}
    assert [m["digest"] for m in result["manifests"]] == [c.digest for c in children] + [index.digest]
    assert set(m["action"] for m in result["manifests"]) == {"downloaded"}
    assert result["bytes_downloaded"] == blob_sizes(store)
    assert result["diff"] == {"before": {"reference": NAME, "digest": None},
                              "after": {"reference": NAME, "digest": index.digest}}
    entry = cache.get_ref(NAME)
    assert entry["digest"] == index.digest
    assert entry["annotations"][cache_mod.SOURCE_DIGEST] == index.digest
    assert all(cache.has_blob(d, len(b)) for d, b in store.blobs.items())
    # Each blob was read once; the shared base layer too.
    opened = [c[2] for c in client.seen("open_blob")]
    assert sorted(opened) == sorted(store.blobs)
    assert cache.sources(index.digest) == ["reg.test/team/app"]


def test_a_second_pull_is_unchanged_costs_one_head_and_reads_no_blob(tmp_path):
    store, index, _children = multiarch()
    client, cache = setup(tmp_path, store, index)
    first = pull(client, cache).run(REF)
    client.calls = []
    second = pull(client, cache).run(REF)
    assert second["changed"] is False
    assert set(b["action"] for b in second["blobs"]) == {"cached"}
    assert set(m["action"] for m in second["manifests"]) == {"cached"}
    assert second["bytes_downloaded"] == 0 and second["digest"] == first["digest"]
    assert second["diff"]["before"] == second["diff"]["after"]
    assert client.calls == [("head_manifest", "team/app", "v1")]


def test_check_mode_writes_nothing_and_plans_what_the_real_run_does(tmp_path):
    store, index, _children = multiarch()
    client, cache = setup(tmp_path, store, index)
    checked = pull(client, cache).run(REF, check_mode=True)
    assert not os.path.exists(cache.root)
    assert client.seen("open_blob", "get_small_blob") == []
    real = pull(client, cache).run(REF)
    for key in ("changed", "blobs", "manifests", "bytes_downloaded", "digest", "cache_name", "diff"):
        assert checked[key] == real[key], key


def test_a_single_platform_image_stores_the_config_read_while_planning(tmp_path):
    store = Store()
    top = store.image("amd64", [b"layer one", b"layer two"])
    client, cache = setup(tmp_path, store, top)
    result = pull(client, cache).run(REF)
    assert result["platforms"] == ["linux/amd64"]
    assert set(b["action"] for b in result["blobs"]) == {"downloaded"}
    assert result["bytes_downloaded"] == blob_sizes(store)
    config = top.config.digest
    assert client.seen("get_small_blob") == [("get_small_blob", "team/app", config)]
    assert config not in [c[2] for c in client.seen("open_blob")]  # not fetched a second time
    assert cache.has_blob(config, top.config.size)


def test_a_pull_narrowed_to_one_platform_has_a_name_of_its_own_and_keeps_that_platforms_digest(tmp_path):
    store, index, (_amd, arm, _armv7) = multiarch()
    client, cache = setup(tmp_path, store, index)
    result = pull(client, cache).run(REF, platforms=["linux/arm64"])
    assert result["cache_name"] == NAME + "+linux-arm64-v8"
    assert result["digest"] == arm.digest and result["source_digest"] == index.digest
    # The registry's own manifest of that platform, its digest preserved: not a new digest.
    assert result["digest_changed"] is False and result["platforms"] == ["linux/arm64/v8"]
    assert [m["digest"] for m in result["manifests"]] == [arm.digest]
    assert len(result["blobs"]) == 3  # config, shared base layer, arm64 layer
    entry = cache.get_ref(NAME + "+linux-arm64-v8")
    assert entry["digest"] == arm.digest and entry["annotations"][cache_mod.PLATFORMS] == "linux/arm64/v8"
    assert cache.get_ref(NAME) is None
    client.calls = []
    again = pull(client, cache).run(REF, platforms=["linux/arm64/v8"])
    assert again["changed"] is False and client.calls == [("head_manifest", "team/app", "v1")]


def test_a_new_digest_behind_the_tag_is_pulled_and_the_diff_shows_both(tmp_path):
    store = Store()
    old = store.image("amd64", [b"old layer"])
    client, cache = setup(tmp_path, store, old)
    pull(client, cache).run(REF)
    new = store.image("amd64", [b"new layer"])
    client.publish("team/app", "v1", store, new)
    result = pull(client, cache).run(REF)
    assert result["changed"] is True
    assert result["diff"]["before"]["digest"] == old.digest and result["diff"]["after"]["digest"] == new.digest
    actions = dict((b["digest"], b["action"]) for b in result["blobs"])
    assert actions[new.config.digest] == "cached"  # same config bytes as before
    assert actions[new.layers[0].digest] == "downloaded"
    assert cache.get_ref(NAME)["digest"] == new.digest


def test_an_index_declaring_a_wrong_child_size_fails_whether_or_not_the_cache_holds_the_child(tmp_path):
    store = Store()
    child = store.image("amd64", [b"layer"])
    lying = store.add(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": child.media_type, "digest": child.digest, "size": len(child.raw) + 1, "platform": AMD64}]}).encode())
    client, cache = setup(tmp_path, store, child)
    client.publish("team/app", "idx", store, lying)
    index_ref = ImageReference.parse("reg.test/team/app:idx")
    with pytest.raises(DigestMismatchError):
        pull(client, cache).run(index_ref)  # cold: the registry's copy is checked
    pull(client, cache).run(REF)  # the child is now cached under its own tag
    with pytest.raises(DigestMismatchError):
        pull(client, cache).run(index_ref)


def test_a_pull_that_fails_after_storing_blobs_says_changed_and_what_it_stored(tmp_path, monkeypatch):
    store, index, _children = multiarch()
    client, cache = setup(tmp_path, store, index)

    def full(*args, **kwargs):
        raise CacheFullError("cache is out of disk space while updating index.json", path=cache.root)
    monkeypatch.setattr(cache, "set_ref", full)
    with pytest.raises(CacheFullError) as info:
        pull(client, cache).run(REF)
    done = info.value.details["done"]
    assert info.value.details["changed"] is True
    assert done["blobs_downloaded"] == len(store.blobs) and done["bytes_downloaded"] == blob_sizes(store)
    assert done["manifests_stored"] == 4 and done["cache_names"] == [] and done["manifests_pushed"] == []


def test_a_pull_into_a_cache_it_cannot_create_is_unchanged(tmp_path, monkeypatch):
    store, index, _children = multiarch()
    client, cache = setup(tmp_path, store, index)

    def denied():
        raise CachePermissionError("permission denied", path=cache.root)
    monkeypatch.setattr(cache, "ensure", denied)
    with pytest.raises(CachePermissionError) as info:
        pull(client, cache).run(REF)
    assert info.value.details == {"path": cache.root}
