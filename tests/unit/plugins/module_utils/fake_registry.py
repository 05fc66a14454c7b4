# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An in-memory stand-in for _registry.RegistryClient, for the tests of the endpoints and the copy jobs.

It has the methods _endpoints, _upload and _download call (HEAD/GET/PUT of manifests, blob
HEAD/GET with offsets, mounts, upload sessions) over plain dicts, one per repository, and
records every call as (method, repository, ref or digest), so a test can say what a job
asked of the registry. Imported as ``tests.unit.plugins.module_utils.fake_registry``.
"""

import threading

from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import NotFoundError, RegistryError
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import parse
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import RetryBudget


class FakeTransport:
    def __init__(self):
        self.retry_count = 0
        self.budgets = 0

    def new_budget(self):
        self.budgets += 1
        return RetryBudget(0, sleep=lambda delay: None)


class Repository:
    def __init__(self):
        self.blobs = {}  # digest -> bytes
        self.manifests = {}  # digest -> (raw, media type)
        self.tags = {}  # tag -> digest


class _Response:
    """Just enough of a streamed requests.Response for _transport.BodyReader."""

    def __init__(self, data, chunk=1000):
        self.headers = {}
        self._data = data
        self._chunk = chunk
        self.closed = False

    def iter_content(self, size):
        step = min(size, self._chunk)
        for start in range(0, len(self._data), step):
            yield self._data[start:start + step]

    def close(self):
        self.closed = True


class FakeRegistryClient:
    def __init__(self, registry="reg.test"):
        self.registry = registry
        self.transport = FakeTransport()
        self.repos = {}
        self.calls = []
        self.uploads = {}  # location -> bytearray
        self.sessions_started = 0
        self.reported_digest = None  # what put_manifest answers instead of the true digest
        self.mounts_work = False  # as RegistryClient: set by the first mount the registry honours
        self._lock = threading.Lock()

    # -- set up and inspect ----------------------------------------------------------

    def repo(self, repository):
        return self.repos.setdefault(repository, Repository())

    def publish(self, repository, tag, store, top=None):
        """Everything a tree_builders.Store holds into `repository`; `tag` names `top`."""
        repo = self.repo(repository)
        repo.blobs.update(store.blobs)
        for digest, manifest in store.manifests.items():
            repo.manifests[digest] = (manifest.raw, manifest.media_type)
        if top is not None:
            repo.tags[tag] = top.digest

    def seen(self, *methods):
        """The calls to any of `methods`, in order."""
        return [c for c in self.calls if c[0] in methods]

    def _call(self, method, repository, what):
        with self._lock:
            self.calls.append((method, repository, what))

    def _manifest(self, repository, ref):
        repo = self.repo(repository)
        digest = ref if ":" in ref else repo.tags.get(ref)
        return repo.manifests.get(digest)

    # -- manifests -----------------------------------------------------------------

    def head_manifest(self, repository, ref, scopes=None):
        self._call("head_manifest", repository, ref)
        found = self._manifest(repository, ref)
        if found is None:
            return None
        return {"digest": of_bytes(found[0]), "media_type": found[1], "size": len(found[0])}

    def get_manifest(self, repository, ref, expected_digest=None, scopes=None):
        self._call("get_manifest", repository, ref)
        found = self._manifest(repository, ref)
        if found is None:
            raise NotFoundError("manifest %s:%s not found" % (repository, ref), status=404)
        return parse(found[0], found[1], expected_digest=expected_digest)

    def put_manifest(self, repository, ref, raw, media_type):
        self._call("put_manifest", repository, ref)
        repo = self.repo(repository)
        digest = of_bytes(raw)
        repo.manifests[digest] = (bytes(raw), media_type)
        if ":" not in ref:
            repo.tags[ref] = digest
        return self.reported_digest or digest

    # -- blobs ---------------------------------------------------------------------

    def head_blob(self, repository, digest, scopes=None, budget=None):
        self._call("head_blob", repository, digest)
        data = self.repo(repository).blobs.get(digest)
        return None if data is None else len(data)

    def open_blob(self, repository, digest, offset=0, scopes=None, budget=None):
        self._call("open_blob", repository, digest)
        data = self.repo(repository).blobs.get(digest)
        if data is None:
            raise NotFoundError("blob %s not found in %s" % (digest, repository), status=404)
        return _Response(data[offset:]), offset

    def get_small_blob(self, repository, digest, limit, scopes=None):
        self._call("get_small_blob", repository, digest)
        data = self.repo(repository).blobs.get(digest)
        if data is None:
            raise NotFoundError("blob %s not found in %s" % (digest, repository), status=404)
        return data

    def mount_blob(self, repository, digest, source_repository, budget=None):
        self._call("mount_blob", repository, (digest, source_repository))
        data = self.repos.get(source_repository, Repository()).blobs.get(digest)
        if data is None:
            return False
        self.repo(repository).blobs[digest] = data
        self.mounts_work = True
        return True

    def repository_was_unknown(self, repository, scopes=None):
        """As Distribution's tag list: a repository without a tag is not known (asked each time here)."""
        self._call("tag_list", repository, None)
        return not self.repos.get(repository, Repository()).tags

    # -- upload sessions -------------------------------------------------------------

    def start_upload(self, repository, budget=None, probe=None):
        asks = bool(probe and self.mounts_work)
        self._call("start_upload", repository, probe if asks else None)
        if asks and probe in self.repo(repository).blobs:
            return None, None
        with self._lock:
            self.sessions_started += 1
            location = "http://%s/v2/%s/blobs/uploads/%d" % (self.registry, repository, self.sessions_started)
            self.uploads[location] = bytearray()
        return location, None

    def upload_status(self, repository, location, budget=None):
        self._call("upload_status", repository, location)
        data = self.uploads.get(location)
        return None if data is None else (len(data), location)

    def upload_chunk(self, repository, location, body, start, what, budget=None):
        received = bytearray()
        while True:
            chunk = body.read()
            if not chunk:
                break
            received += bytes(chunk)
        self._call("upload_chunk", repository, len(received))
        data = self.uploads[location]
        del data[start:]
        data += received
        return location, 202

    def cancel_upload(self, repository, location, budget=None):
        self._call("cancel_upload", repository, location)
        return self.uploads.pop(location, None) is not None

    def finish_upload(self, repository, location, digest, what, budget=None, body=None):
        self._call("finish_upload", repository, digest)
        if body is not None:
            self.uploads[location] += b"".join(bytes(block) for block in iter(body.read, b""))
        data = bytes(self.uploads.pop(location))
        if of_bytes(data) != digest:
            raise RegistryError("%s: the bytes do not match %s" % (what, digest), status=400)
        self.repo(repository).blobs[digest] = data
