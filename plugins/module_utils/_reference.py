# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references: parse and normalize them the way Docker does.

Grammar (github.com/distribution/reference):

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [ registry "/" ] path
    registry    := host [ ":" port ]      (host: DNS name, IPv4 or "[" IPv6 "]")
    path        := component ( "/" component )*
    component   := [a-z0-9]+ ( ( [._] | "__" | "-"* ) [a-z0-9]+ )*
    tag         := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}

The first path segment is a registry when it contains "." or ":", is
"localhost", or is a bracketed IPv6 address; otherwise the registry is
docker.io, and a one-segment Docker Hub name lives under "library/".
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    InvalidDigestError,
    InvalidReferenceError,
    quote_value,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import validate as _validate_digest

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
# Hosts a reference may name Docker Hub by: the parser rewrites them to docker.io.
DOCKER_HUB_ALIASES = frozenset([DOCKER_HUB, "index.docker.io", DOCKER_HUB_API_HOST])
# Auth files (docker login, older tools) also key Hub credentials by its web host. A reference naming
# that host is not rewritten (Docker does not rewrite it either), so only credential lookup accepts it.
DOCKER_HUB_AUTH_FILE_HOSTS = DOCKER_HUB_ALIASES | frozenset(["registry.hub.docker.com"])

NAME_MAX_LENGTH = 255
# name + ":" + 128-character tag + "@sha512:" + 128 hex digits
_TEXT_MAX_LENGTH = NAME_MAX_LENGTH + 1 + 128 + 8 + 128

# Docker's separator is "[_.]|__|[-]*"; "[-]*" may be empty, which in a backtracking engine makes the
# pattern exponential on a failing match.  "-+" accepts the same language without that ambiguity.
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST_RE = re.compile(r"(?:{c}(?:\.{c})*|\[[a-fA-F0-9:.]+\])(?::[0-9]+)?".format(c=_DOMAIN_COMPONENT))
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ACTIONS = ("pull", "push", "delete", "*")


def repository_scope(repository, *actions):
    """Token scope for a repository: 'repository:library/nginx:pull,push' (default actions: pull)."""
    actions = actions or ("pull",)
    for action in actions:
        if action not in _ACTIONS:
            raise ValueError("unknown registry action %r (expected one of %s)" % (action, ", ".join(_ACTIONS)))
    return "repository:%s:%s" % (repository, ",".join(actions))


def _fail(text, reason):
    raise InvalidReferenceError("Invalid image reference %s: %s." % (quote_value(text), reason), reference=quote_value(text))


def _split_host_port(registry):
    """'[::1]:5000' -> ('::1', '5000'); 'h:5000' -> ('h', '5000'); 'h' -> ('h', None)."""
    if registry.startswith("["):
        host, _sep, rest = registry[1:].partition("]")
        return host, (rest[1:] if rest.startswith(":") else None)
    host, sep, port = registry.partition(":")
    return host, (port if sep else None)


def is_loopback_host(host):
    """True for localhost, 127.0.0.0/8 and ::1 (an IPv6 address with or without its brackets)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_registry(registry, text):
    """Validate and normalize a registry host[:port]; returns the normalized form."""
    if not registry:
        _fail(text, "the registry host is empty")
    if _HOST_RE.fullmatch(registry) is None:
        _fail(text, "%s is not a valid registry host[:port] (a DNS name, IPv4 address or [IPv6] address, "
                    "optionally followed by ':' and a port number)" % quote_value(registry))
    host, port = _split_host_port(registry)
    if registry.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            _fail(text, "%s is not a valid IPv6 address" % quote_value(host))
    if port is not None and not 0 < int(port) < 65536:
        _fail(text, "port %s of the registry is out of range (1-65535)" % port)
    registry = registry.lower()
    if registry in DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    return registry


def _check_repository(repository, text):
    """Validate the repository path (already normalized, e.g. 'library/nginx')."""
    if not repository:
        _fail(text, "the repository name is empty")
    for component in repository.split("/"):
        if not component:
            _fail(text, "the repository path contains an empty component (a leading, trailing or doubled '/')")
        if _COMPONENT_RE.fullmatch(component) is None:
            if _COMPONENT_RE.fullmatch(component.lower()) is not None:
                _fail(text, "repository names must be lowercase (%s)" % quote_value(component))
            _fail(text, "path component %s is not allowed: use lowercase letters and digits, separated by "
                        "'.', '_', '__' or dashes, starting and ending with a letter or digit" % quote_value(component))


def _check_tag(tag, text):
    if tag == "":
        _fail(text, "the tag after ':' is empty")
    if _TAG_RE.fullmatch(tag) is None:
        _fail(text, "tag %s is not valid: a tag has 1 to 128 letters, digits, '_', '.' or '-' and must not start "
                    "with '.' or '-'" % quote_value(tag))


def _check_digest(digest, text):
    try:
        _validate_digest(digest)
    except InvalidDigestError as exc:
        _fail(text, exc.message[:1].lower() + exc.message[1:].rstrip("."))


def _is_registry_segment(segment):
    return "." in segment or ":" in segment or segment == "localhost" or segment.startswith("[")


def _looks_like_bare_host(name, tag):
    """True when a slash-less name plus tag reads as 'host:port' or a bare host rather than an image."""
    if name == "localhost" or name.startswith("["):
        return True
    try:
        ipaddress.IPv4Address(name)
        return True
    except ValueError:
        pass
    return "." in name and tag is not None and tag.isdigit()


def _normalize(registry, repository, tag, digest, text):
    """Validate and normalize the parts of a reference; errors quote ``text``. Returns a 4-tuple."""
    for label, value in (("registry", registry), ("repository", repository), ("tag", tag), ("digest", digest)):
        if not isinstance(value, str) and not (value is None and label in ("tag", "digest")):
            _fail(text, "the %s must be a string, not %s" % (label, type(value).__name__))
    registry = _check_registry(registry, text)
    if registry == DOCKER_HUB and repository and "/" not in repository:
        repository = "library/" + repository
    _check_repository(repository, text)
    name_length = len(registry) + 1 + len(repository)
    if name_length > NAME_MAX_LENGTH:
        _fail(text, "the name (registry/repository) is %d characters long, more than the %d allowed" % (name_length, NAME_MAX_LENGTH))
    if tag is not None:
        _check_tag(tag, text)
    if digest is not None:
        _check_digest(digest, text)
    return registry, repository, tag, digest


class ImageReference:
    """An immutable, normalized image reference (registry, repository, tag, digest).

    Build one with ImageReference.parse("nginx:1.27") or ImageReference(registry, repository, tag, digest).
    """

    __slots__ = ("_registry", "_repository", "_tag", "_digest")

    def __init__(self, registry, repository, tag=None, digest=None):
        text = "%s/%s%s%s" % (registry, repository, "" if tag is None else ":%s" % (tag,), "" if digest is None else "@%s" % (digest,))
        parts = _normalize(registry, repository, tag, digest, text)
        for slot, value in zip(self.__slots__, parts):
            object.__setattr__(self, slot, value)

    @classmethod
    def parse(cls, text, default_tag="latest"):
        """Parse a reference such as 'nginx', 'ghcr.io/org/app:v1', '127.0.0.1:5000/a@sha256:...'.

        ``default_tag`` is used only when the reference has neither tag nor digest (None: leave it untagged).
        """
        if not isinstance(text, str):
            raise InvalidReferenceError(
                "Invalid image reference %s: it must be a string, not %s." % (quote_value(text), type(text).__name__))
        if not text:
            _fail(text, "it is empty")
        if len(text) > _TEXT_MAX_LENGTH:
            _fail(text, "it is %d characters long; a reference (name, tag and digest) is at most %d" % (len(text), _TEXT_MAX_LENGTH))
        if re.search(r"\s", text):
            _fail(text, "it contains whitespace; remove spaces, tabs and newlines")
        scheme = _SCHEME_RE.match(text)
        if scheme:
            _fail(text, "drop the %r prefix: a reference is written like 'registry.example.com/team/app:tag'"
                        % scheme.group(0))
        if "@" not in text and re.match(r"(?:sha256|sha512):", text):
            _fail(text, "a digest alone is not an image reference; write it after the repository, e.g. 'team/app@%s:...'"
                        % text.split(":", 1)[0])
        name, at, digest = text.partition("@")
        if not at:
            digest = None
        elif not digest:
            _fail(text, "the digest after '@' is empty")
        else:
            _check_digest(digest, text)
        tag = None
        colon = name.rfind(":")
        if colon > name.rfind("/") and not name.endswith("]"):
            name, tag = name[:colon], name[colon + 1:]
            _check_tag(tag, text)
        if not name:
            _fail(text, "the repository name is empty")
        first, slash, rest = name.partition("/")
        if slash and _is_registry_segment(first):
            registry, repository = first, rest
            if not repository:
                _fail(text, "%s is a registry without a repository; add the repository path, e.g. '%s/team/app:tag'"
                            % (quote_value(registry), registry))
        else:
            if not slash and _looks_like_bare_host(name, tag):
                host = name + (":" + tag if tag else "")
                _fail(text, "%s looks like a registry host:port without a repository; add the repository path, "
                            "e.g. '%s/team/app:tag'" % (quote_value(host), host))
            registry, repository = DOCKER_HUB, name
        if tag is None and digest is None and default_tag is not None:
            tag = default_tag
        parts = _normalize(registry, repository, tag, digest, text)
        reference = cls.__new__(cls)
        for slot, value in zip(cls.__slots__, parts):
            object.__setattr__(reference, slot, value)
        return reference

    # -- value object ----------------------------------------------------

    def __setattr__(self, name, value):
        raise AttributeError("ImageReference is immutable")

    def __delattr__(self, name):
        raise AttributeError("ImageReference is immutable")

    def _key(self):
        return (self._registry, self._repository, self._tag, self._digest)

    def __eq__(self, other):
        if not isinstance(other, ImageReference):
            return NotImplemented
        return self._key() == other._key()

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "ImageReference(%r)" % str(self)

    def __str__(self):
        text = self.name
        if self._tag is not None:
            text += ":" + self._tag
        if self._digest is not None:
            text += "@" + self._digest
        return text

    def __reduce__(self):
        return (ImageReference, self._key())

    # -- parts -----------------------------------------------------------

    @property
    def registry(self):
        """Normalized registry: 'docker.io', 'ghcr.io', '127.0.0.1:5000', '[::1]:5000'."""
        return self._registry

    @property
    def repository(self):
        """Repository path inside the registry: 'library/nginx'."""
        return self._repository

    @property
    def tag(self):
        """The tag, or None (digest-only references)."""
        return self._tag

    @property
    def digest(self):
        """The digest, or None."""
        return self._digest

    @property
    def name(self):
        """registry/repository: 'docker.io/library/nginx'."""
        return "%s/%s" % (self._registry, self._repository)

    @property
    def ref(self):
        """What goes in /v2/<repository>/manifests/<ref>: the digest if set, else the tag."""
        return self._digest if self._digest is not None else self._tag

    @property
    def api_host(self):
        """host[:port] to send API requests to ('registry-1.docker.io' for Docker Hub)."""
        return DOCKER_HUB_API_HOST if self._registry == DOCKER_HUB else self._registry

    @property
    def is_loopback(self):
        """True for localhost, 127.0.0.0/8 and ::1 registries (with or without a port)."""
        return is_loopback_host(_split_host_port(self._registry)[0])

    # -- derived references ---------------------------------------------

    def with_tag(self, tag):
        """A reference to ``tag`` in the same repository (tag only: the digest is dropped)."""
        return ImageReference(self._registry, self._repository, tag, None)
