# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import hashlib
import importlib.util
import json
import sys

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    DigestMismatchError,
    InvalidDigestError,
    ManifestError,
    PlatformNotFoundError,
    UnsupportedManifestError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import (
    MAX_DESCRIPTORS,
    MAX_MANIFEST_BYTES,
    Descriptor,
    parse,
    parse_platform,
    select_platforms,
)
from tests.unit.plugins.module_utils.documents import DELETE, with_
from tests.unit.plugins.module_utils.tree_builders import desc

TRAVERSAL = "sha256:../../../etc/passwd"


# -- builders: real-looking documents, made here ----------------------------

CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()


def oci_manifest(layers=2, media_type=True, **extra):
    doc = {"schemaVersion": 2}
    if media_type:
        doc["mediaType"] = mt.OCI_MANIFEST
    doc["config"] = desc(mt.OCI_CONFIG, CONFIG)
    doc["layers"] = [desc(mt.OCI_LAYER_GZIP, b"layer %d" % i) for i in range(layers)]
    doc.update(extra)
    return doc


def docker_manifest(layers=2):
    return {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": desc(mt.DOCKER_CONFIG, CONFIG),
        "layers": [desc(mt.DOCKER_LAYER, b"docker layer %d" % i) for i in range(layers)],
    }


PLATFORMS = (
    {"architecture": "amd64", "os": "linux"},
    {"architecture": "arm64", "os": "linux"},
    {"architecture": "arm", "os": "linux", "variant": "v7"},
    {"architecture": "arm", "os": "linux", "variant": "v6"},
    {"architecture": "ppc64le", "os": "linux"},
    {"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.2527"},
)


def oci_index(platforms=PLATFORMS, attestations=True, media_type=True):
    doc = {"schemaVersion": 2}
    if media_type:
        doc["mediaType"] = mt.OCI_INDEX
    doc["manifests"] = []
    for i, platform in enumerate(platforms):
        doc["manifests"].append(desc(mt.OCI_MANIFEST, b"manifest %d" % i, platform=platform))
    if attestations:
        # What BuildKit adds: attestation manifests with platform unknown/unknown.
        for i in range(2):
            doc["manifests"].append(desc(
                mt.OCI_MANIFEST, b"attestation %d" % i, platform={"architecture": "unknown", "os": "unknown"},
                annotations={"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": of_bytes(b"manifest %d" % i)}))
        doc["manifests"].append(desc(mt.OCI_MANIFEST, b"no platform"))
    return doc


def docker_list(platforms=PLATFORMS[:3]):
    return {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [desc(mt.DOCKER_MANIFEST, b"m%d" % i, platform=p) for i, p in enumerate(platforms)],
    }


def schema1():
    return {
        "schemaVersion": 1,
        "name": "library/hello",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
        "history": [{"v1Compatibility": "{}"}],
        "signatures": [{"header": {"alg": "ES256"}, "signature": "x", "protected": "y"}],
    }


def dumps(doc, indent=3):
    # Docker and registries serve indented JSON; digests are of these exact bytes.
    return json.dumps(doc, indent=indent).encode()


# -- parse: accepted documents ----------------------------------------------

