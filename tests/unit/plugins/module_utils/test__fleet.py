# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._fleet import AnotherImageUploads, Fleet
from ansible_collections.imagepusher.registry.plugins.module_utils._handoff import Handoff

DIGEST = "sha256:" + "a" * 64


class Store:
    """The StoreEndpoint calls a fleet wraps: put_blob downloads (slowly), counted."""

    def __init__(self, fleet=None):
        self.downloads = 0
        self.held = set()
        self.fleet = fleet
        self.most_at_once = 0
        self._now = 0
        self._lock = threading.Lock()
        self.root = "/cache"

    def partial_size(self, digest):
        return 0

    def blob_exists(self, digest, size=None):
        return digest in self.held

    def put_blob(self, digest, size, source, tee=None, on_bytes=None):
        with self._lock:
            self.downloads += 1
            self._now += 1
            self.most_at_once = max(self.most_at_once, self._now)
        time.sleep(0.05)
        if source == "broken":
            with self._lock:
                self._now -= 1
            raise IOError("the download failed")
        with self._lock:
            self._now -= 1
            self.held.add(digest)
        return _plan.DOWNLOADED, size


class Target:
    def __init__(self, repository, log, registry="reg.test"):
        self.registry, self.repository, self.log = registry, repository, log

    def put_blob(self, digest, size, store, mount_from=(), on_bytes=None):
        time.sleep(0.02)
        self.log.append((self.repository, tuple(mount_from)))
        return (_plan.MOUNTED, 0) if mount_from else (_plan.UPLOADED, size)

    def stream_blob(self, digest, size, handoff):
        self.log.append((self.repository, "stream"))
        return size


