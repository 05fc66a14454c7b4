# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy jobs, assembled from clients and a cache: the one place that wires endpoints to the engine.

    pull    registry -> cache
    push    cache (or an OCI layout directory) -> registry
    mirror  registry -> registry, written through the cache (or, with no cache, relayed: _relay_mirror.py)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _parallel
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint, StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Engine, Events
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError
from ansible_collections.imagepusher.registry.plugins.module_utils._mirror import Mirror
from ansible_collections.imagepusher.registry.plugins.module_utils._plan import FETCH, SKIP
from ansible_collections.imagepusher.registry.plugins.module_utils._pull import Pull
from ansible_collections.imagepusher.registry.plugins.module_utils._push import Push


def pull(client, reference, cache, concurrency=4, events=None, foreign=SKIP):
    """A Pull of `reference` (its .run(reference, platforms, check_mode) gives the module result).

    `foreign`: SKIP foreign layers, or FETCH them from their urls (see _foreign.py)."""
    return Pull(_source(client, reference, foreign), StoreEndpoint(cache), Engine(concurrency, events), foreign)


def push(client, target, store, layout=False, concurrency=4, chunk_size=None, events=None, foreign=SKIP):
    """A Push to `target` from the cache, or from a layout directory of another tool (`layout`: only read)."""
    source = StoreEndpoint(store, keeps_sessions=not layout)
    endpoint = RegistryEndpoint(client, target, writable=True, sessions=source.upload_sessions(), chunk_size=chunk_size)
    return Push(source, endpoint, Engine(concurrency, events), record_sources=not layout, foreign=foreign)


def mirror(source_client, source, target_client, target, cache, concurrency=4, chunk_size=None, events=None,
           foreign=SKIP, fleet=None):
    """A Mirror of `source` to `target` through `cache` (its .run(source, platforms, check_mode)).

    `fleet` (a _fleet.Fleet): the images of one task share blob slots, downloads and uploads through it.
    `cache` None (image_mirror's cache: false): a RelayMirror, each blob relayed from the source to the target.
    """
    engine = Engine(concurrency, events)
    if cache is None:
        return _relay(source_client, source, target_client, target, engine, chunk_size, foreign, fleet)
    store = StoreEndpoint(cache)
    target_endpoint = RegistryEndpoint(target_client, target, writable=True, sessions=store.upload_sessions(),
                                       chunk_size=chunk_size)
    if fleet is not None:
        store, target_endpoint = fleet.store(store), fleet.target(target_endpoint)
    return Mirror(Pull(_source(source_client, source, foreign), store, engine, foreign),
                  Push(store, target_endpoint, engine, foreign=foreign))


def _relay(source_client, source, target_client, target, engine, chunk_size, foreign, fleet):
    # Imported where needed: only `cache: false` relays (a module start compiles no more than it uses).
    from ansible_collections.imagepusher.registry.plugins.module_utils._relay import RelayStore
    from ansible_collections.imagepusher.registry.plugins.module_utils._relay_mirror import RelayMirror
    source_endpoint = _source(source_client, source, foreign)
    store = RelayStore(source_endpoint)
    target_endpoint = RegistryEndpoint(target_client, target, writable=True, sessions=store.upload_sessions(),
                                       chunk_size=chunk_size)
    if fleet is not None:
        target_endpoint = fleet.target(target_endpoint)  # a blob shared by images goes up once per registry
    return RelayMirror(Pull(source_endpoint, store, engine, foreign),
                       Push(store, target_endpoint, engine, record_sources=False, foreign=foreign))


def _source(client, reference, foreign):
    endpoint = RegistryEndpoint(client, reference)
    if foreign != FETCH:
        return endpoint
    # Imported where needed: a module start does not compile what most runs never use (issue 16).
    from ansible_collections.imagepusher.registry.plugins.module_utils._foreign import ForeignLayerSource
    return ForeignLayerSource(endpoint)


def with_referrers(copy, result, check_mode=False):
    """`result` of the Mirror `copy` with what is attached to its image copied too (see _referrers.py),
    through the same clients, cache and engine."""
    source, target, engine = copy.pull.source, copy.push.target, copy.engine

    def copy_one(source_ref, target_ref):
        return mirror(source.client, source_ref, target.client, target_ref, copy.pull.cache.cache,
                      engine.concurrency, target.chunk_size, engine.events, copy.pull.foreign)

    from ansible_collections.imagepusher.registry.plugins.module_utils._referrers import ReferrerCopy, add_to  # only runs that copy referrers need it
    return add_to(result, ReferrerCopy(source, target, copy_one).run(result["digest"], check_mode))


