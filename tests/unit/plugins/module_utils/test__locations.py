# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_locations: the first location that serves wins; a location's failure falls through, ours does not."""

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError, NotFoundError, TransportError)
from ansible_collections.imagepusher.registry.plugins.module_utils._locations import read_from
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._registries_conf import Location

SOURCES = [Location(ImageReference.parse("m%d.test/team/app:v1" % n), mirror=True) for n in (1, 2)] + [
    Location(ImageReference.parse("src.test/team/app:v1"))]


def attempts(outcomes):
    tried = []

    def attempt(source):
        tried.append(source.reference.registry)
        outcome = outcomes[source.reference.registry]
        if isinstance(outcome, Exception):
            raise outcome
        return dict(outcome)

    return tried, attempt


def test_the_first_location_that_serves_is_named_in_the_result():
    tried, attempt = attempts({"m1.test": TransportError("m1 down"), "m2.test": {"digest": "d"},
                               "src.test": {"digest": "never"}})
    assert read_from(SOURCES, attempt) == {"digest": "d", "source_location": "m2.test/team/app"}
    assert tried == ["m1.test", "m2.test"]


def test_the_last_error_names_the_locations_tried_before():
    tried, attempt = attempts({"m1.test": TransportError("m1 down"), "m2.test": NotFoundError("no image on m2"),
                               "src.test": NotFoundError("no image at src", status=404)})
    with pytest.raises(NotFoundError) as info:
        read_from(SOURCES, attempt)
    assert info.value.message == ("no image at src (tried first: m1.test/team/app: m1 down; "
                                  "m2.test/team/app: no image on m2)")
    assert info.value.details["status"] == 404
    assert tried == ["m1.test", "m2.test", "src.test"]


def test_one_location_keeps_its_error_unchanged():
    _tried, attempt = attempts({"src.test": NotFoundError("no image at src")})
    with pytest.raises(NotFoundError, match=r"^no image at src$"):
        read_from(SOURCES[-1:], attempt)


def test_a_cache_error_stops_at_once():
    tried, attempt = attempts({"m1.test": CacheError("disk full")})
    with pytest.raises(CacheError):
        read_from(SOURCES, attempt)
    assert tried == ["m1.test"]


def test_a_result_that_says_not_here_passes_on_unless_it_is_the_last():
    tried, attempt = attempts({"m1.test": {"exists": False}, "m2.test": {"exists": True},
                               "src.test": {"exists": True}})
    result = read_from(SOURCES, attempt, served=lambda r: r["exists"])
    assert result == {"exists": True, "source_location": "m2.test/team/app"} and tried == ["m1.test", "m2.test"]
    _tried, attempt = attempts({"m1.test": {"exists": False}, "m2.test": {"exists": False},
                                "src.test": {"exists": False}})
    assert read_from(SOURCES, attempt, served=lambda r: r["exists"]) == {
        "exists": False, "source_location": "src.test/team/app"}
