# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_engine: executing plans between in-memory endpoints (no HTTP, no disk)."""

import threading

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Engine, Events
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import DigestMismatchError, TransportError

from tests.unit.plugins.module_utils.memory_endpoints import MemoryRegistry, MemoryStore, blob

DATA = [b"config", b"first layer " * 50, b"second layer " * 80]


@pytest.fixture(autouse=True)
def stream_small_blobs(monkeypatch):
    """Blobs of a few hundred bytes stand for big ones here: let them stream as those do."""
    monkeypatch.setattr(_plan, "STREAM_MIN", 0)


class Recorder(Events):
    def __init__(self):
        self.lock = threading.Lock()
        self.seen = []

    def blob_started(self, step):
        with self.lock:
            self.seen.append(("started", step.digest))

    def bytes_moved(self, step, count):
        with self.lock:
            self.seen.append(("bytes", step.digest, count))

    def blob_finished(self, step, outcome):
        with self.lock:
            self.seen.append(("finished", step.digest, outcome.action))


class FlatTree:
    def __init__(self, data):
        self.blobs = [blob(d) for d in data]
        self.manifests = []


def plans(tree, cache, target, mounts=None):
    fetches = _plan.plan_fetches(tree, set(d for d in cache.blobs), {})
    sends = _plan.plan_sends(tree, set(target.blobs), mounts or {})
    return _plan.Plan(tree, fetches=fetches, sends=sends)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_fetch_brings_every_missing_blob_into_the_store_and_reports_it(concurrency):
    tree, source, cache, events = FlatTree(DATA), MemoryRegistry(DATA), MemoryStore([DATA[0]]), Recorder()
    plan = plans(tree, cache, MemoryRegistry())
    outcomes = Engine(concurrency, events).fetch(plan.fetches, source, cache)
    assert sorted(outcomes) == sorted(b.digest for b in tree.blobs[1:])
    assert all(o == _plan.Outcome(_plan.DOWNLOADED, b.size) for b, o in zip(tree.blobs[1:], (
        outcomes[tree.blobs[1].digest], outcomes[tree.blobs[2].digest])))
    assert [cache.blobs[b.digest] for b in tree.blobs] == DATA
    assert not [c for c in source.calls if c[1] == tree.blobs[0].digest]  # the cached one is not read
    digest = tree.blobs[2].digest
    moved = sum(e[2] for e in events.seen if e[0] == "bytes" and e[1] == digest)
    assert moved == len(DATA[2])
    assert ("finished", digest, _plan.DOWNLOADED) in events.seen


def test_fetch_skips_what_is_already_done():
    tree, source, cache = FlatTree(DATA), MemoryRegistry(DATA), MemoryStore()
    plan = plans(tree, cache, MemoryRegistry())
    done = {tree.blobs[0].digest: _plan.Outcome(_plan.DOWNLOADED, 6)}
    outcomes = Engine(2).fetch(plan.fetches, source, cache, done=done)
    assert outcomes[tree.blobs[0].digest] == _plan.Outcome(_plan.DOWNLOADED, 6)
    assert not [c for c in source.calls if c[1] == tree.blobs[0].digest]


def test_send_mounts_first_uploads_what_cannot_be_mounted_and_leaves_what_exists():
    tree, store = FlatTree(DATA), MemoryStore(DATA)
    config, first, second = tree.blobs
    target = MemoryRegistry([DATA[0]], mountable={first.digest})
    plan = plans(tree, store, target, mounts={first.digest: ["a/b"], second.digest: ["c/d"]})
    outcomes = Engine(2).send(plan.sends, store, target)
    assert outcomes == {first.digest: _plan.Outcome(_plan.MOUNTED, 0),
                        second.digest: _plan.Outcome(_plan.UPLOADED, second.size)}
    assert ("upload", second.digest) in target.calls and ("mount", second.digest, "c/d") in target.calls
    assert target.blobs[second.digest] == DATA[2]
    assert not [c for c in target.calls if c[1] == config.digest]


def test_send_reports_the_bytes_an_upload_sends():
    tree, store = FlatTree(DATA), MemoryStore(DATA)
    target, events = MemoryRegistry([DATA[0]]), Recorder()
    plan = plans(tree, store, target)
    Engine(1, events).send(plan.sends, store, target)
    _config, first, second = tree.blobs
    assert ("bytes", first.digest, first.size) in events.seen and ("bytes", second.digest, second.size) in events.seen


def test_copy_streams_fresh_blobs_and_sends_cached_ones_from_the_store():
    tree, source, cache = FlatTree(DATA), MemoryRegistry(DATA), MemoryStore([DATA[1]])
    target = MemoryRegistry([DATA[0]])
    plan = plans(tree, cache, target)
    fetched, sent = Engine(2).copy(plan.pairs(), source, cache, target)
    config, first, second = tree.blobs
    assert ("stream", second.digest) in target.calls and ("upload", second.digest) not in target.calls
    assert ("upload", first.digest) in target.calls  # the cache had it: uploaded from there
    assert sent == {first.digest: _plan.Outcome(_plan.UPLOADED, first.size),
                    second.digest: _plan.Outcome(_plan.UPLOADED, second.size)}
    # The blob the target has is still written through the cache, as a pull would leave it.
    assert fetched[config.digest] == _plan.Outcome(_plan.DOWNLOADED, config.size)
    assert [target.blobs[b.digest] for b in tree.blobs] == DATA and cache.blobs[second.digest] == DATA[2]
    assert len([c for c in source.calls if c[0] == "get"]) == 2  # each blob read from the network once


def test_a_broken_stream_is_uploaded_from_the_cache_once_the_download_verified():
    tree, source, cache = FlatTree(DATA), MemoryRegistry(DATA), MemoryStore()
    second = tree.blobs[2]
    target = MemoryRegistry(fail_stream={second.digest})
    _fetched, sent = Engine(1).copy(plans(tree, cache, target).pairs(), source, cache, target)
    calls = [c for c in target.calls if c[1] == second.digest]
    assert calls == [("stream", second.digest), ("upload", second.digest)]
    assert target.blobs[second.digest] == DATA[2] and sent[second.digest].action == _plan.UPLOADED


def test_a_corrupt_download_fails_the_copy_and_the_target_never_gets_the_blob():
    tree = FlatTree(DATA)
    second = tree.blobs[2]
    source, cache, target = MemoryRegistry(DATA, corrupt={second.digest}), MemoryStore(), MemoryRegistry()
    with pytest.raises(DigestMismatchError):
        Engine(2).copy(plans(tree, cache, target).pairs(), source, cache, target)
    assert second.digest not in target.blobs and second.digest not in cache.blobs


def test_the_first_failure_is_raised_after_every_started_step_ran_to_its_end():
    tree = FlatTree(DATA)
    source = MemoryRegistry(DATA, fail_download={tree.blobs[1].digest})
    cache = MemoryStore()
    with pytest.raises(TransportError):
        Engine(2).fetch(plans(tree, cache, MemoryRegistry()).fetches, source, cache)
    assert tree.blobs[2].digest in cache.blobs  # the step after the failure still ran


def test_fetch_runs_at_most_concurrency_downloads_at_once():
    data = [b"blob %d " % i * 100 for i in range(8)]
    tree, cache = FlatTree(data), MemoryStore()
    running, peak, lock = [0], [0], threading.Lock()
    gate = threading.Event()

    class Slow(MemoryRegistry):
        def opener(self, digest):
            open_at, budget = MemoryRegistry.opener(self, digest)

            def slow(offset):
                with lock:
                    running[0] += 1
                    peak[0] = max(peak[0], running[0])
                gate.wait(0.05)
                with lock:
                    running[0] -= 1
                return open_at(offset)
            return slow, budget

    Engine(3).fetch(plans(tree, cache, MemoryRegistry()).fetches, Slow(data), cache)
    assert peak[0] == 3 and len(cache.blobs) == 8