@pytest.mark.parametrize("doc, header, media_type, n_blobs, n_children", [
    (oci_manifest(), mt.OCI_MANIFEST, mt.OCI_MANIFEST, 3, 0),
    (oci_manifest(), None, mt.OCI_MANIFEST, 3, 0),
    (oci_manifest(media_type=False), None, mt.OCI_MANIFEST, 3, 0),
    (oci_manifest(media_type=False), mt.OCI_MANIFEST, mt.OCI_MANIFEST, 3, 0),
    (oci_manifest(), "application/json; charset=utf-8", mt.OCI_MANIFEST, 3, 0),
    (oci_manifest(), "application/octet-stream", mt.OCI_MANIFEST, 3, 0),
    (oci_manifest(), "text/plain", mt.OCI_MANIFEST, 3, 0),
    (oci_manifest(), mt.OCI_MANIFEST + "; charset=utf-8", mt.OCI_MANIFEST, 3, 0),
    (oci_manifest(layers=0, artifactType="application/vnd.example.sbom.v1+json"), None, mt.OCI_MANIFEST, 1, 0),
    (oci_manifest(subject=desc(mt.OCI_MANIFEST, b"subject"), annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}),
     None, mt.OCI_MANIFEST, 3, 0),
    (oci_manifest(layers=MAX_DESCRIPTORS), None, mt.OCI_MANIFEST, MAX_DESCRIPTORS + 1, 0),
    (docker_manifest(), mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST, 3, 0),
    (docker_manifest(layers=0), None, mt.DOCKER_MANIFEST, 1, 0),
    (oci_index(), mt.OCI_INDEX, mt.OCI_INDEX, 0, 9),
    (oci_index(media_type=False), None, mt.OCI_INDEX, 0, 9),
    (oci_index(platforms=[], attestations=False), None, mt.OCI_INDEX, 0, 0),
    (docker_list(), mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST_LIST, 0, 3),
    (docker_list(), None, mt.DOCKER_MANIFEST_LIST, 0, 3),
])
def test_parse_accepts(doc, header, media_type, n_blobs, n_children):
    raw = dumps(doc)
    manifest = parse(raw, header)
    assert manifest.raw is raw
    assert manifest.media_type == media_type
    assert manifest.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert manifest.size == len(raw)
    assert manifest.is_index is (media_type in mt.INDEX_TYPES)
    assert len(manifest.blobs()) == n_blobs
    assert len(manifest.manifests) == n_children
    assert json.loads(manifest.raw) == doc  # the exact bytes are kept, not a parsed copy
    if manifest.is_index:
        assert manifest.config is None and manifest.layers == []
        assert [d.to_dict() for d in manifest.manifests] == doc["manifests"]
    else:
        assert manifest.blobs()[0] is manifest.config
        assert manifest.config.to_dict() == doc["config"]
        assert [d.to_dict() for d in manifest.layers] == doc["layers"]


def test_parse_keeps_exact_bytes_and_optional_fields():
    subject = desc(mt.OCI_MANIFEST, b"subject")
    doc = oci_manifest(subject=subject, annotations={"a": "b"}, artifactType="application/vnd.example+json")
    # Unusual but valid bytes: key order, spacing and a trailing newline are all kept.
    raw = b"\n" + json.dumps(doc, sort_keys=True, separators=(",", " : ")).encode() + b"\n"
    manifest = parse(bytearray(raw))
    assert manifest.raw == raw
    assert manifest.digest == of_bytes(raw)
    assert manifest.subject.to_dict() == subject
    assert manifest.annotations == {"a": "b"}
    assert manifest.artifact_type == "application/vnd.example+json"


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_parse_with_expected_digest_uses_its_algorithm(algorithm):
    raw = dumps(oci_manifest())
    expected = of_bytes(raw, algorithm)
    assert parse(raw, mt.OCI_MANIFEST, expected).digest == expected


def test_parse_accepts_exactly_the_size_cap():
    raw = dumps(oci_manifest())
    raw += b" " * (MAX_MANIFEST_BYTES - len(raw))
    assert parse(raw).size == MAX_MANIFEST_BYTES


def test_parse_does_not_follow_children(monkeypatch):
    # An index whose children are indexes, one of them listed twice, as a loop would be:
    # parse must only read this document; following children (and detecting cycles) is the caller's job.
    child = desc(mt.OCI_INDEX, b"some index")
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [child, child]}
    raw = dumps(doc)
    calls = []
    real_parse = _manifest.parse

    def counting_parse(*args, **kwargs):
        calls.append(args)
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(_manifest, "parse", counting_parse)
    manifest = _manifest.parse(raw)
    assert len(calls) == 1
    assert [d.digest for d in manifest.manifests] == [child["digest"]] * 2
    assert manifest.manifests[0].media_type == mt.OCI_INDEX
    assert manifest.blobs() == []


# -- parse: rejected documents ----------------------------------------------

