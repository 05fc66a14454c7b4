# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_plan: pure planning from a tree and what each end holds, to typed steps and rendered results."""

import json
from collections import namedtuple

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import parse

from tests.unit.plugins.module_utils.memory_endpoints import blob

Tree = namedtuple("Tree", "top manifests blobs")

CONFIG, LAYER_A, LAYER_B = b'{"os":"linux","architecture":"amd64"}', b"layer a" * 10, b"layer b" * 20


def manifest(*descriptors):
    document = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": descriptors[0].digest,
                           "size": descriptors[0].size},
                "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size} for d in descriptors[1:]]}
    return parse(json.dumps(document).encode())


def index(*children):
    document = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{"mediaType": c.media_type, "digest": c.digest, "size": len(c.raw),
                               "platform": {"os": "linux", "architecture": "amd64"}} for c in children]}
    return parse(json.dumps(document).encode())


@pytest.fixture
def tree():
    blobs = [blob(CONFIG, "application/vnd.oci.image.config.v1+json"), blob(LAYER_A), blob(LAYER_B)]
    child = manifest(*blobs)
    top = index(child)
    return Tree(top, [child, top], blobs)


def test_fetches_reuse_what_the_cache_holds_resume_partials_and_download_the_rest(tree):
    config, a, b = tree.blobs
    steps = _plan.plan_fetches(tree, stored={config.digest}, partials={a.digest: 5, b.digest: 0})
    assert [(s.digest, s.action, s.bytes) for s in steps] == [
        (config.digest, _plan.CACHED, 0), (a.digest, _plan.RESUMED, a.size - 5), (b.digest, _plan.DOWNLOADED, b.size)]
    assert [s.moves for s in steps] == [False, True, True]


def test_a_partial_longer_than_the_blob_is_downloaded_again(tree):
    a = tree.blobs[1]
    step = _plan.plan_fetches(tree, set(), {a.digest: a.size + 1})[1]
    assert (step.action, step.bytes) == (_plan.DOWNLOADED, a.size)


def test_stores_keep_children_first_and_reuse_stored_manifests(tree):
    child, top = tree.manifests
    steps = _plan.plan_stores(tree, stored={child.digest})
    assert [(s.digest, s.action) for s in steps] == [(child.digest, _plan.CACHED), (top.digest, _plan.DOWNLOADED)]
    assert steps[1].render() == {"digest": top.digest, "media_type": top.media_type, "size": len(top.raw),
                                 "action": _plan.DOWNLOADED}


def test_sends_skip_what_the_target_has_mount_what_a_sibling_has_upload_the_rest(tree):
    config, a, b = tree.blobs
    steps = _plan.plan_sends(tree, present={config.digest}, mount_sources={a.digest: ["team/other"]})
    assert [(s.action, s.bytes, s.mount_from) for s in steps] == [
        (_plan.EXISTS, 0, ()), (_plan.MOUNTED, 0, ("team/other",)), (_plan.UPLOADED, b.size, ())]
    assert _plan.moved_bytes(steps, (_plan.UPLOADED,)) == b.size


def test_puts_send_the_top_under_the_tag_and_children_by_digest_unless_present(tree):
    child, top = tree.manifests
    steps = _plan.plan_puts(tree, "v1", present={child.digest})
    assert [(s.ref, s.action) for s in steps] == [(child.digest, _plan.EXISTS), ("v1", _plan.PUSHED)]
    assert [(s.ref, s.action) for s in _plan.plan_puts(tree, "v1", set())] == [
        (child.digest, _plan.PUSHED), ("v1", _plan.PUSHED)]


def test_only_a_fresh_download_the_target_lacks_streams(tree):
    config, a, b = tree.blobs
    fetches = _plan.plan_fetches(tree, {config.digest}, {a.digest: 3})
    sends = _plan.plan_sends(tree, set(), {})
    big = _plan.STREAM_MIN + 1
    pairs = [(f._replace(size=big), s._replace(size=big)) for f, s in _plan.Plan(tree, fetches=fetches, sends=sends).pairs()]
    assert [_plan.streamable(f, s) for f, s in pairs] == [False, False, True]
    mounted = _plan.plan_sends(tree, set(), {b.digest: ["x/y"]})[2]
    assert not _plan.streamable(fetches[2], mounted)
    empty = fetches[2]._replace(size=0)
    assert not _plan.streamable(empty, sends[2]._replace(size=0))


def test_a_blob_within_one_download_buffer_is_uploaded_from_the_cache_not_streamed(tree):
    """It arrives in one read: streaming it would overlap nothing and cost a PATCH more."""
    config, a, b = tree.blobs
    fetch = _plan.plan_fetches(tree, set(), {})[2]
    send = _plan.plan_sends(tree, set(), {})[2]
    assert not _plan.streamable(fetch._replace(size=_plan.STREAM_MIN), send._replace(size=_plan.STREAM_MIN))
    assert _plan.streamable(fetch._replace(size=_plan.STREAM_MIN + 1), send._replace(size=_plan.STREAM_MIN + 1))


def test_outcomes_replace_the_planned_action_and_bytes_without_changing_the_plan(tree):
    steps = _plan.plan_fetches(tree, set(), {})
    done = _plan.apply(steps, {steps[1].digest: _plan.Outcome(_plan.CACHED, 0)})
    assert [s.action for s in done] == [_plan.DOWNLOADED, _plan.CACHED, _plan.DOWNLOADED]
    assert [s.action for s in steps] == [_plan.DOWNLOADED] * 3
    assert _plan.render_blobs(done)[1] == {"digest": steps[1].digest, "size": steps[1].size,
                                           "media_type": steps[1].media_type, "action": _plan.CACHED}


def test_steps_are_immutable(tree):
    step = _plan.plan_fetches(tree, set(), {})[0]
    with pytest.raises(AttributeError):
        step.action = _plan.CACHED


# -- foreign (non-distributable) layers ------------------------------------------------------------

FOREIGN_TYPE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


@pytest.fixture
def foreign_tree(tree):
    """The tree with a foreign layer naming urls, and a non-distributable one that names none."""
    from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import Descriptor
    with_urls = Descriptor(FOREIGN_TYPE, "sha256:" + "f" * 64, 1000, urls=["https://example.test/layer"])
    without = Descriptor(FOREIGN_TYPE, "sha256:" + "e" * 64, 900)
    return Tree(tree.top, tree.manifests, list(tree.blobs) + [with_urls, without])


def test_a_foreign_layer_with_urls_is_skipped_by_default(foreign_tree):
    digests = [b.digest for b in foreign_tree.blobs]
    fetches = _plan.plan_fetches(foreign_tree, set(), {})
    sends = _plan.plan_sends(foreign_tree, set(), {})
    # the one naming urls is left out; one without urls is an ordinary blob
    assert [s.digest for s in fetches] == [s.digest for s in sends] == digests[:3] + [digests[4]]
    assert _plan.copied_blobs(foreign_tree) == foreign_tree.blobs[:3] + [foreign_tree.blobs[4]]


def test_a_foreign_layer_is_copied_like_any_blob_when_fetched(foreign_tree):
    fetches = _plan.plan_fetches(foreign_tree, set(), {}, foreign=_plan.FETCH)
    sends = _plan.plan_sends(foreign_tree, set(), {}, foreign=_plan.FETCH)
    assert [s.digest for s in fetches] == [s.digest for s in sends] == [b.digest for b in foreign_tree.blobs]
    assert fetches[3].action == _plan.DOWNLOADED and sends[3].action == _plan.UPLOADED
