# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt


@pytest.mark.parametrize("name, value", [
    ("OCI_MANIFEST", "application/vnd.oci.image.manifest.v1+json"),
    ("OCI_INDEX", "application/vnd.oci.image.index.v1+json"),
    ("OCI_CONFIG", "application/vnd.oci.image.config.v1+json"),
    ("OCI_LAYER", "application/vnd.oci.image.layer.v1.tar"),
    ("OCI_LAYER_GZIP", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ("OCI_LAYER_ZSTD", "application/vnd.oci.image.layer.v1.tar+zstd"),
    ("OCI_LAYER_NONDISTRIBUTABLE", "application/vnd.oci.image.layer.nondistributable.v1.tar"),
    ("OCI_LAYER_NONDISTRIBUTABLE_GZIP", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
    ("OCI_LAYER_NONDISTRIBUTABLE_ZSTD", "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"),
    ("DOCKER_MANIFEST", "application/vnd.docker.distribution.manifest.v2+json"),
    ("DOCKER_MANIFEST_LIST", "application/vnd.docker.distribution.manifest.list.v2+json"),
    ("DOCKER_CONFIG", "application/vnd.docker.container.image.v1+json"),
    ("DOCKER_LAYER", "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    ("DOCKER_FOREIGN_LAYER", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
    ("DOCKER_SCHEMA1_MANIFEST", "application/vnd.docker.distribution.manifest.v1+json"),
    ("DOCKER_SCHEMA1_SIGNED_MANIFEST", "application/vnd.docker.distribution.manifest.v1+prettyjws"),
])
def test_constants_are_the_registered_strings(name, value):
    assert getattr(mt, name) == value


def test_type_sets():
    assert mt.INDEX_TYPES == {mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST}
    assert mt.IMAGE_MANIFEST_TYPES == {mt.OCI_MANIFEST, mt.DOCKER_MANIFEST}
    assert mt.MANIFEST_TYPES == mt.INDEX_TYPES | mt.IMAGE_MANIFEST_TYPES
    assert not mt.MANIFEST_TYPES & mt.SCHEMA1_TYPES


def test_accept_header_lists_indexes_first_and_no_schema1():
    accepted = [part.strip() for part in mt.MANIFEST_ACCEPT.split(",")]
    assert accepted == [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST]
    assert "distribution.manifest.v1+" not in mt.MANIFEST_ACCEPT


@pytest.mark.parametrize("value, base", [
    ("application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.index.v1+json"),
    ("application/vnd.oci.image.index.v1+json; charset=utf-8", "application/vnd.oci.image.index.v1+json"),
    (" Application/JSON ;charset=UTF-8", "application/json"),
    ("", ""),
    (None, ""),
])
def test_base_type(value, base):
    assert mt.base_type(value) == base


@pytest.mark.parametrize("value, index, schema1", [
    (mt.OCI_INDEX, True, False),
    (mt.DOCKER_MANIFEST_LIST, True, False),
    (mt.DOCKER_MANIFEST_LIST + "; charset=utf-8", True, False),
    (mt.OCI_MANIFEST, False, False),
    (mt.DOCKER_MANIFEST, False, False),
    (mt.DOCKER_MANIFEST.upper(), False, False),
    (mt.DOCKER_SCHEMA1_MANIFEST, False, True),
    (mt.DOCKER_SCHEMA1_SIGNED_MANIFEST, False, True),
    (mt.OCI_CONFIG, False, False),
    ("application/json", False, False),
    (None, False, False),
])
def test_predicates(value, index, schema1):
    assert mt.is_index(value) is index
    assert mt.is_schema1(value) is schema1


@pytest.mark.parametrize("value, expected", [
    (mt.DOCKER_FOREIGN_LAYER, True),
    (mt.OCI_LAYER_NONDISTRIBUTABLE_GZIP, True),
    (mt.OCI_LAYER_GZIP, False),
    (mt.DOCKER_LAYER, False),
])
def test_is_nondistributable(value, expected):
    assert mt.is_nondistributable(value) is expected