def _raw(doc):
    return doc if isinstance(doc, bytes) else dumps(doc)


@pytest.mark.parametrize("doc, header, error, fragments", [
    # size, JSON, shape
    (b" " * (MAX_MANIFEST_BYTES + 1), None, ManifestError, ["is 4194305 bytes", "4194304-byte (4 MiB) limit"]),
    (b"<html><body>502 Bad Gateway</body></html>", None, ManifestError, ["is not valid JSON", "'<html><body>502"]),
    (b"", None, ManifestError, ["is not valid JSON"]),
    (b'{"schemaVersion": 2, "config": {}', None, ManifestError, ["is not valid JSON"]),
    (b'{"a": "\xff"}', None, ManifestError, ["is not valid JSON"]),
    (b"[" * 200000 + b"]" * 200000, None, ManifestError, ["is not valid JSON"]),
    (b"[1, 2]", None, ManifestError, ["must be a JSON object, got a JSON array"]),
    (b'"manifest"', None, ManifestError, ["must be a JSON object, got a JSON string"]),
    (b"null", None, ManifestError, ["must be a JSON object, got a JSON null"]),
    (b"4.5", None, ManifestError, ["must be a JSON object, got a JSON number"]),
    (b'{"schemaVersion": 2, "layers": [], "layers": [], "config": {}}', None, ManifestError, ["duplicate key 'layers'"]),
    # Docker schema 1
    (schema1(), None, UnsupportedManifestError, ["schema 1 is deprecated and not supported", "push it again with a current client"]),
    (schema1(), mt.DOCKER_SCHEMA1_SIGNED_MANIFEST, UnsupportedManifestError, ["schema 1"]),
    (with_(schema1(), ("mediaType",), mt.DOCKER_SCHEMA1_MANIFEST), None, UnsupportedManifestError, ["schema 1"]),
    (oci_manifest(), mt.DOCKER_SCHEMA1_MANIFEST, UnsupportedManifestError, ["schema 1"]),
    # which type is it?
    (with_(oci_manifest(), ("mediaType",), "application/vnd.oci.artifact.manifest.v1+json"), None, UnsupportedManifestError,
     ["media type 'application/vnd.oci.artifact.manifest.v1+json' is not supported", mt.OCI_INDEX]),
    (oci_manifest(media_type=False), "application/vnd.example.thing", UnsupportedManifestError,
     ["media type 'application/vnd.example.thing' is not supported"]),
    (oci_manifest(), mt.DOCKER_MANIFEST, ManifestError,
     ["announced as '%s' (by the Content-Type header" % mt.DOCKER_MANIFEST, "but its body says mediaType '%s'" % mt.OCI_MANIFEST]),
    (oci_index(), mt.OCI_MANIFEST, ManifestError, ["announced as", "but its body says mediaType"]),
    (with_(oci_manifest(), ("mediaType",), 7), None, ManifestError, ["mediaType must be a string, got 7"]),
    (dict(oci_manifest(media_type=False), manifests=[]), None, ManifestError, ["cannot tell an index from an image manifest"]),
    ({"schemaVersion": 2}, None, ManifestError, ["it is not an image manifest or index"]),
    (dict(oci_index(), layers=[]), None, ManifestError, ["an index (%s) must not have 'config' or 'layers'" % mt.OCI_INDEX]),
    (dict(oci_manifest(), manifests=[]), None, ManifestError, ["an image manifest (%s) must not have 'manifests'" % mt.OCI_MANIFEST]),
    # caps
    (oci_manifest(layers=MAX_DESCRIPTORS + 1), None, ManifestError, ["has 1001 layers; at most 1000 are accepted"]),
    (oci_index(platforms=[{"os": "linux", "architecture": "amd64"}] * (MAX_DESCRIPTORS + 1), attestations=False), None,
     ManifestError, ["has 1001 manifests; at most 1000 are accepted"]),
    # strict digests, naming the descriptor
    (with_(oci_manifest(), ("layers", 1, "digest"), TRAVERSAL), None, InvalidDigestError,
     ["layers[1] has an invalid digest", repr(TRAVERSAL)]),
    (with_(oci_manifest(), ("config", "digest"), TRAVERSAL), None, InvalidDigestError, ["config has an invalid digest"]),
    (with_(oci_index(), ("manifests", 2, "digest"), TRAVERSAL), None, InvalidDigestError, ["manifests[2] has an invalid digest"]),
    (oci_manifest(subject={"mediaType": mt.OCI_MANIFEST, "digest": TRAVERSAL, "size": 1}), None, InvalidDigestError,
     ["subject has an invalid digest"]),
    (with_(docker_manifest(), ("layers", 0, "digest"), "sha256:" + "A" * 64), None, InvalidDigestError,
     ["layers[0] has an invalid digest", "must be lowercase"]),
    (with_(oci_manifest(), ("layers", 0, "digest"), "md5:" + "a" * 32), None, InvalidDigestError, ["unsupported algorithm 'md5'"]),
    (with_(oci_manifest(), ("layers", 0, "digest"), 5), None, InvalidDigestError, ["layers[0]", "must be a string"]),
    # schema (one readable line: JSON path + what failed)
    (with_(oci_manifest(), ("layers", 0, "size"), -1), None, ManifestError, ["is not valid: at $.layers[0].size: -1 is less than the minimum of 0"]),
    (with_(oci_manifest(), ("config", "size"), "12"), None, ManifestError, ["at $.config.size: '12' is not of type 'integer'"]),
    (with_(oci_manifest(), ("config", "size"), True), None, ManifestError, ["at $.config.size: True is not of type 'integer'"]),
    (with_(oci_manifest(), ("config",), DELETE), None, ManifestError, ["at $: 'config' is a required property"]),
    (with_(oci_manifest(), ("layers",), {}), None, ManifestError, ["at $.layers: {} is not of type 'array'"]),
    (with_(oci_manifest(), ("schemaVersion",), 3), None, ManifestError, ["at $.schemaVersion: 3 is greater than the maximum of 2"]),
    (with_(oci_manifest(), ("annotations",), {"x": 1}), None, ManifestError, ["at $.annotations.x: 1 is not of type 'string'"]),
    (with_(docker_manifest(), ("layers", 1, "mediaType"), DELETE), None, ManifestError,
     ["at $.layers[1]: 'mediaType' is a required property"]),
    (with_(docker_manifest(), ("mediaType",), DELETE), mt.DOCKER_MANIFEST, ManifestError, ["'mediaType' is a required property"]),
    (with_(oci_index(), ("manifests", 0, "platform", "architecture"), DELETE), None, ManifestError,
     ["at $.manifests[0].platform: 'architecture' is a required property"]),
    (with_(oci_manifest(), ("layers", 0, "mediaType"), "not a media type"), None, ManifestError, ["at $.layers[0].mediaType"]),
    (with_(with_(oci_manifest(), ("layers", 0, "size"), -1), ("layers", 1, "size"), -2), None, ManifestError,
     ["(and 1 more problem)"]),
])
def test_parse_rejects(doc, header, error, fragments):
    with pytest.raises(error) as info:
        parse(_raw(doc), header)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert len(message) < 800


