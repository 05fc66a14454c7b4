# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import errno
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _cache
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import REF_NAME, Cache, FileLock
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes, split
from ansible_collections.imagepusher.registry.plugins.module_utils._download import download_blob
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    DigestMismatchError,
    InvalidDigestError,
    LockTimeoutError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import RetryBudget

DATA = bytes(range(256)) * 40 + b"tail"  # 10244 bytes: not a multiple of the chunk size
DIGEST = of_bytes(DATA)
SIZE = len(DATA)
CHUNK = 1000


# -- helpers -------------------------------------------------------------------

def chunks(data):
    return [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]


def serve(data=DATA):
    """An answer honouring the requested offset."""
    return lambda offset: (iter(chunks(data[offset:])), offset)


class Opener:
    """opener(offset) for download_blob: plays `answers` in turn (the last one repeats), records calls."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []
        self.closed = 0

    def __call__(self, offset):
        answer = self.answers[min(len(self.calls), len(self.answers) - 1)]
        self.calls.append(offset)
        body, start = answer(offset)
        return body, start, self._close

    def _close(self):
        self.closed += 1


@pytest.fixture
def cache(tmp_path):
    return Cache(str(tmp_path / "cache")).ensure()


def files_under(path):
    found = []
    for directory, _dirs, names in os.walk(path):
        found.extend(os.path.relpath(os.path.join(directory, n), path) for n in names)
    return sorted(found)


def blob_files(cache):
    return files_under(os.path.join(cache.root, "blobs"))


def partial_files(cache):
    return files_under(os.path.join(cache.root, ".imagepusher", "ingest"))


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def descriptor(content, media_type=mt.OCI_MANIFEST):
    return {"mediaType": media_type, "digest": of_bytes(content), "size": len(content)}


# -- layout ------------------------------------------------------------------------

def test_ensure_creates_an_oci_layout(tmp_path):
    root = tmp_path / "new" / "cache"
    cache = Cache(str(root))
    assert not cache.exists()
    assert cache.ensure() is cache
    assert cache.exists()
    assert json.loads(read(str(root / "oci-layout"))) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads(read(str(root / "index.json"))) == {
        "schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    assert (root / "blobs").is_dir()
    assert (root / ".imagepusher" / "ingest").is_dir() and (root / ".imagepusher" / "locks").is_dir()
    assert cache.entries() == []


def test_ensure_is_idempotent_and_keeps_refs(cache):
    cache.set_ref("docker.io/library/nginx:1.27", descriptor(b"{}"))
    before = {name: read(os.path.join(cache.root, name)) for name in ("oci-layout", "index.json")}
    Cache(cache.root).ensure()
    cache.ensure()
    assert {name: read(os.path.join(cache.root, name)) for name in ("oci-layout", "index.json")} == before
    assert [e["annotations"][REF_NAME] for e in cache.entries()] == ["docker.io/library/nginx:1.27"]


def test_ensure_on_an_unwritable_place_is_a_cache_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"not a directory")
    with pytest.raises(CacheError) as info:
        Cache(str(blocker / "cache")).ensure()
    assert info.value.message.startswith("cache error while creating the cache (%s): " % (blocker / "cache"))


def test_default_cache_dir_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _cache.default_cache_dir() == os.path.join(str(tmp_path), "imagepusher")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache.default_cache_dir() == os.path.join(str(tmp_path), "home", ".cache", "imagepusher")


# -- digests are never paths -----------------------------------------------------

@pytest.mark.parametrize("digest", [
    "sha256:../../../../etc/passwd",
    "../../etc/passwd",
    "sha256:" + "a" * 62 + "/..",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 64 + "\n",
    "md5:" + "a" * 32,
    "",
])
def test_path_like_digests_are_refused_before_touching_the_disk(tmp_path, cache, digest):
    before = files_under(str(tmp_path))
    opener = Opener(serve())
    for call in (cache.blob_path, cache.partial_path, cache.has_blob):
        with pytest.raises(InvalidDigestError, match="Invalid digest"):
            call(digest)
    with pytest.raises(InvalidDigestError, match="Invalid digest"):
        download_blob(cache, digest, SIZE, opener, RetryBudget(3))
    with pytest.raises(InvalidDigestError):
        cache.write_blob_bytes(digest, DATA)
    assert opener.calls == []
    assert files_under(str(tmp_path)) == before


def test_blob_path_layout(cache):
    algorithm, hexdigest = split(DIGEST)
    assert cache.blob_path(DIGEST) == os.path.join(cache.root, "blobs", "sha256", hexdigest)
    assert cache.partial_path(DIGEST) == os.path.join(cache.root, ".imagepusher", "ingest",
                                                      "sha256-%s.partial" % hexdigest)


def test_set_ref_failing_on_a_full_disk_leaves_index_json_unchanged(cache, monkeypatch):
    cache.set_ref("reg.test/a:v1", descriptor(b"{}"))
    before = read(os.path.join(cache.root, "index.json"))

    def full(path, data, root=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(_cache, "atomic_write", full)
    with pytest.raises(CacheError) as info:
        cache.set_ref("reg.test/a:v2", descriptor(b"[]"))
    assert info.value.message.startswith("cache is out of disk space while updating index.json")
    assert read(os.path.join(cache.root, "index.json")) == before


def test_atomic_write_leaves_no_temp_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "index.json"
    target.write_bytes(b"old")

    def broken_rename(src, dst, **dir_fds):
        raise OSError(errno.EXDEV, "nope")
    monkeypatch.setattr(_cache.os, "rename", broken_rename)
    with pytest.raises(OSError):
        _cache.atomic_write(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]


# -- refs (index.json) ------------------------------------------------------------------

NGINX = "docker.io/library/nginx:1.27"
APP = "127.0.0.1:5000/team/app:v1"


def index_json(cache):
    return json.loads(read(os.path.join(cache.root, "index.json")))


def test_set_ref_adds_replaces_and_keeps_other_refs(cache):
    first, second, other = descriptor(b"{1}"), descriptor(b"{2}"), descriptor(b"{3}")
    assert cache.set_ref(NGINX, first, {"io.imagepusher.platforms": "linux/amd64"}) is True
    assert cache.set_ref(APP, other) is True
    assert cache.set_ref(NGINX, first, {"io.imagepusher.platforms": "linux/amd64"}) is False  # unchanged
    assert cache.set_ref(NGINX, second) is True  # replaced
    document = index_json(cache)
    assert document["schemaVersion"] == 2 and document["mediaType"] == mt.OCI_INDEX
    assert document["manifests"] == [  # sorted by name
        dict(other, annotations={REF_NAME: APP}),
        dict(second, annotations={REF_NAME: NGINX}),
    ]
    assert cache.get_ref(NGINX) == dict(second, annotations={REF_NAME: NGINX})
    assert cache.get_ref("docker.io/library/absent:1") is None


def test_set_ref_with_changed_annotations_is_a_change(cache):
    cache.set_ref(NGINX, descriptor(b"{}"), {"a": "1"})
    assert cache.set_ref(NGINX, descriptor(b"{}"), {"a": "2"}) is True
    assert cache.get_ref(NGINX)["annotations"] == {"a": "2", REF_NAME: NGINX}


def test_remove_ref(cache):
    cache.set_ref(NGINX, descriptor(b"{1}"))
    cache.set_ref(APP, descriptor(b"{2}"))
    assert cache.remove_ref(NGINX) is True
    assert cache.remove_ref(NGINX) is False
    assert [e["annotations"][REF_NAME] for e in cache.entries()] == [APP]


def test_entries_of_a_damaged_index(cache):
    with open(os.path.join(cache.root, "index.json"), "w") as handle:
        handle.write("{not json")
    with pytest.raises(CacheError) as info:
        cache.entries()
    assert info.value.message == "%s is not valid JSON: the cache is damaged" % os.path.join(cache.root, "index.json")


def test_entries_without_an_index(tmp_path):
    assert Cache(str(tmp_path / "nothing")).entries() == []


# -- sources -------------------------------------------------------------------------------

def test_record_sources_and_sources(cache):
    d1, d2 = of_bytes(b"1"), of_bytes(b"2")
    assert cache.sources(d1) == []
    cache.record_sources([d1, d2], "reg.test/team/app")
    cache.record_sources([d1], "reg.test/team/other")
    cache.record_sources([d1], "reg.test/team/app")  # no duplicate
    assert cache.sources(d1) == ["reg.test/team/app", "reg.test/team/other"]
    assert cache.sources(d2) == ["reg.test/team/app"]
    assert Cache(cache.root).sources(d1) == ["reg.test/team/app", "reg.test/team/other"]  # persisted


@pytest.mark.parametrize("content", [
    b"{broken",
    b"[1, 2]",
    b'{"sha256:x": "not a list"}',
    b'{"sha256:x": 7}',
])
def test_sources_is_best_effort_on_a_damaged_file(cache, content):
    with open(os.path.join(cache.root, ".imagepusher", "sources.json"), "wb") as handle:
        handle.write(content)
    assert cache.sources("sha256:x") == []
    cache.record_sources(["sha256:x"], "reg.test/a")
    assert cache.sources("sha256:x") == ["reg.test/a"]


# -- small blobs ----------------------------------------------------------------------------

MANIFEST_BYTES = b'{"schemaVersion": 2, "exact": "bytes"}'
MANIFEST_DIGEST = of_bytes(MANIFEST_BYTES)


def tamper(cache, digest, content):
    path = cache.blob_path(digest)
    os.chmod(path, 0o644)
    with open(path, "wb") as handle:
        handle.write(content)


def test_write_blob_bytes_and_read_small_blob(cache):
    assert cache.write_blob_bytes(MANIFEST_DIGEST, MANIFEST_BYTES) is True
    assert cache.write_blob_bytes(MANIFEST_DIGEST, MANIFEST_BYTES) is False
    assert cache.read_small_blob(MANIFEST_DIGEST, 1024) == MANIFEST_BYTES
    assert partial_files(cache) == []


def test_read_small_blob_detects_a_tampered_blob(cache):
    cache.write_blob_bytes(MANIFEST_DIGEST, MANIFEST_BYTES)
    tamper(cache, MANIFEST_DIGEST, MANIFEST_BYTES.replace(b"exact", b"EXACT"))
    with pytest.raises(CacheError) as info:
        cache.read_small_blob(MANIFEST_DIGEST, 1024)
    assert info.value.message == ("cached blob %s does not match its digest: the cache is damaged; run image_cache "
                                  "with state=verified" % MANIFEST_DIGEST)


def test_read_small_blob_is_bounded(cache):
    cache.write_blob_bytes(MANIFEST_DIGEST, MANIFEST_BYTES)
    with pytest.raises(CacheError) as info:
        cache.read_small_blob(MANIFEST_DIGEST, 10)
    assert info.value.message == "cached blob %s is larger than 10 bytes" % MANIFEST_DIGEST


def test_read_small_blob_missing(cache):
    with pytest.raises(CacheError, match="cache error while reading blob %s" % MANIFEST_DIGEST):
        cache.read_small_blob(MANIFEST_DIGEST, 1024)


def test_write_blob_bytes_rewrites_a_tampered_manifest(cache):
    cache.write_blob_bytes(MANIFEST_DIGEST, MANIFEST_BYTES)
    tamper(cache, MANIFEST_DIGEST, MANIFEST_BYTES.replace(b"exact", b"EXACT"))  # same size, other bytes
    assert cache.write_blob_bytes(MANIFEST_DIGEST, MANIFEST_BYTES) is True
    assert cache.read_small_blob(MANIFEST_DIGEST, 1024) == MANIFEST_BYTES


def test_write_blob_bytes_refuses_bytes_that_do_not_match(cache):
    with pytest.raises(DigestMismatchError, match="^manifest %s: expected" % MANIFEST_DIGEST):
        cache.write_blob_bytes(MANIFEST_DIGEST, MANIFEST_BYTES + b" ")
    assert blob_files(cache) == []


# -- locks and concurrency --------------------------------------------------------------------

_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


class HeldByAnotherProcess:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, self.path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        assert self.proc.stdout.readline() == b"locked\n"
        return self

    def __exit__(self, *exc_info):
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


def test_file_lock_times_out_when_another_process_holds_it(tmp_path):
    path = str(tmp_path / "x.lock")
    with HeldByAnotherProcess(path):
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as info:
            with FileLock(path, timeout=1, poll=0.02):
                pass
        waited = time.monotonic() - started
    assert 0.9 <= waited < 3
    assert info.value.message == "timed out after 1s waiting for cache lock %s held by another run" % path
    assert info.value.details == {"path": path}
    with FileLock(path, timeout=1):  # released with the other process
        pass


def test_threads_of_one_process_wait_for_each_other_without_polling(tmp_path):
    """A poll of an hour: a thread woken only by polling would never get the lock within the test."""
    path = str(tmp_path / "x.lock")
    order, taken = [], threading.Event()

    def second():
        lock = FileLock(path, timeout=30, poll=3600)
        taken.set()
        with lock:
            order.append(("second", lock.waited))

    with FileLock(path, timeout=30, poll=3600) as first:
        assert not first.waited
        thread = threading.Thread(target=second)
        thread.start()
        taken.wait(5)
        time.sleep(0.2)  # the second thread is waiting for the lock now
        order.append(("first", first.waited))
    thread.join(10)
    assert not thread.is_alive() and order == [("first", False), ("second", True)]


def test_a_thread_times_out_as_a_process_does(tmp_path):
    path = str(tmp_path / "x.lock")
    with FileLock(path, timeout=30):
        errors = []

        def other():
            try:
                with FileLock(path, timeout=0.3):
                    pass
            except LockTimeoutError as exc:
                errors.append(exc.message)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
    assert errors == ["timed out after 0s waiting for cache lock %s held by another run" % path]
    with FileLock(path, timeout=1) as again:  # released: neither thread nor process holds it
        assert not again.waited


def test_a_lock_another_process_held_says_it_waited(tmp_path):
    path = str(tmp_path / "x.lock")
    with HeldByAnotherProcess(path) as other:
        thread = threading.Timer(0.3, other.__exit__)
        thread.start()
        with FileLock(path, timeout=10, poll=0.02) as lock:
            assert lock.waited
        thread.join()


# -- planted links and other non-regular entries (a shared cache) ------------------------------

SECRET = b"outside the cache\n"


@pytest.fixture
def outside(tmp_path):
    """A file outside the cache that planted links point at: it must keep its bytes."""
    path = tmp_path / "outside" / "victim"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def test_a_planted_partial_link_is_never_written_through(cache, outside):
    os.symlink(str(outside), cache.partial_path(DIGEST))
    assert cache.partial_size(DIGEST) == 0  # not trusted: no resume from it
    opener = Opener(serve())
    assert download_blob(cache, DIGEST, SIZE, opener, RetryBudget(0)) == ("downloaded", SIZE)
    assert opener.calls == [0]
    assert outside.read_bytes() == SECRET
    assert read(cache.blob_path(DIGEST)) == DATA and not os.path.islink(cache.blob_path(DIGEST))
    assert partial_files(cache) == []


def test_a_blob_linked_to_wrong_bytes_of_the_right_size_is_not_trusted(cache, outside):
    outside.write_bytes(b"X" * SIZE)
    os.makedirs(os.path.dirname(cache.blob_path(DIGEST)), exist_ok=True)
    os.symlink(str(outside), cache.blob_path(DIGEST))
    assert not cache.has_blob(DIGEST, SIZE) and not cache.has_blob(DIGEST)
    with pytest.raises(CacheError) as info:
        cache.open_blob(DIGEST)
    assert "symbolic link" in info.value.message and cache.blob_path(DIGEST) in info.value.message
    with pytest.raises(CacheError):
        cache.read_small_blob(DIGEST, SIZE)
    assert download_blob(cache, DIGEST, SIZE, Opener(serve()), RetryBudget(0)) == ("downloaded", SIZE)
    assert not os.path.islink(cache.blob_path(DIGEST)) and read(cache.blob_path(DIGEST)) == DATA
    assert outside.read_bytes() == b"X" * SIZE


def test_a_linked_lock_file_is_replaced_not_followed(cache, outside):
    lock = cache.lock("index")
    if os.path.lexists(lock.path):
        os.unlink(lock.path)
    os.symlink(str(outside), lock.path)
    with lock:
        assert not os.path.islink(lock.path)
    assert outside.read_bytes() == SECRET


def test_a_linked_ingest_directory_is_refused(cache, outside):
    ingest = os.path.join(cache.root, ".imagepusher", "ingest")
    os.rmdir(ingest)
    os.symlink(str(outside.parent), ingest)
    with pytest.raises(CacheError) as info:
        download_blob(cache, DIGEST, SIZE, Opener(serve()), RetryBudget(0))
    assert ingest in info.value.message
    assert sorted(os.listdir(str(outside.parent))) == ["victim"] and outside.read_bytes() == SECRET


def test_a_linked_index_json_is_refused_not_rewritten(cache, outside):
    index = os.path.join(cache.root, "index.json")
    os.unlink(index)
    os.symlink(str(outside), index)
    assert cache.exists()
    with pytest.raises(CacheError) as info:
        cache.set_ref(NGINX, descriptor(b"{}"))
    assert index in info.value.message
    cache.ensure()
    assert os.path.islink(index) and outside.read_bytes() == SECRET


# -- a malformed index.json is an error, never rewritten -------------------------------------

@pytest.mark.parametrize("content", [b"[]", b"\"text\"", b"{\"manifests\": {}}", b"{\"manifests\": [1]}", b"{}"])
def test_a_malformed_index_json_is_a_clear_error_and_kept(cache, content):
    index = os.path.join(cache.root, "index.json")
    with open(index, "wb") as handle:
        handle.write(content)
    with pytest.raises(CacheError) as info:
        cache.set_ref(NGINX, descriptor(b"{}"))
    assert "is not an OCI image index" in info.value.message and index in info.value.message
    assert read(index) == content


def test_an_oversized_index_json_is_refused_without_reading_it_whole(cache, monkeypatch):
    monkeypatch.setattr(_cache, "INDEX_LIMIT", 1024)
    index = os.path.join(cache.root, "index.json")
    content = json.dumps({"schemaVersion": 2, "manifests": [{"digest": "x" * 2000}]}).encode("utf-8")
    with open(index, "wb") as handle:
        handle.write(content)
    with pytest.raises(CacheError) as info:
        cache.entries()
    assert "larger than" in info.value.message and index in info.value.message
    assert read(index) == content


# -- modes follow the umask ------------------------------------------------------------------

@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o077, 0o600, 0o700), (0o022, 0o644, 0o755)])
def test_every_file_and_directory_the_cache_creates_follows_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        cache = Cache(str(tmp_path / "cache")).ensure()
        download_blob(cache, DIGEST, SIZE, Opener(serve()), RetryBudget(0))
        cache.write_blob_bytes(of_bytes(b"{}"), b"{}")
        cache.set_ref(NGINX, descriptor(b"{}"))
        cache.record_sources([DIGEST], "reg.test/team/app")
    finally:
        os.umask(old)
    modes = {}
    for directory, dirs, names in os.walk(cache.root):
        for name in dirs + names:
            path = os.path.join(directory, name)
            modes[os.path.relpath(path, cache.root)] = os.stat(path).st_mode & 0o777
    dirs = [p for p in modes if os.path.isdir(os.path.join(cache.root, p))]
    assert {"index.json", "oci-layout", ".imagepusher/sources.json"} <= set(modes)
    assert set(modes[p] for p in dirs) == {dir_mode}
    assert set(modes[p] for p in modes if p not in dirs) == {file_mode}
