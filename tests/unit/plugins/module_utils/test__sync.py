# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_sync: sync entries settled up front, expanded into one image per selected tag, results labelled by entry."""

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    InvalidOptionError, InvalidReferenceError, NotFoundError, RegistryError)
from ansible_collections.imagepusher.registry.plugins.module_utils._mirror_entries import settle_entries
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils import _sync

TAGS = {"team/app": ["1.0", "1.2.3", "v1.10.0", "1.11.0-rc1", "2.0", "latest", "foo"], "team/other": ["x", "y"]}


def params(*images):
    defaults = dict(platforms=None, source_username=None, source_password=None, source_plain_http=False,
                    username=None, password=None, plain_http=False, referrers=False)
    return dict(defaults, images=[dict(dict.fromkeys(("tags", "platforms")), **image) for image in images])


def listing(calls=None):
    def list_tags(source, entry):
        if calls is not None:
            calls.append(str(source))
        return TAGS[source.repository]
    return list_tags


def test_a_sync_entry_settles_to_repositories():
    settled = settle_entries(params({"source": "src.test/team/app", "target": "reg.test/mirror/app",
                                     "tags": {"semver": "^1"}}))
    source, target, entry = settled[0]
    assert (str(source), str(target)) == ("src.test/team/app", "reg.test/mirror/app")
    assert source.tag is None and target.tag is None and entry["tags"] == {"semver": "^1"}


@pytest.mark.parametrize("image, error, message", [
    ({"source": "src.test/team/app:v1", "target": "reg.test/m/app"}, InvalidOptionError,
     r"images\[1\]\.source: with tags, source must be a repository without a tag or digest"),
    ({"source": "src.test/team/app@sha256:" + "a" * 64, "target": "reg.test/m/app"}, InvalidOptionError,
     r"images\[1\]\.source: with tags"),
    ({"source": "src.test/team/app", "target": "reg.test/m/app:v1"}, InvalidOptionError,
     r"images\[1\]\.target: with tags, target must be a repository"),
    ({"source": "src.test/Team/app", "target": "reg.test/m/app"}, InvalidReferenceError, r"images\[1\]\.source: Invalid"),
    ({"source": "src.test/team/app", "target": "reg.test/m/app", "tags": {"latest": 0}}, InvalidOptionError,
     r"images\[1\]\.tags\.latest: must be a whole number"),
    ({"source": "src.test/team/app", "target": "reg.test/m/app", "tags": {"include": ["("]}}, InvalidOptionError,
     r"images\[1\]\.tags\.include\[0\]"),
])
def test_bad_sync_entries_fail_before_anything_moves(image, error, message):
    image = dict({"tags": {}}, **image)
    with pytest.raises(error, match=message):
        settle_entries(params({"source": "src.test/a:v1", "target": "reg.test/a"}, image))


def test_expand_replaces_each_sync_entry_by_its_tags_in_order():
    calls = []
    settled = settle_entries(params(
        {"source": "src.test/plain:v1", "target": "reg.test/plain"},
        {"source": "src.test/team/app", "target": "reg.test/mirror/app", "tags": {"semver": ">=1.2 <2"}},
        {"source": "src.test/team/other", "target": "reg.test/mirror/other", "tags": {"include": ["z"]}},
        {"source": "src.test/team/app", "target": "reg.test/mirror/newest", "tags": {"latest": 1}}))
    images, numbers, empty = _sync.expand(settled, listing(calls))
    assert [(str(s), str(t)) for s, t, _e in images] == [
        ("src.test/plain:v1", "reg.test/plain:v1"),
        ("src.test/team/app:v1.10.0", "reg.test/mirror/app:v1.10.0"),
        ("src.test/team/app:1.2.3", "reg.test/mirror/app:1.2.3"),
        ("src.test/team/app:2.0", "reg.test/mirror/newest:2.0")]
    assert numbers == [0, 1, 1, 3]
    assert empty == [(2, "images[2]: the tag rules select none of the 2 tags of src.test/team/other; nothing mirrored "
                         "for this entry")]
    assert calls == ["src.test/team/app", "src.test/team/other", "src.test/team/app"]  # plain entries list nothing
    assert images[1][2] is settled[1][2]  # the entry's settings (credentials, platforms) go with each tag


def test_a_tag_listing_failure_names_the_entry():
    def list_tags(source, entry):
        raise NotFoundError("repository team/gone not found")
    settled = settle_entries(params({"source": "src.test/a:v1", "target": "reg.test/a"},
                                    {"source": "src.test/team/gone", "target": "reg.test/gone", "tags": {}}))
    with pytest.raises(NotFoundError, match=r"^images\[1\] \(src.test/team/gone\): repository team/gone not found"):
        _sync.expand(settled, list_tags)


def fake_mirror(fail_at=None):
    def mirror(images):
        results = []
        for number, (source, target, _entry) in enumerate(images):
            if number == fail_at:
                raise RegistryError("images[%d] (%s -> %s): boom" % (number, source, target), images=results)
            results.append({"source": str(source), "target": str(target), "changed": True})
        return {"changed": bool(results), "images": results}
    return mirror


def test_mirror_expanded_labels_each_result_with_its_entry_and_warns_of_empty_entries():
    warnings = []
    settled = settle_entries(params(
        {"source": "src.test/team/other", "target": "reg.test/other", "tags": {"semver": "*"}},
        {"source": "src.test/team/app", "target": "reg.test/app", "tags": {"include": ["2.0", "foo"]}},
        {"source": "src.test/plain:v1", "target": "reg.test/plain"}))
    result = _sync.mirror_expanded(settled, listing(), fake_mirror(), warnings.append)
    assert [(r["target"], r["entry"]) for r in result["images"]] == [
        ("reg.test/app:2.0", 1), ("reg.test/app:foo", 1), ("reg.test/plain:v1", 2)]
    assert warnings == ["images[0]: the tag rules select none of the 2 tags of src.test/team/other; nothing mirrored "
                        "for this entry"]


def test_a_failure_names_the_users_entry_not_the_expanded_index():
    settled = settle_entries(params(
        {"source": "src.test/team/app", "target": "reg.test/app", "tags": {"semver": "^1"}},
        {"source": "src.test/plain:v1", "target": "reg.test/plain"}))
    with pytest.raises(RegistryError) as caught:
        _sync.mirror_expanded(settled, listing(), fake_mirror(fail_at=3), lambda m: None)
    assert caught.value.message == "images[1] (src.test/plain:v1 -> reg.test/plain:v1): boom"
    assert [(r["target"], r["entry"]) for r in caught.value.details["images"]] == [
        ("reg.test/app:v1.10.0", 0), ("reg.test/app:1.2.3", 0), ("reg.test/app:1.0", 0)]
    with pytest.raises(RegistryError, match=r"^images\[0\] \(src.test/team/app:1.2.3 -> reg.test/app:1.2.3\): boom"):
        _sync.mirror_expanded(settled, listing(), fake_mirror(fail_at=1), lambda m: None)


def test_a_message_without_an_entry_prefix_is_left_alone():
    assert _sync._renumbered("cache is full", [0]) == "cache is full"
    assert _sync._renumbered("images[7] x", [0]) == "images[7] x"


def test_selected_tags_are_real_references():
    settled = [(ImageReference.parse("src.test/team/app", default_tag=None),
                ImageReference.parse("reg.test/app", default_tag=None), {"tags": {"latest": 1}})]
    images, _numbers, _empty = _sync.expand(settled, listing())
    assert images[0][0] == ImageReference.parse("src.test/team/app:2.0")
