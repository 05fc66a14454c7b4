# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pull: the copy registry -> cache, idempotent, resumable, parallel, verified.

Order matters for crash safety: blobs first, then manifests (children before
parents), then the reference in index.json, so a name in the cache always points
at a complete tree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _cache as cache_mod
from ansible_collections.imagepusher.registry.plugins.module_utils import _names
from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._changes import mark_failure
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError, MissingBlobError
from ansible_collections.imagepusher.registry.plugins.module_utils._source import SourceReader


class PullJob:
    """What prepare() learned and planned about one image; begin() and finish() carry it to the cache."""

    def __init__(self, reference, wanted):
        self.reference = reference
        self.wanted = wanted
        self.name = _names.cache_name(reference, wanted)
        self.previous = None  # the digest the cache name pointed at before this run
        self.source_digest = None
        self.tree = None
        self.plan = None  # _plan.Plan with fetches and stores
        self.config_raw = None  # a config read (and verified) while planning: stored, not fetched again
        self.changed = False
        self.done = False  # the cache already holds exactly this image

    @property
    def annotations(self):
        annotations = {cache_mod.SOURCE_DIGEST: self.source_digest}
        if self.wanted:
            annotations[cache_mod.PLATFORMS] = ",".join(self.wanted)
        return annotations


