"""The one-pass mirror streams each blob to the target while it downloads, and falls back safely.

Driven through the client (_copy.mirror: the copy engine between two registry endpoints) against real registries, with fault
proxies in front of them to see the overlap, cut connections and corrupt bytes. skopeo
is the oracle for what lands in the target.
"""

from __future__ import annotations

import pytest
import requests

from ansible_collections.imagepusher.registry.plugins.module_utils import _copy
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import DigestMismatchError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._registry import RegistryClient
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.support import images, seed
from tests.support.checks import assert_blobs_verify, skopeo
from tests.support.fault_proxy import FaultProxy, flip, reset, stall
from tests.support.registry import Registry

MiB = 1024 * 1024
REPO = "stream/app"


@pytest.fixture(scope="module")
def image():
    return images.build_image([images.random_layer(3, seed=70 + i, name="data/%d.bin" % i) for i in range(3)])


@pytest.fixture(scope="module")
def source(image):
    with Registry() as reg:
        seed.push(reg.url, REPO, image, "v1")
        yield reg


def mirror(source_host, target_host, cache_dir, concurrency=4, retries=3):
    transport = Transport(timeout=20, retries=retries, backoff_base=0.05, backoff_max=0.2)
    src = ImageReference.parse("%s/%s:v1" % (source_host, REPO))
    dst = ImageReference.parse("%s/copy/app:v1" % target_host)
    cache = Cache(str(cache_dir))
    try:
        # The transport's `retries` is the budget of each blob transfer.
        return _copy.mirror(RegistryClient.for_reference(src, transport), src,
                            RegistryClient.for_reference(dst, transport), dst, cache, concurrency).run(src)
    finally:
        transport.close()


def skopeo_copy(target, tmp_path):
    """skopeo reads the whole image back from the target, verifying every blob's digest."""
    skopeo("copy", "--quiet", "--src-tls-verify=false", "docker://%s/copy/app:v1" % target.host,
           "oci:%s:x" % (tmp_path / "check"))


def assert_cache_verified(cache_dir, image):
    """Every blob of the image is in the cache, and every cached file hashes to its name."""
    files = assert_blobs_verify(cache_dir)
    for digest, data in image.blobs.items():
        assert files[digest].stat().st_size == len(data)


def layer_gets(proxy, image):
    return [e for e in proxy.exchanges("GET", r"/blobs/sha256:") if e.path.rsplit("/", 1)[1] in
            {layer.digest for layer in image.layers}]


def test_each_layer_is_read_once_and_uploaded_while_it_downloads(source, image, tmp_path):
    with Registry() as target, FaultProxy(source.host) as src, FaultProxy(target.host) as dst:
        # Hold every layer download for a moment halfway: its upload must already be under way by then.
        src.add("GET", r"/blobs/sha256:", stall(0.8, after=MiB))
        result = mirror(src.host, dst.host, tmp_path / "cache")
        gets = layer_gets(src, image)
        patches = dst.exchanges("PATCH", r"/blobs/uploads/")
        assert sorted(e.path.rsplit("/", 1)[1] for e in gets) == sorted(layer.digest for layer in image.layers)
        # One PATCH per layer: streamed, not chunked. The config (stored before, from the manifest check, and
        # small) goes up with the PUT that completes its session.
        assert len(patches) == len(image.layers)
        assert len(dst.exchanges("PUT", r"/blobs/uploads/")) == len(image.blobs)
        # Every upload started before the last download ended: they overlap.
        assert max(p.started for p in patches) < max(g.ended for g in gets)
        skopeo_copy(target, tmp_path)
    assert result["changed"] and result["digest"] == image.digest
    assert result["bytes_uploaded"] == sum(layer.size for layer in image.layers) + image.config.size
    assert {b["action"] for b in result["blobs"]} == {"uploaded"}
    assert_cache_verified(tmp_path / "cache", image)


