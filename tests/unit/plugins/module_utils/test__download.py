# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import errno
import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _blob_io
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes, split
from ansible_collections.imagepusher.registry.plugins.module_utils._download import download_blob
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    DigestMismatchError,
    LockTimeoutError,
    TransportError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._registry import RegistryClient
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import RetryBudget
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import BodyReader, Transport
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply, write_raw
from tests.unit.plugins.module_utils.test__cache import (
    HeldByAnotherProcess,
    Opener,
    blob_files,
    chunks,
    descriptor,
    partial_files,
    read,
    serve,
)

DATA = bytes(range(256)) * 40 + b"tail"  # 10244 bytes: not a multiple of the chunk size
DIGEST = of_bytes(DATA)
SIZE = len(DATA)
HALF = SIZE // 2
CHUNK = 1000


# -- helpers -------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path):
    return Cache(str(tmp_path / "cache")).ensure()


def serve_ignoring_range(data=DATA):
    return lambda offset: (iter(chunks(data)), 0)


def serve_dropping(until, data=DATA):
    """Send from the offset up to `until`, then drop the connection."""
    def answer(offset):
        def body():
            yield from chunks(data[offset:until])
            raise TransportError("connection to registry reg.test dropped mid-transfer: reset")
        return body(), offset
    return answer


def serve_truncated(until, data=DATA):
    """Send from the offset up to `until`, then end the body cleanly (too early)."""
    return lambda offset: (iter(chunks(data[offset:until])), offset)


def seed_partial(cache, content, digest=DIGEST):
    with open(cache.partial_path(digest), "wb") as handle:
        handle.write(content)


def retry_budget(retries=3, counted=None):
    """A budget that does not sleep; `counted` (a list) collects one entry per retry reported."""
    return RetryBudget(retries, sleep=lambda _delay: None,
                       on_retry=None if counted is None else lambda: counted.append(1))


# -- ingest ----------------------------------------------------------------------------

def test_ingest_fresh_download(cache):
    opener = Opener(serve())
    progress = []
    assert download_blob(cache, DIGEST, SIZE, opener, retry_budget(), on_bytes=progress.append) == ("downloaded", SIZE)
    assert opener.calls == [0]
    assert opener.closed == 1
    assert read(cache.blob_path(DIGEST)) == DATA
    assert blob_files(cache) == ["sha256/" + split(DIGEST)[1]]
    assert partial_files(cache) == []
    assert sum(progress) == SIZE
    assert cache.has_blob(DIGEST) and cache.has_blob(DIGEST, SIZE) and not cache.has_blob(DIGEST, SIZE + 1)


class Tee:
    """What the one-pass mirror's Handoff sees of a download, in order."""

    def __init__(self):
        self.events = []

    def offer(self, offset, view):
        self.events.append(("offer", offset, bytes(view)))

    def wait_sent(self):
        self.events.append(("sent",))

    def verified(self):
        self.events.append(("verified",))


def test_a_tee_gets_each_chunk_before_it_is_written_and_the_verdict_before_the_sync(cache, monkeypatch):
    tee, real_write, real_sync = Tee(), _blob_io.BlobWriter.write, _blob_io.BlobWriter.sync

    def write(writer, view):
        tee.events.append(("write",))
        return real_write(writer, view)

    def sync(writer):
        tee.events.append(("sync",))
        return real_sync(writer)

    monkeypatch.setattr(_blob_io.BlobWriter, "write", write)
    monkeypatch.setattr(_blob_io.BlobWriter, "sync", sync)
    assert download_blob(cache, DIGEST, SIZE, Opener(serve()), retry_budget(), tee=tee) == ("downloaded", SIZE)
    offers = [e for e in tee.events if e[0] == "offer"]
    assert b"".join(e[2] for e in offers) == DATA and offers[0][1] == 0
    # Each chunk: offered (sent meanwhile), written, then waited for before the buffer is read into again.
    assert [e[0] for e in tee.events[:3]] == ["offer", "write", "sent"]
    assert [e[0] for e in tee.events[-2:]] == ["verified", "sync"]  # the upload completes while the file syncs


