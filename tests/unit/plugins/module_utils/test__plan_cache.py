# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_plan over a real cache: the steps planned from what a StoreEndpoint reports are what the download then does."""

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._download import download_blob
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import RetryBudget
from ansible_collections.imagepusher.registry.plugins.module_utils._tree import walk
from tests.unit.plugins.module_utils.tree_builders import Store, multiarch


# -- what a pull plans against the cache -------------------------------------------------------

def plan_pull(tree, cache):
    """The fetch steps, as the pull result renders them (plus the bytes each is expected to move)."""
    store = StoreEndpoint(cache)
    steps = _plan.plan_fetches(tree, store.stored(tree.blobs), store.partials(tree.blobs))
    return [dict(blob, bytes=step.bytes) for blob, step in zip(_plan.render_blobs(steps), steps)]


def plan_manifests(tree, cache):
    return [step.render() for step in _plan.plan_stores(tree, StoreEndpoint(cache).stored_manifests(tree.manifests))]


@pytest.fixture
def cache(tmp_path):
    return Cache(str(tmp_path / "cache")).ensure()


def serve(content):
    def opener(offset):
        return iter([content[offset:]]), offset, lambda: None
    return opener


def seed_partial(cache, digest, content):
    with open(cache.partial_path(digest), "wb") as handle:
        handle.write(content)


def big_image():
    store = Store()
    layers = [b"cached layer " * 50, b"partial layer " * 80, b"absent layer " * 30, b"overlong partial " * 20]
    return store, store.image("amd64", layers), layers


def prepare(cache, store, layers):
    cached, partial, _absent, overlong = layers
    download_blob(cache, of_bytes(cached), len(cached), serve(cached), RetryBudget(3))
    seed_partial(cache, of_bytes(partial), partial[:300])
    seed_partial(cache, of_bytes(overlong), overlong + b"junk")


def test_plan_pull_states(cache):
    store, image, layers = big_image()
    prepare(cache, store, layers)
    tree = walk(image, store.load)
    config = store.blobs[image.config.digest]
    cached, partial, absent, overlong = layers
    assert plan_pull(tree, cache) == [
        {"digest": of_bytes(config), "size": len(config), "media_type": mt.OCI_CONFIG, "action": "downloaded",
         "bytes": len(config)},
        {"digest": of_bytes(cached), "size": len(cached), "media_type": mt.OCI_LAYER_GZIP, "action": "cached",
         "bytes": 0},
        {"digest": of_bytes(partial), "size": len(partial), "media_type": mt.OCI_LAYER_GZIP, "action": "resumed",
         "bytes": len(partial) - 300},
        {"digest": of_bytes(absent), "size": len(absent), "media_type": mt.OCI_LAYER_GZIP, "action": "downloaded",
         "bytes": len(absent)},
        {"digest": of_bytes(overlong), "size": len(overlong), "media_type": mt.OCI_LAYER_GZIP,
         "action": "downloaded", "bytes": len(overlong)},
    ]


def test_plan_pull_says_what_ingest_then_does(cache):
    """Check mode and the real run agree: same action, same byte count, for every blob."""
    store, image, layers = big_image()
    prepare(cache, store, layers)
    tree = walk(image, store.load)
    plan = plan_pull(tree, cache)
    done = [dict(entry, action=None, bytes=None) for entry in plan]
    for entry, result in zip(plan, done):
        content = store.blobs[entry["digest"]]
        result["action"], result["bytes"] = download_blob(cache, entry["digest"], entry["size"], serve(content), RetryBudget(3))
    assert done == plan
    assert [e["action"] for e in plan_pull(tree, cache)] == ["cached"] * len(plan)


def test_plan_pull_of_a_complete_partial_agrees_with_ingest(cache):
    store = Store()
    layer = b"complete but not renamed " * 10
    image = store.image("amd64", [layer])
    download_blob(cache, image.config.digest, image.config.size, serve(store.blobs[image.config.digest]), RetryBudget(3))
    seed_partial(cache, of_bytes(layer), layer)
    tree = walk(image, store.load)
    planned = [(e["action"], e["bytes"]) for e in plan_pull(tree, cache)]
    assert planned[1] == download_blob(cache, of_bytes(layer), len(layer), serve(layer), RetryBudget(3))


def test_plan_manifests(cache):
    store, top, (amd, arm, armv7) = multiarch()
    cache.write_blob_bytes(arm.digest, arm.raw)
    tree = walk(top, store.load)
    assert plan_manifests(tree, cache) == [
        {"digest": amd.digest, "media_type": mt.OCI_MANIFEST, "size": len(amd.raw), "action": "downloaded"},
        {"digest": arm.digest, "media_type": mt.OCI_MANIFEST, "size": len(arm.raw), "action": "cached"},
        {"digest": armv7.digest, "media_type": mt.OCI_MANIFEST, "size": len(armv7.raw), "action": "downloaded"},
        {"digest": top.digest, "media_type": mt.OCI_INDEX, "size": len(top.raw), "action": "downloaded"},
    ]


def test_plans_of_an_empty_cache_for_a_multiarch_image(cache):
    store, top, _children = multiarch()
    tree = walk(top, store.load)
    plan = plan_pull(tree, cache)
    assert [e["action"] for e in plan] == ["downloaded"] * len(tree.blobs)
    assert sum(e["bytes"] for e in plan) == sum(len(store.blobs[b.digest]) for b in tree.blobs)
    assert [e["action"] for e in plan_manifests(tree, cache)] == ["downloaded"] * 4