def mirror_images(images, client_for, cache, concurrency=4, check_mode=False, events=None, image_concurrency=1,
                  foreign=SKIP, read=None):
    """Mirror each settled (source, target, entry) of image_mirror; the module result, images in list order.

    `client_for(reference, username, password, plain_http)` gives the RegistryClient of one side.
    Up to `image_concurrency` images run at once, started in list order; `concurrency` bounds the blob
    transfers of them all, and a blob they share moves once (see _fleet.py). The first failure (in list
    order) fails the run and names its entry; no image starts after a failure. Its details hold the
    images mirrored before it (`images`) and what each entry did (`image_states`).
    `read(source, login, attempt)` runs attempt(client, location) at the source's locations (registries.conf
    mirrors); by default the source itself is the one location.
    """
    from ansible_collections.imagepusher.registry.plugins.module_utils._fleet import Fleet  # only image_mirror runs a fleet
    events = events or Events()
    fleet = Fleet(concurrency)
    outcomes = _parallel.map_until_failure(
        lambda item: mirror_image(item[1], client_for, cache, concurrency, check_mode, events, fleet, foreign, read),
        list(enumerate(images)), image_concurrency)
    results = [value for state, value in outcomes if state == _parallel.DONE]
    failed = [n for n, (state, _value) in enumerate(outcomes) if state == _parallel.FAILED]
    if failed:
        raise _named_failure(images, outcomes, failed[0])
    before = dict((r["target"], r.pop("diff")["before"]["digest"]) for r in results)
    return {
        "changed": any(r["changed"] for r in results),
        "images": results,
        "bytes_downloaded": sum(r["bytes_downloaded"] for r in results),
        "bytes_uploaded": sum(r["bytes_uploaded"] for r in results),
        "diff": {"before": before, "after": dict((r["target"], r["digest"]) for r in results)},
    }


def mirror_image(image, client_for, cache, concurrency=4, check_mode=False, events=None, fleet=None, foreign=SKIP,
                 read=None):
    """One settled (source, target, entry) of image_mirror: its result (with its diff), referrers included
    when the entry asks for them; the source read at the first of its locations that serves it (`read`)."""
    source, target, entry = image
    label, events = "%s -> %s" % (source, target), events or Events()
    read = read or (lambda reference, login, attempt: attempt(client_for(reference, *login), reference))

    def mirror_from(client, location):
        target_client = client_for(target, entry["target_username"], entry["target_password"], entry["target_plain_http"])
        copy = mirror(client, location, target_client, target, cache, concurrency, events=events.for_image(label),
                      foreign=foreign, fleet=fleet)
        result = copy.run(source, entry["platforms"], check_mode=check_mode)
        return with_referrers(copy, result, check_mode) if entry.get("referrers") else result

    events.image_started(label)
    result = read(source, (entry["source_username"], entry["source_password"], entry["source_plain_http"]), mirror_from)
    events.image_finished(label)
    return result


def _named_failure(images, outcomes, number):
    """The error of entry `number`, naming it, with what the other entries did in its details."""
    exc = outcomes[number][1]
    if not isinstance(exc, ImagePusherError):
        raise exc
    source, target = images[number][0], images[number][1]
    states = []
    for (state, value), (other_source, other_target, _entry) in zip(outcomes, images):
        states.append({"source": str(other_source), "target": str(other_target), "state": state})
        if state == _parallel.FAILED and isinstance(value, ImagePusherError):
            states[-1]["msg"] = value.message
    counts = ", ".join("%d %s" % (len([s for s in states if s["state"] == name]), name)
                       for name in (_parallel.DONE, _parallel.FAILED, _parallel.NOT_STARTED))
    # The images mirrored before it: the entries started in list order, so all of them ran to their end.
    done_before = [value for state, value in outcomes[:number] if state == _parallel.DONE]
    for result in done_before:
        result.pop("diff", None)
    details = dict(exc.details, images=done_before, image_states=states)
    # Images mirrored (or half mirrored) beside this one changed their targets: the failure says so.
    details["changed"] = bool(exc.details.get("changed")) or any(
        value["changed"] if state == _parallel.DONE else bool(getattr(value, "details", {}).get("changed"))
        for state, value in outcomes if state in (_parallel.DONE, _parallel.FAILED))
    return type(exc)("images[%d] (%s -> %s): %s (entries: %s)" % (number, source, target, exc.message, counts),
                     **details)