def in_threads(calls):
    results = [None] * len(calls)
    threads = [threading.Thread(target=lambda n=n, call=call: results.__setitem__(n, call()))
               for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_blob_several_images_need_is_downloaded_once():
    fleet, store = Fleet(4), Store()
    wrapped = [fleet.store(store) for _n in range(5)]
    results = in_threads([lambda w=w: w.put_blob(DIGEST, 10, "source") for w in wrapped])
    assert store.downloads == 1
    assert sorted(results) == [(_plan.CACHED, 0)] * 4 + [(_plan.DOWNLOADED, 10)]


def test_a_failed_download_is_taken_over_by_the_next_image():
    fleet, store = Fleet(4), Store()
    with pytest.raises(IOError):
        fleet.store(store).put_blob(DIGEST, 10, "broken")
    assert fleet.store(store).put_blob(DIGEST, 10, "source") == (_plan.DOWNLOADED, 10)
    assert store.downloads == 2


def test_concurrency_bounds_the_transfers_of_all_images():
    fleet, store = Fleet(2), Store()
    digests = ["sha256:%064d" % n for n in range(6)]
    in_threads([lambda d=d: fleet.store(store).put_blob(d, 1, "source") for d in digests])
    assert store.downloads == 6 and store.most_at_once == 2


def test_a_blob_is_uploaded_once_per_registry_and_mounted_into_the_other_repositories():
    fleet, log = Fleet(4), []
    targets = [fleet.target(Target(repo, log)) for repo in ("team/a", "team/b", "team/c")]
    targets.append(fleet.target(Target("team/a", log, registry="other.test")))
    results = in_threads([lambda t=t: t.put_blob(DIGEST, 10, None) for t in targets])
    uploads = [entry for entry in log if entry[1] == ()]
    assert len(uploads) == 2  # one per registry
    mounts = [entry for entry in log if entry[1] not in ((), "stream")]
    assert len(mounts) == 2 and all(len(set(m[1])) == 1 and m[1][0] != m[0] for m in mounts)
    assert sorted(r[0] for r in results) == [_plan.MOUNTED, _plan.MOUNTED, _plan.UPLOADED, _plan.UPLOADED]


def test_a_second_tag_of_the_same_repository_finds_the_blob_there():
    fleet, log = Fleet(4), []
    first, second = fleet.target(Target("team/a", log)), fleet.target(Target("team/a", log))
    assert first.put_blob(DIGEST, 10, None) == (_plan.UPLOADED, 10)
    assert second.put_blob(DIGEST, 10, None) == (_plan.EXISTS, 0)
    assert log == [("team/a", ())]


def test_a_stream_never_waits_for_another_image():
    fleet, log = Fleet(4), []
    claim, mine = fleet.claim(("upload", "reg.test", DIGEST), "team/a")
    assert mine
    handoff = Handoff(10)
    with pytest.raises(AnotherImageUploads):
        fleet.target(Target("team/b", log)).stream_blob(DIGEST, 10, handoff)
    handoff.offer(0, memoryview(b"0123456789"))
    handoff.wait_sent()  # returns at once: the stream was given up
    assert log == []
    claim.finish(True)


def test_a_blob_another_image_downloads_is_not_streamed_again():
    fleet, store = Fleet(4), Store()
    wrapped = fleet.store(store)
    assert wrapped.partial_size(DIGEST) == 0
    claim, _mine = fleet.claim(("download", DIGEST))
    assert wrapped.partial_size(DIGEST) == 1
    claim.finish(True)
    assert wrapped.partial_size(DIGEST) == 0
    assert wrapped.root == "/cache"  # everything else is the store's


def test_tags_of_one_repository_mount_a_blob_uploaded_elsewhere_once():
    # Distribution rewrites the repository's blob link on each mount: a second, concurrent mount
    # made a manifest PUT of another tag fail with DIGEST_INVALID (seen in CI).
    fleet, log = Fleet(4), []
    uploader = fleet.target(Target("team/a", log))
    tags = [fleet.target(Target("team/b", log)) for _n in range(4)]
    claim, mine = fleet.claim(("upload", "reg.test", DIGEST), "team/a")
    assert mine
    waiting = threading.Thread(target=lambda: (time.sleep(0.05), claim.finish(True)))
    waiting.start()
    results = in_threads([lambda t=t: t.put_blob(DIGEST, 10, None) for t in tags])
    waiting.join()
    assert log == [("team/b", ("team/a",))]
    assert sorted(r[0] for r in results) == [_plan.EXISTS] * 3 + [_plan.MOUNTED]
    assert uploader.put_blob(DIGEST, 10, None) == (_plan.EXISTS, 0)


def test_a_blob_an_image_of_the_task_put_into_a_repository_is_known_there_without_a_request():
    fleet, log = Fleet(4), []
    uploader, same_repo = fleet.target(Target("team/a", log)), fleet.target(Target("team/a", log))
    other_repo, other_registry = fleet.target(Target("team/b", log)), fleet.target(Target("team/a", log, "other.test"))
    assert not any(t.blob_known(DIGEST) for t in (uploader, same_repo, other_repo, other_registry))
    claim, _mine = fleet.claim(("upload", "reg.test", DIGEST), "team/a")
    assert not same_repo.blob_known(DIGEST)  # still uploading: it may fail
    claim.finish(True)
    assert same_repo.blob_known(DIGEST) and uploader.blob_known(DIGEST)
    assert not other_repo.blob_known(DIGEST) and not other_registry.blob_known(DIGEST)
    assert other_repo.put_blob(DIGEST, 10, None) == (_plan.MOUNTED, 0)  # mounted from team/a ...
    assert fleet.target(Target("team/b", log)).blob_known(DIGEST)  # ... and known there from then on
    failed, _mine = fleet.claim(("upload", "reg.test", "sha256:" + "b" * 64), "team/a")
    failed.finish(False)
    assert not same_repo.blob_known("sha256:" + "b" * 64)


class Manifest:
    def __init__(self, digest):
        self.digest = digest


class ManifestTarget(Target):
    def put_manifest(self, ref, manifest):
        time.sleep(0.02)
        self.log.append((self.repository, "put", ref))


def test_a_platform_manifest_two_tags_share_is_pushed_once_per_repository_and_each_tag_once():
    # Tags 1.2 and 1.2.3 of one multi-platform image: Distribution rewrites the manifest's link on each
    # PUT, and the other tag's index PUT reads it to verify its platforms.
    fleet, log = Fleet(4), []
    child = Manifest("sha256:" + "c" * 64)
    tags = [fleet.target(ManifestTarget("team/a", log)) for _n in range(3)]
    other = fleet.target(ManifestTarget("team/b", log))
    in_threads([lambda t=t: t.put_manifest(child.digest, child) for t in tags + [other]])
    assert sorted(log) == [("team/a", "put", child.digest), ("team/b", "put", child.digest)]
    index = Manifest("sha256:" + "d" * 64)
    in_threads([lambda t=t, tag=tag: t.put_manifest(tag, index) for t, tag in zip(tags, ("1.2", "1.2.3", "1"))])
    assert sorted(entry[2] for entry in log if entry[2] != child.digest) == ["1", "1.2", "1.2.3"]
