# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

jsonschema = pytest.importorskip("jsonschema")

from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt  # noqa: E402
from ansible_collections.imagepusher.registry.plugins.module_utils import _schemas  # noqa: E402

D = "sha256:" + "a" * 64
DESCRIPTOR = {"mediaType": mt.OCI_LAYER_GZIP, "digest": D, "size": 10}
DOCKER_DESCRIPTOR = {"mediaType": mt.DOCKER_LAYER, "digest": D, "size": 10}
PLATFORM = {"os": "linux", "architecture": "arm64", "variant": "v8"}


@pytest.mark.parametrize("name", ["DESCRIPTOR", "OCI_MANIFEST", "OCI_INDEX", "DOCKER_MANIFEST", "DOCKER_MANIFEST_LIST"])
def test_schemas_are_valid_draft7(name):
    schema = getattr(_schemas, name)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)


def test_every_manifest_type_has_a_schema():
    assert set(_schemas.BY_MEDIA_TYPE) == mt.MANIFEST_TYPES


def _errors(schema, document):
    return sorted(e.message for e in jsonschema.Draft7Validator(schema).iter_errors(document))


@pytest.mark.parametrize("schema, document", [
    (_schemas.DESCRIPTOR, DESCRIPTOR),
    (_schemas.DESCRIPTOR, {"digest": D, "size": 0}),
    (_schemas.DESCRIPTOR, dict(DESCRIPTOR, urls=["https://example.com/l"], annotations={"k": "v"}, platform=PLATFORM,
                               artifactType="application/vnd.example+json", data="aGVsbG8=", unknownField=1)),
    (_schemas.OCI_MANIFEST, {"schemaVersion": 2, "config": DESCRIPTOR, "layers": [DESCRIPTOR]}),
    (_schemas.OCI_MANIFEST, {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": DESCRIPTOR, "layers": [],
                             "subject": DESCRIPTOR, "annotations": {"a": "b"}, "artifactType": "application/vnd.x+json"}),
    (_schemas.OCI_INDEX, {"schemaVersion": 2, "manifests": []}),
    (_schemas.OCI_INDEX, {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [dict(DESCRIPTOR, platform=PLATFORM)]}),
    (_schemas.DOCKER_MANIFEST, {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": DOCKER_DESCRIPTOR,
                                "layers": [DOCKER_DESCRIPTOR, dict(DOCKER_DESCRIPTOR, urls=["https://example.com/f"])]}),
    (_schemas.DOCKER_MANIFEST_LIST, {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
                                     "manifests": [dict(DOCKER_DESCRIPTOR, platform=PLATFORM)]}),
])
def test_valid_documents(schema, document):
    assert _errors(schema, document) == []


@pytest.mark.parametrize("schema, document, message", [
    (_schemas.DESCRIPTOR, {"digest": D}, "'size' is a required property"),
    (_schemas.DESCRIPTOR, dict(DESCRIPTOR, size=-1), "-1 is less than the minimum of 0"),
    (_schemas.DESCRIPTOR, dict(DESCRIPTOR, size=2 ** 63), "is greater than the maximum"),
    (_schemas.DESCRIPTOR, dict(DESCRIPTOR, digest="sha256"), "'sha256' does not match"),
    (_schemas.DESCRIPTOR, dict(DESCRIPTOR, mediaType="gzip"), "'gzip' does not match"),
    (_schemas.DESCRIPTOR, dict(DESCRIPTOR, platform={"os": "linux"}), "'architecture' is a required property"),
    (_schemas.DESCRIPTOR, dict(DESCRIPTOR, data="not base64!"), "'not base64!' does not match"),
    (_schemas.OCI_MANIFEST, {"schemaVersion": 1, "config": DESCRIPTOR, "layers": []}, "1 is less than the minimum of 2"),
    (_schemas.OCI_MANIFEST, {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "config": DESCRIPTOR, "layers": []}, "is not one of"),
    (_schemas.OCI_INDEX, {"schemaVersion": 2}, "'manifests' is a required property"),
    (_schemas.DOCKER_MANIFEST, {"schemaVersion": 2, "config": DOCKER_DESCRIPTOR, "layers": []}, "'mediaType' is a required property"),
    (_schemas.DOCKER_MANIFEST, {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": {"digest": D, "size": 1}, "layers": []},
     "'mediaType' is a required property"),
    (_schemas.DOCKER_MANIFEST_LIST, {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
                                     "manifests": [dict(DOCKER_DESCRIPTOR, platform={"architecture": "amd64"})]},
     "'os' is a required property"),
])
def test_invalid_documents(schema, document, message):
    errors = _errors(schema, document)
    assert any(message in error for error in errors), errors
