# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cached names close to one that is not cached, for "did you mean" in not-found messages.

`eco/small:v1` means docker.io/eco/small:v1, so a cache that holds
`127.0.0.1:5150/eco/small:v1` does not have it; the user almost certainly meant that one.
Two kinds of names are suggested: the same repository path and tag under another
registry (or narrowed to platforms), first; then names that are merely spelled alike
(difflib), for typos.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference

MAX_SUGGESTIONS = 3
_SPELLING_CUTOFF = 0.8


def _path_and_ref(text):
    """(repository path without docker.io's library/, tag or digest) of a reference or cache name; None if none."""
    try:
        reference = ImageReference.parse(text.partition("+")[0])  # '+linux-amd64' parts name a narrowed pull
    except ImagePusherError:
        return None
    path = reference.repository
    if path.startswith("library/"):
        path = path[len("library/"):]
    return path, reference.digest or reference.tag


def _key(text):
    """What two names are compared by for spelling: 'path:tag' (the registry prefix, shared by most
    names in a cache, would make every name look alike), or the name itself when it is no reference."""
    parts = _path_and_ref(text)
    return "%s:%s" % parts if parts else text


def close_names(name, held, limit=MAX_SUGGESTIONS):
    """Up to `limit` of the cache names `held` that `name` (not among them) was probably meant to be."""
    held = sorted(set(h for h in held if h and h != name))
    wanted = _path_and_ref(name)
    same = [h for h in held if wanted is not None and _path_and_ref(h) == wanted]
    keys = dict((h, _key(h)) for h in held)
    alike = difflib.get_close_matches(_key(name), sorted(set(keys.values())), n=limit, cutoff=_SPELLING_CUTOFF)
    spelled = [h for key in alike for h in held if keys[h] == key]
    found = []
    for candidate in same + spelled:
        if candidate not in found:
            found.append(candidate)
    return found[:limit]


def hint(found):
    """' (did you mean A or B?)' for a message, from close_names(); '' when nothing held is close."""
    return " (did you mean %s?)" % " or ".join(found) if found else ""
