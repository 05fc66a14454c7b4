# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One exception tree for the registry client and the cache.

Every error carries a message written for the person running the playbook:
it names the thing that went wrong (a reference, a registry, a path) and,
where we know it, what to do about it.  Messages never contain credentials.
The Ansible adapter (_module.py) turns any ImagePusherError into fail_json.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Longest repr() of a user-supplied value that a message quotes whole.
QUOTE_LIMIT = 100


def quote_value(value, limit=QUOTE_LIMIT):
    """repr() of a user-supplied or untrusted value, truncated so huge input never floods a message."""
    text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "...(%d characters)" % len(text)
    return text


class ImagePusherError(Exception):
    """Base of every error this collection raises on purpose."""

    def __init__(self, message, **details):
        super(ImagePusherError, self).__init__(message)
        self.message = message
        # Extra, non-secret facts returned next to msg (status, registry, digest...).
        self.details = details

    def __str__(self):
        return self.message


class InvalidOptionError(ImagePusherError):
    """Module options that cannot be used together (found where Ansible's own option checks cannot look)."""


class InvalidReferenceError(ImagePusherError):
    """An image reference that cannot be parsed or is not allowed."""


class InvalidDigestError(ImagePusherError):
    """A digest string that is not strictly `algorithm:hex` of a known algorithm."""


class DigestMismatchError(ImagePusherError):
    """Bytes whose digest or size differs from the one they were announced with."""


class ManifestError(ImagePusherError):
    """A manifest or index that is malformed, too large or not valid for its type."""


class UnsupportedManifestError(ManifestError):
    """A manifest of a type we do not handle (Docker schema 1, unknown media types)."""


class PlatformNotFoundError(ManifestError):
    """A requested platform is not in the image index."""


class TransportError(ImagePusherError):
    """The registry could not be reached or did not answer (DNS, TCP, TLS, timeout)."""


class TLSError(TransportError):
    """The registry's certificate could not be verified."""


class RegistryError(ImagePusherError):
    """The registry answered with an error status."""

    def __init__(self, message, status=None, code=None, **details):
        super(RegistryError, self).__init__(message, status=status, code=code, **details)
        self.status = status
        self.code = code


class RateLimitError(RegistryError):
    """The registry refused a request because its rate limit is used up for now."""


class NotFoundError(RegistryError):
    """Repository, tag, manifest or blob unknown to the registry."""


class AuthenticationError(RegistryError):
    """The registry (or its token service) refused the credentials."""


class AuthorizationError(RegistryError):
    """The credentials were accepted but do not grant the requested access."""


class CacheError(ImagePusherError):
    """The on-host cache cannot be used (permissions, corruption, disk full)."""


class CachePermissionError(CacheError):
    """The cache, or a file in it, may not be written (or read) by the user running the task."""


class CacheFullError(CacheError):
    """The cache's file system is out of space (or the user out of quota)."""


class CacheReadOnlyError(CacheError):
    """The cache is on a file system mounted read-only."""


class NotCachedError(CacheError):
    """The image asked for is not in the cache."""


class MissingBlobError(CacheError):
    """A blob an image needs vanished before its name was written (a concurrent prune)."""


class LockTimeoutError(CacheError):
    """Another run held a cache lock for longer than we were willing to wait."""
