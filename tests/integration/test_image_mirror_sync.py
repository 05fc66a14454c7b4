"""image_mirror with tag rules (sync): a seeded repository, what each rule copies, checked against the real registries."""

from __future__ import annotations

import hashlib
import json
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


# -- the role: tags in mirror_images_list, and the list sharded across hosts ------------------------------------

FLEET = ["mirror-b", "mirror-a", "mirror-c"]  # not in name order: the split sorts them
ROLE_PLAY = """
- name: sync with the mirror_images role
  hosts: fleet
  gather_facts: false
  roles:
    - role: imagepusher.registry.mirror_images
      vars:
        mirror_images_list: "{{ sync_list }}"
        mirror_images_shard: "{{ sync_shard }}"
  tasks:
    - name: export results
      ansible.builtin.debug:
        var: mirror_images_results
    - name: export fleet results
      ansible.builtin.debug:
        var: mirror_images_fleet_results
      when: sync_shard
"""


def role_list(source_host: str, target_host: str) -> list[dict]:
    plain = [{"source": f"{source_host}/sync/app:{tag}", "target": f"{target_host}/fleet/plain-{n}"}
             for n, tag in enumerate(["1.0", "1.2.3", "2.0", "foo", "latest"])]
    sync = [{"source": f"{source_host}/sync/app", "target": f"{target_host}/fleet/ones", "tags": {"semver": "^1"}},
            {"source": f"{source_host}/sync/app", "target": f"{target_host}/fleet/none",
             "tags": {"latest": 1, "include": ["x.*"]}}]
    return plain + sync


def owner(entry: dict, hosts: list[str]) -> str:
    """The host the role's documented split gives an entry."""
    number = int(hashlib.sha1(f"{entry['source']} {entry['target']}".encode()).hexdigest(), 16)
    return sorted(hosts)[number % len(hosts)]


def fleet_workspace(ansible, tmp_path, hosts):
    lines = ["[fleet]"] + [f"{h} ansible_connection=local ansible_python_interpreter={ansible.python} "
                           f"mirror_images_cache_dir={tmp_path / ('cache-' + h)}" for h in hosts]
    ansible.inventory.write_text("\n".join(lines) + "\n")
    return ansible


def test_role_shards_a_sync_list_across_hosts(ansible, sync_source, tmp_path):
    source, digests = sync_source
    ws = fleet_workspace(ansible, tmp_path, FLEET)
    with Registry() as target:
        listed = role_list(source.host, target.host)
        owners = [owner(e, FLEET) for e in listed]
        assert len(set(owners)) > 1, owners  # the test means something only if the list is spread
        expected = []  # (entry, target, digest, host) for every image, by entry
        for number, entry in enumerate(listed):
            tags = {5: ["v1.10.0", "1.2.3", "1.0"], 6: []}.get(number, [entry["source"].rsplit(":", 1)[1]])
            expected.extend((number, f"{entry['target']}:{tag}", digests[tag], owners[number]) for tag in tags)
        runs = [ws.run_playbook(ROLE_PLAY, {"sync_list": listed, "sync_shard": True}, timeout=600) for _run in range(2)]
        for number, run in enumerate(runs):
            assert run.rc == 0, run.output
            fleet = None
            for host in FLEET:
                mine = run.task("export results", host).result["mirror_images_results"]
                assert [(r["entry"], r["target"], r["digest"], r["host"]) for r in mine] == [
                    e for e in expected if e[3] == host]
                assert all(r["pushed"] == (number == 0) for r in mine), mine
                seen = run.task("export fleet results", host).result["mirror_images_fleet_results"]
                assert fleet is None or seen == fleet
                fleet = seen
            assert [(r["entry"], r["target"], r["digest"], r["host"]) for r in fleet] == expected
        # each host filled its own cache with its own share only
        for host in FLEET:
            index = tmp_path / f"cache-{host}" / "index.json"
            names = sorted(m["annotations"]["org.opencontainers.image.ref.name"]
                           for m in json.loads(index.read_text())["manifests"]) if index.exists() else []
            # (a set: two entries of one host may mirror the same source tag, which the cache names once)
            assert names == sorted(set(f"{source.host}/sync/app:{e[1].rsplit(':', 1)[1]}" for e in expected if e[3] == host))


def test_role_with_tags_on_one_host(ansible, sync_source, tmp_path):
    source, digests = sync_source
    ws = fleet_workspace(ansible, tmp_path, ["solo"])
    with Registry() as target:
        listed = role_list(source.host, target.host)[4:]  # latest, the ^1 sync, the sync that selects nothing
        run = ws.run_playbook(ROLE_PLAY, {"sync_list": listed, "sync_shard": False}, timeout=600)
        assert run.rc == 0, run.output
        results = run.task("export results", "solo").result["mirror_images_results"]
    assert [(r["entry"], r["target"].rsplit("/", 1)[1], r["digest"], r["pushed"]) for r in results] == [
        (0, "plain-4:latest", digests["latest"], True), (1, "ones:v1.10.0", digests["v1.10.0"], True),
        (1, "ones:1.2.3", digests["1.2.3"], True), (1, "ones:1.0", digests["1.0"], True)]
    assert all("host" not in r for r in results)
    assert [w for w in run.task("Mirror the images from their sources to their targets, through the cache", "solo").warnings
            if "images[2]: the tag rules select none" in w]
