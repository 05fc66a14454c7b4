# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endpoints: the two ends of a copy, behind one small interface.

Every endpoint answers, for manifests and blobs, whether it has them and gives or takes
them; the planner asks, the engine moves bytes between two of them:

    get_manifest(ref, descriptor=None)   a Manifest, verified against its digest
    get_small_blob(digest, limit)        a config in memory, bounded and verified
    blob_exists(digest, size=None)       bool
    put_blob(digest, size, source, ...)  bring a blob in from `source` (a registry mounts it from
                                         another repository where it can): (action, bytes moved)
    put_manifest(ref, manifest)          store the exact bytes under ref

RegistryEndpoint is one repository of a registry; StoreEndpoint is an OCI image layout:
the cache (written, with resumable ingest and upload sessions) or a layout directory of
another tool (only read). Blob bytes move as streams: a registry's blob is read with Range
requests that a download resumes from; a layout's blob is read from its file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _download
from ansible_collections.imagepusher.registry.plugins.module_utils._changes import Changes
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils import _upload
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import DigestMismatchError, RegistryError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import repository_scope
from ansible_collections.imagepusher.registry.plugins.module_utils._sessions import NoSessions, UploadSessions
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import BodyReader
from ansible_collections.imagepusher.registry.plugins.module_utils._upload_lock import NoUploadLock, UploadLock


class RegistryEndpoint:
    """One repository of a registry, read (a source) or written (a target: push scopes from the first HEAD,
    so one token serves the whole copy)."""

    def __init__(self, client, reference, writable=False, sessions=None, chunk_size=None):
        self.client = client
        self.reference = reference
        self.repository = reference.repository
        self.registry = reference.registry
        self.name = reference.name  # "registry/repository", as the cache records where blobs are
        self.chunk_size = chunk_size
        self.sessions = sessions or NoSessions()
        self.changes = Changes(pushes=True)  # what this run wrote here, for a failure's result
        self._scopes = [repository_scope(self.repository, "pull", "push") if writable
                        else repository_scope(self.repository, "pull")]

    @property
    def retry_count(self):
        return self.client.transport.retry_count

    def manifest_exists(self, ref):
        """What a HEAD says ({'digest', 'media_type', 'size'}; digest None when not sent), or None."""
        return self.client.head_manifest(self.repository, ref, scopes=self._scopes)

    def get_manifest(self, ref, descriptor=None):
        digest = descriptor.digest if descriptor else (ref if ":" in ref else None)
        manifest = self.client.get_manifest(self.repository, ref, expected_digest=digest)
        if descriptor is not None and descriptor.size != len(manifest.raw):
            raise DigestMismatchError("manifest %s of %s: the index declares %d bytes but the registry sent %d"
                                      % (descriptor.digest, self.reference, descriptor.size, len(manifest.raw)))
        return manifest

    def get_small_blob(self, digest, limit):
        return self.client.get_small_blob(self.repository, digest, limit)

    def referrers(self, digest):
        """The descriptors the Referrers API lists for `digest`, or None when the registry lacks that API."""
        return self.client.get_referrers(self.repository, digest, scopes=self._scopes)

    def blob_exists(self, digest, size=None):
        return self.client.head_blob(self.repository, digest, scopes=self._scopes) is not None

    def uploads_find_blobs(self, tag_exists):
        """Whether a real run may leave out the HEAD of a blob it would upload here. Only when

        - the registry has honoured a mount: the POST that starts an upload then asks for the blob
          (RegistryClient.start_upload), so one a run that died before its first tag left here is found, and
        - the repository did not exist when the task first looked (its tag list said NAME_UNKNOWN): a blob
          in it was then put there by this task, which knows it (_fleet.py), or by a run that died.

        Not in a repository that had a tag: there, a mount of a blob it holds would rewrite the link to the
        blob in place, and a manifest PUT of another tag (another image of the task, another run or host)
        that reads the link meanwhile fails (Distribution: MANIFEST_BLOB_UNKNOWN). The HEAD writes nothing."""
        if tag_exists or not self.client.mounts_work:
            return False
        return self.client.repository_was_unknown(self.repository, self._scopes)

    def blob_known(self, digest):
        """Whether this task put `digest` here already, known without a request (see _fleet.FleetTarget)."""
        return False

    def opener(self, digest):
        """open(offset) -> (body with readinto, offset served, close) for a download of `digest`; every
        request of that download, and each resume after a drop, draws from one retry budget."""
        budget = self.client.transport.new_budget()

        def open_at(offset):
            response, start = self.client.open_blob(self.repository, digest, offset, budget=budget)
            return BodyReader(response, self.registry), start, response.close

        return open_at, budget

    def mount_blob(self, digest, repository, budget=None):
        return self.client.mount_blob(self.repository, digest, repository, budget=budget)

    def put_blob(self, digest, size, store, mount_from=(), on_bytes=None):
        """Mount the blob from one of `mount_from` (repositories of this registry), else upload it from a
        layout's file (or from the bodies `store` gives, see _upload.py), resuming a session a killed run left:
        (action, bytes sent). One retry budget pays for the mounts, the upload's requests and its restarts."""
        budget = self.client.transport.new_budget()
        with store.upload_lock(self.name, digest) as lock:
            # Another run pushing the same blob here may have sent it while this one waited for the lock.
            if lock.waited and self.client.head_blob(self.repository, digest, self._scopes, budget) is not None:
                return _plan.EXISTS, 0
            for repository in mount_from:
                if self.mount_blob(digest, repository, budget):
                    self.changes.blob(_plan.MOUNTED, 0)
                    return _plan.MOUNTED, 0
            # A resumed session sends only what the registry lacked (and says RESUMED).
            action, sent = _upload.send_blob(
                self.client, self.reference, digest, size, store.blob_bodies(digest, size, on_bytes), self.sessions,
                budget, chunk_size=self.chunk_size, resumable=store.keeps_sessions)
            self.changes.blob(action, sent)
            return action, sent

    def stream_blob(self, digest, size, handoff):
        """Upload from a download's buffer while it downloads (see _handoff.py); the bytes sent."""
        sent = _upload.upload_stream(self.client, self.reference, digest, size, handoff)
        self.changes.blob(_plan.UPLOADED, sent)
        return sent

    def put_manifest(self, ref, manifest):
        pushed = self.client.put_manifest(self.repository, ref, manifest.raw, manifest.media_type)
        if pushed != manifest.digest:
            raise RegistryError("registry %s stored manifest %s as %s: it changed the bytes"
                                % (self.registry, manifest.digest, pushed))
        self.changes.manifest("%s:%s" % (self.name, ref) if ":" not in ref else "%s@%s" % (self.name, ref))


