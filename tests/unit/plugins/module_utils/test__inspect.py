# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import json
import os

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _inspect as inspect_mod
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError, NotFoundError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from tests.support import images

SINGLE = "127.0.0.1:5000/test/oci-single:v1"
MULTI = "127.0.0.1:5000/test/multi:v1"


def rich_image():
    layer = images.tar_layer({"etc/motd": b"hello\n"})
    img = images.build_image([layer], labels={"org.opencontainers.image.title": "rich"})
    config = json.loads(img.config.data)
    config["config"].update({"Entrypoint": ["/entry"], "WorkingDir": "/srv", "User": "1000:1000",
                             "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}, "Volumes": {"/data": {}},
                             "StopSignal": "SIGTERM"})
    config["author"] = "someone"
    raw = images.dump_json(config)
    config_blob = images.Blob(raw, images.OCI_CONFIG)
    manifest = json.loads(img.manifest)
    manifest["config"] = config_blob.descriptor()
    return images.Image(images.dump_json(manifest, 3), images.OCI_MANIFEST, config_blob, img.layers, img.platform)


def with_attestation(idx):
    """The index plus a buildx-style attestation manifest (platform unknown/unknown)."""
    att = images.build_image([images.tar_layer({"sbom.json": b"{}"})], platform={"os": "unknown", "architecture": "unknown"})
    doc = json.loads(idx.manifest)
    desc = att.descriptor(with_platform=True)
    desc["annotations"] = {"vnd.docker.reference.type": "attestation-manifest"}
    doc["manifests"].append(desc)
    return images.Index(images.dump_json(doc, 3), idx.media_type, idx.images + (att,))


# -- summarize_config ------------------------------------------------------------------------

