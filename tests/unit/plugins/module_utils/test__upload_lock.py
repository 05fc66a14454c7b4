# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_upload_lock: one upload of a blob to a repository at a time, across runs sharing a cache.

Two runs are two threads here: each UploadLock opens its own lock file descriptor, and flock
conflicts between descriptors as it does between processes. The two-process case against a
real registry is in tests/integration/test_push_coordination.py.
"""

import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint, StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._upload_lock import NoUploadLock, UploadLock
from tests.unit.plugins.module_utils.fake_registry import FakeRegistryClient

TARGET = ImageReference.parse("reg.test/prod/app:v1")
DATA = b"layer bytes " * 300
DIGEST = of_bytes(DATA)
OTHER = of_bytes(b"other")


@pytest.fixture
def cache(tmp_path):
    return Cache(str(tmp_path / "cache")).ensure()


def waits_for(cache, first, second, hold=0.3):
    """Seconds the `second` (target, digest) lock waited while another holder kept `first` for `hold` s."""
    taken = threading.Event()

    def holder():
        with UploadLock(cache, *first):
            taken.set()
            time.sleep(hold)
    thread = threading.Thread(target=holder)
    thread.start()
    taken.wait(5)
    started = time.monotonic()
    with UploadLock(cache, *second) as lock:
        waited = time.monotonic() - started
        assert lock.waited is (first == second)  # what the push reads: only the same lock was held by another
    thread.join()
    return waited


def test_the_same_blob_to_the_same_repository_waits(cache):
    assert waits_for(cache, ("reg.test/prod/app", DIGEST), ("reg.test/prod/app", DIGEST)) >= 0.25


def test_another_blob_or_another_repository_does_not_wait(cache):
    assert waits_for(cache, ("reg.test/prod/app", DIGEST), ("reg.test/prod/app", OTHER)) < 0.2
    assert waits_for(cache, ("reg.test/prod/app", DIGEST), ("reg.test/prod/other", DIGEST)) < 0.2
    assert waits_for(cache, ("reg.test/prod/app", DIGEST), ("other.test/prod/app", DIGEST)) < 0.2


def test_a_cache_without_a_writable_lock_directory_pushes_without_the_lock():
    class ReadOnly:
        def lock(self, name):
            raise CacheError("cache_dir is not writable")
    with UploadLock(ReadOnly(), "reg.test/prod/app", DIGEST) as lock:
        assert lock.waited is False  # nothing taken: the push goes on at once and asks no HEAD
    with NoUploadLock() as lock:
        assert lock.waited is False


def test_a_layout_we_only_read_takes_no_lock(cache):
    assert isinstance(StoreEndpoint(cache, keeps_sessions=False).upload_lock("reg.test/prod/app", DIGEST),
                      NoUploadLock)
    assert isinstance(StoreEndpoint(cache).upload_lock("reg.test/prod/app", DIGEST), UploadLock)


def test_a_blob_another_run_sent_while_this_one_waited_is_not_sent_again(cache):
    cache.write_blob_bytes(DIGEST, DATA)
    client = FakeRegistryClient()
    store = StoreEndpoint(cache)
    target = RegistryEndpoint(client, TARGET, writable=True)
    taken, release = threading.Event(), threading.Event()

    def other_run():  # holds the lock, "uploads" the blob, lets go
        with store.upload_lock(target.name, DIGEST):
            taken.set()
            release.wait(5)
            client.repo("prod/app").blobs[DIGEST] = DATA
    thread = threading.Thread(target=other_run)
    thread.start()
    taken.wait(5)
    timer = threading.Timer(0.2, release.set)
    timer.start()
    assert target.put_blob(DIGEST, len(DATA), store, mount_from=("team/a",)) == (_plan.EXISTS, 0)
    thread.join()
    assert client.seen("mount_blob", "start_upload", "upload_chunk") == []  # neither mounted nor uploaded


def test_without_another_run_the_blob_is_uploaded_once_and_asked_for_by_nobody(cache):
    """A lock taken at once: the planner's HEAD just said the blob is missing, so no HEAD again."""
    cache.write_blob_bytes(DIGEST, DATA)
    client = FakeRegistryClient()
    target = RegistryEndpoint(client, TARGET, writable=True)
    assert target.put_blob(DIGEST, len(DATA), StoreEndpoint(cache)) == (_plan.UPLOADED, len(DATA))
    assert [c[0] for c in client.seen("head_blob", "start_upload", "finish_upload")] == [
        "start_upload", "finish_upload"]


def test_a_blob_another_run_sent_after_this_one_planned_is_not_sent_again(cache):
    """The lock is free again when this run takes it, but an upload finished under it since this run
    started: the planner's HEAD may predate it. Sending again would make Distribution rewrite the
    repository's link while the other run's manifest PUT reads it (DIGEST_INVALID, seen in CI)."""
    cache.write_blob_bytes(DIGEST, DATA)
    client = FakeRegistryClient()
    store = StoreEndpoint(cache)
    target = RegistryEndpoint(client, TARGET, writable=True)
    with store.upload_lock(target.name, DIGEST) as lock:  # the other run, done before this one asks
        assert not lock.waited
        client.repo("prod/app").blobs[DIGEST] = DATA
    assert target.put_blob(DIGEST, len(DATA), store) == (_plan.EXISTS, 0)
    assert [c[0] for c in client.seen("head_blob", "start_upload")] == ["head_blob"]


def test_an_upload_before_this_run_started_or_a_failed_one_costs_no_head(cache, monkeypatch):
    from ansible_collections.imagepusher.registry.plugins.module_utils import _upload_lock
    with UploadLock(cache, "reg.test/prod/app", DIGEST):
        pass  # an upload finished under the lock: its time is noted in the lock file
    monkeypatch.setattr(_upload_lock, "_RUN_STARTED", time.time() + 60)  # ... before this run started
    with UploadLock(cache, "reg.test/prod/app", DIGEST) as lock:
        assert not lock.waited
    monkeypatch.setattr(_upload_lock, "_RUN_STARTED", time.time() - 60)
    with pytest.raises(IOError):
        with UploadLock(cache, "reg.test/prod/app", OTHER):
            raise IOError("the upload failed")
    with UploadLock(cache, "reg.test/prod/app", OTHER) as lock:
        assert not lock.waited  # a failed upload leaves no note
    with UploadLock(cache, "reg.test/prod/app", DIGEST) as lock:
        assert lock.waited  # the note of the first upload, after this run started
