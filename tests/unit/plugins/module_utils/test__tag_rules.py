# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tag_rules: include/exclude/semver/latest/prerelease, validation naming the option, a stable order."""

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import InvalidOptionError
from ansible_collections.imagepusher.registry.plugins.module_utils._tag_rules import TagRules

TAGS = ["1.0", "1.2.3", "v1.10.0", "1.11.0-rc1", "2.0", "latest", "foo"]


def select(rules, tags=None):
    return TagRules.from_option(rules, "images[0].tags").select(TAGS if tags is None else tags)


@pytest.mark.parametrize("rules, expected", [
    ({}, ["2.0", "1.11.0-rc1", "v1.10.0", "1.2.3", "1.0", "foo", "latest"]),
    ({"include": ["v.*"]}, ["v1.10.0"]),
    ({"include": ["1"]}, []),  # the whole tag must match
    ({"include": ["1.*", "foo"]}, ["1.11.0-rc1", "1.2.3", "1.0", "foo"]),
    ({"exclude": ["latest", ".*-rc.*"]}, ["2.0", "v1.10.0", "1.2.3", "1.0", "foo"]),
    ({"include": ["[0-9].*"], "exclude": ["2\\..*"]}, ["1.11.0-rc1", "1.2.3", "1.0"]),
    ({"semver": ">=1.2 <2"}, ["v1.10.0", "1.2.3"]),
    ({"semver": "~1.2"}, ["1.2.3"]),
    ({"semver": "^1"}, ["v1.10.0", "1.2.3", "1.0"]),
    ({"semver": "^1", "prerelease": True}, ["1.11.0-rc1", "v1.10.0", "1.2.3", "1.0"]),
    ({"semver": ">=1.11.0-rc1"}, ["2.0", "1.11.0-rc1"]),
    ({"semver": ">=1.11.0-rc1", "prerelease": False}, ["2.0"]),
    ({"semver": "^2"}, ["2.0"]),
    ({"latest": 2}, ["2.0", "v1.10.0"]),
    ({"latest": 2, "prerelease": True}, ["2.0", "1.11.0-rc1"]),
    ({"latest": 100}, ["2.0", "v1.10.0", "1.2.3", "1.0"]),  # no foo, no latest: they are not versions
    ({"semver": "<2", "latest": 2}, ["v1.10.0", "1.2.3"]),
    ({"include": ["1\\..*"], "latest": 1}, ["1.2.3"]),  # v1.10.0 is not included, 1.11.0-rc1 is a pre-release
    ({"prerelease": False}, ["2.0", "v1.10.0", "1.2.3", "1.0", "foo", "latest"]),
    ({"prerelease": True}, ["2.0", "1.11.0-rc1", "v1.10.0", "1.2.3", "1.0", "foo", "latest"]),
])
def test_rules_select(rules, expected):
    assert select(rules) == expected


def test_semver_order_not_text_order():
    assert select({"latest": 1}, ["v1.2.0", "v1.10.0", "v1.9.9"]) == ["v1.10.0"]
    assert select({"semver": "1"}, ["v1.2.0", "v1.10.0", "v1.9.9"]) == ["v1.10.0", "v1.9.9", "v1.2.0"]


def test_equal_versions_are_kept_each_ordered_by_name_and_duplicates_once():
    tags = ["v1.2.0", "1.2", "1.2.0", "1.2", "1.1", "zz", "aa"]
    assert select({}, tags) == ["1.2", "1.2.0", "v1.2.0", "1.1", "aa", "zz"]
    assert select({"latest": 2}, tags) == ["1.2", "1.2.0"]


def test_order_does_not_depend_on_listing_order():
    assert select({}, list(reversed(TAGS))) == select({}, TAGS)


@pytest.mark.parametrize("rules, message", [
    ({"bogus": 1}, r"images\[0\]\.tags: unknown key bogus"),
    ({"include": ["ok", "x("]}, r"images\[0\]\.tags\.include\[1\]: 'x\(' is not a valid regular expression"),
    ({"exclude": "latest"}, r"images\[0\]\.tags\.exclude: must be a list"),
    ({"include": [""]}, r"images\[0\]\.tags\.include\[0\]: must be a non-empty string"),
    ({"semver": ">=1.2 <"}, r"images\[0\]\.tags\.semver: .* is not a version"),
    ({"semver": "newest"}, r"images\[0\]\.tags\.semver: 'newest'"),
    ({"latest": 0}, r"images\[0\]\.tags\.latest: must be a whole number of at least 1"),
    ({"latest": True}, r"images\[0\]\.tags\.latest"),
    ({"prerelease": "yes"}, r"images\[0\]\.tags\.prerelease: must be true or false"),
])
def test_bad_rules_name_the_option(rules, message):
    with pytest.raises(InvalidOptionError, match=message):
        TagRules.from_option(rules, "images[0].tags")


def test_rules_must_be_a_dict():
    with pytest.raises(InvalidOptionError, match=r"images\[3\]\.tags: must be a dictionary"):
        TagRules.from_option(["1.x"], "images[3].tags")


def test_null_keys_are_unset():
    rules = TagRules.from_option(dict(include=None, exclude=None, semver=None, latest=None, prerelease=None), "t")
    assert rules.select(TAGS) == select({})