def test_a_tee_never_hears_verified_for_bytes_that_do_not_match(cache):
    tee = Tee()
    bad = DATA[:-1] + b"X"
    with pytest.raises(DigestMismatchError):
        download_blob(cache, DIGEST, SIZE, Opener(serve(bad)), retry_budget(), tee=tee)
    assert ("verified",) not in tee.events and blob_files(cache) == []


def test_ingest_twice_is_cached(cache):
    download_blob(cache, DIGEST, SIZE, Opener(serve()), retry_budget())
    opener = Opener(serve())
    assert download_blob(cache, DIGEST, SIZE, opener, retry_budget()) == ("cached", 0)
    assert opener.calls == []


def test_ingest_without_a_known_size_still_verifies(cache):
    assert download_blob(cache, DIGEST, None, Opener(serve()), retry_budget()) == ("downloaded", SIZE)
    with pytest.raises(DigestMismatchError):
        download_blob(cache, of_bytes(b"other"), None, Opener(serve()), retry_budget())


def test_ingest_resumes_a_partial_file(cache):
    seed_partial(cache, DATA[:HALF])
    opener = Opener(serve())
    assert download_blob(cache, DIGEST, SIZE, opener, retry_budget()) == ("resumed", SIZE - HALF)
    assert opener.calls == [HALF]
    assert read(cache.blob_path(DIGEST)) == DATA
    assert partial_files(cache) == []


@pytest.mark.parametrize("answers, calls, transferred", [
    ([serve_dropping(4000), serve()], [0, 4000], SIZE),
    ([serve_dropping(1000), serve_dropping(2500), serve()], [0, 1000, 2500], SIZE),
    ([serve_dropping(0), serve()], [0, 0], SIZE),  # dropped before the first byte
    ([serve_truncated(6000), serve()], [0, 6000], SIZE),  # a body that ends early without an error
])
def test_ingest_resumes_after_a_drop(cache, answers, calls, transferred):
    opener = Opener(*answers)
    assert download_blob(cache, DIGEST, SIZE, opener, retry_budget()) == ("resumed", transferred)
    assert opener.calls == calls
    assert opener.closed == len(calls)
    assert read(cache.blob_path(DIGEST)) == DATA
    assert partial_files(cache) == []


def test_ingest_gives_up_after_retries_and_keeps_the_partial_for_next_time(cache):
    opener = Opener(serve_dropping(1000), serve_dropping(2000), serve_dropping(3000))
    with pytest.raises(TransportError, match="dropped mid-transfer"):
        download_blob(cache, DIGEST, SIZE, opener, retry_budget(2))
    assert opener.calls == [0, 1000, 2000]
    assert blob_files(cache) == []
    assert cache.partial_size(DIGEST) == 3000
    # the next run resumes from there
    again = Opener(serve())
    assert download_blob(cache, DIGEST, SIZE, again, retry_budget()) == ("resumed", SIZE - 3000)
    assert again.calls == [3000]
    assert read(cache.blob_path(DIGEST)) == DATA


def test_ingest_body_always_ending_early(cache):
    """A transport failure, not corruption: the bytes received are kept for the next run."""
    opener = Opener(serve_truncated(5000))
    with pytest.raises(TransportError) as info:
        download_blob(cache, DIGEST, SIZE, opener, retry_budget(1))
    assert info.value.message == ("blob %s: the registry kept ending the body early (5000 of %d bytes); "
                                  "the bytes received are kept and a rerun resumes from them" % (DIGEST, SIZE))
    assert blob_files(cache) == []
    assert cache.partial_size(DIGEST) == 5000
    assert opener.calls == [0, 5000]  # one resume, not a fresh download from zero


def test_ingest_when_the_server_ignores_the_range(cache):
    seed_partial(cache, DATA[:HALF])
    opener = Opener(serve_ignoring_range())
    action, transferred = download_blob(cache, DIGEST, SIZE, opener, retry_budget())
    assert (action, transferred) == ("downloaded", SIZE)  # the whole blob came again: not a resume
    assert opener.calls == [HALF]
    assert read(cache.blob_path(DIGEST)) == DATA  # not half + whole
    assert partial_files(cache) == []


