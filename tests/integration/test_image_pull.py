"""image_pull against the REAL registry, through real ansible-playbook.

1. The integration target (targets/image_pull/tasks/main.yml) runs once: every behaviour four
   times (check, real, check, real) with diff, plus the failure cases. This file passes it
   the registry, a cache root and the expected digests, and checks that every task ran.
2. Then the caches the target left are checked with tools that are not ours: Python's own
   hashing and JSON, and skopeo (`inspect --raw`, `inspect`, `copy`, which re-verifies
   every blob it reads).
3. Properties the playbook cannot see: requests counted in the registry's access log,
   check mode leaving the cache tree byte-identical, a blob shared by two images stored
   once, a SIGKILLed pull resumed from its partial file, two concurrent pulls into one cache.

Run: .venv/bin/python -m pytest tests/integration/test_image_pull.py -q
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support import images, seed, target_seeds
from tests.support.ansible import AnsibleWorkspace, PlaybookRun
from tests.support.throttle_proxy import MiB, ThrottleProxy

pytestmark = [pytest.mark.ansible]

TARGET = Path(__file__).resolve().parent / "targets" / "image_pull"
TARGET_PLAY = f"""\
- name: image_pull integration target
  hosts: localhost
  gather_facts: false
  roles:
    - role: {TARGET}
