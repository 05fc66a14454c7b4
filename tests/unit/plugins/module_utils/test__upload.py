# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _upload
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import RegistryError, TransportError
from ansible_collections.imagepusher.registry.plugins.module_utils._handoff import HandoffBroken
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._registry import RegistryClient
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import RetryBudget
from ansible_collections.imagepusher.registry.plugins.module_utils._sessions import NoSessions, UploadSessions
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from ansible_collections.imagepusher.registry.plugins.module_utils._upload import send_blob, upload_stream
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply

DATA = b"0123456789abcdef"  # 16 bytes
DIGEST = of_bytes(DATA)
SIZE = len(DATA)
TARGET = ImageReference.parse("reg.test/team/app:v1")
DROP = TransportError("connection to registry reg.test dropped mid-transfer: reset")


def upload_blob(*args, **kwargs):
    """The bytes send_blob says it sent (its action is checked where it matters)."""
    return send_blob(*args, **kwargs)[1]


@pytest.fixture(autouse=True)
def patch_protocol(monkeypatch):
    """These tests are about PATCH sessions: their 16-byte blob would otherwise go up with the PUT."""
    monkeypatch.setattr(_upload, "MONOLITHIC_MAX", 0)


class FakeTransport:
    def __init__(self):
        self.retry_count = 0

    def new_budget(self):
        return RetryBudget(3, sleep=lambda _delay: None, on_retry=self._count)

    def _count(self):
        self.retry_count += 1


class FakeClient:
    """The RegistryClient operations an upload uses; PATCH outcomes are scripted, calls recorded."""

    def __init__(self, patches=(), held=None, min_chunk=None, holds_blob=False, mounts_work=False):
        self.patches = list(patches)  # per PATCH: None (accepted) or the exception to raise
        self.held = held  # upload_status answer: bytes the registry holds, or None when the session is gone
        self.min_chunk = min_chunk
        self.holds_blob = holds_blob  # the repository has the blob: a probing POST or a HEAD says so
        self.mounts_work = mounts_work
        self.calls = []
        self.budgets = set()
        self.transport = FakeTransport()

    def _saw(self, budget):
        self.budgets.add(id(budget))

    def start_upload(self, repository, budget=None, probe=None):
        self._saw(budget)
        started = sum(1 for call in self.calls if call[0] == "start")
        asks = probe is not None and self.mounts_work
        self.calls.append(("start", probe) if asks else ("start",))
        if asks and self.holds_blob:
            return None, None
        return "/up/%d" % started, self.min_chunk

    def head_blob(self, repository, digest, scopes=None, budget=None):
        self._saw(budget)
        self.calls.append(("head", digest))
        return SIZE if self.holds_blob else None

    def cancel_upload(self, repository, location, budget=None):
        self.calls.append(("cancel", location))
        return True

    def upload_status(self, repository, location, budget=None):
        self._saw(budget)
        self.calls.append(("status", location))
        return None if self.held is None else (self.held, location + "?at=%d" % self.held)

    def upload_chunk(self, repository, location, body, start, what, budget=None):
        self._saw(budget)
        sent = b"".join(bytes(block) for block in iter(body.read, b""))
        self.calls.append(("patch", location, start, sent))
        outcome = self.patches.pop(0) if self.patches else None
        if outcome is not None:
            raise outcome
        return location.split("?")[0] + "?at=%d" % (start + len(sent)), 202

    def finish_upload(self, repository, location, digest, what, budget=None):
        self._saw(budget)
        self.calls.append(("finish", location, digest))


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    return str(path)


def quiet_budget(retries=3, counted=None):
    return RetryBudget(retries, sleep=lambda _delay: None,
                       on_retry=None if counted is None else lambda: counted.append(1))


def patches(client):
    return [(call[2], call[3]) for call in client.calls if call[0] == "patch"]


