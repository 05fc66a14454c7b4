# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror_entries filter: the role's entries without their null keys (the role itself runs in tests/integration)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.imagepusher.registry.plugins.filter.mirror_entries import FilterModule, mirror_entries


def test_null_keys_are_left_out_and_the_order_and_other_values_kept():
    entries = [
        {"source": "src.test/a:1", "target": "dst.test/a:1", "platforms": None, "referrers": False, "tags": {}},
        {"source": "src.test/b", "target": "dst.test/b", "tags": {"include": ["^1\\."]}, "source_password": None},
    ]
    assert mirror_entries(entries) == [
        {"source": "src.test/a:1", "target": "dst.test/a:1", "referrers": False, "tags": {}},  # false and {} are values
        {"source": "src.test/b", "target": "dst.test/b", "tags": {"include": ["^1\\."]}},
    ]
    assert entries[0]["platforms"] is None  # the input is left as it was


def test_an_empty_list_stays_empty():
    assert mirror_entries([]) == []


@pytest.mark.parametrize("entries, message", [
    ("src.test/a:1", "mirror_entries expects a list of image entries, got str"),
    ([{"source": "a"}, "src.test/b"], "mirror_entries expects each entry to be a dict, got str at index 1"),
])
def test_what_is_not_a_list_of_entries_is_a_clear_error(entries, message):
    with pytest.raises(AnsibleFilterError) as info:
        mirror_entries(entries)
    assert str(info.value) == message


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters() == {"mirror_entries": mirror_entries}