def test_ingest_restarts_when_the_partial_is_longer_than_the_blob(cache):
    seed_partial(cache, DATA + b"junk")
    opener = Opener(serve())
    assert download_blob(cache, DIGEST, SIZE, opener, retry_budget()) == ("downloaded", SIZE)
    assert opener.calls == [0]
    assert read(cache.blob_path(DIGEST)) == DATA


def test_ingest_of_a_complete_partial_does_not_download(cache):
    seed_partial(cache, DATA)  # killed between the last write and the rename
    opener = Opener(serve())
    assert download_blob(cache, DIGEST, SIZE, opener, retry_budget()) == ("resumed", 0)
    assert opener.calls == []
    assert read(cache.blob_path(DIGEST)) == DATA


def test_ingest_corrupted_bytes_retries_once_then_fails_leaving_nothing(cache):
    corrupted = DATA[:100] + b"X" + DATA[101:]
    opener = Opener(serve(corrupted))
    with pytest.raises(DigestMismatchError) as info:
        download_blob(cache, DIGEST, SIZE, opener, retry_budget())
    assert info.value.message == "blob %s: expected %s (%d bytes) but received %s (%d bytes)." % (
        DIGEST, DIGEST, SIZE, of_bytes(corrupted), SIZE)
    assert opener.calls == [0, 0]  # one fresh retry from zero
    assert blob_files(cache) == []
    assert partial_files(cache) == []
    assert not cache.has_blob(DIGEST)


def test_ingest_corruption_fixed_by_the_fresh_retry(cache):
    opener = Opener(serve(b"Y" * SIZE), serve())
    assert download_blob(cache, DIGEST, SIZE, opener, retry_budget()) == ("downloaded", 2 * SIZE)
    assert opener.calls == [0, 0]
    assert read(cache.blob_path(DIGEST)) == DATA


def test_ingest_damaged_partial_is_discarded_and_fetched_again(cache):
    seed_partial(cache, b"Z" * HALF)  # left by an earlier run from a bad mirror
    opener = Opener(serve())
    assert download_blob(cache, DIGEST, SIZE, opener, retry_budget()) == ("resumed", (SIZE - HALF) + SIZE)
    assert opener.calls == [HALF, 0]
    assert read(cache.blob_path(DIGEST)) == DATA
    assert partial_files(cache) == []


def test_ingest_more_bytes_than_declared(cache):
    opener = Opener(serve(DATA + b"extra bytes"))
    with pytest.raises(DigestMismatchError) as info:
        download_blob(cache, DIGEST, SIZE, opener, retry_budget())
    assert info.value.message == ("blob %s: registry sent more than the %d bytes the manifest declares"
                                  % (DIGEST, SIZE))
    assert blob_files(cache) == []
    assert opener.closed == len(opener.calls)


def test_ingest_more_bytes_than_declared_discards_the_partial_and_retries_fresh(cache):
    opener = Opener(serve(DATA + b"extra bytes"))
    with pytest.raises(DigestMismatchError):
        download_blob(cache, DIGEST, SIZE, opener, retry_budget())
    assert opener.calls == [0, 0]
    assert partial_files(cache) == []


@pytest.mark.parametrize("error, message", [
    (errno.ENOSPC, "cache is out of disk space while writing blob %s (%s): free space or choose another cache_dir"),
    (errno.EDQUOT, "cache is over its disk quota while writing blob %s (%s): free space or choose another cache_dir"),
    (errno.EACCES, "permission denied while writing blob %s (%s): its permissions do not allow this user (uid " + str(os.geteuid())
     + "): give the owner write access to the cache %s (chmod -R u+rwX), or choose another cache_dir"),
    (errno.EIO, "cache error while writing blob %s (%s): Input/output error"),
])
def test_ingest_write_failure_is_a_cache_error_and_leaves_blobs_and_index_alone(cache, monkeypatch, error,
                                                                                message):
    cache.set_ref("reg.test/other:v1", descriptor(b"{}"))
    index_before = read(os.path.join(cache.root, "index.json"))
    real_write = _blob_io.BlobWriter.write
    budget = [3 * CHUNK]

    def failing_write(writer, view):  # the disk fills up (or fails) after three chunks
        if len(view) > budget[0]:
            raise OSError(error, os.strerror(error))
        budget[0] -= len(view)
        return real_write(writer, view)
    monkeypatch.setattr(_blob_io.BlobWriter, "write", failing_write)

    opener = Opener(serve())
    with pytest.raises(CacheError) as info:
        download_blob(cache, DIGEST, SIZE, opener, retry_budget())
    assert info.value.message == message.replace("cache %s", "cache " + cache.root) % (DIGEST, cache.partial_path(DIGEST))
    assert opener.calls == [0] and opener.closed == 1  # not retried: the disk will not get emptier
    assert blob_files(cache) == []
    assert read(os.path.join(cache.root, "index.json")) == index_before