def test_the_next_download_starts_while_the_target_still_answers_the_last_upload(source, image, tmp_path):
    with Registry() as target, FaultProxy(source.host) as src, FaultProxy(target.host) as dst:
        # The target answers each upload a second after it read the last byte, as a busy registry
        # still writing what its sockets held does.
        dst.add("PATCH", r"/blobs/uploads/", stall(1.0))
        result = mirror(src.host, dst.host, tmp_path / "cache", concurrency=1)
        gets = sorted(layer_gets(src, image), key=lambda e: e.started)
        # A session's PATCH and PUT share its path; the PUT names the digest.
        patches = {e.path: e for e in dst.exchanges("PATCH", r"/blobs/uploads/")}
        patch_of = {put.target.rsplit("digest=", 1)[1].replace("%3A", ":"): patches[put.path]
                    for put in dst.exchanges("PUT", r"/blobs/uploads/") if put.path in patches}
        assert len(gets) == len(image.layers) and len(patch_of) == len(image.layers)
        # One download at a time, yet each after the first began before the target answered the
        # upload of the one before it.
        for before, after in zip(gets, gets[1:]):
            assert before.ended <= after.started < patch_of[before.path.rsplit("/", 1)[1]].ended
        skopeo_copy(target, tmp_path)
    assert result["digest"] == image.digest
    assert {b["action"] for b in result["blobs"]} == {"uploaded"}
    assert_cache_verified(tmp_path / "cache", image)


def test_a_source_drop_is_resumed_without_breaking_the_stream(source, image, tmp_path):
    with Registry() as target, FaultProxy(source.host) as src, FaultProxy(target.host) as dst:
        rule = src.add("GET", r"/blobs/sha256:%s" % image.layers[0].digest.split(":")[1], reset(after=MiB), times=1)
        result = mirror(src.host, dst.host, tmp_path / "cache")
        assert rule.hits == 1
        resumed = [e for e in layer_gets(src, image) if e.header("Range")]
        assert [e.header("Range") for e in resumed] == ["bytes=%d-" % MiB]
        # The resumed download continued the same upload: still one PATCH per layer, no restart.
        assert len(dst.exchanges("PATCH", r"/blobs/uploads/")) == len(image.layers)
        assert len(dst.exchanges("POST", r"/blobs/uploads/")) == len(image.blobs)
        skopeo_copy(target, tmp_path)
    assert result["retries"] >= 1
    assert_cache_verified(tmp_path / "cache", image)


def test_a_failed_upload_falls_back_to_the_cache_without_downloading_again(source, image, tmp_path):
    with Registry() as target, FaultProxy(source.host) as src, FaultProxy(target.host) as dst:
        rule = dst.add("PATCH", r"/blobs/uploads/", reset(), times=1)
        result = mirror(src.host, dst.host, tmp_path / "cache")
        assert rule.hits == 1
        assert len(layer_gets(src, image)) == len(image.layers)  # nothing downloaded twice
        # The failed stream's PATCH; the layer then goes up from the cache with its PUT (it is small).
        assert len(dst.exchanges("PATCH", r"/blobs/uploads/")) == len(image.layers)
        skopeo_copy(target, tmp_path)
    assert result["digest"] == image.digest
    assert_cache_verified(tmp_path / "cache", image)


def test_corrupt_bytes_are_never_completed_on_the_target(source, image, tmp_path):
    layer = image.layers[1]
    with Registry() as target, FaultProxy(source.host) as src, FaultProxy(target.host) as dst:
        # The first download of this layer is corrupt; the cache fetches it again from zero.
        src.add("GET", r"/blobs/%s" % layer.digest, flip(at=2 * MiB), times=1)
        result = mirror(src.host, dst.host, tmp_path / "cache")
        puts = [e for e in dst.exchanges("PUT", r"/blobs/uploads/") if layer.digest.split(":")[1] in e.target]
        assert len(puts) == 1  # the streamed session with the corrupt bytes was never completed
        # The corrupt stream was sent, then dropped; the layer then went up from the cache with its PUT.
        assert len(dst.exchanges("PATCH", r"/blobs/uploads/")) == len(image.layers)
        skopeo_copy(target, tmp_path)
    assert result["digest"] == image.digest
    assert_cache_verified(tmp_path / "cache", image)


def test_a_source_that_stays_corrupt_fails_and_the_target_gets_neither_blob_nor_tag(source, image, tmp_path):
    layer = image.layers[2]
    with Registry() as target, FaultProxy(source.host) as src, FaultProxy(target.host) as dst:
        src.add("GET", r"/blobs/%s" % layer.digest, flip(at=MiB))
        with pytest.raises(DigestMismatchError):
            mirror(src.host, dst.host, tmp_path / "cache")
        assert not [e for e in dst.exchanges("PUT") if layer.digest.split(":")[1] in e.target]
        assert seed_head(target, "/v2/copy/app/blobs/%s" % layer.digest) == 404
        assert seed_head(target, "/v2/copy/app/manifests/v1") == 404
    assert not (tmp_path / "cache" / "blobs" / "sha256" / layer.digest.split(":", 1)[1]).exists()


def seed_head(registry, path):
    return requests.head(registry.url + path, timeout=10).status_code
