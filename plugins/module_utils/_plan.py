# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planner: from an image tree and what each end already holds, the typed steps of a copy.

Pure: it never talks HTTP or touches a file. The caller asks the endpoints first (blob
HEADs on the target, what the cache stores, partial downloads, where a blob was seen) and
passes the answers in as plain sets and dicts; the planner only decides. Check mode and
the real run therefore make the same plan, and the `blobs` / `manifests` results and the
diff are rendered from it (with what the engine reports for each step that ran).

Steps are immutable. What really happened to a step (a blob another run stored first, a
download that had to resume) comes back from the engine as an Outcome, kept beside the
plan, never written into it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import namedtuple

from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._blob_io import BUFFER_SIZE

# Only a blob longer than this streams (see streamable): one download buffer.
STREAM_MIN = BUFFER_SIZE

# What a blob or manifest step does, in the words the module results use.
DOWNLOADED = "downloaded"  # fetch: source -> cache, from byte 0
RESUMED = "resumed"  # fetch or upload: went on from the partial download or upload session a killed run left
CACHED = "cached"  # reuse: the cache already holds it
UPLOADED = "uploaded"  # upload (or stream): the target lacks it
MOUNTED = "mounted"  # mount: another repository of the target registry holds it
EXISTS = "exists"  # the target already holds it
PUSHED = "pushed"  # manifest put on the target

# What a copy does with a foreign (non-distributable) layer that names urls: the foreign_layers option.
SKIP = "skip"  # leave it out: the manifest is copied as it is (skopeo's and crane's default)
FETCH = "fetch"  # fetch it from its urls into the cache and push it like any blob


class BlobStep(namedtuple("BlobStep", "digest size media_type action bytes mount_from")):
    """One blob and what to do with it: fetch into the cache (DOWNLOADED / RESUMED), reuse what
    the cache holds (CACHED), or on the target: EXISTS, MOUNTED (from `mount_from`, a tuple of
    repositories), UPLOADED. `bytes` is what the step is expected to move."""

    __slots__ = ()

    @property
    def moves(self):
        """Whether the engine has anything to do for it."""
        return self.action not in (CACHED, EXISTS)


class ManifestStep(namedtuple("ManifestStep", "manifest ref action")):
    """One manifest (children before parents) to store in the cache (DOWNLOADED / CACHED) or to
    put on the target under `ref` (PUSHED / EXISTS)."""

    __slots__ = ()

    @property
    def digest(self):
        return self.manifest.digest

    def render(self):
        manifest = self.manifest
        return {"digest": manifest.digest, "media_type": manifest.media_type, "size": len(manifest.raw),
                "action": self.action}


class Outcome(namedtuple("Outcome", "action bytes")):
    """What the engine really did for one step."""

    __slots__ = ()


def copied_blobs(tree, foreign=SKIP):
    """The blobs of `tree` a copy moves: all, but a foreign layer (_tree.is_foreign) only when `foreign` is FETCH.

    Skipped, a foreign layer is left out of every step: not read from the source, not uploaded, not
    required in the cache; the manifest naming it is copied as it is (its digest kept)."""
    return [b for b in tree.blobs if foreign == FETCH or not _tree.is_foreign(b)]


def plan_fetches(tree, stored, partials, foreign=SKIP):
    """Blob steps into the cache. stored: digests the cache holds (size checked); partials: digest ->
    bytes of a partial download."""
    steps = []
    for blob in copied_blobs(tree, foreign):
        if blob.digest in stored:
            action, missing = CACHED, 0
        else:
            partial = partials.get(blob.digest, 0)
            if 0 < partial <= blob.size:
                action, missing = RESUMED, blob.size - partial
            else:
                action, missing = DOWNLOADED, blob.size
        steps.append(BlobStep(blob.digest, blob.size, blob.media_type, action, missing, ()))
    return steps


def plan_stores(tree, stored):
    """Manifest steps into the cache, children first. stored: manifest digests the cache holds."""
    return [ManifestStep(m, m.digest, CACHED if m.digest in stored else DOWNLOADED) for m in tree.manifests]


def plan_sends(tree, present, mount_sources, foreign=SKIP):
    """Blob steps onto the target. present: digests a HEAD found there; mount_sources: digest ->
    repositories of the same registry known to hold it."""
    steps = []
    for blob in copied_blobs(tree, foreign):
        if blob.digest in present:
            steps.append(BlobStep(blob.digest, blob.size, blob.media_type, EXISTS, 0, ()))
            continue
        mount_from = tuple(mount_sources.get(blob.digest) or ())
        action, moving = (MOUNTED, 0) if mount_from else (UPLOADED, blob.size)
        steps.append(BlobStep(blob.digest, blob.size, blob.media_type, action, moving, mount_from))
    return steps


def plan_puts(tree, tag, present):
    """Manifest steps onto the target, children first. The top goes under `tag` and is always put
    (the caller only plans when the tag names another digest); a child is put by digest unless
    present (a HEAD found it)."""
    steps = []
    for manifest in tree.manifests:
        if manifest is tree.top:
            steps.append(ManifestStep(manifest, tag, PUSHED))
        else:
            steps.append(ManifestStep(manifest, manifest.digest, EXISTS if manifest.digest in present else PUSHED))
    return steps


def streamable(fetch, send):
    """A blob that can go source -> target in one pass: the target lacks it (no mount) and the
    cache holds none of it yet, so its download can feed the upload from byte 0.

    Only a blob longer than one download buffer: a smaller one arrives in one read, so a stream
    would overlap nothing and cost a request more than an upload from the cache (which sends a
    small blob with the request that completes it, see _upload.py)."""
    return send.action == UPLOADED and fetch.action == DOWNLOADED and send.size > STREAM_MIN


class Plan:
    """Everything a copy will do: blob and manifest steps on each side that is written."""

    def __init__(self, tree, fetches=(), stores=(), sends=(), puts=()):
        self.tree = tree
        self.fetches = list(fetches)
        self.stores = list(stores)
        self.sends = list(sends)
        self.puts = list(puts)

    def pairs(self):
        """(fetch, send) per blob, for a copy that writes both the cache and the target."""
        by_digest = dict((s.digest, s) for s in self.fetches)
        return [(by_digest[s.digest], s) for s in self.sends]


def apply(steps, outcomes):
    """The steps with their outcome's action and bytes where the engine ran them."""
    done = []
    for step in steps:
        outcome = outcomes.get(step.digest)
        done.append(step._replace(action=outcome.action, bytes=outcome.bytes) if outcome else step)
    return done


def render_blobs(steps):
    return [{"digest": s.digest, "size": s.size, "media_type": s.media_type, "action": s.action} for s in steps]


def moved_bytes(steps, actions):
    return sum(s.bytes for s in steps if s.action in actions)