def test_one_patch_then_the_put(blob):
    client, budget = FakeClient(), quiet_budget()
    assert upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), budget) == SIZE
    assert client.calls == [("start",), ("patch", "/up/0", 0, DATA), ("finish", "/up/0?at=16", DIGEST)]
    assert budget.spent == 0
    assert client.budgets == {id(budget)}  # every request of the blob draws from its budget


def test_a_failed_patch_restarts_from_where_the_registry_stands(blob):
    counted = []
    client = FakeClient(patches=[None, DROP], held=4)
    budget = quiet_budget(counted=counted)
    sent = upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), budget, chunk_size=4)
    # chunk two dropped: the registry holds 4 bytes, so the upload goes on from byte 4
    assert patches(client) == [(0, DATA[:4]), (4, DATA[4:8]), (4, DATA[4:8]), (8, DATA[8:12]), (12, DATA[12:])]
    assert ("status", "/up/0?at=4") in client.calls
    # the 4 bytes acknowledged before the drop count too: the registry holds all 16 from this run
    assert sent == SIZE and counted == [1] and budget.spent == 1  # as before: the call that failed is not counted
    assert client.calls[-1][0] == "finish"


def test_a_failed_patch_with_the_session_gone_starts_a_new_one(blob):
    client = FakeClient(patches=[DROP], held=None)
    budget = quiet_budget()
    assert upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), budget) == SIZE
    assert [c[0] for c in client.calls] == ["start", "patch", "status", "start", "patch", "finish"]
    assert client.calls[-1][1] == "/up/1?at=16"


def test_bytes_sent_again_to_a_session_started_over_are_counted_once(blob):
    client = FakeClient(patches=[None, DROP], held=None)  # 4 bytes acknowledged, then the session is gone
    sent = upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget(), chunk_size=4)
    assert [start for start, _data in patches(client)] == [0, 4, 0, 4, 8, 12]
    assert sent == SIZE


def test_a_registry_that_lost_acknowledged_bytes_gets_them_again_counted_once(blob):
    client = FakeClient(patches=[None, None, DROP], held=4)  # 8 bytes acknowledged, then it holds only 4
    sent = upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget(), chunk_size=4)
    assert [start for start, _data in patches(client)] == [0, 4, 8, 4, 8, 12]
    assert sent == SIZE


def test_a_retryable_status_on_the_patch_is_retried_by_the_upload(blob):
    client = FakeClient(patches=[RegistryError("busy", status=503)], held=0)
    budget = quiet_budget()
    assert upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), budget) == SIZE
    assert patches(client) == [(0, DATA), (0, DATA)]
    assert budget.spent == 1


@pytest.mark.parametrize("status", [400, 404, 409])
def test_other_statuses_fail_at_once_and_spend_nothing(blob, status):
    client = FakeClient(patches=[RegistryError("refused", status=status)])
    budget = quiet_budget()
    with pytest.raises(RegistryError, match="refused"):
        upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), budget)
    assert len(patches(client)) == 1 and budget.spent == 0


def test_413_falls_back_to_chunks_in_a_new_session(blob, monkeypatch):
    monkeypatch.setattr(_upload, "FALLBACK_CHUNK", 6)
    client = FakeClient(patches=[RegistryError("too large", status=413)])
    budget = quiet_budget()
    assert upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), budget) == SIZE
    assert patches(client) == [(0, DATA), (0, DATA[:6]), (6, DATA[6:12]), (12, DATA[12:])]
    assert [c[0] for c in client.calls].count("start") == 2
    assert budget.spent == 0  # a smaller request is not a retry


def test_413_on_a_chunked_upload_is_not_retried(blob):
    client = FakeClient(patches=[RegistryError("too large", status=413)])
    with pytest.raises(RegistryError, match="too large"):
        upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget(), chunk_size=8)
    assert len(patches(client)) == 1


def test_a_minimum_chunk_length_is_honoured(blob):
    client = FakeClient(min_chunk=10)
    upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget(), chunk_size=4)
    assert patches(client) == [(0, DATA[:10]), (10, DATA[10:])]


