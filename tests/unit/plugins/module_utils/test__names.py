# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _names
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import REF_NAME, Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    InvalidDigestError,
    InvalidReferenceError,
    ManifestError,
    NotCachedError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from tests.support import images
from tests.unit.plugins.module_utils.test__cache_admin import DOCKER, HUB, MULTI, SINGLE, four_names
MULTI_AMD64 = MULTI + "+linux-amd64"


@pytest.fixture
def cache(tmp_path):
    return four_names(tmp_path)


@pytest.fixture
def narrowed_cache(tmp_path):
    """The full index and a pull narrowed to linux/amd64, side by side, as image_pull leaves them."""
    root = tmp_path / "narrowed"
    index = images.multi_arch_index()
    images.write_oci_layout(root, {MULTI: index, MULTI_AMD64: index.images[0]})
    return Cache(str(root)).ensure()


def names(pairs):
    return [name for name, _entry in pairs]


# -- platforms and cache names -----------------------------------------------------------

@pytest.mark.parametrize("platforms, canonical", [
    (None, None),
    ([], None),
    (["linux/amd64"], ["linux/amd64"]),
    (["linux/arm64"], ["linux/arm64/v8"]),
    (["linux/arm64/v8", "linux/arm64", "linux/amd64"], ["linux/amd64", "linux/arm64/v8"]),
    (["linux/arm/v7"], ["linux/arm/v7"]),
])
def test_normalize_platforms(platforms, canonical):
    assert _names.normalize_platforms(platforms) == canonical


def test_normalize_platforms_refuses_a_malformed_one():
    with pytest.raises(ManifestError):
        _names.normalize_platforms(["linux"])


def test_cache_name_is_the_reference_plus_the_platforms_of_a_narrowed_pull():
    reference = ImageReference.parse("127.0.0.1:5000/test/multi:v1")
    assert _names.cache_name(reference, None) == MULTI
    assert _names.cache_name(reference, []) == MULTI
    assert _names.cache_name(reference, ["linux/amd64"]) == MULTI_AMD64
    assert _names.cache_name(reference, ["linux/amd64", "linux/arm64/v8"]) == MULTI + "+linux-amd64+linux-arm64-v8"


# -- reading a cache name back -------------------------------------------------------------

@pytest.mark.parametrize("name, parts", [
    (MULTI, (MULTI, "")),
    (MULTI_AMD64, (MULTI, "linux-amd64")),
    (MULTI + "+linux-amd64+linux-arm64-v8", (MULTI, "linux-amd64+linux-arm64-v8")),
    ("my build", ("my build", "")),
])
def test_split_cache_name(name, parts):
    assert _names.split_cache_name(name) == parts


def test_split_cache_name_inverts_cache_name():
    reference = ImageReference.parse("nginx:1.27")
    name = _names.cache_name(reference, ["linux/amd64", "linux/arm64/v8"])
    assert _names.split_cache_name(name) == (str(reference), "linux-amd64+linux-arm64-v8")


def test_reference_of_a_cache_name():
    assert str(_names.reference_of(MULTI_AMD64)) == MULTI
    assert str(_names.reference_of("nginx")) == HUB
    assert _names.reference_of("docker.io/library/nginx", default_tag=None).tag is None
    assert _names.reference_of("docker.io/library/nginx").tag == "latest"
    assert _names.reference_of("my build") is None
    assert _names.reference_of("Not A Reference!+linux-amd64") is None


def test_repository_of_a_cache_name():
    assert _names.repository_of(MULTI_AMD64) == "127.0.0.1:5000/test/multi"
    assert _names.repository_of("nginx") == "docker.io/library/nginx"
    assert _names.repository_of("my build") is None


@pytest.mark.parametrize("target, source, expected", [
    ("reg:5000/app:v2", MULTI, "reg:5000/app:v2"),
    ("reg:5000/app", MULTI, "reg:5000/app:v1"),
    ("reg:5000/app", MULTI_AMD64, "reg:5000/app:v1"),  # the tag is in the reference part of a narrowed name
    ("reg:5000/app", "docker.io/library/nginx", "reg:5000/app:latest"),
    ("reg:5000/app", "my build", "reg:5000/app:latest"),  # a foreign layout's free name has no tag to keep
    ("reg:5000/app@sha256:" + "a" * 64, MULTI, "reg:5000/app@sha256:" + "a" * 64),
])
def test_default_target_tag(target, source, expected):
    assert str(_names.default_target_tag(target, source)) == expected