# -- locks: one download per blob across threads and processes ---------------------

def test_ingest_waits_for_a_blob_lock_then_times_out(cache):
    short = Cache(cache.root, lock_timeout=0.2)
    opener = Opener(serve())
    with HeldByAnotherProcess(short.lock(split(DIGEST)[1]).path):
        with pytest.raises(LockTimeoutError, match="waiting for cache lock"):
            download_blob(short, DIGEST, SIZE, opener, retry_budget())
    assert opener.calls == []
    assert download_blob(short, DIGEST, SIZE, opener, retry_budget()) == ("downloaded", SIZE)


def test_two_threads_ingesting_one_blob_download_it_once(cache):
    started, release = threading.Event(), threading.Event()
    calls = []

    def opener(offset):
        calls.append(offset)

        def body():
            started.set()
            release.wait(5)
            yield from chunks(DATA[offset:])
        return body(), offset, lambda: None

    results = []

    def run():
        results.append(download_blob(Cache(cache.root), DIGEST, SIZE, opener, retry_budget()))

    first = threading.Thread(target=run)
    first.start()
    assert started.wait(5)
    second = threading.Thread(target=run)
    second.start()
    time.sleep(0.2)  # the second one is now polling the blob lock
    assert results == []
    release.set()
    first.join(5)
    second.join(5)
    assert sorted(results) == [("cached", 0), ("downloaded", SIZE)]
    assert calls == [0]
    assert read(cache.blob_path(DIGEST)) == DATA


_INGESTER = """
import os, sys, time
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._download import download_blob
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import RetryBudget
root, digest, size, data_path, log, release = sys.argv[1:]
data = open(data_path, "rb").read()

def opener(offset):
    with open(log, "a") as handle:
        handle.write("open %d\\n" % offset)
    def body():
        deadline = time.time() + 10
        while not os.path.exists(release) and time.time() < deadline:
            time.sleep(0.01)
        yield data[offset:]
    return body(), offset, lambda: None

print("ready", flush=True)
print("%s %d" % download_blob(Cache(root), digest, int(size), opener, RetryBudget(3)), flush=True)
"""


def test_two_processes_ingesting_one_blob_download_it_once(cache, tmp_path):
    data_path, log, release = tmp_path / "data", tmp_path / "log", tmp_path / "release"
    data_path.write_bytes(DATA)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    command = [sys.executable, "-c", _INGESTER, cache.root, DIGEST, str(SIZE), str(data_path), str(log), str(release)]

    def start():
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stdout.readline() == b"ready\n"
        return proc

    first = start()
    deadline = time.time() + 10
    while not (log.exists() and log.read_text()) and time.time() < deadline:
        time.sleep(0.01)  # the first process holds the blob lock and is "downloading"
    second = start()
    time.sleep(0.2)  # ...and the second one waits for that lock
    release.write_bytes(b"")
    outputs = []
    for proc in (first, second):
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        outputs.append(out.decode().strip())
    assert outputs == ["downloaded %d" % SIZE, "cached 0"]
    assert log.read_text() == "open 0\n"
    assert read(cache.blob_path(DIGEST)) == DATA
    assert partial_files(cache) == []


# -- one budget for the requests and the resumes of a download ------------------------

