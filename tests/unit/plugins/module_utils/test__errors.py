# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    QUOTE_LIMIT,
    InvalidReferenceError,
    quote_value,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference


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