class StoreEndpoint:
    """An OCI image layout: the cache (`keeps_sessions`: it is ours to write state into) or another
    tool's layout directory, which is only ever read."""

    def __init__(self, cache, keeps_sessions=True):
        self.cache = cache
        self.root = cache.root
        self.keeps_sessions = keeps_sessions
        self.changes = Changes()  # what this run wrote here, for a failure's result

    def upload_lock(self, target_name, digest):
        """What a push of `digest` to `target_name` holds while it mounts or uploads it (see _upload_lock.py)."""
        return UploadLock(self.cache, target_name, digest) if self.keeps_sessions else NoUploadLock()

    def upload_sessions(self):
        """Where a push saves its upload sessions: only in our own cache."""
        return UploadSessions(self.root) if self.keeps_sessions else NoSessions()

    def exists(self):
        return self.cache.exists()

    def get_manifest(self, ref, descriptor=None):
        """The manifest stored under a digest, verified against it and, given a descriptor, against the
        size that names it (as a registry's is): an index that lies about a child is refused either way."""
        digest = descriptor.digest if descriptor else ref
        raw = self.cache.read_small_blob(digest, _manifest.MAX_MANIFEST_BYTES)
        if descriptor is not None and descriptor.size != len(raw):
            raise DigestMismatchError("manifest %s: the index declares %d bytes but the one stored in %s has %d"
                                      % (digest, descriptor.size, self.root, len(raw)))
        return _manifest.parse(raw, descriptor.media_type if descriptor else None, expected_digest=digest)

    def get_small_blob(self, digest, limit):
        return self.cache.read_small_blob(digest, limit)

    def blob_exists(self, digest, size=None):
        return self.cache.has_blob(digest, size)

    def partial_size(self, digest):
        return self.cache.partial_size(digest)

    def blob_path(self, digest):
        return self.cache.blob_path(digest)

    def blob_bodies(self, digest, size, on_bytes=None):
        """The request bodies an upload of `digest` reads: its file."""
        return _upload.FileBodies(self.blob_path(digest), on_bytes)

    def sources(self, digest):
        """The "registry/repository" names the cache saw `digest` in (where a push may mount it from)."""
        return self.cache.sources(digest)

    def stored(self, descriptors):
        """The digests of `descriptors` the layout holds (size checked): what the planner reuses."""
        return set(d.digest for d in descriptors if self.cache.has_blob(d.digest, d.size))

    def stored_manifests(self, manifests):
        return set(m.digest for m in manifests if self.cache.has_blob(m.digest, len(m.raw)))

    def partials(self, descriptors):
        return dict((d.digest, self.cache.partial_size(d.digest)) for d in descriptors)

    def put_blob(self, digest, size, source, tee=None, on_bytes=None):
        """Download from `source` into the layout (verified, resumable): (action, bytes transferred)."""
        opener, budget = source.opener(digest)
        action, count = _download.download_blob(self.cache, digest, size, opener, budget, tee=tee, on_bytes=on_bytes)
        self.changes.blob(action, count)
        return action, count

    def put_small_blob(self, digest, data):
        """Store bytes already in memory (and verified by whoever read them). True when newly written."""
        written = self.cache.write_blob_bytes(digest, data)
        if written:
            self.changes.blob(_plan.DOWNLOADED, len(data))
        return written

    def put_manifest(self, ref, manifest):
        written = self.cache.write_blob_bytes(manifest.digest, manifest.raw)
        if written:
            self.changes.manifest(manifest.digest)
        return written

    def set_ref(self, name, descriptor, annotations=None, require=()):
        """Point the cache name `name` at an image (see Cache.set_ref). True when index.json changed."""
        changed = self.cache.set_ref(name, descriptor, annotations, require=require)
        if changed:
            self.changes.name(name)
        return changed