def test_a_body_that_always_drops_opens_at_most_retries_plus_one_times(cache):
    counted = []
    opener = Opener(serve_dropping(1000))
    with pytest.raises(TransportError, match="dropped mid-transfer"):
        download_blob(cache, DIGEST, SIZE, opener, retry_budget(2, counted))
    assert opener.calls == [0, 1000, 1000]
    assert opener.closed == 3
    assert counted == [1, 1]  # each resume is a retry the result reports
    assert cache.partial_size(DIGEST) == 1000


def test_resumes_back_off_as_the_budget_grows(cache):
    sleeps = []
    budget = RetryBudget(3, base=0.5, cap=30.0, sleep=sleeps.append)
    opener = Opener(serve_dropping(1000), serve_dropping(2000), serve())
    assert download_blob(cache, DIGEST, SIZE, opener, budget) == ("resumed", SIZE)
    assert budget.spent == 2 and len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_retries_spent_by_the_requests_leave_less_for_the_resumes(cache):
    budget = retry_budget(2)

    def opener(offset):
        if not calls:
            assert budget.retry()  # the first GET met a 503 and was retried by the transport
        calls.append(offset)
        return serve_dropping(1000)(offset) + (lambda: None,)
    calls = []
    with pytest.raises(TransportError, match="dropped mid-transfer"):
        download_blob(cache, DIGEST, SIZE, opener, budget)
    assert calls == [0, 1000]  # one retry of the request, one resume: the budget of 2 is spent


def test_the_fresh_download_after_a_mismatch_is_reported_but_not_drawn_from_the_budget(cache):
    counted = []
    budget = retry_budget(0, counted)
    opener = Opener(serve(b"Y" * SIZE), serve())
    assert download_blob(cache, DIGEST, SIZE, opener, budget) == ("downloaded", 2 * SIZE)
    assert opener.calls == [0, 0]
    assert counted == [1] and budget.spent == 0


def test_a_complete_looking_partial_that_mismatches_is_fetched_without_a_reported_retry(cache):
    seed_partial(cache, b"Z" * SIZE)
    counted = []
    opener = Opener(serve())
    assert download_blob(cache, DIGEST, SIZE, opener, retry_budget(3, counted)) == ("resumed", SIZE)
    assert opener.calls == [0]
    assert counted == []  # the blob was opened once: nothing was retried


# -- through the registry client: requests and resumes share the budget ---------------

def _dropping_registry(first_status=None):
    """A registry whose blob GET answers `first_status` once, then always sends 1000 bytes of SIZE and drops."""
    state = {"first": first_status}

    def app(request, handler):
        if state["first"]:
            status, state["first"] = state["first"], None
            return Reply(status, b"busy")
        offset = int(request.headers.get("Range", "bytes=0-")[len("bytes="):-1])
        headers = {"Content-Length": str(SIZE - offset)}
        if offset:
            headers["Content-Range"] = "bytes %d-%d/%d" % (offset, SIZE - 1, SIZE)
        write_raw(handler, 206 if offset else 200, headers, DATA[offset:offset + 1000])
        return None
    return app


@pytest.mark.parametrize("first_status, gets", [(None, 3), (503, 3)])
def test_requests_and_resumes_draw_from_one_budget(cache, first_status, gets):
    sleeps = []
    transport = Transport(retries=2, timeout=5, sleep=sleeps.append)
    with FakeServer(_dropping_registry(first_status)) as server:
        client = RegistryClient("reg.test", transport, api_host=server.host, plain_http=True)
        budget = transport.new_budget()

        def opener(offset):
            response, start = client.open_blob("team/app", DIGEST, offset, budget=budget)
            return BodyReader(response, "reg.test"), start, response.close
        with pytest.raises(TransportError, match="dropped mid-transfer"):
            download_blob(cache, DIGEST, SIZE, opener, budget)
        transport.close()
    assert len(server.requests) == gets  # never (retries + 1) x (retries + 1)
    assert transport.retry_count == 2 and len(sleeps) == 2
    assert cache.partial_size(DIGEST) == (2000 if first_status else 3000)  # the 503 cost one resume