def test_a_saved_session_is_resumed_and_cleared(blob, tmp_path):
    sessions = UploadSessions(str(tmp_path / "cache"))
    sessions.save(TARGET.registry, TARGET.repository, DIGEST, "/up/killed?at=6", 6)
    client = FakeClient(held=6)
    assert upload_blob(client, TARGET, DIGEST, SIZE, blob, sessions, quiet_budget(), chunk_size=4) == SIZE - 6
    assert client.calls[0] == ("status", "/up/killed?at=6")
    assert patches(client) == [(6, DATA[6:10]), (10, DATA[10:14]), (14, DATA[14:])]
    assert ("start",) not in client.calls
    assert sessions.load(TARGET.registry, TARGET.repository, DIGEST) is None


def test_each_acknowledged_chunk_is_saved(blob, tmp_path):
    sessions = UploadSessions(str(tmp_path / "cache"))
    client = FakeClient(patches=[None, None, DROP])
    with pytest.raises(TransportError):  # no retry left: the next run goes on from the saved session
        upload_blob(client, TARGET, DIGEST, SIZE, blob, sessions, quiet_budget(0), chunk_size=4)
    assert sessions.load(TARGET.registry, TARGET.repository, DIGEST) == "/up/0?at=8"


def test_a_saved_session_the_registry_refuses_to_describe_starts_afresh(blob, tmp_path):
    sessions = UploadSessions(str(tmp_path / "cache"))
    sessions.save(TARGET.registry, TARGET.repository, DIGEST, "/up/old", 6)
    client = FakeClient()

    def refused(*args, **kwargs):
        raise RegistryError("gone", status=500)
    client.upload_status = refused
    assert upload_blob(client, TARGET, DIGEST, SIZE, blob, sessions, quiet_budget()) == SIZE
    assert patches(client) == [(0, DATA)]


@pytest.mark.parametrize("retries", [0, 2])
def test_the_restarts_are_bounded_by_the_budget(blob, retries):
    client = FakeClient(patches=[DROP] * 10, held=0)
    budget = quiet_budget(retries)
    with pytest.raises(TransportError, match="dropped"):
        upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), budget)
    assert len(patches(client)) == retries + 1
    assert budget.spent == retries


def test_big_blobs_from_our_cache_go_up_in_resumable_chunks(blob, monkeypatch):
    monkeypatch.setattr(_upload, "RESUMABLE_CHUNK", 8)
    client = FakeClient()
    upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget())
    assert patches(client) == [(0, DATA[:8]), (8, DATA[8:])]
    other = FakeClient()
    upload_blob(other, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget(), resumable=False)
    assert patches(other) == [(0, DATA)]


# -- through the registry client: the transport's retries and the restarts share one budget --

def test_request_retries_and_restarts_draw_from_one_budget(blob):
    answers = {"POST": [503, 503], "PATCH": [503, 503, 503]}

    def app(request, handler):
        pending = answers.get(request.method)
        if pending:
            return Reply(pending.pop(0), b"busy")
        if request.method == "POST":
            return Reply(202, b"", {"Location": "/v2/team/app/blobs/uploads/s1"})
        if request.method == "GET":  # where the session stands: nothing received
            return Reply(204, b"", {"Range": "0-0", "Location": "/v2/team/app/blobs/uploads/s1"})
        return Reply(201)

    sleeps = []
    transport = Transport(retries=3, timeout=5, sleep=sleeps.append)
    with FakeServer(app) as server:
        client = RegistryClient("reg.test", transport, api_host=server.host, plain_http=True)
        budget = transport.new_budget()
        with pytest.raises(RegistryError) as info:
            upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), budget)
        transport.close()
    assert info.value.status == 503
    # 2 x 503 on the POST (retried by the transport) and one restart after the first PATCH's 503
    # spend the budget of 3: the second PATCH's 503 is final.
    assert [r.method for r in server.requests] == ["POST", "POST", "POST", "PATCH", "GET", "POST", "PATCH"]
    assert transport.retry_count == budget.spent == 3 and len(sleeps) == 3


