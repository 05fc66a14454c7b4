"""image_push with source=: a one-pass mirror, checked by skopeo and the registries' access logs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.support.checks import assert_blobs_verify, play, raw_manifest, skopeo
from tests.support.registry import Registry

TARGET = Path(__file__).parent / "targets" / "image_push_source" / "tasks" / "main.yml"


def test_mirror_from_source(ansible, registry, samples, tmp_path):
    multi = samples["multi"].obj
    digests = {"multi": multi.digest, "multi_amd64": multi.image_for("amd64").digest,
               "docker_v2": samples["docker_v2"].obj.digest}
    with Registry() as target:
        run = ansible.run_playbook(play({"ansible.builtin.include_tasks": str(TARGET)}),
                                   {"source_registry": registry.host, "target_registry": target.host,
                                    "digests": digests, "cache_root": str(tmp_path)}, timeout=600)
        assert run.rc == 0, run.output
        # A third party reads back exactly the source bytes, and copies every blob we uploaded.
        for repo, want in (("mirror/multi:v1", multi.digest), ("mirror/multi-amd64:v1", digests["multi_amd64"]),
                           ("mirror/docker-v2:v1", digests["docker_v2"])):
            assert "sha256:" + hashlib.sha256(raw_manifest(f"{target.host}/{repo}")).hexdigest() == want
        skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{target.host}/mirror/multi:v1",
               f"oci:{tmp_path / 'copy'}:x")
        # The cache is left as image_pull leaves it: named, complete, readable by skopeo.
        cache = tmp_path / "multi"
        index = json.loads((cache / "index.json").read_text())
        names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
        assert names == [samples["multi"].ref]
        skopeo("inspect", f"oci:{cache}:{samples['multi'].ref}")
        assert_blobs_verify(cache)


def test_current_target_costs_one_head_per_registry(ansible, registry, samples, tmp_path):
    with Registry() as target:
        args = {"source": samples["multi"].ref, "target": f"{target.host}/m/multi:v1", "cache_dir": str(tmp_path)}
        first = ansible.run_module("image_push", args)
        assert first.rc == 0 and first.changed, first.msg
        mark_source, mark_target = registry.mark(), target.mark()
        again = ansible.run_module("image_push", args)
        assert again.rc == 0 and not again.changed, again.msg
        seen = [(e.method, e.path) for e in registry.access_log(since=mark_source) + target.access_log(since=mark_target)]
        assert sorted(seen) == sorted([("HEAD", "/v2/test/multi/manifests/v1"), ("HEAD", "/v2/m/multi/manifests/v1")])


def test_current_target_with_an_empty_cache_costs_one_head_per_registry(ansible, registry, samples, tmp_path):
    """As in a fresh AWX job: nothing cached, the target current. The image is not read at all."""
    with Registry() as target:
        dst = f"{target.host}/m/multi:v1"
        first = ansible.run_module("image_push", {"source": samples["multi"].ref, "target": dst,
                                                  "cache_dir": str(tmp_path / "first")})
        assert first.rc == 0 and first.changed, first.msg
        mark_source, mark_target = registry.mark(), target.mark()
        again = ansible.run_module("image_push", {"source": samples["multi"].ref, "target": dst,
                                                  "cache_dir": str(tmp_path / "empty")})
        assert again.rc == 0 and not again.changed, again.msg
        seen = [(e.method, e.path) for e in registry.access_log(since=mark_source) + target.access_log(since=mark_target)]
        assert sorted(seen) == sorted([("HEAD", "/v2/test/multi/manifests/v1"), ("HEAD", "/v2/m/multi/manifests/v1")])
    result = again.result
    assert result["digest"] == result["source_digest"] == samples["multi"].digest
    assert result["media_type"] == first.result["media_type"]
    assert (result["cached"], result["bytes_downloaded"], result["bytes_uploaded"], result["blobs"]) == (False, 0, 0, [])
    assert not (tmp_path / "empty" / "index.json").exists()