def test_summarize_config_reads_every_field():
    summary = inspect_mod.summarize_config(rich_image().config.data)
    assert summary == {
        "created": images.CREATED, "author": "someone", "architecture": "amd64", "os": "linux", "variant": None,
        "labels": {"org.opencontainers.image.title": "rich"}, "entrypoint": ["/entry"], "cmd": ["/bin/sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "working_dir": "/srv",
        "user": "1000:1000", "exposed_ports": ["53/udp", "8080/tcp"], "volumes": ["/data"], "stop_signal": "SIGTERM",
    }


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe", b"null"])
def test_summarize_config_refuses_non_configs(raw):
    assert inspect_mod.summarize_config(raw) is None


def test_summarize_config_ignores_wrong_types():
    raw = json.dumps({"os": 3, "architecture": "arm64", "variant": "v8",
                      "config": {"Labels": {"a": 1, "b": "x"}, "Cmd": "sh -c true", "Env": None, "ExposedPorts": ["80"]}})
    summary = inspect_mod.summarize_config(raw.encode())
    assert summary["os"] is None and summary["architecture"] == "arm64" and summary["variant"] == "v8"
    assert summary["labels"] == {"b": "x"} and summary["cmd"] is None and summary["env"] == []
    assert summary["exposed_ports"] == []


# -- cache -----------------------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path):
    root = images.write_oci_layout(tmp_path / "cache", {
        SINGLE: images.oci_single(), MULTI: with_attestation(images.multi_arch_index()),
        "127.0.0.1:5000/test/oci-single:v2": images.oci_single(),
        "127.0.0.1:5000/test/multi:v1+linux-amd64": images.multi_arch_index().images[0],
        "127.0.0.1:5000/test/rich:v1": rich_image(),
    })
    return Cache(str(root))


def test_cache_single_image(cache):
    img = images.oci_single()
    result = inspect_mod.inspect_cache(cache, SINGLE, list_tags=True)
    assert result["exists"] and result["complete"] and result["missing"] == []
    assert result["source"] == "cache" and result["cache_name"] == SINGLE == result["reference"]
    assert result["digest"] == img.digest and result["media_type"] == images.OCI_MANIFEST
    assert result["manifest_size"] == img.size
    assert result["annotations"] == {"org.opencontainers.image.description": "imagepusher test image"}
    assert result["layers"] == [{"digest": b.digest, "size": b.size, "media_type": b.media_type} for b in img.layers]
    assert result["config"]["labels"] == {"org.opencontainers.image.title": "oci-single"}
    assert result["total_size"] == img.size + sum(len(d) for d in img.blobs.values())
    [platform] = result["platforms"]
    assert platform["platform"] == "linux/amd64" and platform["digest"] == img.digest
    assert platform["config_digest"] == img.config.digest and platform["total_size"] == result["total_size"]
    assert result["tags"] == ["v1", "v2"]  # the narrowed name's tag is v1 too
    assert result["cache_dir"] == cache.root


def test_cache_index_lists_each_platform_and_skips_attestations(cache):
    idx = with_attestation(images.multi_arch_index())
    result = inspect_mod.inspect_cache(cache, MULTI)
    assert result["digest"] == idx.digest and result["media_type"] == images.OCI_INDEX
    assert [p["platform"] for p in result["platforms"]] == ["linux/amd64", "linux/arm64/v8", "linux/s390x"]
    for entry, img in zip(result["platforms"], idx.images):
        assert entry["digest"] == img.digest and entry["size"] == img.size
        assert entry["config"]["architecture"] == img.platform["architecture"]
        assert entry["config"]["labels"] == {"arch": img.platform["architecture"] + img.platform.get("variant", "")}
        assert [layer["digest"] for layer in entry["layers"]] == [layer.digest for layer in img.layers]
        assert entry["total_size"] == img.size + sum(len(d) for d in img.blobs.values())
    assert result["config"] is None and result["layers"] == []
    # the total counts the attestation and the shared layer once
    assert result["total_size"] == sum(len(d) for d in idx.blobs.values()) + sum(len(m) for _t, m in idx.manifests.values())
    assert "tags" not in result


def test_cache_rich_config(cache):
    result = inspect_mod.inspect_cache(cache, "127.0.0.1:5000/test/rich:v1")
    assert result["config"]["entrypoint"] == ["/entry"] and result["config"]["exposed_ports"] == ["53/udp", "8080/tcp"]


def test_cache_by_digest_and_narrowed_name(cache):
    arm = images.multi_arch_index().images[0]
    result = inspect_mod.inspect_cache(cache, "127.0.0.1:5000/test/multi:v1+linux-amd64", list_tags=True)
    assert result["digest"] == arm.digest and result["tags"] == ["v1"]
    by_digest = inspect_mod.inspect_cache(cache, images.oci_single().digest)
    assert by_digest["exists"] and by_digest["digest"] == images.oci_single().digest


@pytest.mark.parametrize("name", ["127.0.0.1:5000/test/oci-single:v9", "other/repo", "sha256:" + "1" * 64])
def test_cache_absent_is_not_an_error(cache, name):
    result = inspect_mod.inspect_cache(cache, name, list_tags=True)
    assert result["exists"] is False and result["digest"] is None and result["platforms"] == []
    assert result["cache_name"] is None


def test_cache_absent_says_so_and_suggests_a_close_name(cache):
    result = inspect_mod.inspect_cache(cache, "test/multi:v1")
    assert result["exists"] is False
    assert result["msg"] == ("image test/multi:v1 is not in the cache %s (did you mean 127.0.0.1:5000/test/multi:v1 "
                             "or 127.0.0.1:5000/test/multi:v1+linux-amd64?)" % cache.root)


def test_cache_that_does_not_exist(tmp_path):
    result = inspect_mod.inspect_cache(Cache(str(tmp_path / "none")), SINGLE, list_tags=True)
    assert result["exists"] is False and result["tags"] == []
    assert not (tmp_path / "none").exists()


def test_cache_incomplete_and_damaged(cache):
    img = images.oci_single()
    os.unlink(cache.blob_path(img.layers[0].digest))
    result = inspect_mod.inspect_cache(cache, SINGLE)
    assert result["exists"] and not result["complete"] and result["missing"] == [img.layers[0].digest]
    assert len(result["layers"]) == 2  # described from the manifest all the same

    os.unlink(cache.blob_path(img.config.digest))
    assert inspect_mod.inspect_cache(cache, SINGLE)["config"] is None

    os.unlink(cache.blob_path(img.digest))
    with pytest.raises(CacheError) as raised:
        inspect_mod.inspect_cache(cache, SINGLE)
    assert "is missing" in raised.value.message and "image_pull" in raised.value.message


# -- registry (a stand-in client: the real one is covered by the integration tests) -------------

class FakeClient:
    def __init__(self, repositories):
        self.repositories = repositories  # repo -> {"tags": {tag: obj}, "objects": [...]}
        self.calls = []

    def _content(self, repository):
        repo = self.repositories.get(repository)
        if repo is None:
            return None, {}
        content = {}
        for obj in list(repo["tags"].values()):
            for digest, (media_type, raw) in obj.manifests.items():
                content[digest] = ("manifest", media_type, raw)
            for digest, raw in obj.blobs.items():
                content[digest] = ("blob", None, raw)
        return repo, content

    def head_manifest(self, repository, ref):
        self.calls.append(("HEAD", repository, ref))
        repo, content = self._content(repository)
        if repo is None:
            return None
        obj = repo["tags"].get(ref)
        if obj is not None:
            return {"digest": obj.digest, "media_type": obj.media_type, "size": obj.size}
        if ref in content and content[ref][0] == "manifest":
            return {"digest": ref, "media_type": content[ref][1], "size": len(content[ref][2])}
        return None

    def get_manifest(self, repository, ref, expected_digest=None):
        self.calls.append(("GET", repository, ref))
        repo, content = self._content(repository)
        obj = repo["tags"].get(ref) if repo else None
        if obj is not None:
            return _manifest.parse(obj.manifest, obj.media_type, expected_digest=expected_digest)
        if ref not in content:
            raise NotFoundError("manifest %s not found" % ref, status=404)
        return _manifest.parse(content[ref][2], content[ref][1], expected_digest=expected_digest)

    def get_small_blob(self, repository, digest, limit):
        self.calls.append(("BLOB", repository, digest))
        _repo, content = self._content(repository)
        return content[digest][2]

    def list_tags(self, repository):
        self.calls.append(("TAGS", repository))
        repo = self.repositories.get(repository)
        if repo is None:
            raise NotFoundError("repository %s not found" % repository, status=404)
        return list(repo["tags"])


@pytest.fixture
def client():
    return FakeClient({
        "test/multi": {"tags": {"v1": with_attestation(images.multi_arch_index()), "v2": images.multi_arch_index()}},
        "test/docker": {"tags": {"v1": images.docker_v2()}},
    })


def test_registry_index(client):
    idx = with_attestation(images.multi_arch_index())
    result = inspect_mod.inspect_registry(client, ImageReference.parse("127.0.0.1:5000/test/multi:v1"), list_tags=True)
    assert result["exists"] and result["digest"] == idx.digest and result["source"] == "registry"
    assert result["reference"] == MULTI
    assert [p["platform"] for p in result["platforms"]] == ["linux/amd64", "linux/arm64/v8", "linux/s390x"]
    assert [p["config"]["architecture"] for p in result["platforms"]] == ["amd64", "arm64", "s390x"]
    assert result["tags"] == ["v1", "v2"]
    # configs of the listed platforms only: not the attestation's
    assert len([c for c in client.calls if c[0] == "BLOB"]) == 3


def test_registry_docker_image(client):
    img = images.docker_v2()
    result = inspect_mod.inspect_registry(client, ImageReference.parse("127.0.0.1:5000/test/docker:v1"))
    assert result["media_type"] == images.DOCKER_MANIFEST and result["platforms"][0]["platform"] == "linux/amd64"
    assert result["config"]["cmd"] == ["/bin/true"] and result["config"]["labels"] == {"sample": "docker-v2"}
    assert [layer["media_type"] for layer in result["layers"]] == [images.DOCKER_LAYER_GZIP] * 2
    assert result["total_size"] == img.size + sum(len(d) for d in img.blobs.values())


def test_registry_by_digest(client):
    arm = images.multi_arch_index().image_for("arm64")
    result = inspect_mod.inspect_registry(client, ImageReference.parse("127.0.0.1:5000/test/multi@" + arm.digest))
    assert result["exists"] and result["digest"] == arm.digest
    assert result["platforms"][0]["platform"] == "linux/arm64/v8"


@pytest.mark.parametrize("reference, tags", [
    ("127.0.0.1:5000/test/multi:v9", ["v1", "v2"]),  # no such tag: the repository's tags still come back
    ("127.0.0.1:5000/test/nothing:v1", []),  # no such repository
    ("127.0.0.1:5000/test/multi@sha256:" + "2" * 64, ["v1", "v2"]),
])
def test_registry_absent_is_not_an_error(client, reference, tags):
    result = inspect_mod.inspect_registry(client, ImageReference.parse(reference), list_tags=True)
    assert result["exists"] is False and result["digest"] is None and result["total_size"] is None
    assert result["tags"] == tags and result["reference"] == reference


def test_registry_tag_deleted_between_head_and_get(client):
    class Racy(FakeClient):
        def get_manifest(self, repository, ref, expected_digest=None):
            raise NotFoundError("gone", status=404)
    racy = Racy(client.repositories)
    assert inspect_mod.inspect_registry(racy, ImageReference.parse(MULTI))["exists"] is False