def test_parse_reports_digest_mismatch():
    raw = dumps(oci_manifest())
    other = of_bytes(b"something else")
    with pytest.raises(DigestMismatchError) as info:
        parse(raw, mt.OCI_MANIFEST, other)
    assert str(info.value) == "Manifest: expected %s but received %s (%d bytes)." % (other, of_bytes(raw), len(raw))


@pytest.mark.parametrize("expected", [TRAVERSAL, "sha256:" + "A" * 64, "sha1:" + "a" * 40])
def test_parse_validates_the_expected_digest(expected):
    with pytest.raises(InvalidDigestError):
        parse(dumps(oci_manifest()), None, expected)


def test_oversize_is_refused_before_hashing_or_parsing():
    raw = b"{" * (MAX_MANIFEST_BYTES + 1)
    with pytest.raises(ManifestError) as info:
        parse(raw, None, of_bytes(b"x"))  # a mismatching digest: the size error must come first
    assert not isinstance(info.value, DigestMismatchError)
    assert "4194305 bytes" in str(info.value)


def test_parse_needs_bytes():
    with pytest.raises(TypeError):
        parse(json.dumps(oci_manifest()))


# -- without jsonschema -----------------------------------------------------

@pytest.mark.parametrize("doc, error, fragments", [
    (with_(oci_manifest(), ("layers", 0, "digest"), TRAVERSAL), InvalidDigestError, ["layers[0] has an invalid digest"]),
    (with_(oci_manifest(), ("layers", 0, "size"), -1), ManifestError, ["layers[0]", "size must be a non-negative integer, got -1"]),
    (with_(oci_manifest(), ("layers", 0, "size"), 1.0), ManifestError, ["size must be a non-negative integer, got 1.0"]),
    (with_(oci_manifest(), ("layers", 0, "size"), DELETE), ManifestError, ["layers[0]", "has no size"]),
    (with_(oci_manifest(), ("layers", 0, "digest"), DELETE), ManifestError, ["layers[0] has no digest"]),
    (with_(oci_manifest(), ("layers", 0), "sha256:" + "a" * 64), ManifestError, ["layers[0] must be a JSON object"]),
    (with_(oci_manifest(), ("config",), DELETE), ManifestError, ["has no 'config'"]),
    (with_(oci_manifest(), ("layers",), "x"), ManifestError, ["'layers' must be a list"]),
    (with_(oci_manifest(), ("schemaVersion",), 3), ManifestError, ["schemaVersion must be 2, got 3"]),
    (with_(oci_manifest(), ("annotations",), {"x": 1}), ManifestError, ["annotations must be an object of string values"]),
    (with_(oci_index(), ("manifests",), {}), ManifestError, ["'manifests' must be a list"]),
    (with_(oci_index(), ("manifests", 0, "platform"), "linux/amd64"), ManifestError, ["manifests[0]", "platform must be an object"]),
    (with_(oci_index(), ("manifests", 0, "urls"), "http://x"), ManifestError, ["urls must be a list of strings"]),
    (oci_manifest(layers=MAX_DESCRIPTORS + 1), ManifestError, ["at most 1000"]),
])
def test_parse_checks_structure_without_jsonschema(monkeypatch, doc, error, fragments):
    monkeypatch.setattr(_manifest, "HAS_JSONSCHEMA", False)
    with pytest.raises(error) as info:
        parse(dumps(doc))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_parse_accepts_valid_documents_without_jsonschema(monkeypatch):
    monkeypatch.setattr(_manifest, "HAS_JSONSCHEMA", False)
    assert len(parse(dumps(oci_manifest())).layers) == 2
    assert len(parse(dumps(oci_index())).manifests) == 9


