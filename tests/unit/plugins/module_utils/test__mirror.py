# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_mirror: registry -> registry through the cache, against two in-memory registry clients."""

import os

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint, StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Engine
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import RegistryError
from ansible_collections.imagepusher.registry.plugins.module_utils._mirror import Mirror
from ansible_collections.imagepusher.registry.plugins.module_utils._pull import Pull
from ansible_collections.imagepusher.registry.plugins.module_utils._push import Push
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference

from tests.unit.plugins.module_utils.fake_registry import FakeRegistryClient
from tests.unit.plugins.module_utils.tree_builders import multiarch

SOURCE = ImageReference.parse("src.test/team/app:v1")
TARGET = ImageReference.parse("reg.test/prod/app:v1")
NAME = "src.test/team/app:v1"
BLOB_READS = ("open_blob", "get_small_blob")


class Setup:
    def __init__(self, tmp_path):
        self.store, self.index, self.children = multiarch()
        self.source = FakeRegistryClient("src.test")
        self.source.publish("team/app", "v1", self.store, self.index)
        self.target = FakeRegistryClient("reg.test")
        self.cache = Cache(str(tmp_path / "cache"))
        self.size = sum(len(b) for b in self.store.blobs.values())

    def mirror(self):
        engine, store = Engine(2), StoreEndpoint(self.cache)
        target = RegistryEndpoint(self.target, TARGET, writable=True, sessions=store.upload_sessions())
        return Mirror(Pull(RegistryEndpoint(self.source, SOURCE), store, engine), Push(store, target, engine))


def test_a_cold_mirror_fills_the_cache_like_a_pull_and_the_target_like_a_push(tmp_path):
    s = Setup(tmp_path)
    result = s.mirror().run(SOURCE)
    assert result["changed"] is True and result["cached"] is True
    assert result["source"] == NAME and result["target"] == "reg.test/prod/app:v1"
    assert result["source_digest"] == result["digest"] == s.index.digest and result["cache_name"] == NAME
    assert result["bytes_downloaded"] == result["bytes_uploaded"] == s.size
    assert set(b["action"] for b in result["blobs"]) == {"uploaded"}
    assert [m["digest"] for m in result["manifests"]] == [c.digest for c in s.children] + [s.index.digest]
    # Each blob read from the source once, and the cache holds the image as a pull names it.
    assert sorted(c[2] for c in s.source.seen(*BLOB_READS)) == sorted(s.store.blobs)
    assert s.cache.get_ref(NAME)["digest"] == s.index.digest
    assert all(s.cache.has_blob(d, len(b)) for d, b in s.store.blobs.items())
    repo = s.target.repo("prod/app")
    assert repo.blobs == s.store.blobs and repo.tags["v1"] == s.index.digest
    assert result["diff"]["before"]["digest"] is None and result["diff"]["after"]["digest"] == s.index.digest


def test_a_current_target_costs_only_heads_and_leaves_the_cache_empty(tmp_path):
    s = Setup(tmp_path)
    s.target.publish("prod/app", "v1", s.store, s.index)
    result = s.mirror().run(SOURCE)
    assert result["changed"] is False and result["cached"] is False
    assert result["digest"] == result["source_digest"] == s.index.digest and result["media_type"] == s.index.media_type
    assert result["bytes_downloaded"] == result["bytes_uploaded"] == 0
    assert result["blobs"] == [] and result["manifests"] == [] and result["cache_name"] == NAME
    assert s.source.calls == [("head_manifest", "team/app", "v1")]
    assert s.target.calls == [("head_manifest", "prod/app", "v1")]
    assert not os.path.exists(s.cache.root)


def test_a_second_mirror_is_unchanged_and_reads_no_blob(tmp_path):
    s = Setup(tmp_path)
    s.mirror().run(SOURCE)
    s.source.calls, s.target.calls = [], []
    result = s.mirror().run(SOURCE)
    assert result["changed"] is False and result["cached"] is True  # read from the cache, not the source
    assert result["digest"] == s.index.digest and result["bytes_downloaded"] == 0
    assert s.source.calls == [("head_manifest", "team/app", "v1")]
    assert s.target.calls == [("head_manifest", "prod/app", "v1")]


def test_a_warm_cache_sends_to_a_new_target_without_reading_the_source(tmp_path):
    s = Setup(tmp_path)
    s.mirror().run(SOURCE)
    s.source.calls = []
    s.target = FakeRegistryClient("reg.test")
    result = s.mirror().run(SOURCE)
    assert result["changed"] is True and result["bytes_downloaded"] == 0 and result["bytes_uploaded"] == s.size
    assert s.source.seen(*BLOB_READS) == [] and s.source.seen("get_manifest") == []
    assert s.target.repo("prod/app").tags["v1"] == s.index.digest


def test_check_mode_fills_nothing_and_reports_what_would_move(tmp_path):
    s = Setup(tmp_path)
    checked = s.mirror().run(SOURCE, check_mode=True)
    assert not os.path.exists(s.cache.root)
    assert s.source.seen(*BLOB_READS) == []
    assert s.target.seen("start_upload", "put_manifest", "mount_blob") == []
    assert checked["changed"] is True and checked["cached"] is False
    assert checked["bytes_downloaded"] == checked["bytes_uploaded"] == s.size
    real = s.mirror().run(SOURCE)
    for key in ("changed", "blobs", "manifests", "bytes_downloaded", "bytes_uploaded", "digest", "diff"):
        assert checked[key] == real[key], key


def test_a_narrowed_mirror_pushes_the_platforms_manifest_and_names_it_in_the_cache(tmp_path):
    s = Setup(tmp_path)
    arm = s.children[1]
    result = s.mirror().run(SOURCE, platforms=["linux/arm64"])
    assert result["digest"] == arm.digest and result["source_digest"] == s.index.digest
    assert result["cache_name"] == NAME + "+linux-arm64-v8"
    assert s.target.repo("prod/app").tags["v1"] == arm.digest
    s.source.calls = []
    again = s.mirror().run(SOURCE, platforms=["linux/arm64"])
    assert again["changed"] is False and s.source.seen(*BLOB_READS) == []


def test_a_mirror_that_fails_after_both_ends_changed_says_what_it_did_on_each(tmp_path):
    s = Setup(tmp_path)
    real_put = s.target.put_manifest

    def refuse_the_tag(repository, ref, raw, media_type):
        if ref == "v1":
            raise RegistryError("tag v1 is immutable", status=400)
        return real_put(repository, ref, raw, media_type)
    s.target.put_manifest = refuse_the_tag
    with pytest.raises(RegistryError) as info:
        s.mirror().run(SOURCE)
    details = info.value.details
    assert details["changed"] is True and details["status"] == 400
    done = details["done"]
    assert done["blobs_downloaded"] == done["blobs_uploaded"] == len(s.store.blobs)
    assert done["bytes_downloaded"] == done["bytes_uploaded"] == s.size
    assert done["manifests_pushed"] == ["reg.test/prod/app@%s" % c.digest for c in s.children]
    assert done["cache_names"] == [NAME] and done["manifests_stored"] == 1 + len(s.children)
    assert "v1" not in s.target.repo("prod/app").tags