class PartialRegistry:
    """An in-process registry whose upload session keeps the bytes it acknowledged; the PATCHes listed in
    `drop_after` (by number) keep only that many bytes of their body and cut the connection instead of
    answering. It completes the session only when the bytes it holds are the blob."""

    def __init__(self, drop_after):
        self.drop_after = dict(drop_after)
        self.held = bytearray()
        self.patches = 0
        self.completed = None

    def app(self, request, handler):
        here = {"Location": "/v2/team/app/blobs/uploads/s1", "Range": "0-%d" % (len(self.held) - 1)}
        if request.method == "POST":
            self.held = bytearray()
            return Reply(202, b"", {"Location": "/v2/team/app/blobs/uploads/s1"})
        if request.method == "GET":
            return Reply(204, b"", here)
        if request.method == "PATCH":
            start = int(request.headers["Content-Range"].split("-")[0])
            assert start == len(self.held), "a PATCH that does not go on from what the session holds"
            keep = self.drop_after.pop(self.patches, None)
            self.patches += 1
            self.held += request.body if keep is None else request.body[:keep]
            if keep is not None:
                handler.close_connection = True  # no answer: the client sees the connection drop
                return None
            return Reply(202, b"", dict(here, Range="0-%d" % (len(self.held) - 1)))
        self.completed = bytes(self.held)  # the PUT with the digest
        return Reply(201 if self.completed == DATA else 400)


@pytest.mark.parametrize("kept", [0, 2])
def test_bytes_acknowledged_before_a_failed_patch_are_counted_once(blob, kept):
    """The second of four 4-byte PATCHes drops after the registry acknowledged the first (and kept
    `kept` bytes of the second): the bytes reported are every byte the registry holds, each once."""
    registry = PartialRegistry({1: kept})
    transport = Transport(retries=3, timeout=5, sleep=lambda _delay: None)
    with FakeServer(registry.app) as server:
        client = RegistryClient("reg.test", transport, api_host=server.host, plain_http=True)
        budget = transport.new_budget()
        sent = upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), budget, chunk_size=4)
        transport.close()
    assert registry.completed == DATA and budget.spent == 1
    ranges = [r.headers["Content-Range"] for r in server.requests if r.method == "PATCH"]
    assert ranges[:2] == ["0-3", "4-7"] and ranges[2] == "%d-%d" % (4 + kept, 7 + kept)  # on from what it holds
    assert sent == SIZE


def test_a_resumed_session_counts_only_the_bytes_this_run_sent(blob, tmp_path):
    """An earlier run left 6 bytes in a session; this run's second PATCH drops after 2 of its bytes."""
    registry = PartialRegistry({1: 2})
    registry.held = bytearray(DATA[:6])
    sessions = UploadSessions(str(tmp_path / "cache"))
    transport = Transport(retries=3, timeout=5, sleep=lambda _delay: None)
    with FakeServer(registry.app) as server:
        sessions.save(TARGET.registry, TARGET.repository, DIGEST, server.url + "/v2/team/app/blobs/uploads/s1", 6)
        client = RegistryClient("reg.test", transport, api_host=server.host, plain_http=True)
        result = _upload.send_blob(client, TARGET, DIGEST, SIZE, blob, sessions, transport.new_budget(), chunk_size=4)
        transport.close()
    assert registry.completed == DATA
    assert result == ("resumed", SIZE - 6)


class Stream:
    """What upload_stream needs of a Handoff: a body, and whether the download verified."""

    def __init__(self, verified):
        self.verified = verified
        self.pending = [DATA]
        self.released = False

    def __len__(self):
        return SIZE

    def read(self, size=-1):
        return self.pending.pop(0) if self.pending else b""

    def wait_finished(self):
        return self.verified

    def release(self):
        self.released = True


