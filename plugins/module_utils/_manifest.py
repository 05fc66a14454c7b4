# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and validate manifests and indexes; select platforms from an index.

A Manifest keeps the exact bytes it was parsed from (``raw``): they are what
gets stored and pushed, so digests are preserved.  Nothing here fetches
anything: an index's children are descriptors for the caller to follow.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import json
import re

# jsonschema is imported only for a manifest _schema_check cannot vouch for (0.08 s of CPU and 3 MB
# a module start need not pay); whether it is there is known without importing it.
try:
    HAS_JSONSCHEMA = importlib.util.find_spec("jsonschema") is not None
except (ImportError, ValueError):
    HAS_JSONSCHEMA = False
JSONSCHEMA_IMPORT_ERROR = None if HAS_JSONSCHEMA else "ImportError: No module named 'jsonschema'"

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    InvalidDigestError,
    ManifestError,
    PlatformNotFoundError,
    UnsupportedManifestError,
    quote_value,
)
from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as _mt
from ansible_collections.imagepusher.registry.plugins.module_utils import _schema_check
from ansible_collections.imagepusher.registry.plugins.module_utils import _schemas

# containerd refuses manifests larger than this; so do we (before parsing anything).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Most layers in an image manifest / entries in an index we accept.
MAX_DESCRIPTORS = 1000

_UNKNOWN = "unknown"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value):
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_str_dict(value):
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


