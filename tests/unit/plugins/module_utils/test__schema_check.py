# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_schema_check vouches only for what jsonschema finds valid, and for the common manifests.

Every position of real-looking manifests and indexes of the four types is replaced by values
of every JSON kind (and deleted): wherever the quick check says "valid", jsonschema must find
no error; where jsonschema finds no error and the document holds no float, the quick check
must say "valid" too (so the common manifests never need jsonschema).
"""

import copy
import sys

import pytest

jsonschema = pytest.importorskip("jsonschema")

from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt  # noqa: E402
from ansible_collections.imagepusher.registry.plugins.module_utils import _schemas  # noqa: E402
from ansible_collections.imagepusher.registry.plugins.module_utils._schema_check import surely_valid  # noqa: E402
from tests.unit.plugins.module_utils.documents import DELETE, with_  # noqa: E402

D = "sha256:" + "a" * 64
PLATFORM = {"os": "linux", "architecture": "arm64", "variant": "v8", "os.features": ["x"], "features": ["y"]}
OCI_DESCRIPTOR = {"mediaType": mt.OCI_LAYER_GZIP, "digest": D, "size": 10, "urls": ["https://example.com/l"],
                  "annotations": {"k": "v"}, "data": "aGVsbG8=", "artifactType": "application/vnd.x+json"}
DOCKER_DESCRIPTOR = {"mediaType": mt.DOCKER_LAYER, "digest": D, "size": 10, "urls": ["https://example.com/f"]}

DOCUMENTS = [
    (mt.OCI_MANIFEST, {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": "application/vnd.x+json",
                       "config": OCI_DESCRIPTOR, "layers": [OCI_DESCRIPTOR, {"digest": D, "size": 0}],
                       "subject": {"digest": D, "size": 3}, "annotations": {"a": "b"}, "extension": 1.5}),
    (mt.OCI_INDEX, {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [dict(OCI_DESCRIPTOR, platform=PLATFORM)],
                    "subject": {"digest": D, "size": 3}, "annotations": {"a": "b"}}),
    (mt.DOCKER_MANIFEST, {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": DOCKER_DESCRIPTOR,
                          "layers": [DOCKER_DESCRIPTOR, dict(DOCKER_DESCRIPTOR, urls=[])]}),
    (mt.DOCKER_MANIFEST_LIST, {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
                               "manifests": [dict(DOCKER_DESCRIPTOR, platform=PLATFORM)]}),
]

# Every JSON kind, and values next to each schema's bounds, patterns and enums.
REPLACEMENTS = [None, True, False, 0, 2, -1, 1.0, 2.0, 2 ** 63, 2 ** 63 - 1, "", "x", "sha256", D, D + "\n",
                "a/b", "a/b\n", "not base64!", mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, [], ["x"], [1],
                {}, {"k": 1}, {"os": "linux"}, {"digest": D, "size": 1}, {"mediaType": "a/b", "digest": D, "size": 1}]


def positions(value, path=()):
    """Every path (tuple of keys and indexes) inside a document, the root included."""
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from positions(child, path + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from positions(child, path + (index,))


def holds_float(value):
    if isinstance(value, dict):
        return any(holds_float(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_float(v) for v in value)
    return isinstance(value, float)


def variants():
    for media_type, doc in DOCUMENTS:
        for path in positions(doc):
            for value in REPLACEMENTS + [DELETE]:
                if value is DELETE and not path:
                    continue
                yield media_type, with_(doc, path, value)


@pytest.mark.parametrize("media_type, doc", DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_the_common_documents_need_no_jsonschema(media_type, doc):
    assert surely_valid(doc, _schemas.BY_MEDIA_TYPE[media_type]) is True


def test_it_vouches_only_for_what_jsonschema_finds_valid_and_for_all_of_that_but_floats():
    checked = vouched = 0
    for media_type, doc in variants():
        schema = _schemas.BY_MEDIA_TYPE[media_type]
        valid = not list(jsonschema.Draft7Validator(schema).iter_errors(doc))
        quick = surely_valid(doc, schema)
        assert not quick or valid, (media_type, doc)
        # The extension field is not in the schema, so not looked at: its float does not count.
        looked_at = dict((k, v) for k, v in doc.items() if k != "extension") if isinstance(doc, dict) else doc
        if valid and not holds_float(looked_at):
            assert quick, (media_type, doc)
        checked += 1
        vouched += quick
    assert checked > 2500 and vouched > 400


@pytest.mark.parametrize("schema, instance", [
    ({"type": "integer"}, 2.0),  # an integer to draft 7; left to jsonschema
    ({"type": "number"}, 1),  # a type not modelled
    ({"type": ["string", "null"]}, "x"),
    ({"enum": [1, 2]}, 1),  # an enum of non-strings: equality rules not modelled
    ({"const": "x"}, "x"),  # a keyword not modelled
    ({"type": "object", "additionalProperties": {"type": "string"}, "patternProperties": {"^a": {}}}, {"a": "b"}),
    ({"type": "object", "additionalProperties": False}, {}),
    ({"type": "array", "items": [{"type": "string"}]}, ["x"]),
    ({"minimum": 0.5}, 1),
])
def test_what_it_does_not_model_it_does_not_vouch_for(schema, instance):
    assert surely_valid(instance, schema) is False


def test_parse_of_a_common_manifest_does_not_import_jsonschema(monkeypatch):
    from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
    import json
    monkeypatch.delitem(sys.modules, "jsonschema", raising=False)
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # an import of it would now raise
    assert _manifest.parse(json.dumps(DOCUMENTS[2][1]).encode()).media_type == mt.DOCKER_MANIFEST


def test_a_jsonschema_found_but_not_importable_leaves_the_structure_checks(monkeypatch):
    from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
    from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ManifestError
    import json
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    doc = copy.deepcopy(DOCUMENTS[2][1])
    doc["layers"][0]["size"] = 1.0  # the quick check leaves floats to jsonschema
    with pytest.raises(ManifestError) as info:
        _manifest.parse(json.dumps(doc).encode())
    assert "size must be a non-negative integer, got 1.0" in str(info.value)
