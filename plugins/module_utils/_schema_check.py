# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A quick yes-or-not-sure check of a document against one of _schemas' draft 7 schemas.

Importing jsonschema costs a module about 0.1 s and 3 MB, and nearly every manifest is
valid. So a manifest is first checked here, against the same schema dicts, by the few
keywords they use; only a manifest this check cannot vouch for goes to jsonschema (which
finds the problem and words the message, as before). surely_valid() answers True only
where jsonschema would find no error; any keyword, type or value it does not handle
exactly as draft 7 does (a float, an enum of non-strings, an unknown keyword) answers
False, never a guess.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# Keywords that do not constrain an instance.
_ANNOTATIONS = ("$schema", "title", "description")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # Draft 7 also counts 2.0 as an integer: floats are left to jsonschema (see _is_sure).
    "integer": _is_int,
}


def _is_sure(value):
    """False for values whose draft 7 reading this check does not model (floats, for 'integer' and bounds)."""
    return not isinstance(value, float)


def surely_valid(instance, schema):
    """True when `instance` certainly satisfies `schema`; False when it does not or when this check cannot tell."""
    if not _is_sure(instance):
        return False
    for keyword, value in schema.items():
        check = _KEYWORDS.get(keyword)
        if check is None:
            if keyword in _ANNOTATIONS:
                continue
            return False
        if not check(instance, value, schema):
            return False
    return True


def _type(instance, name, _schema):
    check = _TYPES.get(name) if isinstance(name, str) else None
    return check is not None and check(instance)


def _required(instance, names, _schema):
    return not isinstance(instance, dict) or all(name in instance for name in names)


def _properties(instance, properties, _schema):
    if not isinstance(instance, dict):
        return True
    return all(surely_valid(instance[name], sub) for name, sub in properties.items() if name in instance)


def _additional_properties(instance, sub, schema):
    if not isinstance(instance, dict):
        return True
    if not isinstance(sub, dict) or "patternProperties" in schema:
        return False
    known = schema.get("properties", {})
    return all(surely_valid(value, sub) for name, value in instance.items() if name not in known)


def _items(instance, sub, _schema):
    if not isinstance(instance, list):
        return True
    return isinstance(sub, dict) and all(surely_valid(item, sub) for item in instance)


def _pattern(instance, pattern, _schema):
    # jsonschema matches with re.search, so the patterns' own anchors decide, as there.
    return not isinstance(instance, str) or re.search(pattern, instance) is not None


def _enum(instance, values, _schema):
    return all(isinstance(v, str) for v in values) and isinstance(instance, str) and instance in values


def _minimum(instance, bound, _schema):
    return not _is_int(instance) or (_is_int(bound) and instance >= bound)


def _maximum(instance, bound, _schema):
    return not _is_int(instance) or (_is_int(bound) and instance <= bound)


_KEYWORDS = {
    "type": _type,
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional_properties,
    "items": _items,
    "pattern": _pattern,
    "enum": _enum,
    "minimum": _minimum,
    "maximum": _maximum,
}