class Descriptor:
    """A content descriptor: what a manifest says about a blob or a child manifest."""

    __slots__ = ("media_type", "digest", "size", "platform", "annotations", "urls", "artifact_type")

    def __init__(self, media_type, digest, size, platform=None, annotations=None, urls=None, artifact_type=None):
        if media_type is not None and not isinstance(media_type, str):
            raise ManifestError("Descriptor mediaType must be a string, got %s." % quote_value(media_type))
        _digest.validate(digest)
        if not _is_int(size) or size < 0:
            raise ManifestError("Descriptor %s has size %s; a size must be a non-negative integer." % (digest, quote_value(size)))
        self.media_type = media_type
        self.digest = digest
        self.size = size
        self.platform = dict(platform) if platform else None
        self.annotations = dict(annotations) if annotations else {}
        self.urls = list(urls) if urls else []
        self.artifact_type = artifact_type

    @classmethod
    def from_dict(cls, obj, where="descriptor", context=""):
        """Build a Descriptor from its JSON form; errors name ``where`` (e.g. 'layers[3]') and ``context``."""
        prefix = "%s%s" % (context + ": " if context else "", where)
        if not isinstance(obj, dict):
            raise ManifestError("%s must be a JSON object (a descriptor), got %s." % (prefix, quote_value(obj)))
        if "digest" not in obj:
            raise ManifestError("%s has no digest." % prefix, where=where)
        digest = obj.get("digest")
        try:
            _digest.validate(digest)
        except InvalidDigestError as exc:
            raise InvalidDigestError("%s has an invalid digest: %s" % (prefix, exc.message), where=where, digest=quote_value(digest))
        checks = (
            ("mediaType", lambda v: isinstance(v, str), "a string"),
            ("size", lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
            ("platform", lambda v: isinstance(v, dict) and isinstance(v.get("os"), str) and isinstance(v.get("architecture"), str),
             "an object with string 'os' and 'architecture'"),
            ("annotations", _is_str_dict, "an object of string values"),
            ("urls", _is_str_list, "a list of strings"),
            ("artifactType", lambda v: isinstance(v, str), "a string"),
        )
        for key, check, expected in checks:
            if key == "size" and key not in obj:
                raise ManifestError("%s (%s) has no size." % (prefix, digest))
            if key in obj and not check(obj[key]):
                raise ManifestError("%s (%s): %s must be %s, got %s." % (prefix, digest, key, expected, quote_value(obj[key])))
        return cls(obj.get("mediaType"), digest, obj["size"], platform=obj.get("platform"),
                   annotations=obj.get("annotations"), urls=obj.get("urls"), artifact_type=obj.get("artifactType"))

    def to_dict(self):
        """The OCI JSON form of this descriptor."""
        result = {}
        if self.media_type is not None:
            result["mediaType"] = self.media_type
        if self.artifact_type is not None:
            result["artifactType"] = self.artifact_type
        result["digest"] = self.digest
        result["size"] = self.size
        if self.urls:
            result["urls"] = list(self.urls)
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        if self.platform:
            result["platform"] = dict(self.platform)
        return result

    @property
    def platform_string(self):
        """'linux/arm64/v8', 'linux/amd64', or None without a platform."""
        if not self.platform:
            return None
        return _platform_string(self.platform)

    def __eq__(self, other):
        if not isinstance(other, Descriptor):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __repr__(self):
        extra = ", platform=%r" % self.platform_string if self.platform else ""
        return "Descriptor(%r, %r, %d%s)" % (self.media_type, self.digest, self.size, extra)


class Manifest:
    """A parsed image manifest or index.  Build it with parse()."""

    def __init__(self, raw, media_type, digest, config=None, layers=None, manifests=None,
                 subject=None, annotations=None, artifact_type=None):
        self.raw = raw
        self.media_type = media_type
        self.digest = digest
        self.config = config
        self.layers = list(layers or [])
        self.manifests = list(manifests or [])
        self.subject = subject
        self.annotations = dict(annotations or {})
        self.artifact_type = artifact_type

    @property
    def size(self):
        return len(self.raw)

    @property
    def is_index(self):
        return self.media_type in _mt.INDEX_TYPES

    def blobs(self):
        """Config then layers of an image manifest (what must be copied before it); [] for an index."""
        if self.is_index:
            return []
        return ([self.config] if self.config is not None else []) + list(self.layers)

    def descriptor(self, platform=None, annotations=None):
        """A Descriptor pointing at this manifest (e.g. to list it in a new index)."""
        return Descriptor(self.media_type, self.digest, self.size, platform=platform, annotations=annotations)

    def __repr__(self):
        return "Manifest(%r, %r, %d bytes)" % (self.media_type, self.digest, self.size)


def _reject_duplicate_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            # Two parsers may keep different values of a duplicated key: refuse the ambiguity.
            raise ValueError("duplicate key %s" % quote_value(key, 60))
        result[key] = value
    return result


def _json_path(path):
    """JSONPath-like text of a jsonschema error path: $.layers[0].size, $.annotations['org.example.key']."""
    text = "$"
    for part in path:
        if isinstance(part, int):
            text += "[%d]" % part
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", part):
            text += "." + part
        else:
            text += "[%s]" % quote_value(part, 60)
    return text


_VALIDATORS = {}


def _schema_problem(document, media_type):
    """One readable line describing why ``document`` fails the schema of its type, or None when it is valid."""
    if _schema_check.surely_valid(document, _schemas.BY_MEDIA_TYPE[media_type]):
        return None
    try:
        import jsonschema  # see HAS_JSONSCHEMA
    except ImportError:  # found but broken: as without it, the structure checks in parse() still hold
        return None
    validator = _VALIDATORS.get(media_type)
    if validator is None:
        validator = _VALIDATORS[media_type] = jsonschema.Draft7Validator(_schemas.BY_MEDIA_TYPE[media_type])
    errors = list(validator.iter_errors(document))
    if not errors:
        return None
    best = jsonschema.exceptions.best_match(errors)
    line = "at %s: %s" % (_json_path(best.absolute_path), best.message)
    if len(line) > 300:
        line = line[:300] + "..."
    if len(errors) > 1:
        line += " (and %d more problem%s)" % (len(errors) - 1, "s" if len(errors) > 2 else "")
    return line


_SCHEMA1_HELP = ("Docker image manifest schema 1 is deprecated and not supported (current Docker and containerd "
                 "releases no longer pull it either); pull the image and push it again with a current client "
                 "(docker, podman, skopeo) so the registry gets a schema 2 or OCI manifest")


def _determine_type(document, header_type, context):
    body_type = document.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestError("%s: mediaType must be a string, got %s." % (context, quote_value(body_type)))
    schema_version = document.get("schemaVersion")
    if (_mt.is_schema1(header_type) or _mt.is_schema1(body_type)
            or (_is_int(schema_version) and schema_version == 1)):
        raise UnsupportedManifestError("%s: %s." % (context, _SCHEMA1_HELP), media_type=header_type or body_type)
    header = _mt.base_type(header_type)
    if header in _mt.GENERIC_TYPES:
        header = ""
    body = _mt.base_type(body_type)
    if header and body and header != body:
        raise ManifestError("%s: it was announced as %s (by the Content-Type header or the descriptor pointing at it) "
                            "but its body says mediaType %s; refusing an ambiguous manifest."
                            % (context, quote_value(header_type), quote_value(body_type)))
    media_type = header or body
    if not media_type:
        has_manifests = "manifests" in document
        has_image = "config" in document or "layers" in document
        if has_manifests and has_image:
            raise ManifestError("%s: has no mediaType and both 'manifests' and 'config'/'layers'; cannot tell an index "
                                "from an image manifest." % context)
        if has_manifests:
            media_type = _mt.OCI_INDEX
        elif has_image:
            media_type = _mt.OCI_MANIFEST
        else:
            raise ManifestError("%s: has no mediaType, 'config', 'layers' or 'manifests'; it is not an image manifest "
                                "or index." % context)
    if media_type not in _mt.MANIFEST_TYPES:
        raise UnsupportedManifestError(
            "%s: media type %s is not supported (supported: %s)." % (context, quote_value(media_type), ", ".join(sorted(_mt.MANIFEST_TYPES))),
            media_type=quote_value(media_type))
    # Content confusion (CVE-2021-41190): a document must not be readable as both kinds.
    if media_type in _mt.INDEX_TYPES and ("config" in document or "layers" in document):
        raise ManifestError("%s: an index (%s) must not have 'config' or 'layers'." % (context, media_type))
    if media_type in _mt.IMAGE_MANIFEST_TYPES and "manifests" in document:
        raise ManifestError("%s: an image manifest (%s) must not have 'manifests'." % (context, media_type))
    return media_type


def _descriptor_slots(document, media_type):
    """(label, value) of every descriptor position present in the document (values not checked yet)."""
    slots = []
    if media_type in _mt.INDEX_TYPES:
        children = document.get("manifests")
        if isinstance(children, list):
            slots.extend(("manifests[%d]" % i, child) for i, child in enumerate(children))
    else:
        if "config" in document:
            slots.append(("config", document["config"]))
        layers = document.get("layers")
        if isinstance(layers, list):
            slots.extend(("layers[%d]" % i, layer) for i, layer in enumerate(layers))
    if "subject" in document:
        slots.append(("subject", document["subject"]))
    return slots


def parse(raw, media_type=None, expected_digest=None):
    """Parse and validate manifest or index bytes.

    raw:             the exact bytes received (kept as Manifest.raw, never re-serialized)
    media_type:      the Content-Type they came with, if any (parameters ignored)
    expected_digest: the digest they were asked for by, if any (its algorithm is used)
    """
    raw, digest = _verified_bytes(raw, expected_digest)
    context = "Manifest %s" % digest
    document = _json_object(raw, context)
    media_type = _determine_type(document, media_type, context)
    context = "%s (%s)" % (context, media_type)
    _check_descriptor_digests(document, media_type, context)
    if HAS_JSONSCHEMA:
        problem = _schema_problem(document, media_type)
        if problem:
            raise ManifestError("%s is not valid: %s." % (context, problem))
    # Structure checks that hold with or without jsonschema.
    schema_version = document.get("schemaVersion")
    if not _is_int(schema_version) or schema_version != 2:
        raise ManifestError("%s: schemaVersion must be 2, got %s." % (context, quote_value(schema_version)))
    annotations = document.get("annotations")
    if annotations is not None and not _is_str_dict(annotations):
        raise ManifestError("%s: annotations must be an object of string values." % context)
    subject = None
    if "subject" in document:
        subject = Descriptor.from_dict(document["subject"], "subject", context)
    config, layers, manifests = _children(document, media_type, context)
    return Manifest(raw, media_type, digest, config=config, layers=layers, manifests=manifests,
                    subject=subject, annotations=annotations, artifact_type=document.get("artifactType"))


def _verified_bytes(raw, expected_digest):
    """(raw as bytes, its digest): within the size limit and, when a digest was asked for, matching it."""
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise TypeError("parse() needs the manifest as bytes, not %s" % type(raw).__name__)
    if expected_digest is not None:
        _digest.validate(expected_digest)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError("Manifest%s is %d bytes, more than the %d-byte (4 MiB) limit for manifests; refusing to "
                            "parse it." % (" " + expected_digest if expected_digest else "", len(raw),
                                           MAX_MANIFEST_BYTES), size=len(raw))
    if expected_digest is None:
        return raw, _digest.of_bytes(raw)
    verifier = _digest.DigestVerifier(expected_digest)
    verifier.update(raw)
    verifier.check("Manifest")
    return raw, expected_digest


def _json_object(raw, context):
    """The JSON object the bytes hold (duplicate keys refused)."""
    try:
        document = json.loads(raw, object_pairs_hook=_reject_duplicate_keys)
    except (ValueError, RecursionError) as exc:
        raise ManifestError("%s is not valid JSON (%s); it starts with %s." % (context, str(exc)[:150], quote_value(raw[:60])))
    if not isinstance(document, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(document), "null")
        raise ManifestError("%s must be a JSON object, got a JSON %s." % (context, kind))
    return document


def _check_descriptor_digests(document, media_type, context):
    """Refuse too many descriptors, then any descriptor digest that is not strictly valid."""
    key = "manifests" if media_type in _mt.INDEX_TYPES else "layers"
    entries = document.get(key)
    if isinstance(entries, list) and len(entries) > MAX_DESCRIPTORS:
        raise ManifestError("%s has %d %s; at most %d are accepted." % (context, len(entries), key, MAX_DESCRIPTORS),
                            count=len(entries), limit=MAX_DESCRIPTORS)
    # Strict digest check first: a digest is later used in file paths and URLs.
    for where, value in _descriptor_slots(document, media_type):
        if isinstance(value, dict) and "digest" in value:
            try:
                _digest.validate(value["digest"])
            except InvalidDigestError as exc:
                raise InvalidDigestError("%s: %s has an invalid digest: %s" % (context, where, exc.message),
                                         where=where, digest=quote_value(value["digest"]))


def _children(document, media_type, context):
    """(config, layers, manifests) descriptors: an index has only manifests, an image manifest the other two."""
    if media_type in _mt.INDEX_TYPES:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise ManifestError("%s: 'manifests' must be a list, got %s." % (context, quote_value(entries)))
        return None, [], [Descriptor.from_dict(item, "manifests[%d]" % i, context) for i, item in enumerate(entries)]
    if "config" not in document:
        raise ManifestError("%s has no 'config'." % context)
    config = Descriptor.from_dict(document["config"], "config", context)
    entries = document.get("layers")
    if not isinstance(entries, list):
        raise ManifestError("%s: 'layers' must be a list, got %s." % (context, quote_value(entries)))
    return config, [Descriptor.from_dict(item, "layers[%d]" % i, context) for i, item in enumerate(entries)], []


# -- platforms ---------------------------------------------------------------

_PLATFORM_PART_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
# Common spellings of architectures (as containerd normalizes them): name -> (architecture, variant).
_ARCH_ALIASES = {
    "x86_64": ("amd64", None),
    "x86-64": ("amd64", None),
    "aarch64": ("arm64", None),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", None),
}


def _platform_string(platform):
    parts = [platform.get("os") or _UNKNOWN, platform.get("architecture") or _UNKNOWN]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(parts)


def parse_platform(text):
    """'linux/arm64/v8' -> {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}; 'linux/amd64' has no variant."""
    help_text = "write a platform as os/architecture[/variant], e.g. 'linux/amd64' or 'linux/arm64/v8'"
    if not isinstance(text, str):
        raise ManifestError("Invalid platform %s: %s." % (quote_value(text), help_text), platform=quote_value(text))
    parts = text.lower().split("/")
    if len(parts) not in (2, 3) or not all(_PLATFORM_PART_RE.fullmatch(part) for part in parts):
        raise ManifestError("Invalid platform %s: %s." % (quote_value(text), help_text), platform=quote_value(text))
    os_name, architecture = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else None
    if architecture in _ARCH_ALIASES:
        architecture, alias_variant = _ARCH_ALIASES[architecture]
        variant = variant or alias_variant
    if architecture in ("arm", "arm64") and variant and variant.isdigit():
        variant = "v" + variant
    result = {"os": os_name, "architecture": architecture}
    if variant:
        result["variant"] = variant
    return result


def _normalized(platform):
    os_name = str(platform.get("os", "")).lower()
    architecture = str(platform.get("architecture", "")).lower()
    variant = platform.get("variant")
    variant = str(variant).lower() if variant else None
    if architecture == "arm64" and variant in (None, "8", "v8"):
        variant = "v8"
    return os_name, architecture, variant


def _platform_matches(available, wanted):
    os_name, architecture, variant = _normalized(available)
    want_os, want_arch, want_variant = _normalized(wanted)
    if (os_name, architecture) != (want_os, want_arch):
        return False
    # A wanted platform without a variant matches every variant (arm64 without one means v8).
    return "variant" not in wanted or variant == want_variant


def select_platforms(index_manifest, wanted):
    """Children of an index that match the wanted platforms ('linux/amd64', 'linux/arm64/v8', ...), in index order.

    Entries without a platform, or with os 'unknown' (build attestations), are never selected.
    Raises PlatformNotFoundError naming the missing platforms and the available ones.
    """
    if not index_manifest.is_index:
        raise ManifestError("Manifest %s (%s) is an image manifest, not an index: it has no platforms to choose from."
                            % (index_manifest.digest, index_manifest.media_type))
    if isinstance(wanted, str):
        wanted = [wanted]
    requested = [(text, parse_platform(text)) for text in wanted]
    candidates = [d for d in index_manifest.manifests
                  if d.platform and str(d.platform.get("os", "")).lower() not in ("", _UNKNOWN)]
    chosen = set()
    missing = []
    for text, platform in requested:
        hits = [i for i, d in enumerate(candidates) if _platform_matches(d.platform, platform)]
        if not hits:
            missing.append(text)
        chosen.update(hits)
    if missing:
        available = []
        for d in candidates:
            if d.platform_string not in available:
                available.append(d.platform_string)
        raise PlatformNotFoundError(
            "Platform%s %s not found in image index %s; available: %s." % (
                "s" if len(missing) > 1 else "", ", ".join(quote_value(m) for m in missing), index_manifest.digest,
                ", ".join(available) if available else "none"),
            missing=missing, available=available)
    return [d for i, d in enumerate(candidates) if i in chosen]
