"""image_mirror with cache: false: blobs relayed registry -> registry, verified, nothing kept on disk.

Real registries on both sides; skopeo reads the result back; the fault proxy drops and corrupts the
source's bodies; the registries' access logs say what a run asked of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.integration.test_foreign_layers import FOREIGN_TYPE, blob_status, windows_like_image
from tests.integration.test_image_mirror_referrers import manifest_bytes, signed_source
from tests.support import artifacts, images, seed
from tests.support.ansible import make_collections_dir
from tests.support.checks import play, raw_manifest, skopeo
from tests.support.fault_proxy import MiB, FaultProxy, flip, reset
from tests.support.registry import Registry, allowing_urls
from tests.support.servers import BlobServer

TARGET = Path(__file__).parent / "targets" / "image_mirror_no_cache" / "tasks" / "main.yml"
MODULE = "ansible_collections.imagepusher.registry.plugins.modules.image_mirror"


def digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def uploads_finished(registry, since=0):
    """The digests of the blob uploads a registry completed (PUT .../blobs/uploads/...?digest=)."""
    return sorted(q.split("digest=")[1].split("&")[0].replace("%3A", ":")
                  for q in [e.query for e in registry.access_log(since=since)
                            if e.method == "PUT" and "/blobs/uploads/" in e.path and e.status == 201])


def mirror_large_through(ansible, proxy, samples, target, repo, **options):
    """image_mirror with cache: false of the large sample, read through `proxy`, to `target`/`repo`:v1."""
    return ansible.run_module("image_mirror", dict({
        "images": [{"source": f"{proxy.host}/{samples['large'].repo}:v1", "target": f"{target.host}/{repo}:v1"}],
        "cache": False}, **options))


def assert_abandoned(target, repo, layer):
    """A relay that failed: its upload session was deleted, the blob never completed, the tag never set."""
    assert [e for e in target.access_log() if e.method == "DELETE" and "/blobs/uploads/" in e.path]
    assert requests.head(f"{target.url}/v2/{repo}/manifests/v1", timeout=10).status_code == 404
    assert layer not in uploads_finished(target)


def test_image_mirror_no_cache_target(ansible, registry, samples, tmp_path):
    digests = {name: samples[name].digest for name in ("multi", "large", "docker_v2")}
    with Registry() as target:
        run = ansible.run_playbook(play({"ansible.builtin.include_tasks": str(TARGET)}),
                                   {"source_registry": registry.host, "target_registry": target.host,
                                    "digests": digests, "cache_root": str(tmp_path)}, timeout=600)
        assert run.rc == 0, run.output
        (tmp_path / "check").mkdir()
        for name, repo in (("multi", "relay/multi"), ("large", "relay/large"), ("docker_v2", "relay/docker-v2")):
            # A third party reads back exactly the source's bytes, and every blob under its digest.
            assert digest_of(raw_manifest(f"{target.host}/{repo}:v1")) == digests[name]
            skopeo("copy", "--quiet", "--all", "--src-tls-verify=false", f"docker://{target.host}/{repo}:v1",
                   f"oci:{tmp_path / 'check' / name}:x")
        # Each blob went up once (the second run found them all), and nothing reached a cache.
        finished = uploads_finished(target)
        assert len(finished) == len(set(finished))
    assert not (tmp_path / "never").exists() and not ansible.cache_dir.exists()


def test_a_current_target_costs_one_head_on_each_registry(ansible, registry, samples):
    with Registry() as target:
        args = {"images": [{"source": samples[n].ref, "target": f"{target.host}/warm/{n}:v1"} for n in ("multi", "large")],
                "cache": False}
        first = ansible.run_module("image_mirror", args)
        assert first.rc == 0 and first.changed, first.msg
        mark_source, mark_target = registry.mark(), target.mark()
        again = ansible.run_module("image_mirror", args)
        assert again.rc == 0 and not again.changed, again.msg
        seen = sorted((e.method, e.path) for e in registry.access_log(since=mark_source) + target.access_log(since=mark_target))
    assert seen == sorted([("HEAD", f"/v2/{samples[n].repo}/manifests/v1") for n in ("multi", "large")]
                          + [("HEAD", f"/v2/warm/{n}/manifests/v1") for n in ("multi", "large")])
    assert not ansible.cache_dir.exists()


def test_nothing_is_written_on_the_host(registry, samples, tmp_path):
    """The module process itself (no Ansible around it), with HOME, TMPDIR and its working directory empty."""
    home, tmp, cwd, setup = (tmp_path / d for d in ("home", "tmp", "cwd", "setup"))
    for directory in (home, tmp, cwd, setup):
        directory.mkdir()
    collections = make_collections_dir(setup / "collections")
    with Registry() as target:
        args = setup / "args.json"
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
            "images": [{"source": samples["large"].ref, "target": f"{target.host}/local/large:v1"}],
            "cache": False, "cache_dir": str(tmp_path / "cache"), "progress": False}}))
        env = dict(os.environ, PYTHONPATH=str(collections), HOME=str(home), TMPDIR=str(tmp), XDG_CACHE_HOME="")
        proc = subprocess.run([sys.executable, "-B", "-m", MODULE, str(args)], cwd=str(cwd), env=env,
                              capture_output=True, check=False, timeout=300)
        result = json.loads(proc.stdout)
        assert not result.get("failed"), result
        assert result["images"][0]["digest"] == samples["large"].digest
    assert [list(d.iterdir()) for d in (home, tmp, cwd)] == [[], [], []]
    assert not (tmp_path / "cache").exists()


def test_a_source_that_lies_fails_and_the_target_gets_no_tag(ansible, registry, samples):
    large = samples["large"].obj
    layer = large.layers[0].digest
    with FaultProxy(registry.host) as proxy, Registry() as target:
        proxy.add("GET", f"/blobs/{layer}$", flip(at=3 * MiB))  # every time
        run = mirror_large_through(ansible, proxy, samples, target, "lie/large", retries=1)
        assert run.failed and run.rc != 0
        assert layer in run.msg and "expected" in run.msg, run.msg
        assert "Traceback" not in run.msg
        # No tag, no such blob; its upload session was deleted.
        assert_abandoned(target, "lie/large", layer)
        assert requests.head(f"{target.url}/v2/lie/large/blobs/{layer}", timeout=10).status_code == 404
        assert not [e for e in target.access_log() if e.method == "PUT" and "/manifests/" in e.path]


def test_a_source_that_drops_mid_blob_is_resumed_with_range(ansible, registry, samples):
    large = samples["large"].obj
    layer = large.layers[0].digest
    with FaultProxy(registry.host) as proxy, Registry() as target:
        rule = proxy.add("GET", f"/blobs/{layer}$", reset(after=5 * MiB + 4321), times=1)
        run = mirror_large_through(ansible, proxy, samples, target, "drop/large")
        assert run.rc == 0 and run.changed, run.msg
        assert rule.hits == 1
        gets = proxy.exchanges("GET", f"/blobs/{layer}$")
        # Resumed from what arrived (a reset may discard what the socket held unread).
        assert len(gets) == 2 and gets[0].header("Range") is None
        resumed_at = int(gets[1].header("Range")[len("bytes="):-1])
        assert 4 * MiB <= resumed_at <= 5 * MiB + 4321
        # The upload never noticed: one PATCH per layer (the config, read while planning, goes up with its PUT),
        # and the target holds the source's image.
        patches = [e for e in target.access_log() if e.method == "PATCH"]
        assert len(patches) == len(large.layers)
        assert digest_of(raw_manifest(f"{target.host}/drop/large:v1")) == large.digest
        assert requests.head(f"{target.url}/v2/drop/large/blobs/{layer}", timeout=10).status_code == 200
        image = run.result["images"][0]
        assert image["bytes_downloaded"] >= image["bytes_uploaded"] == sum(len(b) for b in large.blobs.values())


def test_parallel_images_sharing_a_layer_upload_it_once(ansible, registry, samples):
    multi = samples["multi"].obj
    amd64, arm64 = multi.image_for("amd64"), multi.image_for("arm64", variant="v8")
    shared = set(amd64.blobs) & set(arm64.blobs)
    assert len(shared) == 1
    with Registry() as target:
        run = ansible.run_module("image_mirror", {
            "images": [{"source": samples["multi"].ref, "target": f"{target.host}/fleet/amd64:v1", "platforms": ["linux/amd64"]},
                       {"source": samples["multi"].ref, "target": f"{target.host}/fleet/arm64:v1", "platforms": ["linux/arm64"]}],
            "cache": False, "image_concurrency": 2})
        assert run.rc == 0 and run.changed, run.msg
        finished = uploads_finished(target)
        mounts = [e for e in target.access_log() if e.method == "POST" and "mount=" in e.query and e.status == 201]
    assert sorted(finished) == sorted(set(amd64.blobs) | set(arm64.blobs))  # each blob went up once
    assert len(mounts) == 1 and list(shared)[0].replace(":", "%3A") in mounts[0].query
    actions = sorted(b["action"] for image in run.result["images"] for b in image["blobs"] if b["digest"] in shared)
    assert actions == ["mounted", "uploaded"]
    assert [i["digest"] for i in run.result["images"]] == [amd64.digest, arm64.digest]


def test_an_upload_cut_mid_blob_starts_over_from_the_source(ansible, registry, samples):
    """Distribution loses a session whose PATCH was cut (bench/RESULTS.md): the relay reads the blob again
    from byte 0 (the hash kept for byte 0), in a new session, and the target gets it right."""
    large = samples["large"].obj
    layer = large.layers[0].digest
    with Registry() as target, FaultProxy(target.host) as proxy:
        rule = proxy.add("PATCH", "/blobs/uploads/", reset(), header=("Content-Length", r"^%d$" % len(large.blobs[layer])),
                         times=1)
        mark = registry.mark()
        run = ansible.run_module("image_mirror", {
            "images": [{"source": samples["large"].ref, "target": f"{proxy.host}/cut/large:v1"}], "cache": False})
        assert run.rc == 0 and run.changed, run.msg
        assert rule.hits == 1 and run.result["images"][0]["retries"] >= 1
        assert len([e for e in registry.access_log(since=mark) if e.method == "GET" and e.path.endswith(layer)]) == 2
        assert digest_of(raw_manifest(f"{target.host}/cut/large:v1")) == large.digest
        assert layer in uploads_finished(target)


def test_referrers_are_relayed_too(ansible):
    with Registry() as source, Registry() as target:
        parts = signed_source(source.url)
        args = {"images": [{"source": f"{source.host}/signed/app:v1", "target": f"{target.host}/signed/app:v1"}],
                "referrers": True, "cache": False}
        first = ansible.run_module("image_mirror", args)
        assert first.rc == 0 and first.changed, first.msg
        assert len(first.result["images"][0]["referrers"]) == 4
        for name in ("signature", "sbom", "sbom_signature"):
            assert manifest_bytes(target.url, "signed/app", parts[name].digest) == parts[name].manifest
        cosign_tag = artifacts.fallback_tag(parts["image"].digest) + ".sig"
        assert digest_of(raw_manifest(f"{target.host}/signed/app:{cosign_tag}")) == parts["cosign"].digest
        again = ansible.run_module("image_mirror", args)
        assert again.rc == 0 and not again.changed, again.msg
    assert not ansible.cache_dir.exists()


def test_a_fetched_foreign_layer_is_relayed_from_its_url(ansible):
    foreign = images.Blob(b"a foreign base layer " * 5000, FOREIGN_TYPE)
    with BlobServer({"/layers/base.tar.gz": foreign.data}) as layers, \
            Registry(config=allowing_urls()) as source, Registry(config=allowing_urls()) as target:
        raw, _document = windows_like_image(layers.url + "/layers/base.tar.gz", foreign)
        for digest, data in images.oci_single().blobs.items():
            seed.push_blob(source.url, "windows/app", digest, data)
        seed.push_manifest(source.url, "windows/app", "v1", images.OCI_MANIFEST, raw)
        run = ansible.run_module("image_mirror", {
            "images": [{"source": f"{source.host}/windows/app:v1", "target": f"{target.host}/fetched/app:v1"}],
            "foreign_layers": "fetch", "cache": False})
        assert run.rc == 0 and run.changed, run.msg
        assert raw_manifest(f"{target.host}/fetched/app:v1") == raw
        assert blob_status(target.url, "fetched/app", foreign.digest) == 200
        assert layers.paths == ["/layers/base.tar.gz"]
    assert not ansible.cache_dir.exists()


ROLE_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: mirror with the role, keeping nothing
      ansible.builtin.include_role:
        name: imagepusher.registry.mirror_images
      vars:
        mirror_images_cache: false
        mirror_images_cache_dir: "{{ cache_root }}/never"
        mirror_images_list:
          - source: "{{ source }}"
            target: "{{ target }}"
    - name: check
      ansible.builtin.assert:
        that:
          - mirror_images_results | map(attribute='cached') | list == [false]
          - mirror_images_results | map(attribute='pushed') | list == [true]
          - mirror_images_results | map(attribute='pulled') | list == [true]
        fail_msg: "{{ mirror_images_results | to_json }}"
"""


