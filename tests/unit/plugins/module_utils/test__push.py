# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_push: cache (or a foreign layout) -> registry against an in-memory registry client."""

import os

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint, StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Engine
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CachePermissionError, NotCachedError, RegistryError
from ansible_collections.imagepusher.registry.plugins.module_utils._pull import Pull
from ansible_collections.imagepusher.registry.plugins.module_utils._push import Push
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._sessions import NoSessions

from tests.unit.plugins.module_utils.fake_registry import FakeRegistryClient
from tests.unit.plugins.module_utils.tree_builders import multiarch

SOURCE = ImageReference.parse("src.test/team/app:v1")
NAME = "src.test/team/app:v1"
TARGET = ImageReference.parse("reg.test/prod/app:v2")
SENDING = ("mount_blob", "start_upload", "upload_chunk", "finish_upload", "put_manifest")


@pytest.fixture
def cached(tmp_path):
    """(tree_builders store, index, children, cache) with the image pulled from another registry."""
    store, index, children = multiarch()
    source = FakeRegistryClient("src.test")
    source.publish("team/app", "v1", store, index)
    cache = Cache(str(tmp_path / "cache"))
    Pull(RegistryEndpoint(source, SOURCE), StoreEndpoint(cache), Engine(2)).run(SOURCE)
    return store, index, children, cache


def pusher(client, cache, layout=False):
    store = StoreEndpoint(cache, keeps_sessions=not layout)
    target = RegistryEndpoint(client, TARGET, writable=True, sessions=store.upload_sessions())
    return Push(store, target, Engine(2), record_sources=not layout)


def actions(result):
    return dict((b["digest"], b["action"]) for b in result["blobs"])


def test_a_first_push_uploads_every_blob_then_children_by_digest_and_the_top_by_tag(cached):
    store, index, children, cache = cached
    client = FakeRegistryClient()
    result = pusher(client, cache).run(NAME, cache.get_ref(NAME))
    assert result["changed"] is True and result["digest"] == index.digest
    assert result["source"] == NAME and result["target"] == "reg.test/prod/app:v2"
    assert set(actions(result).values()) == {"uploaded"} and sorted(actions(result)) == sorted(store.blobs)
    assert result["bytes_uploaded"] == sum(len(b) for b in store.blobs.values())
    assert [c[2] for c in client.seen("put_manifest")] == [c.digest for c in children] + ["v2"]
    assert [m["digest"] for m in result["manifests"]] == [c.digest for c in children] + [index.digest]
    assert result["diff"] == {"before": {"target": "reg.test/prod/app:v2", "digest": None},
                              "after": {"target": "reg.test/prod/app:v2", "digest": index.digest}}
    repo = client.repo("prod/app")
    assert repo.blobs == store.blobs and repo.tags["v2"] == index.digest
    assert repo.manifests[index.digest][0] == index.raw  # the exact stored bytes
    assert cache.sources(children[0].layers[1].digest) == ["src.test/team/app", "reg.test/prod/app"]


def test_a_target_already_at_the_digest_costs_one_head(cached):
    _store, index, _children, cache = cached
    client = FakeRegistryClient()
    pusher(client, cache).run(NAME, cache.get_ref(NAME))
    client.calls = []
    result = pusher(client, cache).run(NAME, cache.get_ref(NAME))
    assert result["changed"] is False and result["blobs"] == [] and result["manifests"] == []
    assert result["bytes_uploaded"] == 0
    assert result["diff"]["before"]["digest"] == result["diff"]["after"]["digest"] == index.digest
    assert client.calls == [("head_manifest", "prod/app", "v2")]


def test_blobs_present_are_left_known_ones_mounted_and_the_rest_uploaded(cached):
    store, index, (amd, arm, _armv7), cache = cached
    client = FakeRegistryClient()
    base, amd_layer, arm_layer = amd.layers[0], amd.layers[1], arm.layers[1]
    client.repo("prod/app").blobs[base.digest] = store.blobs[base.digest]  # the target has it
    client.repo("team/base").blobs[amd_layer.digest] = store.blobs[amd_layer.digest]
    cache.record_sources([amd_layer.digest], "reg.test/team/base")  # seen in another repository
    cache.record_sources([arm_layer.digest], "other.test/team/base")  # another registry: no mount
    client.repo("prod/app").manifests[amd.digest] = (amd.raw, amd.media_type)  # a child it has
    result = pusher(client, cache).run(NAME, cache.get_ref(NAME))
    done = actions(result)
    assert done.pop(base.digest) == "exists" and done.pop(amd_layer.digest) == "mounted"
    assert set(done.values()) == {"uploaded"}
    assert client.seen("mount_blob") == [("mount_blob", "prod/app", (amd_layer.digest, "team/base"))]
    uploaded = [c[2] for c in client.seen("finish_upload")]
    assert sorted(uploaded) == sorted(done) and arm_layer.digest in uploaded
    assert result["bytes_uploaded"] == sum(len(store.blobs[d]) for d in done)
    assert amd.digest not in [c[2] for c in client.seen("put_manifest")]  # present child: not put again
    assert client.repo("prod/app").tags["v2"] == index.digest