def test_module_imports_without_jsonschema(monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # makes "import jsonschema" raise ImportError
    spec = importlib.util.spec_from_file_location("_manifest_without_jsonschema", _manifest.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.HAS_JSONSCHEMA is False
    assert "jsonschema" in module.JSONSCHEMA_IMPORT_ERROR
    assert module.parse(dumps(docker_manifest())).media_type == mt.DOCKER_MANIFEST
    assert _manifest.HAS_JSONSCHEMA is True and _manifest.JSONSCHEMA_IMPORT_ERROR is None


# -- Descriptor ---------------------------------------------------------------

@pytest.mark.parametrize("platform, expected", [
    ({"os": "linux", "architecture": "arm64", "variant": "v8"}, "linux/arm64/v8"),
    ({"os": "linux", "architecture": "amd64"}, "linux/amd64"),
    ({"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1"}, "windows/amd64"),
    ({"os": "unknown", "architecture": "unknown"}, "unknown/unknown"),
    (None, None),
])
def test_descriptor_platform_string(platform, expected):
    assert Descriptor(mt.OCI_MANIFEST, of_bytes(b"x"), 1, platform=platform).platform_string == expected


@pytest.mark.parametrize("kwargs, expected", [
    ({}, {"mediaType": mt.OCI_LAYER_GZIP, "digest": of_bytes(b"x"), "size": 1}),
    ({"urls": ["https://example.com/x"], "annotations": {"k": "v"}, "platform": {"os": "linux", "architecture": "amd64"},
      "artifact_type": "application/vnd.example+json"},
     {"mediaType": mt.OCI_LAYER_GZIP, "artifactType": "application/vnd.example+json", "digest": of_bytes(b"x"), "size": 1,
      "urls": ["https://example.com/x"], "annotations": {"k": "v"}, "platform": {"os": "linux", "architecture": "amd64"}}),
])
def test_descriptor_to_dict(kwargs, expected):
    descriptor = Descriptor(mt.OCI_LAYER_GZIP, of_bytes(b"x"), 1, **kwargs)
    assert descriptor.to_dict() == expected
    assert Descriptor.from_dict(expected) == descriptor


@pytest.mark.parametrize("args, error, fragment", [
    ((mt.OCI_LAYER, TRAVERSAL, 1), InvalidDigestError, repr(TRAVERSAL)),
    ((mt.OCI_LAYER, of_bytes(b"x"), -1), ManifestError, "non-negative integer"),
    ((mt.OCI_LAYER, of_bytes(b"x"), "1"), ManifestError, "non-negative integer"),
    ((5, of_bytes(b"x"), 1), ManifestError, "mediaType must be a string"),
])
def test_descriptor_validates(args, error, fragment):
    with pytest.raises(error) as info:
        Descriptor(*args)
    assert fragment in str(info.value)


def test_manifest_descriptor_points_at_the_manifest():
    manifest = parse(dumps(docker_manifest()))
    descriptor = manifest.descriptor(platform={"os": "linux", "architecture": "amd64"})
    assert descriptor.to_dict() == {"mediaType": mt.DOCKER_MANIFEST, "digest": manifest.digest, "size": manifest.size,
                                    "platform": {"os": "linux", "architecture": "amd64"}}


# -- platforms ----------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("linux/amd64", {"os": "linux", "architecture": "amd64"}),
    ("linux/arm64/v8", {"os": "linux", "architecture": "arm64", "variant": "v8"}),
    ("linux/arm/v7", {"os": "linux", "architecture": "arm", "variant": "v7"}),
    ("linux/arm64/8", {"os": "linux", "architecture": "arm64", "variant": "v8"}),
    ("Linux/AMD64", {"os": "linux", "architecture": "amd64"}),
    ("linux/x86_64", {"os": "linux", "architecture": "amd64"}),
    ("linux/aarch64", {"os": "linux", "architecture": "arm64"}),
    ("linux/armhf", {"os": "linux", "architecture": "arm", "variant": "v7"}),
    ("linux/i386", {"os": "linux", "architecture": "386"}),
    ("windows/amd64", {"os": "windows", "architecture": "amd64"}),
    ("linux/s390x", {"os": "linux", "architecture": "s390x"}),
])
def test_parse_platform(text, expected):
    assert parse_platform(text) == expected