def test_the_role_passes_mirror_images_cache(ansible, registry, samples, tmp_path):
    with Registry() as target:
        run = ansible.run_playbook(ROLE_PLAY, {"source": samples["docker_v2"].ref, "target": f"{target.host}/role/app:v1",
                                               "cache_root": str(tmp_path)}, timeout=600)
        assert run.rc == 0, run.output
        assert digest_of(raw_manifest(f"{target.host}/role/app:v1")) == samples["docker_v2"].digest
    assert not (tmp_path / "never").exists() and not ansible.cache_dir.exists()


def test_a_source_that_keeps_dropping_fails_cleanly_mid_upload(ansible, registry, samples):
    """The source fails for good while the target's PATCH is under way: the error is the source's, the session is
    deleted, and the target gets no tag."""
    large = samples["large"].obj
    layer = large.layers[0].digest
    with FaultProxy(registry.host) as proxy, Registry() as target:
        proxy.add("GET", f"/blobs/{layer}$", reset(after=2 * MiB))  # every time
        run = mirror_large_through(ansible, proxy, samples, target, "gone/large", retries=1)
        assert run.failed and "dropped" in run.msg and proxy.host in run.msg, run.msg
        assert "Traceback" not in run.msg and "BodySourceFailed" not in run.msg
        assert len(proxy.exchanges("GET", f"/blobs/{layer}$")) == 2  # the first GET and one resume
        assert_abandoned(target, "gone/large", layer)
