# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import hashlib
import io

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    DigestMismatchError,
    InvalidDigestError,
)

HELLO = b"hello world"
HELLO_SHA256 = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
HELLO_SHA512 = "sha512:" + hashlib.sha512(HELLO).hexdigest()
EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("digest", [
    HELLO_SHA256,
    EMPTY_SHA256,
    HELLO_SHA512,
    "sha256:" + "0" * 64,
])
def test_validate_accepts_strict_digests(digest):
    assert _digest.validate(digest) is digest


@pytest.mark.parametrize("digest, fragments", [
    ("", ["''", "empty"]),
    ("sha256", ["'sha256'", "'<algorithm>:<hex>'"]),
    ("sha256:../../etc/passwd", ["'sha256:../../etc/passwd'", "only lowercase hex digits"]),
    ("sha256:" + "a" * 62 + "/x", ["only lowercase hex digits"]),
    ("sha256:" + "A" * 64, ["must be lowercase"]),
    ("SHA256:" + "a" * 64, ["algorithm must be lowercase", "'sha256'"]),
    ("md5:" + "a" * 32, ["unsupported algorithm 'md5'", "sha256, sha512"]),
    ("sha384:" + "a" * 96, ["unsupported algorithm 'sha384'"]),
    ("sha256:" + "a" * 63, ["exactly 64 hex digits", "has 63"]),
    ("sha256:" + "a" * 65, ["exactly 64 hex digits", "has 65"]),
    ("sha512:" + "a" * 64, ["exactly 128 hex digits", "has 64"]),
    ("sha256:" + "a" * 64 + "\n", ["only lowercase hex digits"]),  # "$" would have accepted this
    (" sha256:" + "a" * 64, ["unsupported algorithm ' sha256'"]),
    ("sha256:" + "a" * 64 + "@x", ["only lowercase hex digits"]),
])
def test_validate_rejects_with_a_message_quoting_the_input(digest, fragments):
    with pytest.raises(InvalidDigestError) as info:
        _digest.validate(digest)
    message = str(info.value)
    assert message.startswith("Invalid digest ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("value, type_name", [
    (None, "NoneType"),
    (42, "int"),
    (b"sha256:" + b"a" * 64, "bytes"),
    (["sha256:" + "a" * 64], "list"),
])
def test_validate_rejects_non_strings(value, type_name):
    with pytest.raises(InvalidDigestError) as info:
        _digest.validate(value)
    assert "must be a string" in str(info.value)
    assert type_name in str(info.value)


def test_validate_truncates_huge_input():
    with pytest.raises(InvalidDigestError) as info:
        _digest.validate("sha256:" + "z" * 100000)
    assert len(str(info.value)) < 400
    assert "100009 characters" in str(info.value)


@pytest.mark.parametrize("digest, expected", [
    (HELLO_SHA256, ("sha256", HELLO_SHA256[7:])),
    (HELLO_SHA512, ("sha512", HELLO_SHA512[7:])),
])
def test_split(digest, expected):
    assert _digest.split(digest) == expected


@pytest.mark.parametrize("digest", ["sha256:../x", "sha1:" + "a" * 40, None])
def test_split_validates(digest):
    with pytest.raises(InvalidDigestError):
        _digest.split(digest)


@pytest.mark.parametrize("data, algorithm, expected", [
    (HELLO, "sha256", HELLO_SHA256),
    (b"", "sha256", EMPTY_SHA256),
    (HELLO, "sha512", HELLO_SHA512),
    (bytearray(HELLO), "sha256", HELLO_SHA256),
    (memoryview(HELLO), "sha256", HELLO_SHA256),
])
def test_of_bytes(data, algorithm, expected):
    assert _digest.of_bytes(data, algorithm) == expected


def test_of_bytes_defaults_to_sha256_and_rejects_unknown_algorithms():
    assert _digest.of_bytes(HELLO) == HELLO_SHA256
    with pytest.raises(InvalidDigestError) as info:
        _digest.of_bytes(HELLO, "md5")
    assert "'md5'" in str(info.value) and "sha256, sha512" in str(info.value)


def test_algorithms_table():
    assert _digest.ALGORITHMS == {"sha256": 64, "sha512": 128}


