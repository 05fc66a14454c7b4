# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_copy: the job factories wire the right endpoints; mirror_images runs a list and names a failure."""

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _copy
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint, StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Events
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import NotFoundError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference, repository_scope
from ansible_collections.imagepusher.registry.plugins.module_utils._sessions import NoSessions, UploadSessions

from tests.unit.plugins.module_utils.fake_registry import FakeRegistryClient
from tests.unit.plugins.module_utils.tree_builders import Store, multiarch

SOURCE = ImageReference.parse("src.test/team/app:v1")
TARGET = ImageReference.parse("reg.test/prod/app:v1")


@pytest.fixture
def cache(tmp_path):
    return Cache(str(tmp_path / "cache"))


def test_pull_reads_the_registry_into_the_cache(cache):
    client, events = FakeRegistryClient("src.test"), Events()
    job = _copy.pull(client, SOURCE, cache, concurrency=3, events=events)
    assert isinstance(job.source, RegistryEndpoint) and job.source.client is client
    assert job.source.reference == SOURCE and job.source._scopes == [repository_scope("team/app", "pull")]
    assert isinstance(job.cache, StoreEndpoint) and job.cache.cache is cache and job.cache.keeps_sessions
    assert job.engine.concurrency == 3 and job.engine.events is events
    assert job.reader.registry is job.source and job.reader.cache is job.cache


def test_push_from_the_cache_keeps_sessions_and_records_sources(cache):
    client = FakeRegistryClient()
    job = _copy.push(client, TARGET, cache, chunk_size=1024)
    assert job.record is True and job.store.keeps_sessions and job.store.cache is cache
    assert isinstance(job.target.sessions, UploadSessions) and job.target.chunk_size == 1024
    assert job.target.client is client and job.target._scopes == [repository_scope("prod/app", "pull", "push")]


def test_push_from_a_layout_records_no_sources_and_keeps_no_sessions(tmp_path, cache):
    store, index, _children = multiarch()
    source = FakeRegistryClient("src.test")
    source.publish("team/app", "v1", store, index)
    _copy.pull(source, SOURCE, cache).run(SOURCE)
    layer = sorted(store.blobs)[0]
    before = cache.sources(layer)
    client = FakeRegistryClient()
    job = _copy.push(client, TARGET, cache, layout=True)
    assert job.record is False and job.store.keeps_sessions is False
    assert isinstance(job.target.sessions, NoSessions)
    result = job.run("src.test/team/app:v1", cache.get_ref("src.test/team/app:v1"))
    assert result["changed"] is True and client.repo("prod/app").tags["v1"] == index.digest
    assert cache.sources(layer) == before == ["src.test/team/app"]
    assert not (tmp_path / "cache" / ".imagepusher" / "uploads").exists()


def test_mirror_shares_one_store_and_one_engine_between_its_pull_and_push(cache):
    source_client, target_client = FakeRegistryClient("src.test"), FakeRegistryClient()
    job = _copy.mirror(source_client, SOURCE, target_client, TARGET, cache, concurrency=2, chunk_size=512)
    assert job.pull.source.client is source_client and job.push.target.client is target_client
    assert job.pull.cache is job.push.store and job.push.store.cache is cache
    assert job.pull.engine is job.push.engine is job.engine
    assert job.push.record is True and isinstance(job.push.target.sessions, UploadSessions)
    assert job.push.target.chunk_size == 512 and job.push.target.reference == TARGET


def entry(platforms=None):
    return {"source_username": "alice", "source_password": "s3cret", "source_plain_http": False,
            "target_username": None, "target_password": None, "target_plain_http": True, "platforms": platforms}


class Clients:
    """client_for(reference, username, password, plain_http) over one fake client per registry."""

    def __init__(self, *clients):
        self.clients = dict((c.registry, c) for c in clients)
        self.asked = []

    def __call__(self, reference, username, password, plain_http):
        self.asked.append((reference.registry, username, plain_http))
        return self.clients[reference.registry]


def two_images():
    store = Store()
    first, second = store.image("amd64", [b"first app"]), store.image("amd64", [b"second app"])
    source = FakeRegistryClient("src.test")
    source.publish("team/one", "v1", store, first)
    source.publish("team/two", "v1", store, second)
    return source, first, second


def test_mirror_images_mirrors_each_entry_and_sums_the_results(cache):
    source, first, second = two_images()
    target = FakeRegistryClient()
    clients = Clients(source, target)
    images = [(ImageReference.parse("src.test/team/one:v1"), ImageReference.parse("reg.test/prod/one:v1"), entry()),
              (ImageReference.parse("src.test/team/two:v1"), ImageReference.parse("reg.test/prod/two:v1"), entry())]
    result = _copy.mirror_images(images, clients, cache, concurrency=2)
    assert result["changed"] is True and [r["digest"] for r in result["images"]] == [first.digest, second.digest]
    assert all("diff" not in r for r in result["images"])
    assert result["bytes_downloaded"] == sum(r["bytes_downloaded"] for r in result["images"]) > 0
    assert result["bytes_uploaded"] == sum(r["bytes_uploaded"] for r in result["images"]) > 0
    assert result["diff"] == {"before": {"reg.test/prod/one:v1": None, "reg.test/prod/two:v1": None},
                              "after": {"reg.test/prod/one:v1": first.digest, "reg.test/prod/two:v1": second.digest}}
    assert clients.asked[:2] == [("src.test", "alice", False), ("reg.test", None, True)]
    again = _copy.mirror_images(images, clients, cache)
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"]