def test_a_new_repository_on_a_registry_that_honours_mounts_gets_no_blob_head(cached):
    """A repository without a tag (unknown to the registry, though a dead run left a blob in it), on a
    registry that has honoured a mount: a blob without a mount source costs the POST that starts its upload
    (it answers for the blob the repository holds), a blob with one its mount, and neither a HEAD first."""
    store, index, (amd, _arm, _armv7), cache = cached
    client = FakeRegistryClient()
    client.mounts_work = True
    base, amd_layer = amd.layers[0], amd.layers[1]
    client.repo("prod/app").blobs[base.digest] = store.blobs[base.digest]
    client.repo("team/base").blobs[amd_layer.digest] = store.blobs[amd_layer.digest]
    cache.record_sources([amd_layer.digest], "reg.test/team/base")
    checked = pusher(client, cache).run(NAME, cache.get_ref(NAME), check_mode=True)
    assert len(client.seen("head_blob")) == len(store.blobs)  # check mode asks every HEAD
    client.calls = []
    result = pusher(client, cache).run(NAME, cache.get_ref(NAME))
    assert client.seen("head_blob") == []
    assert client.seen("mount_blob") == [("mount_blob", "prod/app", (amd_layer.digest, "team/base"))]
    done = actions(result)
    assert done.pop(base.digest) == "exists" and done.pop(amd_layer.digest) == "mounted"
    assert set(done.values()) == {"uploaded"}
    assert sorted(c[2] for c in client.seen("start_upload")) == sorted(list(done) + [base.digest])
    assert base.digest not in [c[2] for c in client.seen("finish_upload")]  # held: never sent again
    for key in ("changed", "blobs", "bytes_uploaded", "digest"):
        assert checked[key] == result[key], key  # the plan check mode reports is what the run did
    assert client.repo("prod/app").tags["v2"] == index.digest
    assert client.seen("tag_list") == [("tag_list", "prod/app", None)]  # check mode did not ask


def test_a_blob_a_dead_run_left_in_a_new_repository_is_mounted_again_not_sent(cached):
    """With a mount source and no HEAD, a blob the new repository already holds is mounted (the registry links it
    again, a no-op for its content): reported mounted, where check mode's HEAD says it exists. Never sent."""
    store, index, (amd, _arm, _armv7), cache = cached
    client = FakeRegistryClient()
    client.mounts_work = True
    amd_layer = amd.layers[1]
    client.repo("prod/app").blobs[amd_layer.digest] = store.blobs[amd_layer.digest]
    client.repo("team/base").blobs[amd_layer.digest] = store.blobs[amd_layer.digest]
    cache.record_sources([amd_layer.digest], "reg.test/team/base")
    checked = pusher(client, cache).run(NAME, cache.get_ref(NAME), check_mode=True)
    assert actions(checked)[amd_layer.digest] == "exists"
    client.calls = []
    result = pusher(client, cache).run(NAME, cache.get_ref(NAME))
    assert client.seen("head_blob") == []
    assert actions(result)[amd_layer.digest] == "mounted"
    assert amd_layer.digest not in [c[2] for c in client.seen("start_upload", "finish_upload")]
    assert result["bytes_uploaded"] == checked["bytes_uploaded"]
    assert client.repo("prod/app").tags["v2"] == index.digest