@pytest.mark.parametrize("chunks, expected_digest, expected_size", [
    ([HELLO], HELLO_SHA256, 11),
    ([b"hello", b" ", b"world"], HELLO_SHA256, 11),
    ([b"hel", bytearray(b"lo wo"), memoryview(b"rld")], HELLO_SHA256, None),
    ([b"hello ", b"world"], HELLO_SHA512, 11),
    ([], EMPTY_SHA256, 0),
])
def test_verifier_accepts_matching_content(chunks, expected_digest, expected_size):
    verifier = _digest.DigestVerifier(expected_digest, expected_size)
    for chunk in chunks:
        verifier.update(chunk)
    assert verifier.size == sum(len(c) for c in chunks)
    assert verifier.digest == expected_digest
    assert verifier.hexdigest == expected_digest.split(":", 1)[1]
    assert verifier.algorithm == expected_digest.split(":", 1)[0]
    assert verifier.matches
    assert verifier.check("blob") == expected_digest


@pytest.mark.parametrize("chunks, expected_size, fragments", [
    # different bytes, same size
    ([b"hello worle"], 11, ["blob x: expected %s (11 bytes) but received sha256:" % HELLO_SHA256, "(11 bytes)."]),
    # truncated
    ([b"hello"], 11, ["(11 bytes) but received sha256:", "(5 bytes)."]),
    # right bytes, wrong announced size
    ([HELLO], 12, ["expected %s (12 bytes) but received %s (11 bytes)." % (HELLO_SHA256, HELLO_SHA256)]),
    # size unknown: only the digest is compared
    ([b"other"], None, ["expected %s but received sha256:" % HELLO_SHA256, "(5 bytes)."]),
])
def test_verifier_check_reports_both_sides(chunks, expected_size, fragments):
    verifier = _digest.DigestVerifier(HELLO_SHA256, expected_size)
    for chunk in chunks:
        verifier.update(chunk)
    assert not verifier.matches
    with pytest.raises(DigestMismatchError) as info:
        verifier.check("blob x")
    for fragment in fragments:
        assert fragment in str(info.value)
    assert info.value.details["expected_digest"] == HELLO_SHA256
    assert info.value.details["actual_size"] == verifier.size


@pytest.mark.parametrize("digest, size, exception", [
    ("sha256:../../x", None, InvalidDigestError),
    ("sha256:" + "A" * 64, None, InvalidDigestError),
    (HELLO_SHA256, -1, ValueError),
    (HELLO_SHA256, "11", ValueError),
    (HELLO_SHA256, True, ValueError),
])
def test_verifier_rejects_bad_expectations(digest, size, exception):
    with pytest.raises(exception):
        _digest.DigestVerifier(digest, size)


# -- HashingReader ----------------------------------------------------------------------

def _read_all(reader, size):
    chunks = []
    while True:
        chunk = reader.read(size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.mark.parametrize("digest", [HELLO_SHA256, HELLO_SHA512])
def test_hashing_reader_passes_bytes_through_and_hashes_them(digest):
    reader = _digest.HashingReader(io.BytesIO(HELLO), digest, len(HELLO))
    assert _read_all(reader, 3) == HELLO
    assert reader.matches
    assert reader.verifier.digest == digest
    assert reader.verifier.size == len(HELLO)
    assert reader.verifier.check("blob") == digest


def test_hashing_reader_read_all_at_once():
    reader = _digest.HashingReader(io.BytesIO(HELLO), HELLO_SHA256)
    assert reader.read() == HELLO
    assert reader.read() == b""
    assert reader.matches


def test_hashing_reader_reports_other_bytes():
    reader = _digest.HashingReader(io.BytesIO(b"hello w0rld"), HELLO_SHA256, len(HELLO))
    _read_all(reader, 4)
    assert not reader.matches
    with pytest.raises(DigestMismatchError):
        reader.verifier.check("blob")


def test_hashing_reader_reports_a_short_read_when_the_size_is_known():
    reader = _digest.HashingReader(io.BytesIO(HELLO), HELLO_SHA256, len(HELLO) + 1)
    _read_all(reader, 64)
    assert not reader.matches
    assert reader.verifier.digest == HELLO_SHA256  # the bytes hash right: only the size is off


def test_hashing_reader_refuses_an_invalid_digest():
    with pytest.raises(InvalidDigestError):
        _digest.HashingReader(io.BytesIO(HELLO), "sha256:../../etc/passwd")