def test_mirror_images_in_check_mode_moves_nothing(cache):
    source, _first, _second = two_images()
    target = FakeRegistryClient()
    images = [(ImageReference.parse("src.test/team/one:v1"), ImageReference.parse("reg.test/prod/one:v1"), entry())]
    result = _copy.mirror_images(images, Clients(source, target), cache, check_mode=True)
    assert result["changed"] is True and result["bytes_uploaded"] > 0
    assert target.seen("put_manifest", "start_upload") == [] and not cache.exists()


def test_a_failure_names_its_entry_and_carries_the_images_mirrored_before_it(cache):
    source, first, _second = two_images()
    target = FakeRegistryClient()
    images = [(ImageReference.parse("src.test/team/one:v1"), ImageReference.parse("reg.test/prod/one:v1"), entry()),
              (ImageReference.parse("src.test/team/gone:v1"), ImageReference.parse("reg.test/prod/gone:v1"), entry()),
              (ImageReference.parse("src.test/team/two:v1"), ImageReference.parse("reg.test/prod/two:v1"), entry())]
    with pytest.raises(NotFoundError) as info:
        _copy.mirror_images(images, Clients(source, target), cache)
    error = info.value
    assert error.message.startswith("images[1] (src.test/team/gone:v1 -> reg.test/prod/gone:v1): image ")
    assert error.status == 404 and error.details["status"] == 404
    assert [r["target"] for r in error.details["images"]] == ["reg.test/prod/one:v1"]
    assert error.details["images"][0]["digest"] == first.digest
    assert error.details["changed"] is True  # images[0] was mirrored: the failed task changed its target
    assert not [c for c in target.calls if c[1] == "prod/two"]  # the run stopped at the failure


def test_a_foreign_layer_is_neither_read_nor_pushed_and_the_digest_is_kept(cache):
    import json
    from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
    from tests.unit.plugins.module_utils.tree_builders import desc
    store = Store()
    image = store.image("amd64", [b"ordinary layer"])
    document = json.loads(image.raw)
    foreign = desc(mt.DOCKER_FOREIGN_LAYER, b"windows base", urls=["https://example.test/base"])
    document["layers"].insert(0, foreign)
    image = store.add(json.dumps(document).encode())
    source, target = FakeRegistryClient("src.test"), FakeRegistryClient()
    source.publish("team/app", "v1", store, image)  # the source lacks the foreign blob, as a registry may
    result = _copy.mirror(source, SOURCE, target, TARGET, cache).run(SOURCE)
    assert result["changed"] is True and result["digest"] == image.digest
    assert target.repo("prod/app").tags["v1"] == image.digest
    assert foreign["digest"] not in target.repo("prod/app").blobs
    assert foreign["digest"] not in [b["digest"] for b in result["blobs"]]
    assert not [c for c in source.calls if c[2] == foreign["digest"]]  # never asked for
    assert _copy.mirror(source, SOURCE, target, TARGET, cache).run(SOURCE)["changed"] is False
    pushed = _copy.push(FakeRegistryClient(), TARGET, cache).run(str(SOURCE), cache.get_ref(str(SOURCE)))
    assert pushed["changed"] is True and pushed["digest"] == image.digest


def test_images_in_parallel_keep_the_list_order_and_a_failure_says_what_the_others_did(cache):
    source, first, second = two_images()
    target = FakeRegistryClient()
    images = [(ImageReference.parse("src.test/team/one:v1"), ImageReference.parse("reg.test/prod/one:v1"), entry()),
              (ImageReference.parse("src.test/team/two:v1"), ImageReference.parse("reg.test/prod/two:v1"), entry())]
    result = _copy.mirror_images(images, Clients(source, target), cache, concurrency=2, image_concurrency=2)
    assert [r["digest"] for r in result["images"]] == [first.digest, second.digest]
    failing = images[:1] + [(ImageReference.parse("src.test/team/gone:v1"),
                             ImageReference.parse("reg.test/prod/gone:v1"), entry())] + images[1:]
    with pytest.raises(NotFoundError) as info:
        _copy.mirror_images(failing, Clients(source, target), cache, image_concurrency=1)
    error = info.value
    assert error.message.startswith("images[1] (src.test/team/gone:v1 -> reg.test/prod/gone:v1): ")
    assert error.message.endswith("(entries: 1 done, 1 failed, 1 not started)")
    assert [s["state"] for s in error.details["image_states"]] == ["done", "failed", "not started"]
    assert error.details["image_states"][1]["target"] == "reg.test/prod/gone:v1"
    assert "msg" in error.details["image_states"][1]
    assert [r["target"] for r in error.details["images"]] == ["reg.test/prod/one:v1"]