def test_upload_stream_completes_after_the_download_verified():
    client = FakeClient()
    stream = Stream(verified=True)
    assert upload_stream(client, TARGET, DIGEST, SIZE, stream) == SIZE
    assert [c[0] for c in client.calls] == ["start", "patch", "finish"]
    assert client.calls[1] == ("patch", "/up/0", 0, DATA)
    assert stream.released and len(client.budgets) == 1


def test_upload_stream_does_not_finish_an_unverified_download():
    client = FakeClient()
    stream = Stream(verified=False)
    with pytest.raises(HandoffBroken, match="did not verify"):
        upload_stream(client, TARGET, DIGEST, SIZE, stream)
    assert [c[0] for c in client.calls] == ["start", "patch"]
    assert stream.released


def test_upload_stream_releases_the_stream_when_the_registry_fails():
    client = FakeClient(patches=[DROP])
    stream = Stream(verified=True)
    with pytest.raises(TransportError):
        upload_stream(client, TARGET, DIGEST, SIZE, stream)
    assert stream.released and ("finish",) not in [c[:1] for c in client.calls]


def test_send_blob_says_resumed_only_for_a_session_an_earlier_run_left(blob, tmp_path):
    sessions = UploadSessions(str(tmp_path / "cache"))
    sessions.save(TARGET.registry, TARGET.repository, DIGEST, "/up/killed?at=6", 6)
    assert _upload.send_blob(FakeClient(held=6), TARGET, DIGEST, SIZE, blob, sessions, quiet_budget()) == (
        "resumed", SIZE - 6)
    # gone from the registry (404): a fresh upload of every byte
    sessions.save(TARGET.registry, TARGET.repository, DIGEST, "/up/killed?at=6", 6)
    assert _upload.send_blob(FakeClient(held=None), TARGET, DIGEST, SIZE, blob, sessions, quiet_budget()) == (
        "uploaded", SIZE)
    # a drop within this run that goes on from the registry's offset is still an upload of this run
    client = FakeClient(patches=[None, DROP], held=4)
    assert _upload.send_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget(), chunk_size=4)[0] == (
        "uploaded")


# -- a small blob goes up with the PUT that completes its session ------------------------------

@pytest.fixture
def whole(monkeypatch):
    monkeypatch.setattr(_upload, "MONOLITHIC_MAX", SIZE)


def test_a_small_blob_goes_up_with_the_put_and_saves_no_session(blob, tmp_path, whole):
    server_requests = []

    def app(request, handler):
        server_requests.append(request)
        if request.method == "POST":
            return Reply(202, b"", {"Location": "/v2/team/app/blobs/uploads/s1?_state=x"})
        return Reply(201)

    transport = Transport(retries=3, timeout=5, sleep=lambda _delay: None)
    sessions = UploadSessions(str(tmp_path / "cache"))
    with FakeServer(app) as server:
        client = RegistryClient("reg.test", transport, api_host=server.host, plain_http=True)
        assert upload_blob(client, TARGET, DIGEST, SIZE, blob, sessions, transport.new_budget()) == SIZE
        transport.close()
    assert [r.method for r in server_requests] == ["POST", "PUT"]
    put = server_requests[1]
    assert put.body == DATA and dict(put.query)["digest"] == DIGEST and dict(put.query)["_state"] == "x"
    assert put.headers["Content-Type"] == "application/octet-stream"
    assert sessions.load("reg.test", "team/app", DIGEST) is None  # nothing of it to resume


def test_a_failed_put_with_the_blob_starts_a_new_session_within_the_budget(blob, whole):
    client, budget = FakeClient(), quiet_budget()
    outcomes = [DROP, None]

    def finish(repository, location, digest, what, budget=None, body=None):
        client.calls.append(("put", location, b"".join(bytes(b) for b in iter(body.read, b""))))
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    client.finish_upload = finish
    assert upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), budget) == SIZE
    assert [c[0] for c in client.calls] == ["start", "put", "status", "start", "put"]  # the session was gone
    assert client.calls[-1] == ("put", "/up/1", DATA) and budget.spent == 1


