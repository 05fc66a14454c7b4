# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Referrers: what is attached to an image (signatures, SBOMs, attestations), found and copied.

Found on the source three ways, for the image's digest and then for each referrer found:

    referrers-api  GET /v2/<name>/referrers/<digest> (OCI distribution-spec 1.1)
    tag-schema     where that API is missing (404): the index tagged sha256-<hex>
    cosign-tag     the tags sha256-<hex>.sig / .att / .sbom cosign writes, whatever the API

Each referrer is a small image of its own, copied by digest (cosign's by tag) with the copy
machinery every image uses (_copy.py hands in `copy_one`), so its bytes and digest are kept.
A target without the Referrers API gets its sha256-<hex> index written or merged: the
descriptors it lists stay, new ones are appended, and it is put only when one was added.

Only the digest the target holds is looked up, not the platform manifests of an index:
cosign signs the index digest, and BuildKit attestations live in the index itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json

from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import NotFoundError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference

# The image's referrers, theirs, and theirs (a signature on an attestation of the image is level 2).
MAX_DEPTH = 3
MAX_REFERRERS = 1000  # per image, all levels together: a hostile registry cannot keep us copying forever
COSIGN_SUFFIXES = (".sig", ".att", ".sbom")

API = "referrers-api"
TAG_SCHEMA = "tag-schema"
COSIGN_TAG = "cosign-tag"


class Found(collections.namedtuple("Found", "descriptor subject how tag")):
    """A referrer of `subject` (a digest): its descriptor as listed, how it was found, its cosign tag or None."""

    __slots__ = ()


def fallback_tag(digest):
    """The tag-schema tag of a digest: 'sha256:ab..' -> 'sha256-ab..'."""
    return digest.replace(":", "-", 1)


def discover(source, digest, depth=MAX_DEPTH):
    """[Found] for everything attached to `digest` in the `source` endpoint, level by level, each once."""
    found, seen, level = [], set([digest]), [digest]
    for _level in range(depth):
        below = []
        for subject in level:
            for item in attached(source, subject):
                if item.descriptor.digest in seen or len(found) >= MAX_REFERRERS:
                    continue
                seen.add(item.descriptor.digest)
                found.append(item)
                below.append(item.descriptor.digest)
        level = below
    return found


def attached(source, subject):
    """[Found] directly attached to `subject`: the Referrers API's list (else the tag-schema index's)
    and the cosign tags."""
    listed, how = source.referrers(subject), API
    if listed is None:
        listed, how = fallback_index(source, subject), TAG_SCHEMA
    items = [Found(d, subject, how, None) for d in listed if d.media_type in _media_types.MANIFEST_TYPES]
    for suffix in COSIGN_SUFFIXES:
        tag = fallback_tag(subject) + suffix
        head = source.manifest_exists(tag)
        if head is None:
            continue
        if not head["digest"] or not head["size"]:  # a registry that does not say: read it
            manifest = source.get_manifest(tag)
            head = {"digest": manifest.digest, "media_type": manifest.media_type, "size": manifest.size}
        items.append(Found(_manifest.Descriptor(head["media_type"], head["digest"], head["size"]), subject,
                           COSIGN_TAG, tag))
    return items


def fallback_index(endpoint, subject):
    """The descriptors the tag-schema index of `subject` lists; [] when there is none (or it is no index)."""
    try:
        index = endpoint.get_manifest(fallback_tag(subject))
    except NotFoundError:
        return []
    return list(index.manifests) if index.is_index else []


def merged_index(current, descriptors):
    """(raw bytes of the tag-schema index listing `descriptors` on top of `current`, digests added).

    `current` is the target's index (a Manifest) or None. What it lists is kept as it is, in its
    order; a descriptor it lacks is appended. The bytes are None when nothing was added.
    """
    if current is not None:
        document = json.loads(current.raw.decode("utf-8"))
    else:
        document = {"schemaVersion": 2, "mediaType": _media_types.OCI_INDEX, "manifests": []}
    listed = set(entry.get("digest") for entry in document.get("manifests") or [])
    added = []
    for descriptor in descriptors:
        if descriptor.digest not in listed:
            listed.add(descriptor.digest)
            added.append(descriptor)
    if not added:
        return None, []
    document["manifests"] = list(document.get("manifests") or []) + [d.to_dict() for d in added]
    return json.dumps(document, indent=2).encode("utf-8"), [d.digest for d in added]


class ReferrerCopy:
    """Copies what is attached to one image from `source` to `target` (RegistryEndpoints of the image's
    two repositories); `copy_one(source_ref, target_ref)` gives a _mirror.Mirror for one referrer."""

    def __init__(self, source, target, copy_one):
        self.source = source
        self.target = target
        self.copy_one = copy_one

    def run(self, digest, check_mode=False):
        """{'referrers': [...], 'changed', 'bytes_downloaded', 'bytes_uploaded'} for the image `digest`."""
        found = discover(self.source, digest)
        rows, moved = [], {"bytes_downloaded": 0, "bytes_uploaded": 0}
        for item in found:
            result = self._copy(item, check_mode)
            for key in moved:
                moved[key] += result[key]
            rows.append(_row(item, result["changed"]))
        listed = self._list_on_target([i for i in found if i.how != COSIGN_TAG], check_mode)
        for row in rows:
            row["changed"] = row["changed"] or row["digest"] in listed
        return dict(moved, referrers=rows, changed=any(r["changed"] for r in rows))

    def _copy(self, item, check_mode):
        reference = self.source.reference
        target = self.target.reference
        if item.tag:
            source_ref, target_ref = reference.with_tag(item.tag), target.with_tag(item.tag)
        else:
            source_ref = ImageReference(reference.registry, reference.repository, None, item.descriptor.digest)
            target_ref = ImageReference(target.registry, target.repository, None, item.descriptor.digest)
        return self.copy_one(source_ref, target_ref).run(source_ref, None, check_mode=check_mode)

    def _list_on_target(self, found, check_mode):
        """Write each subject's tag-schema index on a target without the Referrers API; the digests added."""
        by_subject = collections.OrderedDict()
        for item in found:
            by_subject.setdefault(item.subject, []).append(item.descriptor)
        added = set()
        for subject, descriptors in by_subject.items():
            if self.target.referrers(subject) is not None:
                continue  # the registry lists a manifest pushed with a subject by itself
            tag = fallback_tag(subject)
            try:
                current = self.target.get_manifest(tag)
            except NotFoundError:
                current = None
            if current is not None and not current.is_index:
                continue  # something else carries that tag: never overwrite it
            raw, new = merged_index(current, descriptors)
            if raw is not None and not check_mode:
                self.target.put_manifest(tag, _manifest.parse(raw, _media_types.OCI_INDEX))
            added.update(new)
        return added


def _row(item, changed):
    descriptor = item.descriptor
    return {"digest": descriptor.digest, "artifact_type": descriptor.artifact_type,
            "media_type": descriptor.media_type, "subject": item.subject, "found": item.how, "tag": item.tag,
            "changed": changed}


def add_to(result, copied):
    """The image result with its referrers: the list, their bytes, and `changed` when one moved."""
    result["referrers"] = copied["referrers"]
    result["bytes_downloaded"] += copied["bytes_downloaded"]
    result["bytes_uploaded"] += copied["bytes_uploaded"]
    result["changed"] = result["changed"] or copied["changed"]
    return result