class Pull:
    def __init__(self, source, cache, engine, foreign=_plan.SKIP):
        self.source = source  # _endpoints.RegistryEndpoint
        self.cache = cache  # _endpoints.StoreEndpoint of the cache
        self.engine = engine
        self.foreign = foreign  # what to do with foreign layers: _plan.SKIP or _plan.FETCH
        self.reader = SourceReader(source, cache)

    def run(self, reference, platforms=None, check_mode=False):
        job = self.new_job(reference, platforms)
        entry = self.cached_entry(job)
        source_digest = self.source_digest(job, entry)
        if not self.from_cache(job, source_digest, entry):
            self.prepare(job, source_digest)
        if job.done or check_mode:
            return self.result(job, job.plan.fetches, job.plan.stores)
        try:
            return self.finish(job, self.begin(job))
        except ImagePusherError as exc:
            raise mark_failure(exc, self.cache.changes)

    def new_job(self, reference, platforms):
        return PullJob(reference, _names.normalize_platforms(platforms))

    def cached_entry(self, job):
        """The cache's index.json entry under the job's name, or None."""
        return self.cache.cache.get_ref(job.name) if self.cache.exists() else None

    def source_digest(self, job, entry, read_anyway=True):
        """The digest the source serves for the job's reference; `entry` is cached_entry(job).

        A HEAD of the tag, unless the manifest is to be read anyway (`read_anyway`, and the cache has no
        image of that name): then a GET of the tag, one request less, and the manifest is kept for the
        run. With the name cached the HEAD stays: it may show the cache current, and only GETs count
        against Docker Hub's pull limit.
        """
        if job.reference.digest:
            return job.reference.digest
        if read_anyway and entry is None:
            return self.reader.load_tag(job.reference).digest
        return self.reader.resolve(job.reference)["digest"]

    def from_cache(self, job, source_digest, entry):
        """Fill `job` from the cache when it holds exactly what `source_digest` names (no network). True then.

        `entry` is cached_entry(job), read once for both this and source_digest()."""
        job.previous = entry.get("digest") if entry else None
        if not (source_digest and entry and _entry_matches(entry, source_digest, job.wanted)):
            return False
        tree = self.reader.stored_tree(entry["digest"], entry.get("mediaType"), with_foreign=self.foreign == _plan.FETCH)
        if tree is None:
            return False
        job.source_digest, job.tree, job.done = source_digest, tree, True
        job.plan = self._plan(tree)
        return True

    def prepare(self, job, source_digest=None):
        """Read the image from the registry (manifests the cache holds are read there) and plan it."""
        job.tree, job.source_digest, job.config_raw = self.reader.read(job.reference, source_digest, job.wanted)
        job.plan = self._plan(job.tree)
        job.changed = job.previous != job.tree.digest or any(
            s.action != _plan.CACHED for s in job.plan.fetches + job.plan.stores)
        return job

    def _plan(self, tree):
        if self.foreign == _plan.FETCH:
            self.source.learn(tree)  # a _foreign.ForeignLayerSource: where each foreign layer is fetched from
        fetches = _plan.plan_fetches(tree, self.cache.stored(tree.blobs), self.cache.partials(tree.blobs), self.foreign)
        return _plan.Plan(tree, fetches=fetches, stores=_plan.plan_stores(tree, self.cache.stored_manifests(
            tree.manifests)))

    def begin(self, job):
        """Create the cache and store what prepare() already holds in memory (a config): its outcome."""
        self.cache.cache.ensure()
        config = job.tree.top.config if job.config_raw is not None else None
        if config is None or self.cache.blob_exists(config.digest, config.size):
            return {}
        written = self.cache.put_small_blob(config.digest, job.config_raw)
        return {config.digest: _plan.Outcome(_plan.DOWNLOADED, len(job.config_raw)) if written
                else _plan.Outcome(_plan.CACHED, 0)}

    def finish(self, job, fetched):
        """Fetch what is left, store the manifests, name the image; the module result."""
        tree, fetches = job.tree, job.plan.fetches
        for attempt in (0, 1):
            fetched = self.engine.fetch(fetches, self.source, self.cache, done=fetched)
            stores = [step._replace(action=_plan.DOWNLOADED if self.cache.put_manifest(step.ref, step.manifest)
                                    else _plan.CACHED) for step in job.plan.stores]
            try:
                ref_changed = self.cache.set_ref(
                    job.name, {"mediaType": tree.media_type, "digest": tree.digest, "size": len(tree.top.raw)},
                    job.annotations, require=[s.digest for s in fetches] + [m.digest for m in tree.manifests])
                break
            except MissingBlobError:
                if attempt:
                    raise
                # A prune removed a blob we counted on (it was cached but unnamed): fetch what is gone.
                fetches, fetched = self._refetch(fetches, fetched)
        self.cache.cache.record_sources([s.digest for s in fetches] + [m.digest for m in tree.manifests],
                                        job.reference.name)
        fetches = _plan.apply(fetches, fetched)
        job.changed = ref_changed or any(s.action != _plan.CACHED for s in fetches + stores)
        return self.result(job, fetches, stores)

    def _refetch(self, fetches, fetched):
        gone = set(s.digest for s in fetches if not self.cache.blob_exists(s.digest, s.size))
        steps = [s._replace(action=_plan.DOWNLOADED, bytes=s.size) if s.digest in gone else s for s in fetches]
        return steps, dict((d, o) for d, o in fetched.items() if d not in gone)

    def result(self, job, fetches, stores):
        tree = job.tree
        return {
            "changed": job.changed,
            "reference": str(job.reference),
            "cache_name": job.name,
            "digest": tree.digest,
            "source_digest": job.source_digest,
            # A new digest only when the cache holds an index this run wrote (narrowed to several platforms);
            # one platform's manifest is the registry's own, its digest preserved.
            "digest_changed": tree.digest != job.source_digest and tree.top.is_index,
            "media_type": tree.media_type,
            "platforms": list(tree.platforms),
            "blobs": _plan.render_blobs(fetches),
            "manifests": [s.render() for s in stores],
            "bytes_downloaded": sum(s.bytes for s in fetches),
            "size": tree.total_size,
            "cache_dir": self.cache.root,
            "retries": self.source.retry_count,
            "diff": {"before": {"reference": job.name, "digest": job.previous},
                     "after": {"reference": job.name, "digest": tree.digest}},
        }


def _entry_matches(entry, source_digest, wanted):
    annotations = entry.get("annotations") or {}
    return (annotations.get(cache_mod.SOURCE_DIGEST) == source_digest
            and annotations.get(cache_mod.PLATFORMS, "") == ",".join(wanted or []))
