# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import inspect

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _errors
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    AuthenticationError,
    AuthorizationError,
    CacheError,
    DigestMismatchError,
    ImagePusherError,
    InvalidDigestError,
    InvalidOptionError,
    InvalidReferenceError,
    QUOTE_LIMIT,
    RateLimitError,
    LockTimeoutError,
    ManifestError,
    MissingBlobError,
    NotCachedError,
    NotFoundError,
    PlatformNotFoundError,
    RegistryError,
    TLSError,
    TransportError,
    UnsupportedManifestError,
    quote_value,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference

ALL = [cls for _name, cls in inspect.getmembers(_errors, inspect.isclass) if issubclass(cls, ImagePusherError)]
REGISTRY = [RegistryError, NotFoundError, AuthenticationError, AuthorizationError, RateLimitError]


def test_every_class_of_the_module_is_in_the_tree():
    assert len(ALL) == 22
    assert len(ALL) == 22
    defined_here = [cls for _name, cls in inspect.getmembers(_errors, inspect.isclass) if cls.__module__ == _errors.__name__]
    assert set(ALL) == set(defined_here)


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_every_error_carries_its_message_and_details(cls):
    error = cls("registry.example.com refused it", registry="registry.example.com", digest="sha256:ab")
    assert isinstance(error, Exception) and isinstance(error, ImagePusherError)
    assert error.message == "registry.example.com refused it"
    assert str(error) == "registry.example.com refused it"
    assert error.args == ("registry.example.com refused it",)
    assert error.details["registry"] == "registry.example.com" and error.details["digest"] == "sha256:ab"
    with pytest.raises(ImagePusherError) as raised:  # what _module.run catches
        raise error
    assert raised.value is error


@pytest.mark.parametrize("cls", [c for c in ALL if c not in REGISTRY], ids=lambda cls: cls.__name__)
def test_details_are_only_what_was_given(cls):
    assert cls("m").details == {}
    assert cls("m", path="/c").details == {"path": "/c"}


@pytest.mark.parametrize("cls", REGISTRY, ids=lambda cls: cls.__name__)
def test_registry_errors_carry_status_and_code(cls):
    error = cls("denied", status=401, code="UNAUTHORIZED", registry="r")
    assert (error.status, error.code) == (401, "UNAUTHORIZED")
    assert error.details == {"status": 401, "code": "UNAUTHORIZED", "registry": "r"}
    bare = cls("no answer")
    assert (bare.status, bare.code) == (None, None)
    assert bare.details == {"status": None, "code": None}  # _module.run leaves the None ones out


@pytest.mark.parametrize("cls", REGISTRY, ids=lambda cls: cls.__name__)
def test_registry_errors_can_be_rebuilt_from_their_details(cls):
    """Callers re-raise with a prefixed message as type(exc)(message, **exc.details)."""
    error = cls("denied", status=403, code="DENIED", registry="r")
    again = type(error)("images[0]: " + error.message, **error.details)
    assert again.__class__ is cls and again.message == "images[0]: denied"
    assert (again.status, again.code, again.details) == (403, "DENIED", error.details)


@pytest.mark.parametrize("cls, parent", [
    (InvalidOptionError, ImagePusherError),
    (InvalidReferenceError, ImagePusherError),
    (InvalidDigestError, ImagePusherError),
    (DigestMismatchError, ImagePusherError),
    (ManifestError, ImagePusherError),
    (UnsupportedManifestError, ManifestError),
    (PlatformNotFoundError, ManifestError),
    (TransportError, ImagePusherError),
    (TLSError, TransportError),
    (RegistryError, ImagePusherError),
    (NotFoundError, RegistryError),
    (AuthenticationError, RegistryError),
    (AuthorizationError, RegistryError),
    (RateLimitError, RegistryError),
    (CacheError, ImagePusherError),
    (NotCachedError, CacheError),
    (MissingBlobError, CacheError),
    (LockTimeoutError, CacheError),
])
def test_hierarchy(cls, parent):
    assert cls.__bases__ == (parent,)


def test_families_callers_tell_apart_do_not_overlap():
    # A retry decision catches TransportError; a 404 handler NotFoundError; a cache problem CacheError.
    families = [TransportError, RegistryError, CacheError, ManifestError, InvalidReferenceError, InvalidDigestError,
                DigestMismatchError, InvalidOptionError]
    for cls in ALL:
        assert len([f for f in families if issubclass(cls, f)]) <= 1, cls
    assert not issubclass(NotFoundError, TransportError)
    assert not issubclass(DigestMismatchError, CacheError)
    assert not issubclass(InvalidDigestError, InvalidReferenceError)


@pytest.mark.parametrize("value, quoted", [
    ("nginx", "'nginx'"),
    (42, "42"),
    (None, "None"),
    ("", "''"),
    (b"\x00a", "b'\\x00a'"),
    ("it's", '"it\'s"'),
])
def test_quote_value_is_repr(value, quoted):
    assert quote_value(value) == quoted


def test_quote_value_truncates_long_input_and_says_how_long_it_was():
    text = "a" * 500
    quoted = quote_value(text)
    assert quoted == "'" + "a" * (QUOTE_LIMIT - 1) + "...(502 characters)"
    assert quote_value(text, 10) == "'aaaaaaaaa...(502 characters)"


def test_quote_value_keeps_input_at_the_limit_whole():
    text = "b" * (QUOTE_LIMIT - 2)  # repr adds the two quotes: exactly at the limit
    assert quote_value(text) == repr(text)


def test_messages_quote_through_the_one_helper():
    long_name = "Bad" * 200
    with pytest.raises(InvalidReferenceError) as info:
        ImageReference.parse(long_name)
    assert quote_value(long_name) in info.value.message
    assert info.value.details["reference"] == quote_value(long_name)


def test_the_typed_cache_os_errors_are_cache_errors():
    for cls in (_errors.CachePermissionError, _errors.CacheFullError, _errors.CacheReadOnlyError):
        assert issubclass(cls, CacheError) and not issubclass(cls, NotCachedError)