def test_default_target_tag_refuses_a_bad_target():
    with pytest.raises(InvalidReferenceError):
        _names.default_target_tag("Not A Reference!", MULTI)


# -- index.json entries ---------------------------------------------------------------------

def test_ref_name_and_entry_name():
    named = {"digest": "sha256:" + "1" * 64, "annotations": {REF_NAME: SINGLE, "other": "x"}}
    unnamed = {"digest": "sha256:" + "2" * 64, "annotations": {"other": "x"}}
    bare = {"digest": "sha256:" + "3" * 64}
    assert _names.ref_name(named) == SINGLE
    assert _names.ref_name(unnamed) is None
    assert _names.ref_name(bare) is None
    assert _names.ref_name({"annotations": None}) is None
    assert _names.entry_name(named) == SINGLE
    assert _names.entry_name(unnamed) == "sha256:" + "2" * 64
    assert _names.entry_name(bare) == "sha256:" + "3" * 64


def test_cache_tags_of_a_repository(cache, narrowed_cache):
    entries = cache.entries() + narrowed_cache.entries() + [
        {"digest": "sha256:" + "4" * 64},  # unnamed
        {"digest": "sha256:" + "5" * 64, "annotations": {REF_NAME: "my build"}},
        {"digest": "sha256:" + "6" * 64, "annotations": {REF_NAME: "127.0.0.1:5000/test/multi:v2+linux-s390x"}},
        {"digest": "sha256:" + "7" * 64, "annotations": {REF_NAME: "127.0.0.1:5000/test/multi@sha256:" + "7" * 64}},
    ]
    assert _names.cache_tags(entries, "127.0.0.1:5000/test/multi") == ["v1", "v2"]
    assert _names.cache_tags(entries, "docker.io/library/nginx") == ["latest"]
    assert _names.cache_tags(entries, "127.0.0.1:5000/test/absent") == []


# -- resolve -------------------------------------------------------------------------------

def test_resolve_exact_normalized_and_digest(cache):
    entries = cache.entries()
    assert [n for n, _e in _names.resolve(entries, SINGLE)] == [SINGLE]
    assert [n for n, _e in _names.resolve(entries, "nginx")] == [HUB]
    assert [n for n, _e in _names.resolve(entries, "docker.io/nginx:latest")] == [HUB]
    # a digest designates every name pointing at it
    assert sorted(n for n, _e in _names.resolve(entries, images.oci_single().digest)) == sorted([SINGLE, HUB])
    assert _names.resolve(entries, "127.0.0.1:5000/test/oci-single:v2") == []
    assert _names.resolve(entries, "Not A Reference!") == []
    assert _names.resolve(entries, "sha256:" + "0" * 64) == []


def test_resolve_returns_the_entry_too(cache):
    (name, entry), = _names.resolve(cache.entries(), MULTI)
    assert name == MULTI and entry["digest"] == images.multi_arch_index().digest


def test_resolve_prefers_the_narrowed_pull_when_platforms_are_given(narrowed_cache):
    entries = narrowed_cache.entries()
    assert names(_names.resolve(entries, MULTI)) == [MULTI]
    assert names(_names.resolve(entries, MULTI, ["linux/amd64"])) == [MULTI_AMD64]
    assert names(_names.resolve(entries, "127.0.0.1:5000/test/multi:v1", ["linux/amd64"])) == [MULTI_AMD64]
    # no pull narrowed to arm64: the full image is the match
    assert names(_names.resolve(entries, MULTI, ["linux/arm64"])) == [MULTI]
    # an exact name wins over the narrowed pull when asked (a foreign layout's names are its own)
    assert names(_names.resolve(entries, MULTI, ["linux/amd64"], exact_wins=True)) == [MULTI]
    # malformed platforms name no pull: only the exact name is tried
    assert names(_names.resolve(entries, MULTI, ["linux"])) == [MULTI]


def test_resolve_a_malformed_platform_list_tries_the_exact_name_only(cache):
    assert names(_names.resolve(cache.entries(), "nginx")) == [HUB]
    assert _names.resolve(cache.entries(), "nginx", ["linux"]) == []


def test_resolve_a_digest_never_falls_back_to_a_reference():
    digest = "sha256:" + "8" * 64
    # "sha256:<hex>" also parses as the reference docker.io/library/sha256:<hex>: a digest means a digest
    entries = [{"digest": "sha256:" + "9" * 64, "annotations": {REF_NAME: "docker.io/library/sha256:" + "8" * 64}}]
    assert _names.resolve(entries, digest) == []


