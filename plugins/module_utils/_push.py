# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Push: cache (or any OCI image layout) -> registry, idempotent and digest-preserving.

Order: HEAD the target tag (same digest: done, one request); HEAD each blob; mount
what another repository of the same registry holds; upload the rest streaming from
disk; then child manifests by digest and the top manifest by tag, as the exact
stored bytes.  The target digest therefore equals the cached digest.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._blob_io import BlobReader
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    NotCachedError,
    RegistryError,
    TransportError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._handoff import HandoffBroken
from ansible_collections.imagepusher.registry.plugins.module_utils._names import normalize_platforms
from ansible_collections.imagepusher.registry.plugins.module_utils._parallel import parallel_map
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import repository_scope
from ansible_collections.imagepusher.registry.plugins.module_utils._sessions import NoSessions, UploadSessions
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import should_retry_status

UPLOADED = "uploaded"
MOUNTED = "mounted"
EXISTS = "exists"
PUSHED = "pushed"
# Chunk size used after a registry refused a whole blob in one request (HTTP 413).
FALLBACK_CHUNK = 16 * 1024 * 1024
# Blobs above this go up in chunks of this size when pushing from the cache, so a killed push
# loses at most one chunk: the session (saved after each acknowledged chunk) resumes next run.
RESUMABLE_CHUNK = 128 * 1024 * 1024


