"""Hostile registries: what a real registry never serves, from tests/support/hostile_registry.py.

Distribution validates what it stores, so a digest that is a path, an unknown algorithm, a
manifest over 4 MiB, a descriptor whose size lies, invalid JSON, an index nested without
end, thousands of layers, or an upload Location on another host can only come from a
registry that is broken or hostile. For each, through real ansible-playbook (one run for
all of them): a clear error (asserted on ``msg``), no traceback, nothing cached that is not
verified, and nothing written outside cache_dir (a sandbox around the caches is hashed
before and after).

Run: .venv/bin/python -m pytest tests/integration/test_hostile_registries.py -q
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import images
from tests.support.ansible import AnsibleWorkspace, PlaybookRun
from tests.support.checks import INFO, PULL, PUSH, assert_blobs_verify, failed, ok, play, read_index, task, \
    tree_snapshot
from tests.support.hostile_registry import HostileRegistry, sha256
from tests.support.object_store import other_loopback_host

pytestmark = [pytest.mark.ansible]

MiB = 1024 * 1024
OCI_MANIFEST = images.OCI_MANIFEST
OCI_INDEX = images.OCI_INDEX
LAYER = images.OCI_LAYER_GZIP
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_DESCRIPTORS = 1000


def manifest_bytes(config: images.Blob, layers: list[dict], **extra) -> bytes:
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(), "layers": layers}
    document.update(extra)
    return json.dumps(document, indent=3).encode()


def good_image(tag: str) -> images.Image:
    return images.build_image([images.tar_layer({f"hostile/{tag}.txt": f"{tag}\n".encode() * 50})],
                              labels={"hostile": tag})


@dataclass
class Scenario:
    """One hostile repository: how a module meets it, and what the failure must say."""

    module: str
    expect: tuple[str, ...]  # regexes searched in msg (case-insensitive)
    extra: dict | None = None


# The answers each scenario's failure must contain; the repositories are built in ``hostile`` below.
SCENARIOS = {
    "path-digest": Scenario(PULL, (r"layers\[0\] has an invalid digest", re.escape("'sha256:../../../../escaped'"))),
    "absolute-digest": Scenario(PULL, (r"config has an invalid digest", r"only lowercase hex digits")),
    "unknown-algorithm": Scenario(PULL, (r"invalid digest", r"unsupported algorithm 'md5'")),
    "huge-manifest": Scenario(PULL, (r"larger than the %d-byte limit" % MAX_MANIFEST_BYTES,)),
    "size-smaller": Scenario(PULL, (r"more than the \d+ bytes the manifest declares",)),
    "size-larger": Scenario(PULL, (r"ending the body early",)),
    "invalid-json": Scenario(PULL, (r"is not valid JSON",)),
    "endless-index": Scenario(PULL, (r"nests deeper than 3 levels",)),
    "many-layers": Scenario(PULL, (r"has 3000 layers; at most %d" % MAX_DESCRIPTORS,)),
    "digest-header-lies": Scenario(PULL, (r"expected sha256:0{64}",)),
    "index-path-digest": Scenario(INFO, (r"manifests\[0\] has an invalid digest",)),
    "tag-loop": Scenario(INFO, (r"repeats a page",), {"list_tags": True}),
    "upload-elsewhere": Scenario(PUSH, (r"another host", r"refusing")),
}


def build(evil: HostileRegistry, elsewhere: HostileRegistry, sandbox: Path) -> dict:
    """Script every hostile repository on ``evil``; returns scenario -> details the tests check."""
    info = {}

    def repo_with_config(name, tag):
        img = good_image(tag)
        repo = evil.repo(f"bad/{name}")
        repo.blobs.update(img.blobs)
        return repo, img

    # a digest that is a relative path, climbing from blobs/sha256/ to the sandbox
    repo, img = repo_with_config("path-digest", "path")
    evil_digest = "sha256:../../../../escaped"
    repo.blobs[evil_digest] = b"escaped\n"
    repo.manifest("v1", manifest_bytes(img.config, [{"mediaType": LAYER, "digest": evil_digest, "size": 8}]),
                  OCI_MANIFEST)
    # a digest that is an absolute path into the sandbox
    repo, img = repo_with_config("absolute-digest", "absolute")
    absolute = "sha256:" + str(sandbox / "absolute-escape")
    repo.blobs[absolute] = b"escaped\n"
    bad_config = {"mediaType": images.OCI_CONFIG, "digest": absolute, "size": 8}
    repo.manifest("v1", json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": bad_config,
                                    "layers": [img.layers[0].descriptor()]}).encode(), OCI_MANIFEST)
    # an algorithm nobody supports
    repo, img = repo_with_config("unknown-algorithm", "md5")
    repo.manifest("v1", manifest_bytes(img.config, [{"mediaType": LAYER, "digest": "md5:" + "ab" * 16,
                                                     "size": 10}]), OCI_MANIFEST)
    # a manifest over 4 MiB (valid JSON otherwise)
    repo, img = repo_with_config("huge-manifest", "huge")
    repo.manifest("v1", manifest_bytes(img.config, [img.layers[0].descriptor()],
                                       annotations={"padding": "x" * (MAX_MANIFEST_BYTES + MiB)}), OCI_MANIFEST)
    # descriptor sizes that do not match the bytes served
    for name, delta in (("size-smaller", -10), ("size-larger", +10)):
        repo, img = repo_with_config(name, name)
        layer = img.layers[0].descriptor()
        layer["size"] += delta
        repo.manifest("v1", manifest_bytes(img.config, [layer]), OCI_MANIFEST)
        info[name] = img.layers[0].digest
    # not JSON at all
    evil.repo("bad/invalid-json").manifest("v1", b'{"schemaVersion": 2, "layers": [', OCI_MANIFEST)
    # an index nesting without end: each level a new index (50 of them), the leaf a real image
    repo, img = repo_with_config("endless-index", "endless")
    child_body, child_type = img.manifest, OCI_MANIFEST
    repo.manifest(None, child_body, child_type)
    for level in range(50):
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "annotations": {"level": str(level)},
                           "manifests": [{"mediaType": child_type, "digest": sha256(child_body),
                                          "size": len(child_body),
                                          "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
        repo.manifest(None, body, OCI_INDEX)
        child_body, child_type = body, OCI_INDEX
    repo.manifest("v1", child_body, OCI_INDEX)
    # thousands of layers
    repo, img = repo_with_config("many-layers", "many")
    layers = [{"mediaType": LAYER, "digest": sha256(b"layer %d" % i), "size": 7 + len(str(i))} for i in range(3000)]
    repo.manifest("v1", manifest_bytes(img.config, layers), OCI_MANIFEST)
    # HEAD without Docker-Content-Digest, GET with one that is not the digest of the bytes
    repo, img = repo_with_config("digest-header-lies", "lies")
    repo.manifest("v1", img.manifest, OCI_MANIFEST, head_digest_header=None, digest_header="sha256:" + "0" * 64,
                  by_digest=False)
    # an index whose child digest is a path (met by image_info)
    repo, img = repo_with_config("index-path-digest", "index-path")
    repo.manifest("v1", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:../../../../escaped-index", "size": 100,
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode(), OCI_INDEX)
    # tag list pagination that loops (met by image_info list_tags)
    repo, img = repo_with_config("tag-loop", "tag-loop")
    repo.manifest("v1", img.manifest, OCI_MANIFEST)
    repo.tag_pages = [(["v1", "v2"], "/v2/bad/tag-loop/tags/list?n=1000&page=0")]
    # a valid image to pull, then push to a repository whose upload Location is another host
    good, img = evil.repo("good/app"), good_image("good")
    good.blobs.update(img.blobs)
    good.manifest("v1", img.manifest, OCI_MANIFEST)
    info["good"] = img
    stolen = f"http://{elsewhere.host}/v2/bad/upload-elsewhere/blobs/uploads/stolen"
    target = evil.repo("bad/upload-elsewhere")
    target.upload_location = target.mount_location = stolen
    return info


@dataclass
class HostileRun:
    run: PlaybookRun
    evil: HostileRegistry
    elsewhere: HostileRegistry
    sandbox: Path
    caches: Path
    before: dict
    after: dict
    info: dict


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> HostileRun:
    root = tmp_path_factory.mktemp("hostile")
    sandbox = root / "sandbox"
    caches = sandbox / "caches"
    caches.mkdir(parents=True)
    (sandbox / "canary.txt").write_text("nothing may change around the caches\n")
    with HostileRegistry() as evil, HostileRegistry(host=other_loopback_host()) as elsewhere:
        info = build(evil, elsewhere, sandbox)
        cache_dirs = [caches / name for name in SCENARIOS] + [caches / "push"]
        before = tree_snapshot(sandbox, skip=cache_dirs)
        tasks = [task("pull good", PULL, {"name": f"{evil.host}/good/app:v1", "cache_dir": str(caches / "push")})]
        for name, scenario in SCENARIOS.items():
            args = {"name": f"{evil.host}/bad/{name}:v1", "retries": 1, "timeout": 10}
            if scenario.module == PUSH:
                args = {"name": f"{evil.host}/good/app:v1", "target": f"{evil.host}/bad/{name}:v1",
                        "cache_dir": str(caches / "push"), "retries": 1}
            elif scenario.module == INFO:
                args.update(scenario.extra or {})
            else:
                args["cache_dir"] = str(caches / name)
            tasks.append(task(name, scenario.module, args, ignore_errors=True))
        ws = AnsibleWorkspace(root / "ansible")
        try:
            run = ws.run_playbook(play(*tasks), timeout=180)
        finally:
            ws.cleanup()
        after = tree_snapshot(sandbox, skip=cache_dirs)
        yield HostileRun(run, evil, elsewhere, sandbox, caches, before, after, info)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_hostile_registry_gets_a_clear_error(hostile, name):
    result = failed(hostile.run, name)
    for pattern in SCENARIOS[name].expect:
        assert re.search(pattern, result["msg"], re.I), f"{pattern!r} not in: {result['msg']}"
    assert len(result["msg"]) < 2000, "the message floods the output"


@pytest.mark.parametrize("name", sorted(n for n, s in SCENARIOS.items() if s.module == PULL))
def test_hostile_registry_leaves_nothing_unverified_in_the_cache(hostile, name):
    cache = hostile.caches / name
    files = assert_blobs_verify(cache)
    assert read_index(cache) == {}, "a failed pull named an image"
    size_lie = hostile.info.get(name)
    if size_lie:
        assert size_lie not in files


def test_nothing_is_written_outside_cache_dir(hostile):
    assert hostile.after == hostile.before
    assert not list(hostile.sandbox.rglob("escaped*")) and not (hostile.sandbox / "absolute-escape").exists()
    # no request ever carried the path digests
    assert not [r for r in hostile.evil.requests if ".." in r.path or "absolute-escape" in r.path]


def test_upload_location_on_another_host_is_never_followed(hostile):
    ok(hostile.run, "pull good")
    assert hostile.elsewhere.requests == [], hostile.elsewhere.requests
    assert not hostile.evil.requests_for("/blobs/uploads/", method="PATCH")
    assert not hostile.evil.requests_for("/bad/upload-elsewhere/manifests/", method="PUT")
