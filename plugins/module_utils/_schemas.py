# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON Schemas (draft 7) for manifests and indexes, as Python dicts.

Written from the OCI image-spec v1.1 (descriptor.md, manifest.md,
image-index.md and its schema/*.json) and Docker's "Image Manifest V2,
Schema 2" document.  They are embedded as Python because AnsiballZ ships
only .py files of module_utils.

Deliberate choices:
- Extension fields are allowed (no additionalProperties: false): both specs
  say unknown fields must be ignored, and we push manifests byte for byte.
- Digests use the spec's generic pattern here; _manifest.py checks every
  descriptor digest strictly with _digest.validate before using it.
- OCI descriptors do not require mediaType (image-spec v1.0 did not); Docker
  v2 descriptors do, as Docker's document says.
- An empty `layers` array is accepted (OCI v1.1 artifacts; Docker images
  built FROM scratch with no filesystem changes).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as _mt

DRAFT7 = "http://json-schema.org/draft-07/schema#"

# RFC 6838 type/subtype, as in image-spec schema/defs-descriptor.json.
MEDIA_TYPE = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$",
}

# <algorithm>:<encoded>, as in image-spec descriptor.md (strict checks are _digest.validate's job).
DIGEST = {
    "type": "string",
    "pattern": r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$",
}

SIZE = {"type": "integer", "minimum": 0, "maximum": 9223372036854775807}

ANNOTATIONS = {
    "type": "object",
    "additionalProperties": {"type": "string"},
}

URLS = {
    "type": "array",
    "items": {"type": "string"},
}

STRING_LIST = {
    "type": "array",
    "items": {"type": "string"},
}

PLATFORM = {
    "type": "object",
    "required": ["architecture", "os"],
    "properties": {
        "architecture": {"type": "string"},
        "os": {"type": "string"},
        "os.version": {"type": "string"},
        "os.features": STRING_LIST,
        "variant": {"type": "string"},
        "features": STRING_LIST,
    },
}

_DESCRIPTOR_PROPERTIES = {
    "mediaType": MEDIA_TYPE,
    "digest": DIGEST,
    "size": SIZE,
    "urls": URLS,
    "annotations": ANNOTATIONS,
    "data": {"type": "string", "pattern": r"^[A-Za-z0-9+/]*={0,2}$"},
    "artifactType": MEDIA_TYPE,
    "platform": PLATFORM,
}

# OCI content descriptor (descriptor.md).
DESCRIPTOR = {
    "$schema": DRAFT7,
    "title": "OCI content descriptor",
    "type": "object",
    "required": ["digest", "size"],
    "properties": _DESCRIPTOR_PROPERTIES,
}

_DESCRIPTOR = {k: v for k, v in DESCRIPTOR.items() if k != "$schema"}

_SCHEMA_VERSION_2 = {"type": "integer", "minimum": 2, "maximum": 2}

# OCI image manifest (manifest.md).
OCI_MANIFEST = {
    "$schema": DRAFT7,
    "title": "OCI image manifest",
    "type": "object",
    "required": ["schemaVersion", "config", "layers"],
    "properties": {
        "schemaVersion": _SCHEMA_VERSION_2,
        "mediaType": {"type": "string", "enum": [_mt.OCI_MANIFEST]},
        "artifactType": MEDIA_TYPE,
        "config": _DESCRIPTOR,
        "layers": {"type": "array", "items": _DESCRIPTOR},
        "subject": _DESCRIPTOR,
        "annotations": ANNOTATIONS,
    },
}

# OCI image index (image-index.md).
OCI_INDEX = {
    "$schema": DRAFT7,
    "title": "OCI image index",
    "type": "object",
    "required": ["schemaVersion", "manifests"],
    "properties": {
        "schemaVersion": _SCHEMA_VERSION_2,
        "mediaType": {"type": "string", "enum": [_mt.OCI_INDEX]},
        "artifactType": MEDIA_TYPE,
        "manifests": {"type": "array", "items": _DESCRIPTOR},
        "subject": _DESCRIPTOR,
        "annotations": ANNOTATIONS,
    },
}

_DOCKER_DESCRIPTOR = {
    "type": "object",
    "required": ["mediaType", "size", "digest"],
    "properties": {
        "mediaType": MEDIA_TYPE,
        "size": SIZE,
        "digest": DIGEST,
        "urls": URLS,
    },
}

# Docker image manifest v2, schema 2.
DOCKER_MANIFEST = {
    "$schema": DRAFT7,
    "title": "Docker image manifest v2, schema 2",
    "type": "object",
    "required": ["schemaVersion", "mediaType", "config", "layers"],
    "properties": {
        "schemaVersion": _SCHEMA_VERSION_2,
        "mediaType": {"type": "string", "enum": [_mt.DOCKER_MANIFEST]},
        "config": _DOCKER_DESCRIPTOR,
        "layers": {"type": "array", "items": _DOCKER_DESCRIPTOR},
    },
}

# Docker manifest list (multi-platform).  `platform` is described as part of each
# entry by Docker's document; registries accept entries without it, so do we.
DOCKER_MANIFEST_LIST = {
    "$schema": DRAFT7,
    "title": "Docker manifest list",
    "type": "object",
    "required": ["schemaVersion", "mediaType", "manifests"],
    "properties": {
        "schemaVersion": _SCHEMA_VERSION_2,
        "mediaType": {"type": "string", "enum": [_mt.DOCKER_MANIFEST_LIST]},
        "manifests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["mediaType", "size", "digest"],
                "properties": dict(_DOCKER_DESCRIPTOR["properties"], platform=PLATFORM),
            },
        },
    },
}

# Schema of each manifest media type.
BY_MEDIA_TYPE = {
    _mt.OCI_MANIFEST: OCI_MANIFEST,
    _mt.OCI_INDEX: OCI_INDEX,
    _mt.DOCKER_MANIFEST: DOCKER_MANIFEST,
    _mt.DOCKER_MANIFEST_LIST: DOCKER_MANIFEST_LIST,
}
