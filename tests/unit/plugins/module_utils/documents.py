# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edit a JSON document at one position, for the tests that break manifests on purpose.

Imported as ``tests.unit.plugins.module_utils.documents`` (the repo root is on sys.path).
"""

import copy

DELETE = object()  # as the value of with_(): remove the item instead of replacing it


def with_(doc, path, value):
    """Copy of doc with the item at path (a tuple of keys/indexes) replaced, or removed if value is DELETE;
    the empty path replaces the whole document."""
    if not path:
        return value
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc
