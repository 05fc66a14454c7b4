# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy jobs, assembled from clients and a cache: the one place that wires endpoints to the engine.

    pull    registry -> cache
    push    cache (or an OCI layout directory) -> registry
    mirror  registry -> registry, written through the cache
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint, StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Engine
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError
from ansible_collections.imagepusher.registry.plugins.module_utils._mirror import Mirror
from ansible_collections.imagepusher.registry.plugins.module_utils._pull import Pull
from ansible_collections.imagepusher.registry.plugins.module_utils._push import Push


def pull(client, reference, cache, concurrency=4, events=None):
    """A Pull of `reference` (its .run(reference, platforms, check_mode) gives the module result)."""
    return Pull(RegistryEndpoint(client, reference), StoreEndpoint(cache), Engine(concurrency, events))


def push(client, target, store, layout=False, concurrency=4, chunk_size=None, events=None):
    """A Push to `target` from the cache, or from a layout directory of another tool (`layout`: only read)."""
    source = StoreEndpoint(store, keeps_sessions=not layout)
    endpoint = RegistryEndpoint(client, target, writable=True, sessions=source.upload_sessions(), chunk_size=chunk_size)
    return Push(source, endpoint, Engine(concurrency, events), record_sources=not layout)


def mirror(source_client, source, target_client, target, cache, concurrency=4, chunk_size=None, events=None):
    """A Mirror of `source` to `target` through `cache` (its .run(source, platforms, check_mode))."""
    engine = Engine(concurrency, events)
    store = StoreEndpoint(cache)
    target_endpoint = RegistryEndpoint(target_client, target, writable=True, sessions=store.upload_sessions(),
                                       chunk_size=chunk_size)
    return Mirror(Pull(RegistryEndpoint(source_client, source), store, engine),
                  Push(store, target_endpoint, engine))


def mirror_images(images, client_for, cache, concurrency=4, check_mode=False, events=None, read=None):
    """Mirror each settled (source, target, entry) of image_mirror in turn; the module result.

    `client_for(reference, username, password, plain_http)` gives the RegistryClient of one side.
    `read(source, login, attempt)` runs attempt(client, location) at the source's locations (registries.conf
    mirrors); by default the source itself is the one location.
    The first failure stops the run and names the entry; what was mirrored before it is in its details.
    """
    read = read or (lambda source, login, attempt: attempt(client_for(source, *login), source))
    results, before = [], {}
    for number, (source, target, image) in enumerate(images):
        def mirror_from(client, location, source=source, target=target, image=image):
            target_client = client_for(target, image["target_username"], image["target_password"],
                                       image["target_plain_http"])
            return mirror(client, location, target_client, target, cache, concurrency, events=events).run(
                source, image["platforms"], check_mode=check_mode)

        try:
            result = read(source, (image["source_username"], image["source_password"], image["source_plain_http"]),
                          mirror_from)
        except ImagePusherError as exc:
            details = dict(exc.details, images=results)
            raise type(exc)("images[%d] (%s -> %s): %s" % (number, source, target, exc.message), **details)
        before[result["target"]] = result.pop("diff")["before"]["digest"]
        results.append(result)
    return {
        "changed": any(r["changed"] for r in results),
        "images": results,
        "bytes_downloaded": sum(r["bytes_downloaded"] for r in results),
        "bytes_uploaded": sum(r["bytes_uploaded"] for r in results),
        "diff": {"before": before, "after": dict((r["target"], r["digest"]) for r in results)},
    }
