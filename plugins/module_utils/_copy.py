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
