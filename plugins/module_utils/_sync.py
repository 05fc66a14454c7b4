# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sync entries: an image_mirror entry whose `tags` rules select tags of a source repository.

settle_sync_entry() checks such an entry before anything moves (both sides repositories
without tag or digest, valid rules). expand() then lists the source's tags (read-only, so
check mode does it too) and turns each sync entry into one settled (source, target, entry)
per selected tag, each tag landing under the same tag; other entries pass through. The order
is the list's, and within a sync entry the rules' order (highest version first, then tags
that are not versions by name). mirror_expanded() runs a mirror over the expanded list and
says in each result, and in a failure's message, which entry of the list it came from.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError, InvalidOptionError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference

_ENTRY_PREFIX_RE = re.compile(r"^images\[(\d+)\]")


def settle_sync_entry(entry, where):
    """(source, target) repositories (untagged ImageReferences) of an entry with `tags`; errors name `where`."""
    # Imported where needed: only entries with `tags` use the rules (a module start need not compile them).
    from ansible_collections.imagepusher.registry.plugins.module_utils._tag_rules import TagRules
    TagRules.from_option(entry["tags"], where + ".tags")
    sides = []
    for side in ("source", "target"):
        try:
            reference = ImageReference.parse(entry[side], default_tag=None)
        except ImagePusherError as exc:
            raise type(exc)("%s.%s: %s" % (where, side, exc.message), **exc.details)
        if reference.tag is not None or reference.digest is not None:
            raise InvalidOptionError("%s.%s: with tags, %s must be a repository without a tag or digest (each selected "
                                     "tag lands under the same tag), not %s" % (where, side, side, entry[side]))
        sides.append(reference)
    return sides[0], sides[1]


def expand(settled, list_tags):
    """(images, numbers, empty): the settled list with each sync entry replaced by its selected tags.

    `list_tags(source, entry)` gives the source repository's tags. numbers[i] is the index in the
    original list of images[i]; empty lists (number, message) for each sync entry that selects no tag.
    """
    images, numbers, empty = [], [], []
    for number, (source, target, entry) in enumerate(settled):
        if entry.get("tags") is None:
            images.append((source, target, entry))
            numbers.append(number)
            continue
        try:
            tags = list_tags(source, entry)
        except ImagePusherError as exc:
            raise type(exc)("images[%d] (%s): %s" % (number, source, exc.message), **exc.details)
        from ansible_collections.imagepusher.registry.plugins.module_utils._tag_rules import TagRules
        selected = TagRules.from_option(entry["tags"], "images[%d].tags" % number).select(tags)
        if not selected:
            empty.append((number, "images[%d]: the tag rules select none of the %d tags of %s; nothing mirrored for "
                                  "this entry" % (number, len(set(tags)), source)))
        for tag in selected:
            images.append((source.with_tag(tag), target.with_tag(tag), entry))
            numbers.append(number)
    return images, numbers, empty


def mirror_expanded(settled, list_tags, mirror, warn):
    """mirror(expanded images) -> result, each image result with `entry` (its index in the list).

    `warn(message)` is told of each sync entry that selects nothing. A failure's message names the
    entry of the list (and the tag), and its `images` carry their `entry` too.
    """
    images, numbers, empty = expand(settled, list_tags)
    for _number, message in empty:
        warn(message)
    try:
        result = mirror(images)
    except ImagePusherError as exc:
        details = dict(exc.details)
        if isinstance(details.get("images"), list):
            details["images"] = _label(details["images"], numbers)
        raise type(exc)(_renumbered(exc.message, numbers), **details)
    result["images"] = _label(result["images"], numbers)
    return result


def _label(results, numbers):
    return [dict(r, entry=numbers[i]) for i, r in enumerate(results)]


def _renumbered(message, numbers):
    """'images[K] ...' of the expanded list -> 'images[N] ...' of the user's list."""
    match = _ENTRY_PREFIX_RE.match(message)
    if not match or int(match.group(1)) >= len(numbers):
        return message
    return "images[%d]%s" % (numbers[int(match.group(1))], message[match.end():])
