# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Relayed uploads: the source is a real HTTP server in this process (drops, short bodies, lies); the
target is an in-memory registry client whose sessions hold what was PATCHed, so a test sees exactly
which bytes went up, from where, and whether the PUT naming the digest was ever sent."""

import os
import re

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _upload
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    DigestMismatchError,
    NotFoundError,
    TransportError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._registry import RegistryClient
from ansible_collections.imagepusher.registry.plugins.module_utils._relay import RelayRewind, RelayStore
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import RetryBudget
from ansible_collections.imagepusher.registry.plugins.module_utils._sessions import NoSessions
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply, write_raw

MiB = 1024 * 1024
DATA = os.urandom(3 * MiB + 12345)
DIGEST = of_bytes(DATA)
SIZE = len(DATA)
SOURCE = ImageReference.parse("src.test/team/app:v1")
TARGET = ImageReference.parse("dst.test/team/app:v1")


class Source:
    """A blob server: each GET is answered by the next scripted fault (None: served honestly), with Range."""

    def __init__(self, *faults, data=DATA):
        self.faults = list(faults)
        self.data = data
        self.server = FakeServer(self.app)

    def app(self, request, handler):
        if not request.route.endswith("/blobs/" + DIGEST):
            return Reply(404, b'{"errors": [{"code": "BLOB_UNKNOWN"}]}')
        fault = self.faults.pop(0) if self.faults else None
        match = re.match(r"bytes=(\d+)-", request.headers.get("Range") or "")
        start = int(match.group(1)) if match and fault != "ignore-range" else 0
        body = self.data[start:]
        headers = {"Content-Type": "application/octet-stream"}
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(self.data) - 1, len(self.data))
        if fault == "404":
            return Reply(404, b'{"errors": [{"code": "BLOB_UNKNOWN"}]}')
        if isinstance(fault, tuple) and fault[0] == "drop":  # the promised length, then a cut after fault[1] bytes
            headers["Content-Length"] = str(len(body))
            write_raw(handler, status, headers, body[:fault[1]])
            return None
        if isinstance(fault, tuple) and fault[0] == "short":  # a clean answer that is simply shorter
            body = body[:fault[1]]
        return Reply(status, body, headers)

    def ranges(self):
        return [request.headers.get("Range") for request in self.server.requests]

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc_info):
        self.server.stop()


def endpoint(server, retries=3):
    transport = Transport(retries=retries, timeout=10, backoff_base=0, sleep=lambda _delay: None)
    client = RegistryClient(SOURCE.registry, transport, api_host=server.host, plain_http=True)
    return RegistryEndpoint(client, SOURCE)


class Target:
    """The RegistryClient calls of an upload, in memory. `drops`: per PATCH, None or the bytes after which the
    connection drops; `keeps`: what the registry keeps of a cut PATCH ("session": its acknowledged bytes, "all":
    every byte received, "nothing": Distribution 2.8, which loses the session)."""

    def __init__(self, drops=(), keeps="session", rewinds=0):
        self.drops = list(drops)
        self.rewinds = rewinds  # PATCHes answered 401 after their body: the client rewinds the body to resend it
        self.keeps = keeps
        self.sessions = {}
        self.calls = []
        self.blobs = {}

    mounts_work = False  # never asked with a mount: every POST opens a session

    def start_upload(self, repository, budget=None, probe=None):
        location = "/up/%d" % len(self.sessions)
        self.sessions[location] = bytearray()
        self.calls.append(("start", location))
        return location, None

    def upload_status(self, repository, location, budget=None):
        held = self.sessions.get(location.split("?")[0])
        self.calls.append(("status", location))
        return None if held is None else (len(held), location.split("?")[0] + "?at=%d" % len(held))

    def upload_chunk(self, repository, location, body, start, what, budget=None):
        location = location.split("?")[0]
        body.seek_start()
        drop = self.drops.pop(0) if self.drops else None
        received = bytearray()
        for block in iter(body.read, b""):
            received += block
            if drop is not None and len(received) >= drop:
                self.calls.append(("cut", location, start, drop))
                if self.keeps == "nothing":
                    del self.sessions[location]
                elif self.keeps == "all":
                    self.sessions[location] += received[:drop]
                raise TransportError("connection to registry dst.test dropped mid-transfer")
        if self.rewinds:
            self.rewinds -= 1
            body.seek_start()  # as RegistryClient._send does after answering a 401 challenge
        assert start == len(self.sessions[location]), "a PATCH must go on where the session stands"
        self.sessions[location] += received
        self.calls.append(("patch", location, start, len(received)))
        return location + "?at=%d" % (start + len(received)), 202

    def finish_upload(self, repository, location, digest, what, budget=None, body=None):
        self.calls.append(("put", digest))
        if body is not None:  # a small blob verified in advance goes up with the PUT
            received = b"".join(bytes(block) for block in iter(body.read, b""))
            if self.rewinds:
                self.rewinds -= 1
                body.seek_start()  # as RegistryClient._send does after answering a 401 challenge
                received = b"".join(bytes(block) for block in iter(body.read, b""))
            self.sessions[location.split("?")[0]] += received
        self.blobs[digest] = bytes(self.sessions.pop(location.split("?")[0]))

    def cancel_upload(self, repository, location, budget=None):
        self.calls.append(("delete", location))
        self.sessions.pop(location.split("?")[0], None)
        return True

    def did(self, what):
        return [call for call in self.calls if call[0] == what]


def relay(source, target, chunk_size=None, retries=3, store=None):
    store = store or RelayStore(endpoint(source.server, retries))
    budget = RetryBudget(retries, sleep=lambda _delay: None)
    return _upload.send_blob(target, TARGET, DIGEST, SIZE, store.blob_bodies(DIGEST, SIZE), NoSessions(), budget,
                             chunk_size=chunk_size)


def test_a_blob_goes_up_in_one_patch_read_once_from_the_source():
    target = Target()
    with Source() as source:
        store = RelayStore(endpoint(source.server))
        assert relay(source, target, store=store) == ("uploaded", SIZE)
        assert source.ranges() == [None]
    assert target.blobs == {DIGEST: DATA}
    assert [c[0] for c in target.calls] == ["start", "patch", "put"]
    assert store.bytes_read == SIZE


def test_a_source_that_drops_is_resumed_with_range_inside_the_same_patch():
    target = Target()
    with Source(("drop", MiB + 7)) as source:
        assert relay(source, target) == ("uploaded", SIZE)
        assert source.ranges() == [None, "bytes=%d-" % (MiB + 7)]
    assert target.blobs == {DIGEST: DATA}
    assert len(target.did("patch")) == 1 and not target.did("cut")  # the upload never noticed


def test_a_source_body_that_ends_early_is_resumed_too():
    target = Target()
    with Source(("short", 1000), ("short", 2 * MiB)) as source:
        assert relay(source, target) == ("uploaded", SIZE)
        assert source.ranges() == [None, "bytes=1000-", "bytes=%d-" % (1000 + 2 * MiB)]
    assert target.blobs == {DIGEST: DATA}


def test_a_source_that_ignores_range_is_read_up_to_where_the_relay_stands():
    target = Target()
    with Source(("drop", 5000), "ignore-range") as source:
        assert relay(source, target) == ("uploaded", SIZE)
        assert source.ranges() == [None, "bytes=5000-"]
    assert target.blobs == {DIGEST: DATA}


def test_a_source_that_lies_fails_naming_the_blob_and_the_session_is_deleted():
    target = Target()
    lie = DATA[:MiB] + b"X" + DATA[MiB + 1:]
    with Source(data=lie) as source:
        with pytest.raises(DigestMismatchError) as info:
            relay(source, target)
    assert DIGEST in info.value.message and "relayed from src.test/team/app" in info.value.message
    assert not target.did("put") and target.did("delete") == [("delete", "/up/0?at=%d" % SIZE)]
    assert target.blobs == {} and target.sessions == {}


def test_a_source_that_keeps_dropping_fails_once_its_budget_is_spent():
    target = Target()
    with Source(*[("drop", 100)] * 10) as source:
        with pytest.raises(TransportError) as info:
            relay(source, target, retries=2)
        assert len(source.ranges()) == 3  # the first GET and two resumes
    assert "dropped" in info.value.message
    assert not target.did("put") and target.did("delete")


def test_a_source_without_the_blob_fails_at_once():
    target = Target()
    with Source("404") as source:
        with pytest.raises(NotFoundError):
            relay(source, target)
        assert len(source.ranges()) == 1
    assert not target.did("put") and target.did("delete")


def test_an_upload_cut_mid_piece_goes_on_from_the_acknowledged_piece():
    # Pieces of 1 MiB; the third is cut: the registry still holds two pieces, so the relay goes on from
    # the hash it kept at 2 MiB and reads the source again from there, once.
    target = Target(drops=[None, None, 300000])
    with Source() as source:
        relay(source, target, chunk_size=MiB)
        assert source.ranges() == [None, "bytes=%d-" % (2 * MiB)]
    assert target.blobs == {DIGEST: DATA}
    assert [c[2] for c in target.did("patch")] == [0, MiB, 2 * MiB, 3 * MiB]


def test_a_registry_holding_more_than_its_last_piece_costs_a_re_read_not_a_resend():
    # The cut PATCH's bytes are kept too (a registry that reports them): 2 MiB + 300000 held, no snapshot
    # there; the source is read from the snapshot at 2 MiB, those 300000 bytes hashed and not sent again.
    target = Target(drops=[None, None, 300000], keeps="all")
    with Source() as source:
        store = RelayStore(endpoint(source.server))
        relay(source, target, chunk_size=MiB, store=store)
        assert source.ranges() == [None, "bytes=%d-" % (2 * MiB)]
    assert target.blobs == {DIGEST: DATA}
    assert [c[2] for c in target.did("patch")] == [0, MiB, 2 * MiB + 300000]
    assert store.bytes_read == SIZE + MiB  # the cut piece was read (one buffer), then 300000 bytes of it again


def test_a_registry_that_loses_a_cut_session_gets_the_blob_again_from_byte_zero():
    target = Target(drops=[None, 500000], keeps="nothing")  # as Distribution 2.8 does
    with Source() as source:
        relay(source, target, chunk_size=2 * MiB)
        assert source.ranges() == [None, None]  # from the snapshot of byte 0
    assert target.blobs == {DIGEST: DATA}
    assert [c[0] for c in target.calls].count("start") == 2


def test_a_patch_to_resend_after_a_challenge_goes_on_from_the_session_instead():
    target = Target(rewinds=1)
    with Source() as source:
        relay(source, target)
        assert source.ranges() == [None, None]  # the session held nothing: from the snapshot of byte 0
    assert target.blobs == {DIGEST: DATA}
    assert [c[0] for c in target.calls] == ["start", "status", "start", "patch", "put"]


def test_a_body_that_sent_bytes_cannot_rewind():
    with Source() as source:
        bodies = RelayStore(endpoint(source.server)).blob_bodies(DIGEST, SIZE)
        body = bodies.open(0, None)
        body.seek_start()  # nothing sent yet: fine
        first, second = body.read(), body.read()
        # Views of one 1 MiB buffer, whatever a read asks for: memory stays flat.
        assert len(first) == MiB and first.obj is second.obj
        with pytest.raises(RelayRewind):
            body.seek_start()
        bodies.close()


def test_the_bodies_of_a_blob_count_progress_and_end_at_its_size():
    seen = []
    with Source() as source:
        bodies = RelayStore(endpoint(source.server)).blob_bodies(DIGEST, SIZE, on_bytes=seen.append)
        first = bodies.open(0, 2 * MiB)
        assert len(first) == 2 * MiB and sum(len(b) for b in iter(first.read, b"")) == 2 * MiB
        bodies.acknowledged(2 * MiB)
        rest = bodies.open(2 * MiB, None)
        assert len(rest) == SIZE - 2 * MiB and sum(len(b) for b in iter(rest.read, b"")) == SIZE - 2 * MiB
        bodies.check()
        bodies.close()
    assert sum(seen) == SIZE


def test_the_store_holds_nothing_and_writes_nothing():
    store = RelayStore(source=None)
    assert not store.exists() and not store.blob_exists(DIGEST) and store.stored([]) == set()
    assert store.partials([]) == {} and store.sources(DIGEST) == [] and store.cache is None
    assert store.upload_sessions().load("r", "p", DIGEST) is None
    with store.upload_lock("dst.test/team/app", DIGEST) as lock:
        assert not lock.waited  # nothing to wait for: a relay has no cache to lock in


def test_a_kept_config_goes_up_from_memory():
    config = b'{"architecture": "amd64", "os": "linux"}'
    digest = of_bytes(config)
    store = RelayStore(source=None)  # never asked
    store.keep(digest, config)
    target = Target(rewinds=1)  # a body in memory may be sent again
    budget = RetryBudget(3, sleep=lambda _delay: None)
    assert _upload.send_blob(target, TARGET, digest, len(config), store.blob_bodies(digest, len(config)), NoSessions(),
                             budget) == ("uploaded", len(config))
    assert target.blobs == {digest: config} and store.bytes_read == len(config)
