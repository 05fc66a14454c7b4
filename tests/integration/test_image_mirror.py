"""image_mirror: a list of images in one task, checked by skopeo and the registries' access logs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.checks import play, raw_manifest
from tests.support.registry import Registry

TARGET = Path(__file__).parent / "targets" / "image_mirror" / "tasks" / "main.yml"


# The target once more through requests: IMAGEPUSHER_HTTP=requests is the way back users are offered for one
# release, so it must still mirror (that the variable selects requests is tests/unit/test_lazy_imports.py's).
@pytest.mark.parametrize("http_layer", [None, "requests"], ids=["http.client", "requests"])
def test_image_mirror_target(ansible, registry, samples, tmp_path, http_layer):
    multi = samples["multi"].obj
    digests = {"multi": multi.digest, "multi_amd64": multi.image_for("amd64").digest,
               "docker_v2": samples["docker_v2"].obj.digest}
    with Registry() as target:
        run = ansible.run_playbook(play({"ansible.builtin.include_tasks": str(TARGET)}),
                                   {"source_registry": registry.host, "target_registry": target.host,
                                    "digests": digests, "cache_root": str(tmp_path)}, timeout=600,
                                   env={"IMAGEPUSHER_HTTP": http_layer})
        assert run.rc == 0, run.output
        # A third party reads back exactly the source bytes.
        wanted = (("list/multi:v1", digests["multi"]), ("list/docker-v2:v1", digests["docker_v2"]),
                  ("list/multi-amd64:v1", digests["multi_amd64"]), ("stops/oci-single:v1", samples["oci_single"].digest))
        for repo, want in wanted:
            assert "sha256:" + hashlib.sha256(raw_manifest(f"{target.host}/{repo}")).hexdigest() == want
        # Entries refused before the run moved nothing; the stopped list never reached its third image.
        paths = [e.path for e in target.access_log()]
        assert not [p for p in paths if p.startswith("/v2/refused/")]
        assert not [p for p in paths if p.startswith("/v2/stops/docker-v2/")]


def test_current_list_costs_one_head_per_image_on_each_registry(ansible, registry, samples, tmp_path):
    images = [{"source": samples[name].ref, "target": f"{{host}}/warm/{name}:v1"}
              for name in ("multi", "docker_v2", "oci_single")]
    with Registry() as target:
        args = {"images": [dict(i, target=i["target"].format(host=target.host)) for i in images],
                "cache_dir": str(tmp_path / "cache")}
        first = ansible.run_module("image_mirror", args)
        assert first.rc == 0 and first.changed, first.msg
        mark_source, mark_target = registry.mark(), target.mark()
        args["cache_dir"] = str(tmp_path / "empty")  # as in a fresh AWX job: nothing cached
        again = ansible.run_module("image_mirror", args)
        assert again.rc == 0 and not again.changed, again.msg
        seen = sorted((e.method, e.path) for e in registry.access_log(since=mark_source) + target.access_log(since=mark_target))
    expected = sorted([("HEAD", f"/v2/{samples[n].repo}/manifests/v1") for n in ("multi", "docker_v2", "oci_single")]
                      + [("HEAD", f"/v2/warm/{n}/manifests/v1") for n in ("multi", "docker_v2", "oci_single")])
    assert seen == expected
    assert [r["digest"] for r in again.result["images"]] == [samples[n].digest for n in ("multi", "docker_v2", "oci_single")]


def test_a_cold_copy_gets_the_source_manifest_without_a_head_and_a_cached_name_keeps_the_head(
        ansible, registry, samples, tmp_path):
    sample = samples["docker_v2"]
    tag_path = f"/v2/{sample.repo}/manifests/v1"
    args = {"images": [{"source": sample.ref, "target": "{host}/cold/app:v1"}], "cache_dir": str(tmp_path / "cache")}

    def mirror(target):
        mark = registry.mark()
        run = ansible.run_module("image_mirror", dict(args, images=[dict(args["images"][0], target=args["images"][0][
            "target"].format(host=target.host))]))
        assert run.rc == 0 and run.changed, run.msg
        assert run.result["images"][0]["digest"] == sample.digest
        return [(e.method, e.path) for e in registry.access_log(since=mark) if "/manifests/" in e.path]

    with Registry() as target:
        # Nothing cached, nothing on the target: the manifest is read anyway, so the tag is read by GET alone.
        assert mirror(target) == [("GET", tag_path)]
    with Registry() as other:
        # The name is cached: a HEAD shows the cache current, and nothing is read (only GETs count against
        # Docker Hub's pull limit).
        assert mirror(other) == [("HEAD", tag_path)]
        missing = ansible.run_module("image_mirror", {"images": [{"source": f"{registry.host}/{sample.repo}:nope",
                                                                  "target": f"{other.host}/cold/app:nope"}],
                                                      "cache_dir": str(tmp_path / "cache")})
    assert missing.rc != 0
    assert f"has no tag 'nope' in repository {sample.repo}" in missing.msg, missing.msg
