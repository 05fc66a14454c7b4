# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_relay_mirror: registry -> registry with no cache (cache: false), against two in-memory registry clients."""

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _copy
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import DigestMismatchError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._relay_mirror import RelayMirror

from tests.unit.plugins.module_utils.fake_registry import FakeRegistryClient
from tests.unit.plugins.module_utils.tree_builders import Store, multiarch

SOURCE = ImageReference.parse("src.test/team/app:v1")
TARGET = ImageReference.parse("reg.test/prod/app:v1")
WRITES = ("put_manifest", "start_upload", "upload_chunk", "finish_upload", "mount_blob")


class Setup:
    def __init__(self):
        self.store, self.index, self.children = multiarch()
        self.source = FakeRegistryClient("src.test")
        self.source.publish("team/app", "v1", self.store, self.index)
        self.target = FakeRegistryClient("reg.test")
        self.size = sum(len(b) for b in self.store.blobs.values())

    def mirror(self, check_mode=False):
        copy = _copy.mirror(self.source, SOURCE, self.target, TARGET, None, 2)
        assert isinstance(copy, RelayMirror)
        return copy.run(SOURCE, check_mode=check_mode)


def test_check_mode_reports_the_bytes_and_writes_nothing():
    s = Setup()
    result = s.mirror(check_mode=True)
    assert result["changed"] is True and result["cached"] is False
    assert result["bytes_downloaded"] == result["bytes_uploaded"] == s.size
    assert not s.target.seen(*WRITES) and not s.source.seen("open_blob")


def test_a_mirror_relays_every_blob_once_and_keeps_nothing():
    s = Setup()
    result = s.mirror()
    assert result["changed"] is True and result["cached"] is False and result["cache_name"] == "src.test/team/app:v1"
    assert result["digest"] == result["source_digest"] == s.index.digest
    assert result["bytes_downloaded"] == result["bytes_uploaded"] == s.size
    assert set(b["action"] for b in result["blobs"]) == {"uploaded"}
    assert [m["digest"] for m in result["manifests"]] == [c.digest for c in s.children] + [s.index.digest]
    assert sorted(c[2] for c in s.source.seen("open_blob")) == sorted(s.store.blobs)
    repo = s.target.repo("prod/app")
    assert repo.blobs == s.store.blobs and repo.tags["v1"] == s.index.digest
    assert result["diff"]["before"]["digest"] is None and result["diff"]["after"]["digest"] == s.index.digest


def test_a_second_mirror_costs_one_head_on_each_side():
    s = Setup()
    s.mirror()
    s.source.calls, s.target.calls = [], []
    result = s.mirror()
    assert result["changed"] is False and result["bytes_downloaded"] == result["bytes_uploaded"] == 0
    assert s.source.calls == [("head_manifest", "team/app", "v1")]
    assert s.target.calls == [("head_manifest", "prod/app", "v1")]


def test_a_blob_the_target_has_is_not_read():
    s = Setup()
    shared = sorted(s.store.blobs)[0]
    s.target.repo("prod/app").blobs[shared] = s.store.blobs[shared]
    result = s.mirror()
    assert shared not in [c[2] for c in s.source.seen("open_blob")]
    assert result["bytes_downloaded"] == s.size - len(s.store.blobs[shared])


def test_a_lying_source_fails_and_the_target_gets_no_tag():
    s = Setup()
    victim = max(s.store.blobs, key=lambda d: len(s.store.blobs[d]))
    data = s.source.repo("team/app").blobs[victim]
    s.source.repo("team/app").blobs[victim] = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(DigestMismatchError) as info:
        s.mirror()
    assert victim in info.value.message
    assert "v1" not in s.target.repo("prod/app").tags and victim not in s.target.repo("prod/app").blobs
    assert s.target.seen("cancel_upload") and not s.target.uploads  # its session was abandoned
    assert info.value.details["changed"] is True  # the other blobs did go up


def test_a_single_platform_config_read_to_plan_is_not_read_again():
    store = Store()
    image = store.image("amd64", [b"a layer", b"another layer"])
    source, target = FakeRegistryClient("src.test"), FakeRegistryClient("reg.test")
    source.publish("team/app", "v1", store, image)
    result = _copy.mirror(source, SOURCE, target, TARGET, None, 2).run(SOURCE)
    assert result["digest"] == image.digest and target.repo("prod/app").blobs == store.blobs
    config = image.config.digest
    reads = [c[2] for c in source.seen("open_blob", "get_small_blob")]
    assert reads.count(config) == 1 and sorted(reads) == sorted(store.blobs)
    assert result["bytes_downloaded"] == result["bytes_uploaded"] == sum(len(b) for b in store.blobs.values())
