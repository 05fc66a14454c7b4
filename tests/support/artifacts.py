"""OCI 1.1 artifacts (signatures, SBOMs) attached to an image, and the raw pushes that seed them.

skopeo does not push artifacts or the tag-schema index, so the tests put them into a registry
with plain requests (tests/support/seed.py):

    sig = artifact(image, SIG_TYPE, b"signature")          # an OCI manifest with `subject`
    push_artifact(reg.url, "signed/app", sig)               # blobs, then the manifest by digest
    push_tag_schema_index(reg.url, "signed/app", image.digest, [sig])   # the sha256-<hex> tag
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tests.support import seed
from tests.support.images import Blob, dump_json, sha256_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SIG_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SBOM_TYPE = "application/spdx+json"
COSIGN_SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


@dataclass(frozen=True)
class Artifact:
    manifest: bytes = field(repr=False)
    blobs: tuple[Blob, ...]
    artifact_type: str | None
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    def descriptor(self) -> dict:
        desc = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest)}
        if self.artifact_type:
            desc["artifactType"] = self.artifact_type
        return desc


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-", 1)


def artifact(subject, artifact_type: str | None, content: bytes, layer_type: str | None = None) -> Artifact:
    """An OCI manifest holding `content`, with `subject` (anything with .digest/.manifest) unless None."""
    empty = Blob(b"{}", OCI_EMPTY)
    layer = Blob(content, layer_type or artifact_type)
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        document["artifactType"] = artifact_type
    document.update(config=empty.descriptor(), layers=[layer.descriptor()])
    if subject is not None:
        document["subject"] = {"mediaType": getattr(subject, "media_type", OCI_MANIFEST), "digest": subject.digest,
                               "size": len(subject.manifest)}
    return Artifact(dump_json(document, 2), (empty, layer), artifact_type)


def cosign_signature(content: bytes = b'{"critical": {}}') -> Artifact:
    """What cosign 2 writes under sha256-<hex>.sig: an OCI manifest of simple-signing layers, no subject."""
    return artifact(None, None, content, layer_type=COSIGN_SIMPLE_SIGNING)


def push_artifact(base_url: str, repo: str, item: Artifact, tag: str | None = None) -> str:
    for blob in item.blobs:
        seed.push_blob(base_url, repo, blob.digest, blob.data)
    return seed.push_manifest(base_url, repo, tag or item.digest, item.media_type, item.manifest)


def tag_schema_index(descriptors: list[dict]) -> bytes:
    return dump_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}, 2)


def push_tag_schema_index(base_url: str, repo: str, subject_digest: str, items) -> bytes:
    raw = tag_schema_index([i.descriptor() for i in items])
    seed.push_manifest(base_url, repo, fallback_tag(subject_digest), OCI_INDEX, raw)
    return raw


def listed_digests(raw: bytes) -> list[str]:
    return [entry["digest"] for entry in json.loads(raw)["manifests"]]
