# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content digests: strict validation, incremental verification, and a hashing file reader.

A digest is only ever accepted in the strict form ``sha256:<64 hex>`` or
``sha512:<128 hex>`` (lowercase hex).  validate() runs before a digest is
used in a filesystem path (``blobs/sha256/<hex>``) or in a URL, so a digest
such as ``sha256:../../etc/passwd`` can never reach either.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    DigestMismatchError,
    InvalidDigestError,
    quote_value,
)

# Supported algorithms and the length of their hex encoding.
ALGORITHMS = {"sha256": 64, "sha512": 128}

# re.fullmatch (not "$", which also matches before a trailing newline).
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")

_EXAMPLE = "'sha256:' followed by 64 lowercase hex digits"


def _explain(digest):
    """Why a string that failed the strict match is not a digest (a sentence fragment)."""
    if not digest:
        return "it is empty"
    if ":" not in digest:
        return "expected the form '<algorithm>:<hex>', e.g. %s" % _EXAMPLE
    algorithm, encoded = digest.split(":", 1)
    if algorithm not in ALGORITHMS:
        if algorithm.lower() in ALGORITHMS:
            return "the algorithm must be lowercase (%r)" % algorithm.lower()
        return "unsupported algorithm %s (supported: %s)" % (quote_value(algorithm, 40), ", ".join(sorted(ALGORITHMS)))
    if re.search(r"[^0-9a-fA-F]", encoded):
        return "the part after %r must contain only lowercase hex digits 0-9 and a-f" % (algorithm + ":")
    if encoded != encoded.lower():
        return "hex digits must be lowercase"
    return "a %s digest has exactly %d hex digits, this one has %d" % (algorithm, ALGORITHMS[algorithm], len(encoded))


def validate(digest):
    """Return ``digest`` unchanged if it is a strictly valid digest, else raise InvalidDigestError."""
    if not isinstance(digest, str):
        raise InvalidDigestError(
            "Invalid digest %s: a digest must be a string such as %s, not %s." % (quote_value(digest), _EXAMPLE, type(digest).__name__),
            digest=quote_value(digest),
        )
    if _DIGEST_RE.fullmatch(digest) is None:
        raise InvalidDigestError("Invalid digest %s: %s." % (quote_value(digest), _explain(digest)), digest=quote_value(digest))
    return digest


def split(digest):
    """Validate ``digest`` and return ``(algorithm, hex)``."""
    algorithm, encoded = validate(digest).split(":", 1)
    return algorithm, encoded


def _new_hash(algorithm):
    if algorithm not in ALGORITHMS:
        raise InvalidDigestError(
            "Unsupported digest algorithm %s (supported: %s)." % (quote_value(algorithm), ", ".join(sorted(ALGORITHMS))),
            algorithm=quote_value(algorithm),
        )
    return hashlib.new(algorithm)


def of_bytes(data, algorithm="sha256"):
    """Digest string (``algorithm:hex``) of ``data`` (bytes-like)."""
    hasher = _new_hash(algorithm)
    hasher.update(data)
    return "%s:%s" % (algorithm, hasher.hexdigest())


def _describe(digest, size):
    if size is None:
        return digest
    return "%s (%d bytes)" % (digest, size)


class DigestVerifier:
    """Hash content as it streams and compare it with the digest and size it was announced with.

    verifier = DigestVerifier(descriptor_digest, descriptor_size)
    for chunk in response:
        verifier.update(chunk)
    verifier.check("blob %s" % digest)   # raises DigestMismatchError
    """

    def __init__(self, expected_digest, expected_size=None):
        self.algorithm, self.expected_hex = split(expected_digest)
        self.expected_digest = expected_digest
        if expected_size is not None and (isinstance(expected_size, bool) or not isinstance(expected_size, int) or expected_size < 0):
            raise ValueError("expected_size must be a non-negative int or None, got %s" % quote_value(expected_size))
        self.expected_size = expected_size
        self._hash = _new_hash(self.algorithm)
        self.size = 0

    def update(self, chunk):
        """Feed the next chunk of content (bytes, bytearray or memoryview)."""
        self._hash.update(chunk)
        self.size += len(chunk)

    def copy(self):
        """An independent verifier in this one's state: a point to go on from (a relayed upload's pieces)."""
        twin = DigestVerifier(self.expected_digest, self.expected_size)
        twin._hash = self._hash.copy()
        twin.size = self.size
        return twin

    @property
    def hexdigest(self):
        """Hex digest of the bytes seen so far."""
        return self._hash.hexdigest()

    @property
    def digest(self):
        """Digest (``algorithm:hex``) of the bytes seen so far."""
        return "%s:%s" % (self.algorithm, self._hash.hexdigest())

    @property
    def matches(self):
        """True when the bytes seen so far have the expected digest and (if known) size."""
        if self.expected_size is not None and self.size != self.expected_size:
            return False
        return self._hash.hexdigest() == self.expected_hex

    def check(self, what="content"):
        """Raise DigestMismatchError unless the content matches; return the digest when it does."""
        if not self.matches:
            actual = self.digest
            raise DigestMismatchError(
                "%s: expected %s but received %s." % (
                    what, _describe(self.expected_digest, self.expected_size), _describe(actual, self.size)),
                expected_digest=self.expected_digest,
                expected_size=self.expected_size,
                actual_digest=actual,
                actual_size=self.size,
            )
        return self.expected_digest


class HashingReader:
    """A read-only file wrapper that feeds what is read through it to a DigestVerifier.

    reader = HashingReader(handle, digest, size)
    tarfile.addfile(info, reader)       # or any consumer that calls read()
    reader.verifier.check("blob %s" % digest)
    """

    def __init__(self, handle, expected_digest, expected_size=None):
        self._handle = handle
        self.verifier = DigestVerifier(expected_digest, expected_size)

    def read(self, size=-1):
        data = self._handle.read(size)
        self.verifier.update(data)
        return data

    @property
    def matches(self):
        """True when what was read so far has the expected digest and (if known) size."""
        return self.verifier.matches
