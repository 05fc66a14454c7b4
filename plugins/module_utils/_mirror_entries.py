# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The entries of image_mirror's `images` list, each settled before anything is transferred.

An entry's own option wins; an option it leaves out (or sets to null) takes the module-wide
one, key by key, so an entry may give only a password for the module-wide user name. Every
entry is checked (credential pairs, both references) so a bad one fails the task before the
first image moves.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError, InvalidOptionError
from ansible_collections.imagepusher.registry.plugins.module_utils._names import default_target_tag
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._sync import settle_sync_entry

# Entry option -> the module-wide option an entry that leaves it out (or null) takes.
ENTRY_DEFAULTS = dict(platforms="platforms", source_username="source_username", source_password="source_password",
                      source_plain_http="source_plain_http", target_username="username", target_password="password",
                      target_plain_http="plain_http", referrers="referrers")


def settle_entries(params):
    """[(source ImageReference, target ImageReference, entry dict)] for params["images"], in order.

    Each entry dict is completed in place (the task's invocation shows what was used).
    Raises InvalidOptionError for a half credential pair, InvalidReferenceError (or the error
    the target's resolution raises) for a bad reference; the first bad entry wins.
    """
    settled = []
    for number, entry in enumerate(params["images"]):
        where = "images[%d]" % number
        for key, default in ENTRY_DEFAULTS.items():
            if entry.get(key) is None:  # key by key: a password in the entry for the module-wide user is fine
                entry[key] = params[default]
        for side in ("source", "target"):
            _check_credential_pair(entry, side, where)
        if entry.get("tags") is not None:  # a sync entry: repositories, expanded into tags later (_sync)
            source, target = settle_sync_entry(entry, where)
        else:
            source, target = _references(entry, where)
        settled.append((source, target, entry))
    return settled


def _check_credential_pair(entry, side, where):
    user, password = entry[side + "_username"], entry[side + "_password"]
    if (user is None) != (password is None):
        raise InvalidOptionError("%s: the %s registry has a %s but no %s (neither in the entry nor module-wide)"
                                 % (where, side, "user name" if user else "password", "password" if user else "user name"))


def _references(entry, where):
    """(source, target) of the entry; an error's message names the entry's option."""
    try:
        source = _prefixed(where + ".source", ImageReference.parse, entry["source"])
        target = _prefixed("target", default_target_tag, entry["target"], str(source))
    except ImagePusherError as exc:
        # The wording image_mirror has always had: the first "target: " becomes the entry's.
        raise type(exc)(exc.message.replace("target: ", where + ".target: ", 1), **exc.details)
    return source, target


def _prefixed(what, parse, *args):
    try:
        return parse(*args)
    except ImagePusherError as exc:
        raise type(exc)("%s: %s" % (what, exc.message), **exc.details)
