# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pull: registry -> cache, idempotent, resumable, parallel, verified.

Order matters for crash safety: blobs first, then manifests (children before
parents), then the reference in index.json, so a name in the cache always points
at a complete tree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.imagepusher.registry.plugins.module_utils import _cache as cache_mod
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._download import download_blob
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    DigestMismatchError,
    ManifestError,
    MissingBlobError,
    NotFoundError,
    PlatformNotFoundError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._parallel import parallel_map
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import BodyReader


def normalize_platforms(platforms):
    """Sorted unique canonical platform strings ('linux/arm64/v8'), or None for 'all'.

    Canonical, so that 'linux/arm64', 'linux/aarch64' and 'Linux/ARM64/8' name one thing in the cache.
    """
    if not platforms:
        return None
    canonical = set()
    for text in platforms:
        platform = _manifest.parse_platform(text)  # raises a clear error for a malformed one
        if platform["architecture"] == "arm64" and not platform.get("variant"):
            platform["variant"] = "v8"  # arm64 without a variant is v8 (as in the OCI image index spec)
        canonical.add("/".join(platform[k] for k in ("os", "architecture", "variant") if platform.get(k)))
    return sorted(canonical)


def cache_name(reference, wanted):
    """The name an image gets in index.json: the reference, plus the platforms when narrowed.

    A narrowed pull is different content from the full image, so it needs a name of its
    own; otherwise pulling one reference with two platform choices would flip the name
    between them on every run. `+` joins parts, as the OCI ref.name grammar allows.
    """
    name = str(reference)
    if wanted:
        name += "+" + "+".join(p.replace("/", "-") for p in wanted)
    return name


def cached_tree(cache, digest, media_type=None):
    """The ImageTree stored under `digest` if every manifest and blob is present, else None."""
    def load(descriptor):
        if not cache.has_blob(descriptor.digest, descriptor.size):
            raise NotFoundError("not cached")
        raw = cache.read_small_blob(descriptor.digest, _manifest.MAX_MANIFEST_BYTES)
        return _manifest.parse(raw, descriptor.media_type, expected_digest=descriptor.digest)

    try:
        if not cache.has_blob(digest):
            return None
        raw = cache.read_small_blob(digest, _manifest.MAX_MANIFEST_BYTES)
        tree = _tree.walk(_manifest.parse(raw, media_type, expected_digest=digest), load)
    except (NotFoundError, CacheError, ManifestError, DigestMismatchError):
        return None
    if not all(cache.has_blob(b.digest, b.size) for b in tree.blobs):
        return None
    config = tree.top.config
    if not tree.top.is_index and config is not None and config.size <= _tree.CONFIG_LIMIT:
        try:
            platform = _tree.config_platform(cache.read_small_blob(config.digest, _tree.CONFIG_LIMIT))
        except CacheError:
            return None
        tree.platforms = [platform] if platform else []
    return tree