@pytest.mark.parametrize("text", ["", "linux", "amd64", "linux/", "/amd64", "linux/arm64/v8/extra", "linux//v8", "linux/amd 64",
                                  "linux/$(id)", None, 64, "x" * 500])
def test_parse_platform_rejects(text):
    with pytest.raises(ManifestError) as info:
        parse_platform(text)
    message = str(info.value)
    assert message.startswith("Invalid platform %s" % repr(text)[:50])
    assert "os/architecture[/variant]" in message
    assert len(message) < 400


@pytest.fixture(scope="module")
def index():
    return parse(dumps(oci_index()))


def _platforms(descriptors):
    return [d.platform_string for d in descriptors]


@pytest.mark.parametrize("wanted, expected", [
    (["linux/amd64"], ["linux/amd64"]),
    ("linux/amd64", ["linux/amd64"]),
    (["linux/arm64/v8"], ["linux/arm64"]),
    (["linux/arm64"], ["linux/arm64"]),
    (["linux/aarch64"], ["linux/arm64"]),
    (["linux/arm"], ["linux/arm/v7", "linux/arm/v6"]),
    (["linux/arm/v6", "linux/amd64"], ["linux/amd64", "linux/arm/v6"]),
    (["linux/amd64", "linux/amd64", "LINUX/AMD64", "linux/x86_64"], ["linux/amd64"]),
    (["windows/amd64"], ["windows/amd64"]),
    (["linux/ppc64le", "linux/arm/v7", "linux/arm64"], ["linux/arm64", "linux/arm/v7", "linux/ppc64le"]),
    ([], []),
])
def test_select_platforms(index, wanted, expected):
    assert _platforms(select_platforms(index, wanted)) == expected