def test_a_repository_with_a_tag_gets_a_head_for_every_blob_even_where_mounts_work(cached):
    # A mount (the POST's question) of a blob it holds would rewrite the repository's link to it in place,
    # while a manifest PUT of another tag may read it: there, only HEADs ask.
    store, index, (amd, _arm, _armv7), cache = cached
    client = FakeRegistryClient()
    client.mounts_work = True
    base = amd.layers[0]
    client.repo("prod/app").blobs[base.digest] = store.blobs[base.digest]
    client.repo("prod/app").tags["old"] = "sha256:" + "0" * 64
    result = pusher(client, cache).run(NAME, cache.get_ref(NAME))
    assert sorted(c[2] for c in client.seen("head_blob")) == sorted(store.blobs)
    assert actions(result)[base.digest] == "exists"
    assert base.digest not in [c[2] for c in client.seen("start_upload", "mount_blob", "finish_upload")]
    client.calls = []
    client.repo("prod/app").tags.pop("old")
    client.repo("prod/app").manifests["sha256:" + "1" * 64] = (b"{}", "application/vnd.oci.image.manifest.v1+json")
    client.repo("prod/app").tags["v2"] = "sha256:" + "1" * 64
    # The target tag names another image: the repository exists, no tag list is asked.
    assert pusher(client, cache).run(NAME, cache.get_ref(NAME))["changed"] is True
    assert client.seen("tag_list") == []


def test_check_mode_sends_nothing_and_reports_the_plan(cached):
    store, index, _children, cache = cached
    client = FakeRegistryClient()
    checked = pusher(client, cache).run(NAME, cache.get_ref(NAME), check_mode=True)
    assert client.seen(*SENDING) == [] and client.repos.get("prod/app").blobs == {}
    assert checked["changed"] is True and set(actions(checked).values()) == {"uploaded"}
    real = pusher(client, cache).run(NAME, cache.get_ref(NAME))
    for key in ("changed", "blobs", "manifests", "bytes_uploaded", "digest", "diff"):
        assert checked[key] == real[key], key
    assert client.repo("prod/app").tags["v2"] == index.digest


def test_a_foreign_layout_is_only_read_it_records_no_sources(cached):
    _store, index, children, cache = cached
    client = FakeRegistryClient()
    job = pusher(client, cache, layout=True)
    assert isinstance(job.target.sessions, NoSessions)
    before = cache.sources(children[0].layers[1].digest)
    result = job.run(NAME, cache.get_ref(NAME))
    assert result["changed"] is True and client.repo("prod/app").tags["v2"] == index.digest
    assert cache.sources(children[0].layers[1].digest) == before == ["src.test/team/app"]


def test_a_narrowed_push_sends_only_that_platform(cached):
    store, _index, (_amd, arm, _armv7), cache = cached
    client = FakeRegistryClient()
    result = pusher(client, cache).run(NAME, cache.get_ref(NAME), platforms=["linux/arm64"])
    assert result["digest"] == arm.digest and result["platforms"] == ["linux/arm64/v8"]
    assert sorted(actions(result)) == sorted([arm.config.digest] + [layer.digest for layer in arm.layers])
    assert [c[2] for c in client.seen("put_manifest")] == ["v2"]


def test_an_incomplete_image_is_refused_before_any_request(cached):
    store, _index, (amd, _arm, _armv7), cache = cached
    client = FakeRegistryClient()
    entry = cache.get_ref(NAME)
    os.unlink(cache.blob_path(amd.layers[1].digest))
    with pytest.raises(NotCachedError) as info:
        pusher(client, cache).run(NAME, entry)
    assert "is incomplete" in info.value.message and client.calls == []


def test_a_push_that_fails_after_the_target_changed_says_so_and_what_it_did(cached, monkeypatch):
    """A push against a cache it cannot write (another user's) pushes the image, then cannot record where
    the blobs went: the failure says changed, with the blobs and manifests it pushed."""
    store, index, children, cache = cached
    client = FakeRegistryClient()

    def denied(digests, name):
        raise CachePermissionError("permission denied while opening cache lock sources.lock", path=cache.root)
    monkeypatch.setattr(cache, "record_sources", denied)
    with pytest.raises(CachePermissionError) as info:
        pusher(client, cache).run(NAME, cache.get_ref(NAME))
    details = info.value.details
    assert details["changed"] is True
    assert details["done"]["blobs_uploaded"] == len(store.blobs)
    assert details["done"]["bytes_uploaded"] == sum(len(b) for b in store.blobs.values())
    assert details["done"]["manifests_pushed"] == (["reg.test/prod/app@%s" % c.digest for c in children]
                                                   + ["reg.test/prod/app:v2"])
    assert client.repo("prod/app").tags["v2"] == index.digest


def test_a_push_that_fails_before_writing_anything_is_unchanged(cached):
    _store, _index, _children, cache = cached
    client = FakeRegistryClient()

    def refused(*args, **kwargs):
        raise RegistryError("denied", status=403)
    client.start_upload = refused
    with pytest.raises(RegistryError) as info:
        pusher(client, cache).run(NAME, cache.get_ref(NAME))
    assert info.value.details == {"status": 403, "code": None}
