# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Media types of OCI and Docker manifests, indexes, configs and layers."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# OCI image-spec (https://github.com/opencontainers/image-spec/blob/main/media-types.md)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

# Docker image manifest v2, schema 2 (https://distribution.github.io/distribution/spec/manifest-v2-2/)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"

# Docker image manifest v2, schema 1: deprecated, not supported.
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = frozenset([OCI_INDEX, DOCKER_MANIFEST_LIST])
IMAGE_MANIFEST_TYPES = frozenset([OCI_MANIFEST, DOCKER_MANIFEST])
# Every manifest type this collection handles (parse, store, push).
MANIFEST_TYPES = INDEX_TYPES | IMAGE_MANIFEST_TYPES
SCHEMA1_TYPES = frozenset([DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED_MANIFEST])

CONFIG_TYPES = frozenset([OCI_CONFIG, DOCKER_CONFIG])
# Layers whose content must not be pushed to another registry by default (they carry `urls`).
NONDISTRIBUTABLE_LAYER_TYPES = frozenset([
    OCI_LAYER_NONDISTRIBUTABLE,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP,
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
    DOCKER_FOREIGN_LAYER,
])

# Content-Type values that say nothing about which manifest type a body is.
GENERIC_TYPES = frozenset(["application/json", "text/plain", "application/octet-stream"])

# Accept header for manifest GET/HEAD: indexes first so a multi-arch image is
# returned whole (a registry that honours order then never down-converts it).
MANIFEST_ACCEPT = ", ".join([
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
])


def base_type(media_type):
    """The media type without parameters, whitespace or case: 'Application/JSON; charset=utf-8' -> 'application/json'.

    Returns '' for None or an empty value.
    """
    if not media_type:
        return ""
    return media_type.split(";", 1)[0].strip().lower()


def is_index(media_type):
    """True for an OCI image index or a Docker manifest list (parameters ignored)."""
    return base_type(media_type) in INDEX_TYPES


def is_schema1(media_type):
    """True for the deprecated Docker schema 1 manifest types."""
    return base_type(media_type) in SCHEMA1_TYPES


def is_nondistributable(media_type):
    """True for foreign / non-distributable layers (normally fetched from their `urls`, not pushed)."""
    return base_type(media_type) in NONDISTRIBUTABLE_LAYER_TYPES
