"""Foreign (non-distributable) layers against real registries that accept `urls` in manifests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import requests

from tests.support import images, seed
from tests.support.checks import play, raw_manifest
from tests.support.registry import Registry, allowing_urls
from tests.support.servers import BlobServer

TARGET = Path(__file__).parent / "targets" / "foreign_layers" / "tasks" / "main.yml"
FOREIGN_TYPE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


def windows_like_image(url: str, foreign: images.Blob) -> tuple[bytes, dict]:
    """An OCI image whose first layer is foreign (names `url`), the second an ordinary one."""
    ordinary = images.oci_single()
    document = json.loads(ordinary.manifest)
    document["layers"].insert(0, dict(foreign.descriptor(), mediaType=FOREIGN_TYPE, urls=[url]))
    return images.dump_json(document, 3), document


def blob_status(url: str, repo: str, digest: str) -> int:
    return requests.head(f"{url}/v2/{repo}/blobs/{digest}", timeout=30).status_code


def test_foreign_layers_target(ansible, tmp_path):
    foreign = images.Blob(b"a foreign base layer " * 5000, FOREIGN_TYPE)
    with BlobServer({"/layers/base.tar.gz": foreign.data}) as layers, \
            Registry(config=allowing_urls()) as source, Registry(config=allowing_urls()) as target:
        raw, _document = windows_like_image(layers.url + "/layers/base.tar.gz", foreign)
        ordinary = images.oci_single()
        for digest, data in ordinary.blobs.items():  # every blob but the foreign one
            seed.push_blob(source.url, "windows/app", digest, data)
        seed.push_manifest(source.url, "windows/app", "v1", images.OCI_MANIFEST, raw)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        assert blob_status(source.url, "windows/app", foreign.digest) == 404
        variables = {"source_registry": source.host, "target_registry": target.host, "cache_root": str(tmp_path),
                     "image_digest": digest, "foreign_digest": foreign.digest, "foreign_size": foreign.size}
        run = ansible.run_playbook(play({"ansible.builtin.include_tasks": str(TARGET)}), variables, timeout=600)
        assert run.rc == 0, run.output
        # Both targets hold the manifest byte for byte; only the fetching one holds the layer.
        for repo in ("skipped/app", "fetched/app"):
            assert raw_manifest(f"{target.host}/{repo}:v1") == raw
        assert blob_status(target.url, "skipped/app", foreign.digest) == 404
        assert blob_status(target.url, "fetched/app", foreign.digest) == 200
        assert (tmp_path / "fetch" / "blobs" / "sha256" / foreign.digest.split(":")[1]).read_bytes() == foreign.data
        assert not (tmp_path / "skip" / "blobs" / "sha256" / foreign.digest.split(":")[1]).exists()
        # Fetched once (the first real run); the source registry was never asked for it.
        assert layers.paths == ["/layers/base.tar.gz"]
        assert not [e for e in source.access_log() if foreign.digest in e.path and "imagepusher" in e.user_agent]