class Puller:
    def __init__(self, client, cache, concurrency=4, retries=3):
        self.client = client
        self.cache = cache
        self.concurrency = max(1, concurrency)
        self.retries = retries
        self._lock = threading.Lock()
        self._manifests = {}  # digest -> Manifest read from the registry in this run

    def pull(self, reference, platforms=None, check_mode=False):
        job = self.prepare(reference, platforms, check_mode)
        if job.done or check_mode:
            return self.result(job)
        self.begin(job)
        return self.finish(job)

    def prepare(self, reference, platforms=None, check_mode=False, source_digest=None):
        """Resolve the image and plan its blobs; read-only (check mode stops here). A PullJob.

        `source_digest`: what the reference resolves to, when the caller has asked already.
        """
        job = PullJob(reference, normalize_platforms(platforms))
        job.name = cache_name(reference, job.wanted)
        source_digest = source_digest or reference.digest or self.resolve(reference)["digest"]
        if self.from_cache(job, source_digest):
            return job

        top = self._load_manifest(reference, source_digest or reference.ref, None)
        job.source_digest = top.digest
        if job.wanted and top.is_index:
            descriptor, narrowed = _tree.narrow(top, job.wanted)
            top = self._load_manifest(reference, descriptor.digest, descriptor) if descriptor else narrowed
        job.tree = tree = _tree.walk(top, lambda d: self._load_manifest(reference, d.digest, d))
        job.blob_plan = _plan.plan_pull(tree, self.cache)
        job.manifest_plan = _plan.plan_manifests(tree, self.cache)
        if not tree.top.is_index:
            # The platform check needs the (small) config before anything is written: it is read
            # into memory, verified, and stored by begin() so it is fetched only once.
            job.config_raw = self._set_image_platform(reference, tree)
            if job.wanted and not _platform_wanted(tree.platforms, job.wanted):
                raise PlatformNotFoundError("image %s is a single-platform image for %s, not %s"
                                            % (reference, ", ".join(tree.platforms) or "an unknown platform",
                                               ", ".join(job.wanted)))
        job.changed = job.previous != tree.digest or any(
            p["action"] != _plan.CACHED for p in job.blob_plan + job.manifest_plan)
        return job

    def resolve(self, reference):
        """HEAD a tag: {'digest', 'media_type', 'size'} (digest None when not sent); NotFoundError when absent."""
        head = self.client.head_manifest(reference.repository, reference.ref)
        if head is None:
            raise NotFoundError("image %s not found: %s has no tag %r in repository %s"
                                % (reference, reference.registry, reference.tag, reference.repository), status=404)
        return head

    def top_digest(self, reference, source_digest, wanted):
        """The digest a pull of `wanted` platforms would store, from the index alone; None when
        only a full read can tell (a single-platform image must show its platform first)."""
        if not wanted and source_digest:
            return source_digest  # the whole image is stored as served
        top = self._load_manifest(reference, source_digest or reference.ref, None)
        if not wanted:
            return top.digest
        if not top.is_index:
            return None
        descriptor, narrowed = _tree.narrow(top, wanted)
        return descriptor.digest if descriptor else narrowed.digest

    def from_cache(self, job, source_digest):
        """Fill `job` from the cache when it holds exactly what `source_digest` names (no network). True then."""
        entry = self.cache.get_ref(job.name) if self.cache.exists() else None
        job.previous = entry.get("digest") if entry else None
        if source_digest and entry and self._entry_matches(entry, source_digest, job.wanted):
            tree = cached_tree(self.cache, entry["digest"], entry.get("mediaType"))
            if tree is not None:
                job.source_digest, job.tree, job.done = source_digest, tree, True
                job.blob_plan, job.manifest_plan = _plan.plan_pull(tree, self.cache), _plan.plan_manifests(tree, self.cache)
                return True
        return False

    def begin(self, job):
        """Create the cache and store what prepare() already holds in memory (a config)."""
        self.cache.ensure()
        if job.config_raw is not None:
            for item in job.blob_plan:
                if item["digest"] == job.tree.top.config.digest and not self.cache.has_blob(item["digest"], item["size"]):
                    written = self.cache.write_blob_bytes(item["digest"], job.config_raw)
                    item.update(done=True, action=_plan.DOWNLOADED if written else _plan.CACHED,
                                bytes=len(job.config_raw) if written else 0)

    def fetch(self, job, item, tee=None):
        """Download one planned blob into the cache (thread-safe); no-op when done or cached.

        `tee(offset, view)` sees each chunk as it is stored (see _download.download_blob).
        """
        if item["action"] == _plan.CACHED or item.get("done"):
            return
        reference = job.reference
        budget = self.client.transport.new_budget()  # one for the blob: its requests and its resumes

        def opener(offset):
            response, start = self.client.open_blob(reference.repository, item["digest"], offset, budget=budget)
            return BodyReader(response, reference.registry), start, response.close

        action, transferred = download_blob(self.cache, item["digest"], item["size"], opener, budget, tee=tee)
        with self._lock:
            item["action"] = action
            item["bytes"] = transferred
            item["done"] = True

    def finish(self, job):
        """Fetch what is left, store the manifests, name the image; the module result."""
        tree, blob_plan, manifest_plan = job.tree, job.blob_plan, job.manifest_plan
        annotations = {cache_mod.SOURCE_DIGEST: job.source_digest}
        if job.wanted:
            annotations[cache_mod.PLATFORMS] = ",".join(job.wanted)
        for attempt in (0, 1):
            parallel_map(lambda item: self.fetch(job, item), blob_plan, self.concurrency)
            for manifest, item in zip(tree.manifests, manifest_plan):
                # Report what this run wrote: a concurrent run may have stored it first.
                item["action"] = _plan.DOWNLOADED if self.cache.write_blob_bytes(manifest.digest, manifest.raw) \
                    else _plan.CACHED
            try:
                ref_changed = self.cache.set_ref(
                    job.name, {"mediaType": tree.media_type, "digest": tree.digest, "size": len(tree.top.raw)},
                    annotations, require=[p["digest"] for p in blob_plan] + [m.digest for m in tree.manifests])
                break
            except MissingBlobError:
                if attempt:
                    raise
                # A prune removed a blob we counted on (it was cached but unnamed): fetch what is gone.
                for item in blob_plan:
                    if not self.cache.has_blob(item["digest"], item["size"]):
                        item.pop("done", None)
                        item["action"] = _plan.DOWNLOADED
        self.cache.record_sources([p["digest"] for p in blob_plan] + [m.digest for m in tree.manifests],
                                  job.reference.name)
        job.changed = ref_changed or any(p["action"] != _plan.CACHED for p in blob_plan + manifest_plan)
        return self.result(job)

    @staticmethod
    def _entry_matches(entry, source_digest, wanted):
        annotations = entry.get("annotations") or {}
        return (annotations.get(cache_mod.SOURCE_DIGEST) == source_digest
                and annotations.get(cache_mod.PLATFORMS, "") == ",".join(wanted or []))

    def _load_manifest(self, reference, ref, descriptor):
        """A manifest by digest (or tag): from the cache when stored, else from the registry."""
        digest = descriptor.digest if descriptor else (ref if ":" in ref else None)
        if digest and self.cache.has_blob(digest):
            try:
                raw = self.cache.read_small_blob(digest, _manifest.MAX_MANIFEST_BYTES)
                return _manifest.parse(raw, descriptor.media_type if descriptor else None, expected_digest=digest)
            except (CacheError, ManifestError):
                pass  # damaged copy: fetch it again
        if digest in self._manifests:
            return self._manifests[digest]
        manifest = self.client.get_manifest(reference.repository, ref, expected_digest=digest)
        if descriptor is not None and descriptor.size != len(manifest.raw):
            raise DigestMismatchError("manifest %s of %s: the index declares %d bytes but the registry sent %d"
                                      % (descriptor.digest, reference, descriptor.size, len(manifest.raw)))
        self._manifests[manifest.digest] = manifest
        return manifest

    def _set_image_platform(self, reference, tree):
        """Fill tree.platforms of a single-platform image from its (small) config blob.

        Returns the config bytes when they came from the registry (for the caller to store), else None.
        """
        config = tree.top.config
        if tree.top.is_index or config is None or config.size > _tree.CONFIG_LIMIT:
            return None
        fetched = None
        if self.cache.has_blob(config.digest, config.size):
            raw = self.cache.read_small_blob(config.digest, _tree.CONFIG_LIMIT)
        else:
            raw = fetched = self.client.get_small_blob(reference.repository, config.digest, _tree.CONFIG_LIMIT)
        platform = _tree.config_platform(raw)
        tree.platforms = [platform] if platform else []
        return fetched

    def result(self, job):
        tree, blob_plan, reference = job.tree, job.blob_plan, job.reference
        blobs = [{"digest": p["digest"], "size": p["size"], "media_type": p["media_type"], "action": p["action"]}
                 for p in blob_plan]
        return {
            "changed": job.changed,
            "reference": str(reference),
            "cache_name": job.name,
            "digest": tree.digest,
            "source_digest": job.source_digest,
            "digest_changed": tree.digest != job.source_digest,
            "media_type": tree.media_type,
            "platforms": list(tree.platforms),
            "blobs": blobs,
            "manifests": job.manifest_plan,
            "bytes_downloaded": sum(p["bytes"] for p in blob_plan),
            "size": tree.total_size,
            "cache_dir": self.cache.root,
            "retries": self.client.transport.retry_count,
            "diff": {"before": {"reference": job.name, "digest": job.previous},
                     "after": {"reference": job.name, "digest": tree.digest}},
        }


class PullJob:
    """What prepare() learned and planned; begin/fetch/finish carry it to the cache."""

    def __init__(self, reference, wanted):
        self.reference = reference
        self.wanted = wanted
        self.name = None
        self.previous = None
        self.source_digest = None
        self.tree = None
        self.blob_plan = []
        self.manifest_plan = []
        self.config_raw = None
        self.changed = False
        self.done = False  # the cache already holds exactly this image


def _platform_wanted(found, wanted):
    for platform in found:
        have = _manifest.parse_platform(platform)
        for text in wanted:
            want = _manifest.parse_platform(text)
            if have.get("os") == want.get("os") and have.get("architecture") == want.get("architecture") and (
                    not want.get("variant") or want.get("variant") == have.get("variant")):
                return True
    return False
