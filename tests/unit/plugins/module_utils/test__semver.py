# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_semver: tags read as versions, and ranges with node-semver's desugaring and pre-release rules."""

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._semver import Range, RangeError, Version, parse_version


@pytest.mark.parametrize("tag, expected", [
    ("1", (1, 0, 0, ())),
    ("1.4", (1, 4, 0, ())),
    ("1.4.2", (1, 4, 2, ())),
    ("v1.10.0", (1, 10, 0, ())),
    ("V2", (2, 0, 0, ())),
    ("1.11.0-rc1", (1, 11, 0, ("rc1",))),
    ("1.11-rc.1", (1, 11, 0, ("rc", "1"))),
    ("2.0.0-alpha.1.x-y", (2, 0, 0, ("alpha", "1", "x-y"))),
])
def test_tags_that_are_versions(tag, expected):
    version = parse_version(tag)
    assert (version.major, version.minor, version.patch, version.prerelease) == expected


@pytest.mark.parametrize("tag", ["latest", "foo", "1.2.3.4", "v", "1.", ".1", "1..2", "1.2.3-", "version1", "1.2.3_4",
                                 "sha256-abc.sig", "", None, 12])
def test_tags_that_are_not_versions(tag):
    assert parse_version(tag) is None


def test_semver_order():
    ordered = ["0.0.1", "0.9.0", "1.0.0-0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
               "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "v1.10.0", "2"]
    versions = [parse_version(t) for t in ordered]
    assert sorted(reversed(versions)) == versions
    assert parse_version("v1.10.0") > parse_version("v1.2.0")
    assert parse_version("1.4") == parse_version("v1.4.0") == Version(1, 4, 0)
    assert len({parse_version("1.4"), parse_version("1.4.0")}) == 1
    assert str(parse_version("v1.11-rc.1")) == "1.11.0-rc.1"


def matching(text, tags, prerelease=False):
    rng = Range.parse(text)
    return [t for t in tags if rng.matches(parse_version(t), prerelease=prerelease)]


TAGS = ["0.1.0", "0.2.0", "0.2.9", "0.3.0", "1.0.0", "1.2.0", "1.2.3", "1.3.0", "1.4.0", "1.4.7", "1.5.0", "1.10.0",
        "2.0.0", "2.5.1", "3.0.0"]


@pytest.mark.parametrize("text, expected", [
    ("~1.4", ["1.4.0", "1.4.7"]),
    ("~1.4.5", ["1.4.7"]),
    ("~1", ["1.0.0", "1.2.0", "1.2.3", "1.3.0", "1.4.0", "1.4.7", "1.5.0", "1.10.0"]),
    ("~>1.4", ["1.4.0", "1.4.7"]),
    ("^2", ["2.0.0", "2.5.1"]),
    ("^0.2", ["0.2.0", "0.2.9"]),
    ("^0.2.5", ["0.2.9"]),
    ("^0.0", []),
    ("^0", ["0.1.0", "0.2.0", "0.2.9", "0.3.0"]),
    ("^1.2.3", ["1.2.3", "1.3.0", "1.4.0", "1.4.7", "1.5.0", "1.10.0"]),
    (">=1.2 <2", ["1.2.0", "1.2.3", "1.3.0", "1.4.0", "1.4.7", "1.5.0", "1.10.0"]),
    (">= 1.2 < 1.4", ["1.2.0", "1.2.3", "1.3.0"]),
    ("=1.2.3", ["1.2.3"]),
    ("1.2.3", ["1.2.3"]),
    ("1.2", ["1.2.0", "1.2.3"]),
    ("1.x", ["1.0.0", "1.2.0", "1.2.3", "1.3.0", "1.4.0", "1.4.7", "1.5.0", "1.10.0"]),
    ("v1.4.x", ["1.4.0", "1.4.7"]),
    ("*", TAGS),
    (">2", ["3.0.0"]),
    (">1.4", ["1.5.0", "1.10.0", "2.0.0", "2.5.1", "3.0.0"]),
    (">1.4.0", ["1.4.7", "1.5.0", "1.10.0", "2.0.0", "2.5.1", "3.0.0"]),
    ("<1.2", ["0.1.0", "0.2.0", "0.2.9", "0.3.0", "1.0.0"]),
    ("<=1.2", ["0.1.0", "0.2.0", "0.2.9", "0.3.0", "1.0.0", "1.2.0", "1.2.3"]),
    ("<=0.2.0", ["0.1.0", "0.2.0"]),
    ("<0.2 || >=2.5", ["0.1.0", "2.5.1", "3.0.0"]),
    ("1.3 - 1.5", ["1.3.0", "1.4.0", "1.4.7", "1.5.0"]),
    ("^1.2 <1.4", ["1.2.0", "1.2.3", "1.3.0"]),
])
def test_ranges(text, expected):
    assert matching(text, TAGS) == expected


PRE = ["1.11.0-rc1", "1.11.0-rc2", "1.11.0", "1.12.0-beta", "2.0.0-rc.1", "2.0.0"]


@pytest.mark.parametrize("text, prerelease, expected", [
    ("^1", False, ["1.11.0", ]),
    ("^1", True, ["1.11.0-rc1", "1.11.0-rc2", "1.11.0", "1.12.0-beta"]),  # never 2.0.0-rc.1: the bound is <2.0.0-0
    (">=1.11.0-rc2", False, ["1.11.0-rc2", "1.11.0", "2.0.0"]),  # names a pre-release of 1.11.0 only
    (">=1.11.0-rc2 <2", False, ["1.11.0-rc2", "1.11.0"]),
    ("~1.11.0-rc1", False, ["1.11.0-rc1", "1.11.0-rc2", "1.11.0"]),
    ("2.0.0-rc.1 || 1.12.0-beta", False, ["1.12.0-beta", "2.0.0-rc.1"]),
    ("*", False, ["1.11.0", "2.0.0"]),
    ("*", True, PRE),
])
def test_prereleases_match_only_when_named_or_allowed(text, prerelease, expected):
    assert matching(text, PRE, prerelease) == expected


@pytest.mark.parametrize("text", ["", "  ", "foo", ">=", ">=1.2 <", "1.2.3.4", "^", "~x~", "1 ||", "|| 1", "=>1", None, 5,
                                  "1" * 2000])
def test_bad_ranges(text):
    with pytest.raises(RangeError):
        Range.parse(text)