# -- find_source -----------------------------------------------------------------------------

def test_find_source_by_reference_name_and_digest(cache):
    assert _names.find_source(cache, SINGLE)[0] == SINGLE
    assert _names.find_source(cache, "nginx") == (HUB, cache.get_ref(HUB))
    name, entry = _names.find_source(cache, images.multi_arch_index().digest)
    assert name == MULTI and entry["digest"] == images.multi_arch_index().digest
    # a digest two names point at: the first entry of index.json
    assert _names.find_source(cache, images.oci_single().digest)[0] == names(
        _names.resolve(cache.entries(), images.oci_single().digest))[0]


def test_find_source_prefers_the_narrowed_pull(narrowed_cache):
    assert _names.find_source(narrowed_cache, MULTI)[0] == MULTI
    assert _names.find_source(narrowed_cache, MULTI, platforms=["linux/amd64"])[0] == MULTI_AMD64
    assert _names.find_source(narrowed_cache, MULTI, platforms=["linux/s390x"])[0] == MULTI


def test_find_source_in_a_foreign_layout_takes_an_exact_name_as_it_is(narrowed_cache):
    assert _names.find_source(narrowed_cache, MULTI, layout=True, platforms=["linux/amd64"])[0] == MULTI
    assert _names.find_source(narrowed_cache, MULTI_AMD64, layout=True)[0] == MULTI_AMD64


def test_find_source_a_bare_digest_of_a_stored_blob(cache):
    child = images.multi_arch_index().images[1]
    assert _names.find_source(cache, child.digest) == (child.digest, {"digest": child.digest, "mediaType": None})


def test_find_source_refuses_a_malformed_digest(cache):
    with pytest.raises(InvalidDigestError):
        _names.find_source(cache, "sha256:../../etc/passwd")


def test_find_source_the_only_image_of_a_layout(tmp_path):
    root = tmp_path / "one"
    images.write_oci_layout(root, {"my build": images.oci_single()})
    layout = Cache(str(root))
    assert _names.find_source(layout, None, layout=True) == ("my build", layout.entries()[0])
    assert _names.find_source(layout, "my build", layout=True)[0] == "my build"


def test_find_source_without_a_name_in_a_layout_of_several(cache):
    with pytest.raises(NotCachedError) as raised:
        _names.find_source(cache, None, layout=True)
    message = raised.value.message
    assert "holds 4 images; set name to one of: " in message
    assert ", ".join(sorted([SINGLE, MULTI, DOCKER, HUB])) in message


def test_find_source_not_cached(cache, tmp_path):
    with pytest.raises(NotCachedError) as raised:
        _names.find_source(cache, "127.0.0.1:5000/test/absent:v1")
    assert raised.value.message == ("image 127.0.0.1:5000/test/absent:v1 is not in the cache %s: pull it first with "
                                    "imagepusher.registry.image_pull" % cache.root)
    assert raised.value.details["name"] == "127.0.0.1:5000/test/absent:v1"
    with pytest.raises(NotCachedError) as raised:  # issue 14: the same repository and tag under its registry
        _names.find_source(cache, "test/multi:v1")
    assert raised.value.message == ("image test/multi:v1 is not in the cache %s (did you mean 127.0.0.1:5000/test/multi:v1?): "
                                    "pull it first with imagepusher.registry.image_pull" % cache.root)
    assert raised.value.details["did_you_mean"] == ["127.0.0.1:5000/test/multi:v1"]
    with pytest.raises(NotCachedError) as raised:
        _names.find_source(cache, "absent", layout=True)
    assert "is not in the OCI layout %s: the layout names: %s" % (cache.root, DOCKER) in raised.value.message
    with pytest.raises(NotCachedError) as raised:
        _names.find_source(cache, "sha256:" + "0" * 64)
    assert "is not in the cache" in raised.value.message


def test_find_source_in_an_empty_cache_and_a_missing_layout(tmp_path):
    empty = Cache(str(tmp_path / "never-created"))
    with pytest.raises(NotCachedError) as raised:
        _names.find_source(empty, "nginx")
    assert "pull it first" in raised.value.message
    with pytest.raises(NotCachedError) as raised:
        _names.find_source(empty, "nginx", layout=True)
    assert raised.value.message == "%s is not an OCI image layout (it has no index.json)" % empty.root
    with pytest.raises(NotCachedError) as raised:
        _names.find_source(Cache(str(tmp_path / "empty")).ensure(), None, layout=True)
    assert "holds 0 images; set name to one of: (none)" in raised.value.message