class Pusher:
    def __init__(self, client, cache, concurrency=4, retries=3, chunk_size=None, record_sources=True):
        self.client = client
        self.cache = cache  # the cache, or a foreign OCI layout we only read
        self.record = record_sources
        # Only our own cache keeps state; a foreign layout is never written to.
        self.resumable = record_sources
        self.sessions = UploadSessions(cache.root) if record_sources else NoSessions()
        self.concurrency = max(1, concurrency)
        self.retries = retries
        self.chunk_size = chunk_size

    def push(self, source_name, entry, target, platforms=None, check_mode=False):
        tree = self.source_tree(source_name, entry, platforms)
        before = self.head_target(target)
        if before == tree.digest:
            return self.result(source_name, target, tree, [], [], False, before)
        blob_plan, manifest_plan = self.plan(target, tree)
        if not check_mode:
            self.finish(target, tree, blob_plan, manifest_plan)
        return self.result(source_name, target, tree, blob_plan, manifest_plan, True, before)

    def source_tree(self, source_name, entry, platforms=None):
        """The stored image to push (narrowed to `platforms`); NotCachedError when incomplete."""
        wanted = normalize_platforms(platforms)
        tree = _tree.complete_tree(self.cache, entry["digest"], entry.get("mediaType"))
        if tree is None:
            raise NotCachedError("image %s in %s is incomplete (a manifest or blob is missing); pull it again"
                                 % (source_name, self.cache.root), name=source_name)
        if wanted and tree.top.is_index:
            tree = _tree.narrow_stored(self.cache, tree, wanted)
        return tree

    def head_target(self, target):
        """The digest the target tag names now, or None."""
        head = self.head_target_manifest(target)
        return head["digest"] if head else None

    def head_target_manifest(self, target):
        """What a HEAD of the target tag says ({'digest', 'media_type', 'size'}), or None."""
        return self.client.head_manifest(target.repository, target.ref, scopes=[repository_scope(target.repository, "pull", "push")])

    def plan(self, target, tree):
        """(blob plan, manifest plan) from HEAD requests on the target: read-only."""
        return self._plan_blobs(target, tree), self._plan_manifests(target, tree)

    def finish(self, target, tree, blob_plan, manifest_plan):
        """Move the blobs not yet moved, then push the manifests, children first."""
        parallel_map(lambda item: self.move(target, item), blob_plan, self.concurrency)
        repo = target.repository
        for item in manifest_plan:
            if item["action"] == PUSHED:
                manifest = item["manifest"]
                ref = target.ref if manifest is tree.top else manifest.digest
                pushed = self.client.put_manifest(repo, ref, manifest.raw, manifest.media_type)
                if pushed != manifest.digest:
                    raise RegistryError("registry %s stored manifest %s as %s: it changed the bytes"
                                        % (target.registry, manifest.digest, pushed))
        if self.record:
            # Remembered so a later push to another repository of this registry can mount instead.
            self.cache.record_sources([b["digest"] for b in blob_plan], target.name)

    def move(self, target, item):
        """Mount or upload one planned blob (thread-safe); no-op when it exists or was moved."""
        if item["action"] == EXISTS or item.get("done"):
            return
        for source_repo in item.get("mount_from") or []:
            if self.client.mount_blob(target.repository, item["digest"], source_repo):
                item.update(action=MOUNTED, bytes=0, done=True)
                return
        sent = self._upload(target, item)
        # A resumed session sends only what the registry lacked.
        item.update(action=UPLOADED, bytes=sent, done=True)

    def _plan_blobs(self, target, tree):
        repo = target.repository

        def plan(blob):
            size = self.client.head_blob(repo, blob.digest, scopes=[repository_scope(repo, "pull", "push")])
            item = {"digest": blob.digest, "size": blob.size, "media_type": blob.media_type, "bytes": 0}
            if size is not None:
                item["action"] = EXISTS
                return item
            item["mount_from"] = self._mount_candidates(target, blob.digest)
            item["action"] = MOUNTED if item["mount_from"] else UPLOADED
            item["bytes"] = 0 if item["mount_from"] else blob.size
            return item

        return parallel_map(plan, tree.blobs, self.concurrency)

    def _mount_candidates(self, target, digest):
        prefix = target.registry + "/"
        return [s[len(prefix):] for s in self.cache.sources(digest)
                if s.startswith(prefix) and s[len(prefix):] != target.repository]

    def _plan_manifests(self, target, tree):
        items = []
        for manifest in tree.manifests:
            is_top = manifest is tree.top
            exists = False
            if not is_top:
                head = self.client.head_manifest(target.repository, manifest.digest,
                                                 scopes=[repository_scope(target.repository, "pull", "push")])
                exists = head is not None
            items.append({"digest": manifest.digest, "media_type": manifest.media_type, "size": len(manifest.raw),
                          "action": EXISTS if exists else PUSHED, "manifest": manifest})
        return items

    def upload_stream(self, target, item, handoff):
        """Upload one blob from a Handoff while it downloads: one PATCH, then the PUT once verified.

        Raises (HandoffBroken, or the registry's error) when the stream or the upload fails;
        the caller then uploads from the cache, with retries and resumable sessions. The
        session of a failed stream is abandoned: the registry never saw a digest for it.
        """
        repo, digest, size = target.repository, item["digest"], item["size"]
        what = "upload of blob %s to %s" % (digest, repo)
        try:
            location, _min_chunk = self.client.start_upload(repo)
            location, _status = self.client.upload_chunk(repo, location, handoff, 0, what)
            if not handoff.wait_finished():
                raise HandoffBroken("the download did not verify")
            self.client.finish_upload(repo, location, digest, what)
        finally:
            handoff.release()
        item.update(action=UPLOADED, bytes=size, done=True)
        return size

    def _upload(self, target, item):
        """Stream one blob from disk, resuming a session a killed run left, or after a drop."""
        repo, digest, size = target.repository, item["digest"], item["size"]
        path = self.cache.blob_path(digest)
        what = "upload of blob %s to %s" % (digest, repo)
        chunk = self.chunk_size or (RESUMABLE_CHUNK if self.resumable and size > RESUMABLE_CHUNK else None)
        state = {"location": None, "offset": 0}

        def remember(location, offset):
            state["location"], state["offset"] = location, offset
            self.sessions.save(target.registry, repo, digest, location, offset)

        def reopen():
            """Continue the saved session when the registry still has it, else start a new one."""
            saved = state["location"] or self.sessions.load(target.registry, repo, digest)
            status = self.client.upload_status(repo, saved) if saved else None
            if status is not None and 1 < status[0] <= size:
                remember(status[1], status[0])
                return None
            location, min_chunk = self.client.start_upload(repo)
            remember(location, 0)
            return min_chunk

        try:
            min_chunk = reopen()
        except (TransportError, RegistryError):
            # A saved session from a registry that no longer knows it, or refuses a GET on it.
            location, min_chunk = self.client.start_upload(repo)
            remember(location, 0)
        if min_chunk:
            chunk = max(chunk or 0, min_chunk)
        failures, sent = 0, 0
        while True:
            try:
                sent += self._send_from(repo, path, size, chunk, what, state, remember)
                self.client.finish_upload(repo, state["location"], digest, what)
                self.sessions.clear(target.registry, repo, digest)
                return sent
            except (TransportError, RegistryError) as exc:
                status = getattr(exc, "status", None)
                if isinstance(exc, RegistryError) and status == 413 and not chunk:
                    chunk = FALLBACK_CHUNK
                    location, _min = self.client.start_upload(repo)
                    remember(location, 0)
                    continue
                # A dropped connection, or a status the transport would retry (the PATCH body is a
                # stream it cannot replay): back off, ask where the session stands, go on from there.
                if isinstance(exc, RegistryError) and not should_retry_status(status):
                    raise
                failures += 1
                if failures > self.retries:
                    raise
                self.client.transport.count_retry()
                self.client.transport.backoff(failures - 1)
                reopen()

    def _send_from(self, repo, path, size, chunk, what, state, remember):
        """PATCH from state["offset"] to the end: in one request, or chunk by chunk. Bytes sent."""
        sent = 0
        while state["offset"] < size:
            body = BlobReader(path, state["offset"], chunk)  # a request body: length, blocks, rewind
            try:
                location, _status = self.client.upload_chunk(repo, state["location"], body, state["offset"], what)
            finally:
                body.close()
            remember(location, state["offset"] + len(body))
            sent += len(body)
        return sent

    def result(self, source_name, target, tree, blob_plan, manifest_plan, changed, before):
        blobs = [{"digest": b["digest"], "size": b["size"], "media_type": b["media_type"], "action": b["action"]}
                 for b in blob_plan]
        return {
            "changed": changed,
            "source": source_name,
            "target": str(target),
            "digest": tree.digest,
            "media_type": tree.media_type,
            "platforms": list(tree.platforms),
            "blobs": blobs,
            "manifests": [dict((k, v) for k, v in m.items() if k != "manifest") for m in manifest_plan
                          if m["action"] == PUSHED],
            "bytes_uploaded": sum(b["bytes"] for b in blob_plan if b["action"] == UPLOADED),
            "retries": self.client.transport.retry_count,
            "diff": {"before": {"target": str(target), "digest": before},
                     "after": {"target": str(target), "digest": tree.digest}},
        }
