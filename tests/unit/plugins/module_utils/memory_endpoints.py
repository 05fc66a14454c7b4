"""In-memory endpoints for the planner and engine tests: no HTTP, no disk.

They follow the interface of _endpoints.py closely enough for the engine: a registry
repository (HEAD, mount, upload from a store, upload from a handoff, download with an
opener) and an OCI-layout store (verified put_blob from a source, with tee and on_bytes).
"""

import threading
from collections import namedtuple

from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import DigestMismatchError, TransportError
from ansible_collections.imagepusher.registry.plugins.module_utils._handoff import HandoffBroken

Descriptor = namedtuple("Descriptor", "digest size media_type")
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def blob(data, media_type=LAYER):
    return Descriptor(of_bytes(data), len(data), media_type)


class MemoryRegistry:
    """One repository: blobs by digest; counts what was asked of it."""

    def __init__(self, blobs=(), mountable=(), chunk=4, corrupt=(), fail_stream=(), fail_download=()):
        self.blobs = dict((of_bytes(b), bytes(b)) for b in blobs)
        self.mountable = set(mountable)  # digests another repository holds
        self.chunk = chunk
        self.corrupt = set(corrupt)
        self.fail_stream = set(fail_stream)
        self.fail_download = set(fail_download)
        self.lock = threading.Lock()
        self.calls = []

    def _call(self, *what):
        with self.lock:
            self.calls.append(what)

    def blob_exists(self, digest, size=None):
        return digest in self.blobs

    def opener(self, digest):
        def open_at(offset):
            self._call("get", digest, offset)
            if digest in self.fail_download:
                raise TransportError("source is down")
            data = self.blobs[digest]
            if digest in self.corrupt:
                data = data[:-1] + b"!"
            chunks = [data[i:i + self.chunk] for i in range(offset, len(data), self.chunk)]
            return _Chunks(chunks), offset, lambda: None
        return open_at, None

    def put_blob(self, digest, size, store, mount_from=(), on_bytes=None):
        for repository in mount_from:
            self._call("mount", digest, repository)
            if digest in self.mountable:
                self.blobs[digest] = b"(mounted)"
                return "mounted", 0
        self._call("upload", digest)
        self.blobs[digest] = store.blobs[digest]
        if on_bytes is not None:
            on_bytes(size)  # as a real upload reports the blocks it sends
        return "uploaded", size

    def stream_blob(self, digest, size, handoff):
        self._call("stream", digest)
        received = bytearray()
        try:
            if digest in self.fail_stream:
                raise HandoffBroken("the target refused the stream")
            while True:
                chunk = handoff.read()
                if not chunk:
                    break
                received += bytes(chunk)
            if not handoff.wait_finished():
                raise HandoffBroken("the download did not verify")
        finally:
            handoff.release()
        self.blobs[digest] = bytes(received)
        return size


class _Chunks:
    def __init__(self, chunks):
        self._chunks = list(chunks)

    def readinto(self, view):
        if not self._chunks:
            return 0
        chunk = self._chunks.pop(0)
        view[:len(chunk)] = chunk
        return len(chunk)


class MemoryStore:
    """An OCI layout in memory: put_blob verifies the digest before the blob counts as stored."""

    def __init__(self, blobs=()):
        self.blobs = dict((of_bytes(b), bytes(b)) for b in blobs)
        self.partials = {}

    def blob_exists(self, digest, size=None):
        return digest in self.blobs

    def partial_size(self, digest):
        return self.partials.get(digest, 0)

    def put_blob(self, digest, size, source, tee=None, on_bytes=None):
        if digest in self.blobs:
            return "cached", 0
        open_at, _budget = source.opener(digest)
        body, _start, close = open_at(0)
        data, view = bytearray(), memoryview(bytearray(1 << 16))
        try:
            while True:
                count = body.readinto(view)
                if not count:
                    break
                chunk = view[:count]
                if tee is not None:
                    tee.offer(len(data), chunk)
                data += chunk
                if tee is not None:
                    tee.wait_sent()
                if on_bytes:
                    on_bytes(count)
        finally:
            close()
        if of_bytes(bytes(data)) != digest:
            raise DigestMismatchError("blob %s does not match its digest" % digest)
        self.blobs[digest] = bytes(data)
        return "downloaded", len(data)