def test_a_blob_above_the_limit_still_goes_up_in_a_patch(blob, monkeypatch):
    monkeypatch.setattr(_upload, "MONOLITHIC_MAX", SIZE - 1)
    client = FakeClient()
    upload_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget())
    assert [c[0] for c in client.calls] == ["start", "patch", "finish"]


# -- a registry that honours mounts is asked, by the POST that starts a session, whether it holds the blob ----

@pytest.mark.parametrize("mounts_work, calls", [
    (False, ["start", "patch", "finish"]),  # a registry not known to mount may ignore the question: not asked
    (True, ["start"]),  # asked, and it holds the blob: nothing goes up
])
def test_a_probing_upload_sends_nothing_the_registry_holds(blob, mounts_work, calls):
    client = FakeClient(holds_blob=True, mounts_work=mounts_work)
    action, sent = send_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget())
    assert [c[0] for c in client.calls] == calls
    assert (action, sent) == (("exists", 0) if mounts_work else ("uploaded", SIZE))
    if mounts_work:
        assert client.calls[0] == ("start", DIGEST)


def test_a_probing_upload_of_a_blob_the_registry_lacks_uses_the_session_the_probe_opened(blob):
    client = FakeClient(mounts_work=True)
    assert send_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget()) == ("uploaded", SIZE)
    assert client.calls == [("start", DIGEST), ("patch", "/up/0", 0, DATA), ("finish", "/up/0?at=16", DIGEST)]


def test_a_restart_that_finds_the_blob_there_stops_and_drops_its_session(blob):
    # The PATCH drops and the registry no longer knows the session; by the time the upload starts a new one,
    # the blob is there (our own PUT, answered too late, or another run's): that answer ends the upload.
    client = FakeClient(patches=[DROP], held=None, mounts_work=True)
    original = client.start_upload

    def start_upload(repository, budget=None, probe=None):
        started = original(repository, budget, probe)
        client.holds_blob = True
        return started

    client.start_upload = start_upload
    action, sent = send_blob(client, TARGET, DIGEST, SIZE, blob, NoSessions(), quiet_budget())
    assert (action, sent) == ("exists", 0)
    assert [c[0] for c in client.calls] == ["start", "patch", "status", "start", "cancel"]


def test_an_earlier_runs_session_is_not_resumed_for_a_blob_the_registry_holds(blob, tmp_path):
    sessions = UploadSessions(str(tmp_path / "cache"))
    sessions.save(TARGET.registry, TARGET.repository, DIGEST, "/up/killed?at=6", 6)
    client = FakeClient(held=6, holds_blob=True, mounts_work=True)
    assert send_blob(client, TARGET, DIGEST, SIZE, blob, sessions, quiet_budget()) == ("exists", 0)
    assert client.calls == [("head", DIGEST)]  # no HEAD came before (see _push.py): asked before resuming
    assert sessions.load(TARGET.registry, TARGET.repository, DIGEST) is None
    # The registry lacks it: the session goes on as before.
    sessions.save(TARGET.registry, TARGET.repository, DIGEST, "/up/killed?at=6", 6)
    client = FakeClient(held=6, mounts_work=True)
    assert send_blob(client, TARGET, DIGEST, SIZE, blob, sessions, quiet_budget()) == ("resumed", SIZE - 6)


def test_a_stream_to_a_registry_holding_the_blob_is_given_up_before_any_byte():
    client = FakeClient(holds_blob=True, mounts_work=True)
    stream = Stream(verified=True)
    with pytest.raises(HandoffBroken, match="holds blob"):
        upload_stream(client, TARGET, DIGEST, SIZE, stream)
    assert client.calls == [("start", DIGEST)] and stream.released
