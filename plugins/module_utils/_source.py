# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the image a copy starts from: a registry's, with the cache's copies of manifests preferred.

A manifest the cache already holds (and that still matches its digest) is read from the
cache; anything else comes from the registry, once per run. The tree is the one walk of
_tree.py, narrowed to the platforms asked for; a single-platform image shows its platform
through its (small) config, which is read into memory, verified, and handed back so that
it is stored, not fetched again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    ManifestError,
    NotFoundError,
    PlatformNotFoundError,
)


class SourceReader:
    def __init__(self, registry, cache):
        self.registry = registry  # _endpoints.RegistryEndpoint
        self.cache = cache  # _endpoints.StoreEndpoint
        self._manifests = {}  # digest -> Manifest read from the registry in this run

    def resolve(self, reference):
        """HEAD a tag: {'digest', 'media_type', 'size'} (digest None when not sent); NotFoundError when absent."""
        head = self.registry.manifest_exists(reference.ref)
        if head is None:
            raise _tag_not_found(reference)
        return head

    def load_tag(self, reference):
        """GET a tag's manifest (kept for the run, as load() keeps it); NotFoundError as resolve() says it.

        For a copy that reads the manifest anyway, resolve()'s HEAD would be one request more."""
        try:
            return self.load(reference.ref)
        except NotFoundError:
            raise _tag_not_found(reference)

    def stored_tree(self, digest, media_type=None, with_foreign=False):
        """The tree the cache holds complete under `digest` (foreign layers too when `with_foreign`), else None."""
        return _tree.complete_tree(self.cache.cache, digest, media_type, with_foreign)

    def top_digest(self, reference, source_digest, wanted):
        """The digest a copy of `wanted` platforms would store, from the index alone; None when only a
        full read can tell (a single-platform image must show its platform first)."""
        if not wanted and source_digest:
            return source_digest  # the whole image is stored as served
        top = self.load(source_digest or reference.ref)
        if not wanted:
            return top.digest
        if not top.is_index:
            return None
        descriptor, narrowed = _tree.narrow(top, wanted)
        return descriptor.digest if descriptor else narrowed.digest

    def read(self, reference, source_digest, wanted):
        """(tree, digest the source serves, config bytes read from the registry or None)."""
        top = self.load(source_digest or reference.ref)
        served = top.digest
        if wanted and top.is_index:
            descriptor, narrowed = _tree.narrow(top, wanted)
            top = self.load(descriptor.digest, descriptor) if descriptor else narrowed
        tree = _tree.walk(top, lambda d: self.load(d.digest, d))
        config_raw = None
        if not tree.top.is_index:
            config_raw = self._set_image_platform(tree)
            if wanted and not _platform_wanted(tree.platforms, wanted):
                raise PlatformNotFoundError("image %s is a single-platform image for %s, not %s"
                                            % (reference, ", ".join(tree.platforms) or "an unknown platform",
                                               ", ".join(wanted)))
        return tree, served, config_raw

    def load(self, ref, descriptor=None):
        """A manifest by digest (or tag): from the cache when stored, else from the registry."""
        digest = descriptor.digest if descriptor else (ref if ":" in ref else None)
        if digest and self.cache.blob_exists(digest):
            try:
                return self.cache.get_manifest(digest, descriptor)
            except (CacheError, ManifestError):
                pass  # damaged copy: fetch it again
        if digest in self._manifests:
            return self._manifests[digest]
        manifest = self.registry.get_manifest(ref, descriptor)
        self._manifests[manifest.digest] = manifest
        return manifest

    def _set_image_platform(self, tree):
        """Fill tree.platforms of a single-platform image from its config; the config bytes when they
        came from the registry (for the caller to store), else None."""
        config = tree.top.config
        if config is None or config.size > _tree.CONFIG_LIMIT:
            return None
        fetched = None
        if self.cache.blob_exists(config.digest, config.size):
            raw = self.cache.get_small_blob(config.digest, _tree.CONFIG_LIMIT)
        else:
            raw = fetched = self.registry.get_small_blob(config.digest, _tree.CONFIG_LIMIT)
        platform = _tree.config_platform(raw)
        tree.platforms = [platform] if platform else []
        return fetched


def _tag_not_found(reference):
    return NotFoundError("image %s not found: %s has no tag %r in repository %s"
                         % (reference, reference.registry, reference.tag, reference.repository), status=404)


def _platform_wanted(found, wanted):
    for platform in found:
        have = _manifest.parse_platform(platform)
        for text in wanted:
            want = _manifest.parse_platform(text)
            if have.get("os") == want.get("os") and have.get("architecture") == want.get("architecture") and (
                    not want.get("variant") or want.get("variant") == have.get("variant")):
                return True
    return False
