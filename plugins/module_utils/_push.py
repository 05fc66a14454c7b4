# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Push: the copy cache (or any OCI image layout) -> registry, idempotent and digest-preserving.

Order: HEAD the target tag (same digest: done, one request); HEAD each blob; mount
what another repository of the same registry holds; upload the rest streaming from
disk; then child manifests by digest and the top manifest by tag, as the exact
stored bytes.  The target digest therefore equals the cached digest.

A real run into a repository that did not exist when the task first looked, on a registry that
has honoured a mount, asks no blob HEAD: the POST that starts an upload asks for the blob first
(see RegistryEndpoint.uploads_find_blobs), and a blob another repository of the registry holds
is mounted straight away, so a blob the target holds is still never sent, with one request
instead of two.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _names
from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._changes import mark_failure
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError, NotCachedError
from ansible_collections.imagepusher.registry.plugins.module_utils._parallel import parallel_map


class Push:
    def __init__(self, store, target, engine, record_sources=True, foreign=_plan.SKIP):
        self.store = store  # _endpoints.StoreEndpoint: the cache, or a layout we only read
        self.target = target  # _endpoints.RegistryEndpoint of the target repository
        self.engine = engine
        self.record = record_sources  # only our own cache remembers where blobs are
        self.foreign = foreign  # what to do with foreign layers: _plan.SKIP or _plan.FETCH

    def run(self, source_name, entry, platforms=None, check_mode=False):
        tree = self.source_tree(source_name, entry, platforms)
        before = self.head_digest()
        if before == tree.digest:
            return self.result(source_name, tree, [], [], False, before)
        sends, puts = self.plan(tree, check_mode, tag_exists=before is not None)
        if not check_mode:
            try:
                sends = self.finish(tree, sends, puts)
            except ImagePusherError as exc:
                raise mark_failure(exc, self.target.changes)
        return self.result(source_name, tree, sends, puts, True, before)

    def source_tree(self, source_name, entry, platforms=None):
        """The stored image to push (narrowed to `platforms`); NotCachedError when incomplete."""
        wanted = _names.normalize_platforms(platforms)
        tree = _tree.complete_tree(self.store.cache, entry["digest"], entry.get("mediaType"),
                                   with_foreign=self.foreign == _plan.FETCH)
        if tree is None:
            raise NotCachedError("image %s in %s is incomplete (a manifest or blob is missing); pull it again"
                                 % (source_name, self.store.root), name=source_name)
        if wanted and tree.top.is_index:
            tree = _tree.narrow_stored(self.store.cache, tree, wanted)
        return tree

    def head(self):
        """What a HEAD of the target tag says ({'digest', 'media_type', 'size'}), or None."""
        return self.target.manifest_exists(self.target.reference.ref)

    def head_digest(self):
        head = self.head()
        return head["digest"] if head else None

    def plan(self, tree, check_mode=True, tag_exists=True):
        """(blob steps, manifest steps) from HEAD requests on the target: read-only.

        A blob planned as uploaded without a HEAD (see above) may turn out to be there: its
        step's outcome then says so (exists). Check mode asks every HEAD, so that its plan is the
        one a run makes before it starts."""
        blobs = _plan.copied_blobs(tree, self.foreign)
        known = set(b.digest for b in blobs if self.target.blob_known(b.digest))
        # Where uploads find blobs, no HEAD is asked: the POST that starts an upload asks for a blob without a
        # mount source, and the mount of a blob with one links it whether or not it is there already (one a
        # dead run left in the repository is then reported mounted, which the registry just did again).
        ask_first = not check_mode and self.target.uploads_find_blobs(tag_exists)
        asked = [] if ask_first else [b for b in blobs if b.digest not in known]
        found = parallel_map(lambda blob: self.target.blob_exists(blob.digest), asked, self.engine.concurrency)
        present = known | set(blob.digest for blob, here in zip(asked, found) if here)
        # Read from the cache's record only for a blob the plan still has to bring.
        mount_sources = dict((b.digest, self._mount_candidates(b.digest)) for b in blobs if b.digest not in present)
        children = set(m.digest for m in tree.manifests
                       if m is not tree.top and self.target.manifest_exists(m.digest) is not None)
        return (_plan.plan_sends(tree, present, mount_sources, self.foreign),
                _plan.plan_puts(tree, self.target.reference.ref, children))

    def _mount_candidates(self, digest):
        prefix = self.target.registry + "/"
        return [s[len(prefix):] for s in self.store.sources(digest)
                if s.startswith(prefix) and s[len(prefix):] != self.target.repository]

    def finish(self, tree, sends, puts, sent=None):
        """Move the blobs not yet moved, then put the manifests, children first; the blob steps as done."""
        sent = self.engine.send(sends, self.store, self.target, done=sent)
        for step in puts:
            if step.action == _plan.PUSHED:
                self.target.put_manifest(step.ref, step.manifest)
        if self.record:
            # Remembered so a later push to another repository of this registry can mount instead.
            self.store.cache.record_sources([s.digest for s in sends], self.target.name)
        return _plan.apply(sends, sent)

    def result(self, source_name, tree, sends, puts, changed, before):
        target = self.target.reference
        return {
            "changed": changed,
            "source": source_name,
            "target": str(target),
            "digest": tree.digest,
            "media_type": tree.media_type,
            "platforms": list(tree.platforms),
            "blobs": _plan.render_blobs(sends),
            "manifests": [s.render() for s in puts if s.action == _plan.PUSHED],
            "bytes_uploaded": _plan.moved_bytes(sends, (_plan.UPLOADED, _plan.RESUMED)),
            "retries": self.target.retry_count,
            "diff": {"before": {"target": str(target), "digest": before},
                     "after": {"target": str(target), "digest": tree.digest}},
        }
