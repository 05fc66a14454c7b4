# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import json
import os
import threading

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _cache
from ansible_collections.imagepusher.registry.plugins.module_utils import _group_commit
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import REF_NAME, Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError, MissingBlobError


class Writer:
    """An apply() that records each batch; the first batch waits until `release` is set, so others queue."""

    def __init__(self, hold_first=True):
        self.batches = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, changes):
        self.batches.append(list(changes))
        self.started.set()
        self.release.wait(10)
        return [change * 10 if change >= 0 else ValueError("refused %d" % change) for change in changes]


def run_parallel(path, writer, changes, first_alone=True):
    """Commit each change from a thread of its own; (results by change, errors by change)."""
    lock = threading.Lock()
    results, errors = {}, {}

    def one(change):
        try:
            results[change] = _group_commit.commit(path, lambda: lock, change, writer)
        except Exception as exc:  # noqa: broad: recorded for the test to assert on
            errors[change] = exc

    threads = [threading.Thread(target=one, args=(c,)) for c in changes]
    threads[0].start()
    if first_alone:
        assert writer.started.wait(10)  # the first caller writes alone, holding the lock
    for thread in threads[1:]:
        thread.start()
    while len(_group_commit.queue_for(path).tickets) < len(changes) - 1 and first_alone:
        threading.Event().wait(0.01)  # every other change is queued behind the lock
    writer.release.set()
    for thread in threads:
        thread.join(10)
    return results, errors


def test_one_caller_applies_its_own_change_and_gets_its_result(tmp_path):
    writer = Writer(hold_first=False)
    assert _group_commit.commit(str(tmp_path / "a.lock"), threading.Lock, 4, writer) == 40
    assert writer.batches == [[4]]


def test_changes_queued_behind_a_write_are_written_together_each_caller_getting_its_own_result(tmp_path):
    writer = Writer()
    results, errors = run_parallel(str(tmp_path / "b.lock"), writer, [1, 2, 3, 4, 5])
    assert errors == {}
    assert results == {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}
    assert writer.batches[0] == [1]
    assert sorted(writer.batches[1]) == [2, 3, 4, 5]  # one write for the four that waited
    assert len(writer.batches) == 2


def test_a_change_refused_fails_only_its_own_caller(tmp_path):
    writer = Writer()
    results, errors = run_parallel(str(tmp_path / "c.lock"), writer, [1, -2, 3])
    assert results == {1: 10, 3: 30}
    assert list(errors) == [-2] and str(errors[-2]) == "refused -2"


def test_a_failed_write_fails_every_change_of_its_batch_and_no_later_one(tmp_path):
    calls = []

    def failing_once(changes):
        calls.append(list(changes))
        if len(calls) == 1:
            raise OSError("disk full")
        return [c for c in changes]

    path = str(tmp_path / "d.lock")
    with pytest.raises(OSError):
        _group_commit.commit(path, threading.Lock, 1, failing_once)
    assert _group_commit.commit(path, threading.Lock, 2, failing_once) == 2
    assert calls == [[1], [2]]  # the failed change is not queued again
    assert _group_commit.queue_for(path).tickets == []


def test_queues_are_per_lock_file(tmp_path):
    assert _group_commit.queue_for(str(tmp_path / "x")) is _group_commit.queue_for(str(tmp_path / "x"))
    assert _group_commit.queue_for(str(tmp_path / "x")) is not _group_commit.queue_for(str(tmp_path / "y"))


# -- the cache's name files, through it ---------------------------------------------------------------------------

def descriptor(raw):
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": of_bytes(raw), "size": len(raw)}


def count_writes(monkeypatch):
    writes = []
    real = _cache.atomic_write

    def counted(path, data, root=None):
        writes.append(os.path.basename(path))
        return real(path, data, root)
    monkeypatch.setattr(_cache, "atomic_write", counted)
    return writes


def parallel(calls):
    errors = []

    def guarded(call):
        try:
            call()
        except Exception as exc:  # noqa: broad: recorded for the test to assert on
            errors.append(exc)
    threads = [threading.Thread(target=guarded, args=(c,)) for c in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def test_names_set_by_many_threads_all_land_with_fewer_writes_when_they_queue(tmp_path, monkeypatch):
    cache = Cache(str(tmp_path / "cache")).ensure()
    writes = count_writes(monkeypatch)
    gate = threading.Event()
    real_entries = Cache.entries

    def slow_entries(self):  # the first writer reads slowly: the others queue behind it
        gate.wait(0.2)
        return real_entries(self)
    monkeypatch.setattr(Cache, "entries", slow_entries)
    names = ["reg.test/app%d:v1" % n for n in range(12)]
    assert parallel([lambda n=n: cache.set_ref(n, descriptor(n.encode())) for n in names]) == []
    assert sorted(e["annotations"][REF_NAME] for e in json.loads(open(os.path.join(cache.root, "index.json")).read())["manifests"]) == sorted(names)
    assert 1 <= writes.count("index.json") < len(names)


def test_a_name_whose_blob_vanished_fails_alone_within_its_batch(tmp_path):
    cache = Cache(str(tmp_path / "cache")).ensure()
    present = of_bytes(b"kept")
    cache.write_blob_bytes(present, b"kept")
    writer_results = cache._apply_refs([
        ("reg.test/a:v1", dict(descriptor(b"a"), annotations={REF_NAME: "reg.test/a:v1"}), (present,)),
        ("reg.test/b:v1", dict(descriptor(b"b"), annotations={REF_NAME: "reg.test/b:v1"}), (of_bytes(b"gone"),)),
        ("reg.test/a:v1", dict(descriptor(b"a"), annotations={REF_NAME: "reg.test/a:v1"}), ()),
    ])
    assert writer_results[0] is True
    assert isinstance(writer_results[1], MissingBlobError) and "reg.test/b:v1" in writer_results[1].message
    assert writer_results[2] is False  # the same name and entry again in one batch: no change
    assert [e["annotations"][REF_NAME] for e in cache.entries()] == ["reg.test/a:v1"]


def test_a_failed_index_write_is_a_cache_error_for_every_caller_of_the_batch(tmp_path, monkeypatch):
    cache = Cache(str(tmp_path / "cache")).ensure()

    def full(path, data, root=None):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(_cache, "atomic_write", full)
    errors = parallel([lambda n=n: cache.set_ref("reg.test/app%d:v1" % n, descriptor(b"%d" % n)) for n in range(4)])
    assert len(errors) == 4 and all(isinstance(e, CacheError) and "out of disk space" in e.message for e in errors)
    assert cache.entries() == []