"""
# Repositories of our own on the shared registry: only this file writes to them.
LATEST_REPO = target_seeds.LATEST_REPO
DOCKER_LIST_REPO = target_seeds.DOCKER_LIST_REPO
MOVING_REPO = "test/image-pull-moving"
OCI_MANIFEST = images.OCI_MANIFEST
OCI_INDEX = images.OCI_INDEX
REF_NAME = images.REF_NAME_ANNOTATION


@pytest.fixture(scope="module")
def latest_image() -> images.Image:
    return target_seeds.latest_image()  # the same image ansible-test's setup_registry seeds


@pytest.fixture(scope="module")
def docker_list() -> images.Index:
    """A Docker manifest list (Docker media types throughout) of the 3 multi platforms."""
    return target_seeds.docker_list()


# -- helpers -------------------------------------------------------------------------------
def pull_task(name: str, cache_dir, *, platforms=None, check=False, register=None, **extra) -> dict:
    args = {"name": name, "cache_dir": str(cache_dir), **extra}
    if platforms:
        args["platforms"] = list(platforms)
    task = {"name": register or f"pull {name}", "imagepusher.registry.image_pull": args, "diff": True}
    if check:
        task["check_mode"] = True
    return task


def play(*tasks: dict) -> str:
    return json.dumps([{"name": "image_pull", "hosts": "localhost", "gather_facts": False,
                        "tasks": list(tasks)}], indent=2) + "\n"


def ok(run: PlaybookRun, name: str) -> dict:
    """The result of task ``name``, which must have succeeded."""
    rec = run.task(name)
    assert not rec.failed, f"{name} failed: {rec.result.get('msg')}\n{run.output}"
    return rec.result


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * MiB), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def blob_files(cache: Path) -> dict[str, Path]:
    """digest -> file, for every file under blobs/ (asserting there is nothing but sha256)."""
    blobs = cache / "blobs"
    assert sorted(p.name for p in blobs.iterdir()) == ["sha256"]
    return {"sha256:" + p.name: p for p in (blobs / "sha256").iterdir()}


def assert_blobs_verify(cache: Path) -> dict[str, Path]:
    """Every file under blobs/sha256/ is a regular file whose sha256 is its name."""
    files = blob_files(cache)
    for digest, path in files.items():
        assert path.is_file() and not path.is_symlink(), path
        assert sha256_file(path) == digest, f"{path} does not hash to its name"
    return files


def read_index(cache: Path) -> dict[str, dict]:
    """index.json checked against the OCI image-layout spec; returns ref name -> descriptor."""
    assert json.loads((cache / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((cache / "index.json").read_text())
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    names = {}
    for desc in index["manifests"]:
        assert set(desc) >= {"mediaType", "digest", "size", "annotations"}, desc
        name = desc["annotations"][REF_NAME]
        assert name not in names, f"{name} listed twice in index.json"
        names[name] = desc
    return names


def tree_snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with what identifies its content and whether it was rewritten."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            content = sha256_file(path) if path.is_file() else None
            snap[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_ino, st.st_mtime_ns, content)
    return snap


def skopeo(*args: str, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["skopeo", *args], capture_output=True, timeout=60, check=False)
    if check:
        assert proc.returncode == 0, f"skopeo {' '.join(args)} failed:\n{proc.stderr.decode()}"
    return proc


def partial_files(cache: Path) -> list[Path]:
    ingest = cache / ".imagepusher" / "ingest"
    return sorted(ingest.iterdir()) if ingest.is_dir() else []


# -- the target --------------------------------------------------------------------------
@dataclass
class TargetRun:
    run: PlaybookRun
    cache_root: Path
    extra_vars: dict
    ws: AnsibleWorkspace
    requests: list  # the registry's access log while the target ran


@pytest.fixture(scope="module")
def target(registry, samples, latest_image, docker_list, tmp_path_factory) -> TargetRun:
    seed.push(registry.url, LATEST_REPO, latest_image, "latest")
    seed.push(registry.url, DOCKER_LIST_REPO, docker_list, "v1")
    ws = AnsibleWorkspace(tmp_path_factory.mktemp("image-pull-target"))
    cache_root = ws.root / "caches"
    cache_root.mkdir()
    not_a_dir = ws.root / "a-regular-file"
    not_a_dir.write_text("not a directory\n")
    # "unreachable": a port bound but never listening, held for the whole run, so connecting
    # is refused and no other test's registry can take the port meanwhile
    unreachable = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    unreachable.bind(("127.0.0.1", 0))
    multi = samples["multi"].obj
    extra_vars = {
        "registry": registry.host,
        "registry_localhost": f"localhost:{registry.port}",
        "latest_repo": LATEST_REPO,
        "docker_list_repo": DOCKER_LIST_REPO,
        "digests": {
            "oci_single": samples["oci_single"].digest,
            "docker_v2": samples["docker_v2"].digest,
            "multi": multi.digest,
            "multi_arm64": multi.image_for("arm64").digest,
            "latest": latest_image.digest,
            "docker_list": docker_list.digest,
        },
        "cache_root": str(cache_root),
        "unreachable": "127.0.0.1:%d" % unreachable.getsockname()[1],
        "not_a_dir": str(not_a_dir),
    }
    # Pipelining: the module is piped to the interpreter instead of being copied to a temp
    # dir, chmod-ed and removed (three shell commands fewer per task, same module code).
    mark = registry.mark()
    try:
        run = ws.run_playbook(TARGET_PLAY, extra_vars, env={"ANSIBLE_PIPELINING": "True"}, timeout=240)
    finally:
        unreachable.close()
    yield TargetRun(run, cache_root, extra_vars, ws, registry.access_log(since=mark))
    ws.cleanup()


def _expected_task_names() -> Counter:
    """How many results each task of the target must produce (includes expanded)."""
    tasks_dir = TARGET / "tasks"

    def walk(tasks, counter):
        for task in tasks:
            if "block" in task:
                for section in ("block", "rescue", "always"):
                    walk(task.get(section) or [], counter)
                continue
            include = task.get("ansible.builtin.include_tasks")
            if include:
                walk(yaml.safe_load((tasks_dir / include).read_text()), counter)
                continue
            counter[task["name"]] += 1
        return counter

    return walk(yaml.safe_load((tasks_dir / "main.yml").read_text()), Counter())


def test_target_runs_every_task(target):
    run = target.run
    assert run.rc == 0, run.output
    assert "Traceback" not in run.stdout + run.stderr, run.output
    records = [r for r in run.results if r["action"] != "ansible.builtin.include_tasks"]
    # every task produced a result (a loop counts once: its summary record), none skipped
    ran = Counter(r["task"] for r in records)
    assert ran == _expected_task_names(), run.output
    assert [r["task"] for r in records if r["status"] == "skipped"] == []
    # failures only where they are the point, and every one of them ignored then asserted on
    failed = [r for r in records if r["status"] == "failed"]
    assert failed and all(r["ignore_errors"] and r["task"].startswith("Fail:") for r in failed), failed
    asserts = [r for r in records if r["action"] == "ansible.builtin.assert"]
    assert len(asserts) >= 40 and all(r["status"] == "ok" for r in asserts)


# What each cache left by the target must hold, independently of the module's own results:
# case -> (name in index.json, top Image/Index or None when it is a new narrowed index,
#          the images whose blobs and manifests must all be there, the index it was narrowed from)
def _case(case, samples, latest, docker_list):
    host = samples["multi"].host
    multi = samples["multi"].obj
    arm64, s390x = multi.image_for("arm64"), multi.image_for("s390x")
    return {
        "oci_single": (samples["oci_single"].ref, samples["oci_single"].obj, [samples["oci_single"].obj], None),
        "docker_v2": (samples["docker_v2"].ref, samples["docker_v2"].obj, [samples["docker_v2"].obj], None),
        "multi_all": (samples["multi"].ref, multi, [multi], None),
        "multi_arm64": (samples["multi"].ref + "+linux-arm64-v8", arm64, [arm64], None),
        "multi_two": (samples["multi"].ref + "+linux-arm64-v8+linux-s390x", None, [arm64, s390x], multi),
        "docker_list": (f"{host}/{DOCKER_LIST_REPO}:v1+linux-amd64+linux-arm64-v8", None,
                        [docker_list.image_for("amd64"), docker_list.image_for("arm64")], docker_list),
        "by_digest": (samples["multi"].digest_ref, multi, [multi], None),
        "latest": (f"localhost:{host.split(':')[1]}/{LATEST_REPO}:latest", latest, [latest], None),
    }[case]


CASES = ["oci_single", "docker_v2", "multi_all", "multi_arm64", "multi_two", "docker_list", "by_digest",
         "latest"]
DOCKER_CASES = {"docker_v2", "docker_list"}


@pytest.mark.parametrize("case", list(CASES))
def test_target_cache_verifies_with_independent_tools(case, target, samples, latest_image, docker_list, tmp_path):
    assert target.run.rc == 0, "the target failed; see test_target_runs_every_task"
    ref_name, top, parts, narrowed_from = _case(case, samples, latest_image, docker_list)
    cache = target.cache_root / case

    files = assert_blobs_verify(cache)
    assert partial_files(cache) == [], "a completed pull left partial downloads"

    names = read_index(cache)
    assert list(names) == [ref_name]
    entry = names[ref_name]
    annotations = entry["annotations"]
    if top is not None:
        assert (entry["digest"], entry["mediaType"], entry["size"]) == (top.digest, top.media_type, top.size)
        top_digest = top.digest
    else:
        # narrowed to two platforms: a new index of the same type listing exactly the two
        # original descriptors, unchanged
        top_digest = entry["digest"]
        assert top_digest != narrowed_from.digest
        assert entry["mediaType"] == narrowed_from.media_type
        narrowed = json.loads(files[top_digest].read_bytes())
        original = narrowed_from.parsed
        assert narrowed["schemaVersion"] == 2 and narrowed["mediaType"] == original["mediaType"]
        kept = {img.digest for img in parts}
        assert narrowed["manifests"] == [d for d in original["manifests"] if d["digest"] in kept]
        assert entry["size"] == files[top_digest].stat().st_size
    source = narrowed_from or (samples["multi"].obj if case.startswith("multi") else top)
    assert annotations.get("io.imagepusher.source.digest") == source.digest

    # exactly the image's blobs and manifests, each byte-identical to what was seeded
    expected = {}
    for obj in parts:
        expected.update(obj.blobs)
        expected.update((d, data) for d, (_mt, data) in obj.manifests.items())
    if top is None:
        expected[top_digest] = files[top_digest].read_bytes()
    assert set(files) == set(expected)
    for digest, data in expected.items():
        assert files[digest].read_bytes() == data, digest

    oci_ref = f"oci:{cache}:{ref_name}"
    if case in DOCKER_CASES:
        # skopeo 1.9.3 (Debian 12) only resolves index.json entries whose mediaType is an OCI
        # type ("no descriptor found for reference"); our cache keeps Docker manifests and
        # lists byte-exact under their Docker media types (digests preserved), so skopeo
        # cannot read these and the byte/digest checks above are the independent verification.
        assert entry["mediaType"] in (images.DOCKER_MANIFEST, images.DOCKER_LIST)
        assert hashlib.sha256(files[top_digest].read_bytes()).hexdigest() == top_digest.split(":")[1]
        return

    raw = skopeo("inspect", "--raw", oci_ref).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == top_digest
    arch = "arm64" if case in ("multi_arm64", "multi_two") else "amd64"
    info = json.loads(skopeo("--override-os", "linux", "--override-arch", arch, "inspect", oci_ref).stdout)
    assert info["Digest"] == top_digest
    assert info["Architecture"] == arch
    # skopeo copy reads and re-verifies every blob of every instance
    dest = tmp_path / "copy"
    skopeo("copy", "--all", "--quiet", oci_ref, f"dir:{dest}")
    assert "sha256:" + hashlib.sha256((dest / "manifest.json").read_bytes()).hexdigest() == top_digest


# -- requests on the wire -------------------------------------------------------------------
def test_unchanged_pull_costs_one_manifest_head(target, registry, samples):
    """A second real pull of an unchanged image sends exactly one request: HEAD of the
    manifest by tag (a digest pull sends none), and writes nothing to the cache.

    Our client picks http for a loopback registry with a TLS handshake attempt only, which
    the registry answers at the connection level: no GET /v2/ probe reaches its access log,
    and none is expected. One case per code path: tag, index narrowed to several platforms
    (matched through its annotations), digest, localhost name with implicit :latest."""
    assert target.run.rc == 0
    host = registry.host
    multi = samples["multi"].obj
    root = target.cache_root
    tasks = [
        pull_task(f"{host}/test/oci-single:v1", root / "oci_single", register="oci_single"),
        pull_task(f"{host}/test/multi:v1", root / "multi_two", platforms=["linux/arm64", "linux/s390x"],
                  register="multi_two"),
        pull_task(f"{host}/test/multi@{multi.digest}", root / "by_digest", register="by_digest"),
        pull_task(f"localhost:{registry.port}/{LATEST_REPO}", root / "latest", register="latest"),
    ]
    before = tree_snapshot(root)
    mark = registry.mark()
    run = target.ws.run_playbook(play(*tasks))
    assert run.rc == 0, run.output
    for task in tasks:
        result = ok(run, task["name"])
        assert not result["changed"] and result["bytes_downloaded"] == 0, (task["name"], result)
    # nothing was written either: not index.json, not sources.json, not a lock file
    assert tree_snapshot(root) == before
    seen = Counter((e.method, e.path, e.status) for e in registry.access_log(since=mark))
    assert seen == Counter({
        ("HEAD", "/v2/test/oci-single/manifests/v1", 200): 1,
        ("HEAD", "/v2/test/multi/manifests/v1", 200): 1,
        ("HEAD", f"/v2/{LATEST_REPO}/manifests/latest", 200): 1,
    })


def _blob_gets(entries, repo: str) -> Counter:
    return Counter(e.path.rsplit("/", 1)[1] for e in entries
                   if e.method == "GET" and e.path.startswith(f"/v2/{repo}/blobs/"))


def test_target_fetched_each_layer_once_per_cache(target, samples, latest_image, docker_list):
    """Across the target's four runs per behaviour, every layer crossed the wire exactly once
    per cache that needed it: check mode never downloads a layer, the second real run
    downloads nothing, and the failure cases none."""
    assert target.run.rc == 0
    repos = {"oci_single": "test/oci-single", "docker_v2": "test/docker-v2", "docker_list": DOCKER_LIST_REPO,
             "latest": LATEST_REPO}
    wanted: dict[str, Counter] = {}
    for case in CASES:
        _ref, _top, parts, _src = _case(case, samples, latest_image, docker_list)
        repo = repos.get(case, "test/multi")
        layers = {layer.digest for obj in parts for img in obj.images for layer in img.layers}
        wanted.setdefault(repo, Counter()).update(layers)
    for repo, want in wanted.items():
        got = _blob_gets(target.requests, repo)
        assert {d: got[d] for d in want} == dict(want), repo


def test_target_fetched_each_config_once_per_run(target, samples, latest_image):
    """docker-v2 and the latest repo are pulled by their own behaviour only: check mode on the
    empty cache reads the config (to learn the platform), the first real pull fetches it,
    the warm runs read it from the cache. Two GETs each, not three."""
    assert target.run.rc == 0
    assert _blob_gets(target.requests, "test/docker-v2")[samples["docker_v2"].obj.config.digest] == 2
    assert _blob_gets(target.requests, LATEST_REPO)[latest_image.config.digest] == 2


# -- check mode -------------------------------------------------------------------------------
def test_check_mode_writes_nothing(target, samples):
    """On warm caches (left by the target), check mode leaves the tree byte-identical
    (same files, bytes, inodes, mtimes) even when it reports a pull; on a cache dir that
    does not exist it creates nothing at all."""
    assert target.run.rc == 0
    root = target.cache_root
    host = samples["multi"].host
    before = tree_snapshot(root)
    missing = root / "never-created"
    tasks = [
        # an image this cache does not hold: check mode reports downloads
        pull_task(f"{host}/test/multi:v1", root / "oci_single", check=True, register="other image"),
        # a narrowing of the index this cache holds whole: nothing to download, a new name
        pull_task(f"{host}/test/multi:v1", root / "multi_all", platforms=["linux/s390x"], check=True,
                  register="narrowed"),
        # the image this cache holds: no change
        pull_task(f"{host}/test/docker-v2:v1", root / "docker_v2", check=True, register="same image"),
        pull_task(f"{host}/test/large:v1", missing, check=True, register="empty cache"),
    ]
    run = target.ws.run_playbook(play(*tasks))
    assert run.rc == 0, run.output
    other = ok(run, "other image")
    assert other["changed"] and other["bytes_downloaded"] == sum(len(b) for b in samples["multi"].obj.blobs.values())
    narrowed = ok(run, "narrowed")
    assert narrowed["changed"] and narrowed["bytes_downloaded"] == 0
    assert {b["action"] for b in narrowed["blobs"]} == {"cached"}
    assert not ok(run, "same image")["changed"]
    empty = ok(run, "empty cache")
    assert empty["changed"] and empty["bytes_downloaded"] == sum(len(b) for b in samples["large"].obj.blobs.values())
    assert not missing.exists()
    assert tree_snapshot(root) == before


# -- the cache is shared ------------------------------------------------------------------------
def test_shared_blobs_are_stored_once(ansible, samples):
    multi, single = samples["multi"].obj, samples["oci_single"].obj
    assert not set(multi.blobs) & set(single.blobs)  # precondition: nothing in common
    shared = [d for d in multi.blobs if all(d in img.blobs for img in multi.images)]
    assert len(shared) == 1
    cache = ansible.root / "cache"
    run = ansible.run_playbook(play(
        pull_task(samples["multi"].ref, cache, register="index"),
        pull_task(samples["oci_single"].ref, cache, register="single"),
        # everything these need is in the cache already, under another name
        pull_task(samples["multi"].ref, cache, platforms=["linux/arm64"], register="narrowed"),
        pull_task(samples["oci_single"].ref, cache, platforms=["linux/amd64"], register="own platform"),
    ))
    assert run.rc == 0, run.output
    index = ok(run, "index")
    assert [b["digest"] for b in index["blobs"]].count(shared[0]) == 1
    assert index["bytes_downloaded"] == sum(len(b) for b in multi.blobs.values())
    assert ok(run, "single")["bytes_downloaded"] == sum(len(b) for b in single.blobs.values())
    for name in ("narrowed", "own platform"):
        result = ok(run, name)
        assert result["changed"] and result["bytes_downloaded"] == 0, name
        assert {b["action"] for b in result["blobs"]} == {"cached"}, name
    # a single-platform image asked for by its own platform: stored as is, digest unchanged
    own = ok(run, "own platform")
    assert (own["digest"], own["digest_changed"], own["platforms"]) == (single.digest, False, ["linux/amd64"])

    files = assert_blobs_verify(cache)
    unique = set(multi.blobs) | set(multi.manifests) | set(single.blobs) | set(single.manifests)
    assert len(files) == len(unique) == 15 and set(files) == unique
    # the full index and the narrowed pull of the same reference are both kept
    assert set(read_index(cache)) == {samples["multi"].ref, samples["multi"].ref + "+linux-arm64-v8",
                                      samples["oci_single"].ref, samples["oci_single"].ref + "+linux-amd64"}

    # Damage the single image behind the module's back: the next pull repairs it.
    layer0, layer1 = single.layers
    blob_dir = cache / "blobs" / "sha256"

    def hex_of(digest):
        return digest.split(":")[1]

    (blob_dir / hex_of(layer0.digest)).write_bytes(layer0.data[:layer0.size // 2])  # truncated
    (blob_dir / hex_of(layer1.digest)).unlink()  # gone, and a partial of garbage in its place
    (cache / ".imagepusher" / "ingest" / f"sha256-{hex_of(layer1.digest)}.partial").write_bytes(
        b"\0" * (layer1.size // 2))
    manifest = bytearray(single.manifest)  # same size, one byte off
    manifest[-2] ^= 0x20
    (blob_dir / hex_of(single.digest)).write_bytes(bytes(manifest))
    run = ansible.run_playbook(play(pull_task(samples["oci_single"].ref, cache, register="repair")))
    repair = ok(run, "repair")
    assert repair["changed"] and repair["digest"] == single.digest
    actions = {b["digest"]: b["action"] for b in repair["blobs"]}
    assert actions[single.config.digest] == "cached"
    assert actions[layer0.digest] == "downloaded"
    assert actions[layer1.digest] in ("resumed", "downloaded")  # resumed, failed verification, fetched anew
    assert partial_files(cache) == []
    assert set(assert_blobs_verify(cache)) == unique


def test_moved_tag_is_pulled_again(ansible, registry):
    """When the tag moves to a new digest the pull changes, the diff shows old -> new, and
    only the blobs the new image does not share with the old one are downloaded."""
    base = images.tar_layer({"imagepusher/moving/base.txt": b"base layer\n" * 64})
    old, new = (images.build_image([base, images.tar_layer({"imagepusher/moving/app.txt": v})],
                                   labels={"version": v.decode().strip()}) for v in (b"1\n", b"2\n"))
    ref = f"{registry.host}/{MOVING_REPO}:v1"
    cache = ansible.root / "cache"
    seed.push(registry.url, MOVING_REPO, old, "v1")
    first = ansible.run_playbook(play(pull_task(ref, cache, register="pull")))
    assert ok(first, "pull")["digest"] == old.digest

    seed.push(registry.url, MOVING_REPO, new, "v1")
    run = ansible.run_playbook(play(pull_task(ref, cache, check=True, register="check"),
                                    pull_task(ref, cache, register="pull"),
                                    pull_task(ref, cache, register="again")))
    assert run.rc == 0, run.output
    for name in ("check", "pull"):
        result = ok(run, name)
        assert result["changed"] and result["digest"] == result["source_digest"] == new.digest, name
        assert result["diff"] == {"before": {"reference": ref, "digest": old.digest},
                                  "after": {"reference": ref, "digest": new.digest}}, name
        assert {b["digest"]: b["action"] for b in result["blobs"]} == {
            new.config.digest: "downloaded", base.digest: "cached", new.layers[1].digest: "downloaded"}, name
        assert result["bytes_downloaded"] == new.config.size + new.layers[1].size, name
    again = ok(run, "again")
    assert not again["changed"] and again["bytes_downloaded"] == 0
    assert again["diff"]["before"] == again["diff"]["after"] == {"reference": ref, "digest": new.digest}
    assert read_index(cache)[ref]["digest"] == new.digest
    assert new.digest in assert_blobs_verify(cache)


def test_errors_name_the_reference_not_the_cache_name(target):
    msg = target.run.task("Fail: platform of a single-platform image does not match").result["msg"]
    assert "/test/oci-single:v1 " in msg and "+linux-arm64" not in msg


def test_failed_pulls_leave_no_cache_behind(target):
    """Every failure case of the target pulls into cache_root/failures: none may create it."""
    failures = target.cache_root / "failures"
    assert not failures.exists(), sorted(str(p.relative_to(failures)) for p in failures.rglob("*"))


# -- kill and resume ----------------------------------------------------------------------------
def test_killed_pull_resumes_from_its_partial_file(ansible, registry, samples, tmp_path):
    img = samples["large"].obj
    big = max(img.layers, key=lambda b: b.size)
    total = sum(len(b) for b in img.blobs.values())
    cache = ansible.root / "cache"
    partial = cache / ".imagepusher" / "ingest" / f"sha256-{big.digest.split(':')[1]}.partial"
    final = cache / "blobs" / "sha256" / big.digest.split(":")[1]

    with ThrottleProxy("127.0.0.1", registry.port, rate=8 * MiB) as proxy:
        ref = f"{proxy.host}/{samples['large'].repo}:{samples['large'].tag}"
        pb = play(pull_task(ref, cache, register="pull"))
        proc = ansible.start_playbook(pb, timeout=120)
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size > 10 * MiB):
            assert proc.proc.poll() is None, "the pull ended before it could be killed:\n" + proc.wait().output
            assert time.monotonic() < deadline, "the partial file never grew past 10 MiB"
            time.sleep(0.05)
        proc.kill()
        killed = proc.wait(timeout=30)
        assert killed.rc == -signal.SIGKILL and not killed.results  # killed before the task reported

        got = partial.stat().st_size
        time.sleep(0.3)
        assert partial.stat().st_size == got, "the module kept writing after the kill"
        assert 10 * MiB < got < big.size
        assert not final.exists(), "an incomplete blob reached blobs/"
        assert_blobs_verify(cache)  # what did make it into blobs/ is complete
        assert not (cache / "index.json").exists() or ref not in read_index(cache)

        # unthrottled now; check mode first (it must see the partial file and announce a
        # resume without touching it: the real run then needs exactly the missing bytes)
        proxy.rate = None
        down_before = proxy.bytes_down
        rerun = ansible.run_playbook(play(pull_task(ref, cache, check=True, register="check"),
                                          pull_task(ref, cache, register="pull")))
        planned = ok(rerun, "check")
        result = ok(rerun, "pull")
        down = proxy.bytes_down - down_before

    assert {b["digest"]: b["action"] for b in planned["blobs"]}[big.digest] == "resumed"
    assert planned["changed"]

    assert rerun.rc == 0, rerun.output
    actions = {b["digest"]: b["action"] for b in result["blobs"]}
    assert actions[big.digest] == "resumed"
    assert result["changed"] and result["digest"] == img.digest
    # exactly the missing bytes: the rest of the big layer, plus whatever else was missing
    sizes = {b["digest"]: b["size"] for b in result["blobs"]}
    missing = sum(0 if a == "cached" else sizes[d] - (got if d == big.digest else 0) for d, a in actions.items())
    assert result["bytes_downloaded"] == missing == planned["bytes_downloaded"]
    assert result["bytes_downloaded"] <= total - got
    # and the wire agrees: the proxy carried little more than those bytes (headers,
    # manifests, the config check mode read)
    assert big.size - got <= down <= missing + 256 * 1024

    assert final.exists() and sha256_file(final) == big.digest
    assert not partial.exists()
    assert_blobs_verify(cache)
    assert read_index(cache)[ref]["digest"] == img.digest
    skopeo("copy", "--quiet", f"oci:{cache}:{ref}", f"dir:{tmp_path / 'copy'}")


# -- concurrency ----------------------------------------------------------------------------------
def test_concurrent_pulls_into_one_cache(ansible, registry, samples, tmp_path):
    """Two playbooks pull the same image into one cache at once: both succeed, the big
    layer crosses the wire once (the second run waits on the blob lock, then finds it)."""
    img = samples["large"].obj
    big = max(img.layers, key=lambda b: b.size)
    cache = ansible.root / "cache"
    # throttled so the big layer takes ~3 s: long enough for both runs to overlap
    with ThrottleProxy("127.0.0.1", registry.port, rate=16 * MiB) as proxy:
        ref = f"{proxy.host}/{samples['large'].repo}:{samples['large'].tag}"
        pb = play(pull_task(ref, cache, register="pull"))
        mark = registry.mark()
        procs = [ansible.start_playbook(pb, timeout=120) for _run in range(2)]
        runs = [p.wait() for p in procs]
    results = []
    for run in runs:
        assert run.rc == 0, run.output
        results.append(ok(run, "pull"))
    assert all(r["digest"] == img.digest for r in results)
    big_actions = sorted(next(b["action"] for b in r["blobs"] if b["digest"] == big.digest) for r in results)
    assert big_actions == ["cached", "downloaded"], results
    gets = [e for e in registry.access_log(since=mark) if e.method == "GET" and e.path.endswith(big.digest)]
    assert len(gets) == 1, gets

    assert partial_files(cache) == []
    files = assert_blobs_verify(cache)
    assert set(files) == set(img.blobs) | {img.digest}
    assert list(read_index(cache)) == [ref]
    skopeo("copy", "--quiet", f"oci:{cache}:{ref}", f"dir:{tmp_path / 'copy'}")
