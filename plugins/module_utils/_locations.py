# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read an image from the first of its locations that serves it (registries.conf mirrors, then the registry).

As containers/image does, a location that fails for any reason of its own (down, no such image,
refused credentials, bytes that do not verify) passes the read on to the next one; the last
location's error is the one reported, naming the locations tried before it. A problem of ours
(the cache, the options) stops at once: another location would not fix it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError, ImagePusherError, InvalidOptionError

# Errors no other location can fix.
OURS = (CacheError, InvalidOptionError)


def read_from(sources, attempt, served=None):
    """attempt(source) for each source in turn until one returns; its result names it in source_location.

    `sources`: non-empty list of _registries_conf.Location. `attempt(location)` returns a result dict.
    `served(result)`: False for a result that says the location does not have the image (image_info's
    exists=false), which passes on to the next location too; the last location's result stands.
    """
    failures = []
    for number, source in enumerate(sources):
        last = number == len(sources) - 1
        try:
            result = attempt(source)
        except OURS:
            raise
        except ImagePusherError as exc:
            if last:
                if failures:
                    _name_earlier(exc, failures)
                raise
            failures.append("%s: %s" % (source.reference.name, exc.message))
            continue
        if not last and served is not None and not served(result):
            failures.append("%s: no such image" % source.reference.name)
            continue
        result["source_location"] = source.reference.name
        return result
    raise ValueError("read_from needs at least one source")  # pragma: no cover - callers always give one


def _name_earlier(exc, failures):
    """Add the locations that failed before to the message of the last one's error."""
    exc.message = "%s (tried first: %s)" % (exc.message, "; ".join(failures))
    exc.args = (exc.message,)
