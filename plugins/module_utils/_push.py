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


from ansible_collections.imagepusher.registry.plugins.module_utils import _cache as cache_mod
from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    ImagePusherError,
    NotCachedError,
    RegistryError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._parallel import parallel_map
from ansible_collections.imagepusher.registry.plugins.module_utils._pull import cache_name, cached_tree, normalize_platforms
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._sessions import NoSessions, UploadSessions
from ansible_collections.imagepusher.registry.plugins.module_utils._upload import upload_blob, upload_stream

UPLOADED = "uploaded"
MOUNTED = "mounted"
EXISTS = "exists"
PUSHED = "pushed"


def find_source(cache, name, layout=False, platforms=None):
    """(ref name, index.json entry) for an image in a cache or OCI layout, or NotCachedError.

    `name` is a reference as it was pulled (normalized like image_pull does), an exact
    ref name from a foreign layout, a digest, or None for the only image of a layout.
    With `platforms`, a pull narrowed to exactly those platforms is preferred.
    """
    if layout and not cache.exists():
        raise NotCachedError("%s is not an OCI image layout (it has no index.json)" % cache.root, path=cache.root)
    entries = cache.entries() if cache.exists() else []
    where = ("OCI layout %s" if layout else "cache %s") % cache.root
    if name is None:
        if len(entries) == 1:
            annotations = entries[0].get("annotations") or {}
            return annotations.get(cache_mod.REF_NAME) or entries[0].get("digest"), entries[0]
        raise NotCachedError("%s holds %d images; set name to one of: %s"
                             % (where, len(entries), ", ".join(sorted(_names(entries))) or "(none)"))
    candidates = [name]
    if not layout or not any((e.get("annotations") or {}).get(cache_mod.REF_NAME) == name for e in entries):
        try:
            reference = ImageReference.parse(name)
            wanted = normalize_platforms(platforms)
            if wanted:
                candidates.insert(0, cache_name(reference, wanted))
            candidates.append(str(reference))
        except Exception:
            pass
    by_name = dict(((e.get("annotations") or {}).get(cache_mod.REF_NAME), e) for e in entries)
    for candidate in candidates:
        if candidate in by_name:
            return candidate, by_name[candidate]
    for entry in entries:
        if entry.get("digest") == name:
            return (entry.get("annotations") or {}).get(cache_mod.REF_NAME) or name, entry
    if name.startswith(("sha256:", "sha512:")) and cache.has_blob(_digest.validate(name)):
        return name, {"digest": name, "mediaType": None}
    hint = ("pull it first with imagepusher.registry.image_pull" if not layout
            else "the layout names: %s" % (", ".join(sorted(_names(entries))) or "(none)"))
    raise NotCachedError("image %s is not in the %s: %s" % (name, where, hint), name=name)


def _names(entries):
    return [(e.get("annotations") or {}).get(cache_mod.REF_NAME) or e.get("digest") for e in entries]


def default_target_tag(target_text, source_name):
    """The target reference; without a tag or digest it takes the source's tag (else latest)."""
    target = ImageReference.parse(target_text, default_tag=None)
    if target.tag or target.digest:
        return target
    tag = None
    try:
        # A narrowed pull's cache name is "<reference>+<platforms>": the tag is in the reference.
        tag = ImageReference.parse(source_name.split("+", 1)[0], default_tag=None).tag
    except ImagePusherError:
        pass  # a foreign layout may name images freely ("my build"); such a name has no tag to keep
    return target.with_tag(tag or "latest")


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
        tree = cached_tree(self.cache, entry["digest"], entry.get("mediaType"))
        if tree is None:
            raise NotCachedError("image %s in %s is incomplete (a manifest or blob is missing); pull it again"
                                 % (source_name, self.cache.root), name=source_name)
        if wanted and tree.top.is_index:
            tree = self._narrow(tree, wanted)
        return tree

    def head_target(self, target):
        """The digest the target tag names now, or None."""
        head = self.head_target_manifest(target)
        return head["digest"] if head else None

    def head_target_manifest(self, target):
        """What a HEAD of the target tag says ({'digest', 'media_type', 'size'}), or None."""
        return self.client.head_manifest(target.repository, target.ref, scopes=[_push_scope(target.repository)])

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
        budget = self.client.transport.new_budget()  # one for the blob: its mounts, requests and restarts
        for source_repo in item.get("mount_from") or []:
            if self.client.mount_blob(target.repository, item["digest"], source_repo, budget=budget):
                item.update(action=MOUNTED, bytes=0, done=True)
                return
        sent = upload_blob(self.client, target, item["digest"], item["size"], self.cache.blob_path(item["digest"]),
                           self.sessions, budget, chunk_size=self.chunk_size, resumable=self.resumable)
        # A resumed session sends only what the registry lacked.
        item.update(action=UPLOADED, bytes=sent, done=True)

    def _narrow(self, tree, wanted):
        descriptor, narrowed = _tree.narrow(tree.top, wanted)
        if descriptor is not None:
            raw = self.cache.read_small_blob(descriptor.digest, _manifest.MAX_MANIFEST_BYTES)
            top = _manifest.parse(raw, descriptor.media_type, expected_digest=descriptor.digest)
        else:
            top = narrowed
        tree = _tree.walk(top, lambda d: _manifest.parse(
            self.cache.read_small_blob(d.digest, _manifest.MAX_MANIFEST_BYTES), d.media_type,
            expected_digest=d.digest))
        if descriptor is not None and descriptor.platform_string:
            tree.platforms = [descriptor.platform_string]
        return tree

    def _plan_blobs(self, target, tree):
        repo = target.repository

        def plan(blob):
            size = self.client.head_blob(repo, blob.digest, scopes=[_push_scope(repo)])
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
                                                 scopes=[_push_scope(target.repository)])
                exists = head is not None
            items.append({"digest": manifest.digest, "media_type": manifest.media_type, "size": len(manifest.raw),
                          "action": EXISTS if exists else PUSHED, "manifest": manifest})
        return items

    def upload_stream(self, target, item, handoff):
        """Upload one blob from a Handoff while it downloads (see _upload.upload_stream)."""
        item.update(action=UPLOADED, bytes=upload_stream(self.client, target, item["digest"], item["size"], handoff),
                    done=True)
        return item["size"]

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


def _push_scope(repository):
    return "repository:%s:pull,push" % repository
