"""image_mirror with tag rules (sync): a seeded repository, what each rule copies, checked against the real registries."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._registry import RegistryClient
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.support import images, seed
from tests.support.checks import play, raw_manifest
from tests.support.registry import Registry

TARGET = Path(__file__).parent / "targets" / "image_mirror_sync" / "tasks" / "main.yml"
# tag -> the image it names (latest is 2.0's image, as in real repositories)
SEEDED_TAGS = ["1.0", "1.2.3", "v1.10.0", "1.11.0-rc1", "2.0", "latest", "foo"]
# (entry, target repository, tag) the target's rules select, in the documented order
SELECTED = [(0, "semver", "v1.10.0"), (0, "semver", "1.2.3"), (1, "newest", "2.0"), (1, "newest", "v1.10.0"),
            (2, "named", "foo"), (4, "pre", "1.11.0-rc1"), (4, "pre", "v1.10.0"), (4, "pre", "1.2.3"),
            (5, "plain", "1.0")]


def tagged_image(tag: str) -> images.Image:
    base = images.tar_layer({"base/file.txt": b"shared base layer\n" * 64})
    return images.build_image([base, images.tar_layer({f"app/{tag}.txt": f"release {tag}\n".encode() * 32})],
                              labels={"version": tag})


@pytest.fixture(scope="module")
def sync_source():
    """A registry whose repository sync/app holds SEEDED_TAGS; (registry, {tag: digest})."""
    with Registry() as reg:
        digests = {}
        for tag in SEEDED_TAGS:
            digests[tag] = seed.push(reg.url, "sync/app", tagged_image("2.0" if tag == "latest" else tag), tag)
        yield reg, digests


def target_tags(registry: Registry, repository: str) -> list[str]:
    response = requests.get(f"{registry.url}/v2/{repository}/tags/list", timeout=10)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return sorted(response.json().get("tags") or [])


def test_image_mirror_sync_target(ansible, sync_source, tmp_path):
    source, digests = sync_source
    with Registry() as target:
        expected = [{"entry": entry, "source": f"{source.host}/sync/app:{tag}",
                     "target": f"{target.host}/sync/{repo}:{tag}", "digest": digests[tag]}
                    for entry, repo, tag in SELECTED]
        run = ansible.run_playbook(play({"ansible.builtin.include_tasks": str(TARGET)}),
                                   {"source_registry": source.host, "target_registry": target.host,
                                    "expected": expected, "cache_root": str(tmp_path)}, timeout=600)
        assert run.rc == 0, run.output
        # The entry that selects nothing warns, in check mode and for real, and creates no repository.
        for name in ("Sync by tag rules | check mode", "Sync by tag rules | real"):
            assert [w for w in run.task(name).warnings if "images[3]: the tag rules select none of the 7 tags of "
                    f"{source.host}/sync/app; nothing mirrored for this entry" in w], run.task(name).record
        # Exactly the selected tags landed, each with the source's bytes.
        for repo in ("semver", "newest", "named", "none", "pre", "plain"):
            assert target_tags(target, f"sync/{repo}") == sorted(t for _e, r, t in SELECTED if r == repo)
        for entry in expected:
            assert "sha256:" + hashlib.sha256(raw_manifest(entry["target"])).hexdigest() == entry["digest"]


@pytest.mark.parametrize("image, message", [
    ({"source": "{src}/sync/app:1.0", "target": "{dst}/bad/app", "tags": {"latest": 1}},
     "images[1].source: with tags, source must be a repository without a tag or digest"),
    ({"source": "{src}/sync/app", "target": "{dst}/bad/app:v1", "tags": {"latest": 1}},
     "images[1].target: with tags, target must be a repository without a tag or digest"),
    ({"source": "{src}/sync/app", "target": "{dst}/bad/app", "tags": {"latest": 0}},
     "images[1].tags.latest: must be a whole number of at least 1, not 0"),
    ({"source": "{src}/sync/app", "target": "{dst}/bad/app", "tags": {"include": ["v(1"]}},
     "images[1].tags.include[0]: 'v(1' is not a valid regular expression"),
    ({"source": "{src}/sync/app", "target": "{dst}/bad/app", "tags": {"semver": ">=1.2 <"}},
     "images[1].tags.semver: '<' in '>=1.2 <' is not a version"),
    ({"source": "{src}/sync/app", "target": "{dst}/bad/app", "tags": {"newest": 2}},
     "newest"),  # Ansible's own check of the suboptions names the key
])
def test_bad_tag_rules_fail_before_anything_moves(ansible, sync_source, tmp_path, image, message):
    source, _digests = sync_source
    with Registry() as target:
        entries = [{"source": f"{source.host}/sync/app:1.0", "target": f"{target.host}/bad/first"},
                   {k: v.format(src=source.host, dst=target.host) if isinstance(v, str) else v for k, v in image.items()}]
        marks = source.mark(), target.mark()
        result = ansible.run_module("image_mirror", {"images": entries, "cache_dir": str(tmp_path / "cache")})
        assert result.failed and message in result.msg, result.msg
        assert "Traceback" not in result.msg
        assert source.access_log(since=marks[0]) == [] and target.access_log(since=marks[1]) == []
    assert not (tmp_path / "cache").exists()


def test_tag_listing_against_the_real_registry(sync_source):
    """Distribution 2.8.2 (Debian's) ignores ?n= on tags/list: one page, no Link, every tag.

    So the client asks for small pages and still gets every tag in one request; Link
    pagination itself is tested in tests/unit (test__registry: pages, another host, loops).
    """
    source, _digests = sync_source
    transport = Transport(timeout=20, retries=0)
    try:
        client = RegistryClient.for_reference(ImageReference.parse(f"{source.host}/sync/app"), transport)
        mark = source.mark()
        tags = client.list_tags("sync/app", page_size=2)
        pages = [e for e in source.access_log(since=mark) if e.path.startswith("/v2/sync/app/tags/list")]
    finally:
        transport.close()
    assert sorted(tags) == sorted(SEEDED_TAGS) and len(tags) == len(SEEDED_TAGS)
    assert [(e.query, e.status) for e in pages] == [("n=2", 200)]