@pytest.mark.parametrize("variant, wanted, matches", [
    ("v8", "linux/arm64", True),
    ("v8", "linux/arm64/v8", True),
    ("8", "linux/arm64/v8", True),
    ("v8", "linux/arm64/v9", False),
    (None, "linux/arm64/v9", False),
])
def test_select_platforms_arm64_variants(variant, wanted, matches):
    platform = {"os": "linux", "architecture": "arm64"}
    if variant:
        platform["variant"] = variant
    manifest = parse(dumps(oci_index(platforms=[platform], attestations=False)))
    if matches:
        assert len(select_platforms(manifest, [wanted])) == 1
    else:
        with pytest.raises(PlatformNotFoundError):
            select_platforms(manifest, [wanted])


@pytest.mark.parametrize("wanted, fragments", [
    (["linux/riscv64"], ["Platform 'linux/riscv64' not found in image index sha256:",
                         "available: linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6, linux/ppc64le, windows/amd64."]),
    (["linux/amd64", "linux/mips64le", "linux/s390x/z"], ["Platforms 'linux/mips64le', 'linux/s390x/z' not found"]),
    (["linux/arm64/v9"], ["'linux/arm64/v9' not found"]),
    (["unknown/unknown"], ["'unknown/unknown' not found"]),
])
def test_select_platforms_reports_missing_and_available(index, wanted, fragments):
    with pytest.raises(PlatformNotFoundError) as info:
        select_platforms(index, wanted)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert "unknown/unknown," not in message and "available: unknown" not in message
    assert info.value.details["available"][0] == "linux/amd64"


def test_select_platforms_on_an_index_with_only_attestations():
    manifest = parse(dumps(oci_index(platforms=[])))
    with pytest.raises(PlatformNotFoundError) as info:
        select_platforms(manifest, ["linux/amd64"])
    assert "available: none." in str(info.value)


def test_select_platforms_on_a_docker_manifest_list():
    manifest = parse(dumps(docker_list()))
    assert [d.media_type for d in select_platforms(manifest, ["linux/arm/v7"])] == [mt.DOCKER_MANIFEST]


@pytest.mark.parametrize("wanted, error, fragment", [
    (["linux"], ManifestError, "Invalid platform 'linux'"),
    ([None], ManifestError, "Invalid platform None"),
])
def test_select_platforms_validates_wanted(index, wanted, error, fragment):
    with pytest.raises(error) as info:
        select_platforms(index, wanted)
    assert fragment in str(info.value)


def test_select_platforms_needs_an_index():
    manifest = parse(dumps(oci_manifest()))
    with pytest.raises(ManifestError) as info:
        select_platforms(manifest, ["linux/amd64"])
    assert "is an image manifest, not an index" in str(info.value)
    assert manifest.digest in str(info.value)


@pytest.mark.parametrize("doc, fragment", [
    (with_(oci_manifest(), ("annotations",), {"org.opencontainers.image.created": 5}),
     "at $.annotations['org.opencontainers.image.created']: 5 is not of type 'string'"),
    (with_(oci_index(), ("manifests", 0, "platform", "os.features"), "x"),
     "at $.manifests[0].platform['os.features']: 'x' is not of type 'array'"),
])
def test_schema_error_paths_quote_dotted_keys(doc, fragment):
    with pytest.raises(ManifestError) as info:
        parse(dumps(doc))
    assert fragment in str(info.value)
