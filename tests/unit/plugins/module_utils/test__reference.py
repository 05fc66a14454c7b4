# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import copy
import pickle

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import InvalidReferenceError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import (
    DOCKER_HUB,
    DOCKER_HUB_ALIASES,
    DOCKER_HUB_AUTH_FILE_HOSTS,
    ImageReference,
    repository_scope,
)

D256 = "sha256:" + "ab" * 32
D512 = "sha512:" + "cd" * 64


@pytest.mark.parametrize("text, registry, repository, tag, digest, normalized", [
    ("nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io", "library/nginx", "1.27", None, "docker.io/library/nginx:1.27"),
    ("library/nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    ("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", None, "docker.io/bitnami/redis:7.2"),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    ("index.docker.io/nginx:1", "docker.io", "library/nginx", "1", None, "docker.io/library/nginx:1"),
    ("registry-1.docker.io/library/nginx", "docker.io", "library/nginx", "latest", None, "docker.io/library/nginx:latest"),
    ("Docker.IO/team/app", "docker.io", "team/app", "latest", None, "docker.io/team/app:latest"),
    ("ghcr.io/org/app:v1", "ghcr.io", "org/app", "v1", None, "ghcr.io/org/app:v1"),
    ("Registry.Example.COM/a/b/c", "registry.example.com", "a/b/c", "latest", None, "registry.example.com/a/b/c:latest"),
    ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000", "team/app", "v1", None, "127.0.0.1:5000/team/app:v1"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
    ("localhost:5000/app", "localhost:5000", "app", "latest", None, "localhost:5000/app:latest"),
    ("[::1]:5000/app:t", "[::1]:5000", "app", "t", None, "[::1]:5000/app:t"),
    ("[2001:db8::1]/app", "[2001:db8::1]", "app", "latest", None, "[2001:db8::1]/app:latest"),
    ("myhost:5000/app", "myhost:5000", "app", "latest", None, "myhost:5000/app:latest"),
    ("h:5000/a/b@" + D256, "h:5000", "a/b", None, D256, "h:5000/a/b@" + D256),
    ("h/a:t@" + D256, "docker.io", "h/a", "t", D256, "docker.io/h/a:t@" + D256),
    ("h.io/a:t@" + D256, "h.io", "a", "t", D256, "h.io/a:t@" + D256),
    ("nginx@" + D512, "docker.io", "library/nginx", None, D512, "docker.io/library/nginx@" + D512),
    ("a-b.example/f_g:TAG_x.y-z", "a-b.example", "f_g", "TAG_x.y-z", None, "a-b.example/f_g:TAG_x.y-z"),
    ("foo/a.b-c__d---e", "docker.io", "foo/a.b-c__d---e", "latest", None, "docker.io/foo/a.b-c__d---e:latest"),
    ("nginx:_underscore", "docker.io", "library/nginx", "_underscore", None, "docker.io/library/nginx:_underscore"),
    ("nginx:" + "t" * 128, "docker.io", "library/nginx", "t" * 128, None, "docker.io/library/nginx:" + "t" * 128),
])
def test_parse_and_normalize(text, registry, repository, tag, digest, normalized):
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert str(ref) == normalized
    assert ref.name == "%s/%s" % (registry, repository)
    # The normalized form parses back to the same value.
    assert ImageReference.parse(str(ref)) == ref


@pytest.mark.parametrize("text, default_tag, tag", [
    ("nginx", "latest", "latest"),
    ("nginx", "stable", "stable"),
    ("nginx", None, None),
    ("nginx:1", "stable", "1"),
    ("nginx@" + D256, "stable", None),
])
def test_default_tag_only_without_tag_or_digest(text, default_tag, tag):
    assert ImageReference.parse(text, default_tag=default_tag).tag == tag


@pytest.mark.parametrize("text, fragments", [
    ("", ["''", "empty"]),
    ("Nginx", ["'Nginx'", "repository names must be lowercase"]),
    ("ghcr.io/Org/app", ["'ghcr.io/Org/app'", "repository names must be lowercase", "'Org'"]),
    ("MyHost/app", ["repository names must be lowercase"]),
    ("nginx:", ["the tag after ':' is empty"]),
    ("nginx:.hidden", ["tag '.hidden' is not valid", "must not start with '.' or '-'"]),
    ("nginx:-x", ["tag '-x' is not valid"]),
    ("nginx:" + "t" * 129, ["is not valid", "1 to 128"]),
    ("nginx:a+b", ["tag 'a+b' is not valid"]),
    ("nginx@", ["the digest after '@' is empty"]),
    ("nginx@sha256:../../etc", ["'nginx@sha256:../../etc'", "invalid digest 'sha256:../../etc'", "hex digits"]),
    ("nginx@sha256:" + "A" * 64, ["must be lowercase"]),
    ("nginx@md5:" + "a" * 32, ["unsupported algorithm 'md5'"]),
    ("sha256:" + "a" * 64, ["a digest alone is not an image reference"]),
    (" nginx", ["whitespace"]),
    ("nginx\n", ["whitespace"]),
    ("ngi nx:1", ["whitespace"]),
    ("https://ghcr.io/org/app", ["drop the 'https://' prefix"]),
    ("docker://nginx", ["drop the 'docker://' prefix"]),
    ("localhost:5000", ["'localhost:5000' looks like a registry host:port without a repository", "'localhost:5000/team/app:tag'"]),
    ("127.0.0.1:5000", ["host:port without a repository"]),
    ("registry.example.com:5000", ["host:port without a repository"]),
    ("[::1]:5000", ["host:port without a repository"]),
    ("localhost", ["without a repository"]),
    ("ghcr.io/", ["'ghcr.io' is a registry without a repository"]),
    ("a//b", ["empty component"]),
    ("/nginx", ["empty component"]),
    ("team/app/", ["empty component"]),
    (":tag", ["the repository name is empty"]),
    ("a__-b", ["path component 'a__-b' is not allowed"]),
    ("foo/-bar", ["path component '-bar' is not allowed"]),
    ("foo/bar_", ["path component 'bar_' is not allowed"]),
    ("foo/b@r", ["digest"]),
    ("[zz]:5000/app", ["'[zz]:5000' is not a valid registry host"]),
    ("[1:2:3]:5000/app", ["'1:2:3' is not a valid IPv6 address"]),
    ("-bad.host/app", ["'-bad.host' is not a valid registry host"]),
    ("under_score.example/app", ["'under_score.example' is not a valid registry host"]),
    ("host:0/app", ["port 0 of the registry is out of range"]),
    ("host:65536/app", ["port 65536"]),
    ("ghcr.io/" + "a" * 250, ["the name (registry/repository) is 258 characters long, more than the 255 allowed"]),
    ("a" * 1000, ["it is 1000 characters long", "...(1002 characters)"]),
])
def test_parse_rejects_with_helpful_message(text, fragments):
    with pytest.raises(InvalidReferenceError) as info:
        ImageReference.parse(text)
    message = str(info.value)
    assert message.startswith("Invalid image reference ")
    for fragment in fragments:
        assert fragment in message
    assert len(message) < 600


@pytest.mark.parametrize("value", [None, 5, b"nginx", ["nginx"]])
def test_parse_rejects_non_strings(value):
    with pytest.raises(InvalidReferenceError) as info:
        ImageReference.parse(value)
    assert "must be a string" in str(info.value)


@pytest.mark.parametrize("text", [
    "a" * 60 + "!",
    "a" + "-a" * 120 + "A",
    ("a" * 60 + ".") * 4 + "!/x",
])
def test_failing_matches_are_fast(text):
    # Regression guard: an ambiguous separator pattern made failing matches exponential.
    with pytest.raises(InvalidReferenceError):
        ImageReference.parse(text)


@pytest.mark.parametrize("text, ref, api_host, loopback", [
    ("nginx", "latest", "registry-1.docker.io", False),
    ("nginx@" + D256, D256, "registry-1.docker.io", False),
    ("nginx:1@" + D256, D256, "registry-1.docker.io", False),
    ("ghcr.io/a/b:v2", "v2", "ghcr.io", False),
    ("localhost/a", "latest", "localhost", True),
    ("localhost:5000/a", "latest", "localhost:5000", True),
    ("127.0.0.1/a", "latest", "127.0.0.1", True),
    ("127.1.2.3:5000/a", "latest", "127.1.2.3:5000", True),
    ("[::1]/a", "latest", "[::1]", True),
    ("[::1]:5000/a", "latest", "[::1]:5000", True),
    ("10.0.0.1:5000/a", "latest", "10.0.0.1:5000", False),
    ("localhost.example.com/a", "latest", "localhost.example.com", False),
    ("[2001:db8::1]:5000/a", "latest", "[2001:db8::1]:5000", False),
])
def test_ref_api_host_and_loopback(text, ref, api_host, loopback):
    parsed = ImageReference.parse(text)
    assert parsed.ref == ref
    assert parsed.api_host == api_host
    assert parsed.is_loopback is loopback


@pytest.mark.parametrize("actions, scope", [
    ((), "repository:library/nginx:pull"),
    (("pull",), "repository:library/nginx:pull"),
    (("pull", "push"), "repository:library/nginx:pull,push"),
    (("delete",), "repository:library/nginx:delete"),
])
def test_scope(actions, scope):
    assert repository_scope(ImageReference.parse("nginx:1").repository, *actions) == scope


@pytest.mark.parametrize("action", ["admin", "pull,push", ""])
def test_scope_rejects_unknown_actions(action):
    with pytest.raises(ValueError):
        repository_scope(ImageReference.parse("nginx").repository, action)


def test_with_tag_returns_a_new_reference():
    pinned = ImageReference.parse("ghcr.io/org/app:v1@" + D256)
    retagged = pinned.with_tag("v2")
    assert str(retagged) == "ghcr.io/org/app:v2"
    assert retagged.digest is None
    assert str(pinned) == "ghcr.io/org/app:v1@" + D256  # unchanged
    digest_only = ImageReference.parse("ghcr.io/org/app@" + D256)
    assert str(digest_only.with_tag("v3")) == "ghcr.io/org/app:v3"


@pytest.mark.parametrize("method, value, fragment", [
    ("with_tag", "bad tag", "whitespace"),
    ("with_tag", ".x", "tag '.x' is not valid"),
    ("with_tag", "", "the tag after ':' is empty"),
])
def test_with_tag_validates(method, value, fragment):
    base = ImageReference.parse("ghcr.io/org/app:v1")
    with pytest.raises(InvalidReferenceError) as info:
        getattr(base, method)(value)
    if fragment != "whitespace":
        assert fragment in str(info.value)


@pytest.mark.parametrize("args, expected", [
    (("docker.io", "nginx"), "docker.io/library/nginx"),
    (("index.docker.io", "nginx", "1"), "docker.io/library/nginx:1"),
    (("LOCALHOST:5000", "a/b", None, D256), "localhost:5000/a/b@" + D256),
])
def test_constructor_normalizes(args, expected):
    assert str(ImageReference(*args)) == expected


@pytest.mark.parametrize("args, fragment", [
    (("ghcr.io", "Org/app"), "repository names must be lowercase"),
    (("ghcr.io", ""), "the repository name is empty"),
    (("", "app"), "the registry host is empty"),
    (("ghcr.io", "app", "bad tag"), "is not valid"),
    ((None, "app"), "the registry must be a string"),
])
def test_constructor_validates(args, fragment):
    with pytest.raises(InvalidReferenceError) as info:
        ImageReference(*args)
    assert fragment in str(info.value)


def test_value_object_semantics():
    a = ImageReference.parse("nginx")
    b = ImageReference.parse("docker.io/library/nginx:latest")
    c = ImageReference.parse("nginx:1")
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert a != "docker.io/library/nginx:latest"
    assert len({a, b, c}) == 2
    assert repr(a) == "ImageReference('docker.io/library/nginx:latest')"
    with pytest.raises(AttributeError):
        a.tag = "x"
    with pytest.raises(AttributeError):
        a._tag = "x"
    assert copy.deepcopy(a) == a
    assert pickle.loads(pickle.dumps(c)) == c


def test_tag_and_digest_both_kept():
    ref = ImageReference.parse("nginx:1.27@" + D256)
    assert (ref.tag, ref.digest, ref.ref) == ("1.27", D256, D256)
    assert str(ref) == "docker.io/library/nginx:1.27@" + D256


def test_docker_hub_web_host_is_an_auth_file_key_not_a_reference_alias():
    # Docker does not rewrite registry.hub.docker.com in a reference; only auth files use it for the Hub.
    parsed = ImageReference.parse("registry.hub.docker.com/nginx:1")
    assert (parsed.registry, parsed.repository) == ("registry.hub.docker.com", "nginx")
    assert "registry.hub.docker.com" in DOCKER_HUB_AUTH_FILE_HOSTS
    assert DOCKER_HUB_AUTH_FILE_HOSTS - DOCKER_HUB_ALIASES == frozenset(["registry.hub.docker.com"])
    for alias in DOCKER_HUB_ALIASES:
        assert ImageReference.parse(alias + "/nginx:1").registry == DOCKER_HUB
