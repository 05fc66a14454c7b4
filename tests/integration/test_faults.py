"""Survive faults: the REAL registry behind a fault-injection proxy, through real ansible-playbook.

The promise (README, "What we promise"): a run either succeeds with correct data or fails
with a clear message; nothing corrupt is ever cached or pushed; a rerun continues where the
last one stopped. Each test here injects one kind of fault with tests/support/fault_proxy.py
(resets, 5xx, 429, stalls, truncated or flipped bodies, a replaced manifest), or kills the
run, or fills the disk, or runs a pull and a push on one cache at once, and then checks the
outcome with tools that are not ours: the proxy's own record of what was sent, Python's
hashing of every file under blobs/, and skopeo reading the cache or the target registry.

To stay fast, faults that can share a playbook do: one run holds several pulls, each into
its own cache and from its own repository, and the rules of the proxy select by path, so
each pull meets only its own faults. Failing tasks are ``ignore_errors`` and asserted here.

Run: .venv/bin/python -m pytest tests/integration/test_faults.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support import images, seed
from tests.support.ansible import AnsibleWorkspace, PlaybookRun
from tests.support.checks import (
    PULL,
    PUSH,
    assert_blobs_verify,
    blob_files,
    failed,
    ok,
    partial_files,
    play,
    raw_manifest,
    read_index,
    sha256_file,
    skopeo,
    task,
)
from tests.support.fault_proxy import MiB, FaultProxy, flip, replace, reset, stall, status, throttle, truncate
from tests.support.registry import Registry

pytestmark = [pytest.mark.ansible]

BACKOFF_MAX = 30  # seconds: the cap doc_fragments/registry.py documents for one wait


# -- helpers -------------------------------------------------------------------------------------
def timed(name: str, module: str, args: dict) -> list[dict]:
    """The task between two time stamps taken by the controller (set_fact ``<name>_t0/_t1``)."""
    key = name.replace(" ", "_").replace("-", "_")
    stamp = "{{ now(utc=true).timestamp() }}"
    return [{"name": f"{name} t0", "ansible.builtin.set_fact": {f"{key}_t0": stamp}},
            task(name, module, args, ignore_errors=True),
            {"name": f"{name} t1", "ansible.builtin.set_fact": {f"{key}_t1": stamp}}]


def elapsed(run: PlaybookRun, name: str) -> float:
    key = name.replace(" ", "_").replace("-", "_")
    start = float(run.task(f"{name} t0").result["ansible_facts"][f"{key}_t0"])
    end = float(run.task(f"{name} t1").result["ansible_facts"][f"{key}_t1"])
    return end - start


def repo_path(repo: str) -> str:
    return "^/v2/" + repo + "/"


def blob_path(repo: str, digest: str) -> str:
    return f"^/v2/{repo}/blobs/{digest}$"


def big_layer(img: images.Image) -> images.Blob:
    return max(img.layers, key=lambda b: b.size)


MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"])


def registry_head(reg: Registry, path: str) -> int:
    # Without an Accept naming OCI types, Distribution 2.8 answers 404 for an OCI manifest.
    return requests.head(reg.url + path, headers={"Accept": MANIFEST_ACCEPT}, timeout=10).status_code


def copy_cache(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


# -- sources ---------------------------------------------------------------------------------------
# Each pull scenario gets a repository of its own on the shared registry (same images as the
# samples, so the same digests): the proxy's rules select by path, so every pull meets only its
# own faults and all of them fit in one playbook.
SCENARIOS = {
    "transient": "large",
    "stall-mid-body": "large",
    "reset-only": "docker_v2",
    "flip-once": "oci_single",
    "truncate-once": "multi",
    "flip-always": "oci_single",
    "truncate-always": "large",
    "manifest-replaced": "docker_v2",
    "always-503": "multi",
    "stall": "oci_single",
}
PERSISTENT = {"always-503": {"retries": 2, "timeout": 2}, "stall": {"retries": 1, "timeout": 2}}


@pytest.fixture(scope="module")
def seeded(registry, samples) -> dict[str, str]:
    """scenario -> repository, each pushed (by plain requests, not our client) to the shared registry."""
    repos = {}
    for scenario, sample in SCENARIOS.items():
        repos[scenario] = f"faults/{scenario}"
        seed.push(registry.url, repos[scenario], samples[sample].obj, "v1")
    return repos


@pytest.fixture(scope="module")
def filled_cache(samples, tmp_path_factory) -> Path:
    """A cache holding test/large, test/multi and test/oci-single under their pulled names, written
    as an OCI layout by the test image builder (not by our modules)."""
    cache = tmp_path_factory.mktemp("faults-cache") / "cache"
    images.write_oci_layout(cache, {samples[n].ref: samples[n].obj for n in ("large", "multi", "oci_single")})
    return cache


# ==================================================================================================
# Pulls through faults. Transient ones are retried and the run succeeds with the right
# data; persistent ones and corruption fail clearly, in bounded time, with nothing corrupt cached.
# ==================================================================================================
@dataclass
class PullFaults:
    run: PlaybookRun
    proxy: FaultProxy
    caches: Path
    rules: dict
    repos: dict

    def blob(self, scenario: str, digest: str) -> str:
        return blob_path(self.repos[scenario], digest)


@pytest.fixture(scope="module")
def pull_faults(registry, samples, seeded, tmp_path_factory) -> PullFaults:
    root = tmp_path_factory.mktemp("pull-faults")
    caches = root / "caches"
    large, single, docker, multi = (samples[n].obj for n in ("large", "oci_single", "docker_v2", "multi"))
    with FaultProxy(registry.host) as proxy:
        def add(method, scenario, rest, action, **window):
            return proxy.add(method, f"^/v2/{seeded[scenario]}/{rest}", action, **window)

        big = big_layer(large).digest
        rules = {
            # transient, test/large: every kind of transient fault on the way, once or twice each
            # a cold pull reads the tag by GET (no HEAD first): 503 twice, then a 429
            "manifest_503": add("GET", "transient", "manifests/", status(503), times=2),
            "get_429": add("GET", "transient", "manifests/", status(429, retry_after=1), first=3, last=3),
            "config_reset": add("GET", "transient", f"blobs/{large.config.digest}$", reset(), times=1),
            "small_502": add("GET", "transient", f"blobs/{large.layers[1].digest}$", status(502),
                             times=1),
            "big_reset": add("GET", "transient", f"blobs/{big}$", reset(after=5 * MiB + 4321),
                             times=1),
            # the registry goes quiet for longer than `timeout` in the middle of a blob, once
            "stall_mid_body": add("GET", "stall-mid-body", f"blobs/{big}$", stall(5, after=3 * MiB + 7), times=1),
            # only a connection reset in the middle of one blob
            "reset_only": add("GET", "reset-only", f"blobs/{docker.layers[0].digest}$",
                              reset(after=100), times=1),
            # one flipped byte in a layer, once; a layer cut short (complete-looking, shorter), once
            "flip_once": add("GET", "flip-once", f"blobs/{single.layers[0].digest}$", flip(at=10),
                             times=1),
            "truncate_once": add("GET", "truncate-once",
                                 f"blobs/{multi.images[0].layers[0].digest}$", truncate(at=100), times=1),
            # persistent
            "flip_always": add("GET", "flip-always", f"blobs/{single.layers[1].digest}$",
                               flip(at=3)),
            "truncate_always": add("GET", "truncate-always", f"blobs/{big}$",
                                   truncate(at=1 * MiB)),
            "manifest_replaced": add("GET", "manifest-replaced",
                                     f"manifests/(v1|{docker.digest})$", replace(single.manifest)),
            "always_503": add(None, "always-503", "", status(503)),
            "stall": add("GET", "stall", f"blobs/{single.layers[0].digest}$", stall(60)),
        }
        ws = AnsibleWorkspace(root / "ansible")

        def pull(scenario, **extra):
            return {"name": f"{proxy.host}/{seeded[scenario]}:v1", "cache_dir": str(caches / scenario), **extra}

        transient = {"retries": 5, "timeout": 10}
        # Two playbooks at once: the first mostly waits (Retry-After, backoff, timeouts), the
        # second mostly works, so together they take little more than the first alone.
        waiting = [task("transient", PULL, pull("transient", **transient), ignore_errors=True),
                   task("stall-mid-body", PULL, pull("stall-mid-body", retries=3, timeout=2), ignore_errors=True),
                   timed("always-503", PULL, pull("always-503", **PERSISTENT["always-503"])),
                   timed("stall", PULL, pull("stall", **PERSISTENT["stall"]))]
        working = [task(s, PULL, pull(s, **transient), ignore_errors=True)
                   for s in ("reset-only", "flip-once", "truncate-once")]
        working += [task("flip-always", PULL, pull("flip-always"), ignore_errors=True),
                    task("truncate-always", PULL, pull("truncate-always", retries=2), ignore_errors=True),
                    task("manifest-replaced", PULL, pull("manifest-replaced"), ignore_errors=True)]
        try:
            procs = [ws.start_playbook(play(*tasks), timeout=240) for tasks in (waiting, working)]
            runs = [proc.wait() for proc in procs]
        finally:
            ws.cleanup()
        for one in runs:
            assert one.rc == 0, one.output
        run = runs[0]
        run.results = runs[0].results + runs[1].results
        yield PullFaults(run, proxy, caches, rules, seeded)


def test_transient_faults_during_pull_are_retried(pull_faults, samples, tmp_path):
    """503 twice, 429 with Retry-After, a reset before the answer, a 502, a reset mid-blob: the
    pull succeeds, with the right digest, retries counted, and a cache that verifies."""
    run, proxy, rules = pull_faults.run, pull_faults.proxy, pull_faults.rules
    result = ok(run, "transient")
    img = samples["large"].obj
    assert result["digest"] == img.digest
    for key in ("manifest_503", "get_429", "config_reset", "small_502", "big_reset"):
        assert rules[key].hits == rules[key].last - rules[key].first + 1, (key, rules[key])  # all of its window
    # 2 x 503 + 1 x 429 + 1 reset before an answer + 1 x 502, each a transport retry
    assert result["retries"] >= 5, result["retries"]
    assert {b["digest"]: b["action"] for b in result["blobs"]}[big_layer(img).digest] == "resumed"
    # Retry-After: 1 was honoured (the retry of the manifest GET came a second later or more)
    gets = proxy.exchanges("GET", rf"^/v2/{pull_faults.repos['transient']}/manifests/")
    assert [g.status for g in gets[:3]] == [503, 503, 429] and gets[3].started - gets[2].ended >= 0.9, gets

    cache = pull_faults.caches / "transient"
    name = f"{proxy.host}/{pull_faults.repos['transient']}:v1"
    files = assert_blobs_verify(cache)
    assert set(img.blobs) | {img.digest} <= set(files)
    assert partial_files(cache) == []
    assert read_index(cache)[name]["digest"] == img.digest
    skopeo("copy", "--quiet", f"oci:{cache}:{name}", f"dir:{tmp_path / 'copy'}")


def test_reset_mid_blob_resumes_with_a_range_request(pull_faults, samples):
    """The blob GET cut after 5 MiB + a bit continues from the bytes already on disk."""
    big = big_layer(samples["large"].obj)
    gets = pull_faults.proxy.exchanges("GET", pull_faults.blob("transient", big.digest))
    assert len(gets) == 2, gets
    first, retry = gets
    assert first.fault and first.header("Range") is None
    assert first.status == 200 and first.response_bytes == 5 * MiB + 4321
    range_header = retry.header("Range")
    assert range_header and range_header.startswith("bytes=") and range_header.endswith("-"), range_header
    offset = int(range_header[len("bytes="):-1])
    assert 0 < offset <= first.response_bytes, (offset, first.response_bytes)
    assert retry.status == 206 and retry.response_bytes == big.size - offset


def test_stall_mid_blob_times_out_and_resumes_with_a_range_request(pull_faults, samples):
    """The registry stops sending for longer than `timeout` after 3 MiB: the read times out and
    the download continues from what it had."""
    img = samples["large"].obj
    result = ok(pull_faults.run, "stall-mid-body")
    assert result["digest"] == img.digest
    gets = pull_faults.proxy.exchanges("GET", pull_faults.blob("stall-mid-body", big_layer(img).digest))
    assert len(gets) == 2 and gets[0].fault, gets
    offset = int(gets[1].header("Range", "bytes=0-")[len("bytes="):-1])
    assert 0 < offset <= 3 * MiB + 7 and gets[1].status == 206, gets[1]
    assert big_layer(img).digest in assert_blobs_verify(pull_faults.caches / "stall-mid-body")


def test_reset_mid_blob_alone_still_succeeds(pull_faults, samples):
    result = ok(pull_faults.run, "reset-only")
    assert result["digest"] == samples["docker_v2"].digest
    assert pull_faults.rules["reset_only"].hits == 1
    assert_blobs_verify(pull_faults.caches / "reset-only")


def test_reset_mid_blob_is_counted_in_retries(pull_faults):
    assert ok(pull_faults.run, "reset-only")["retries"] >= 1


def test_flipped_byte_is_detected_and_fetched_again(pull_faults, samples):
    """A blob with one flipped byte never lands under blobs/: it is fetched again, from zero."""
    img = samples["oci_single"].obj
    result = ok(pull_faults.run, "flip-once")
    assert result["digest"] == img.digest
    gets = pull_faults.proxy.exchanges("GET", pull_faults.blob("flip-once", img.layers[0].digest))
    assert len(gets) == 2 and gets[0].fault, gets
    assert gets[1].header("Range") is None  # the bad bytes were thrown away, not resumed from
    files = assert_blobs_verify(pull_faults.caches / "flip-once")
    assert img.layers[0].digest in files


def test_truncated_body_is_resumed(pull_faults, samples):
    """A body that ends early but cleanly (Content-Length matching what was sent) is resumed."""
    img = samples["multi"].obj
    layer = img.images[0].layers[0]
    result = ok(pull_faults.run, "truncate-once")
    assert result["digest"] == img.digest
    gets = pull_faults.proxy.exchanges("GET", pull_faults.blob("truncate-once", layer.digest))
    assert [g.header("Range") for g in gets] == [None, "bytes=100-"], gets
    assert gets[1].status == 206
    assert layer.digest in assert_blobs_verify(pull_faults.caches / "truncate-once")


def documented_bound(retries: int, timeout: int) -> float:
    """doc_fragments/registry.py, option retries: at most retries x 30 s of waiting plus
    (retries + 1) x timeout, for one request."""
    return retries * BACKOFF_MAX + (retries + 1) * timeout


def test_persistent_503_fails_clearly_within_the_documented_bound(pull_faults):
    run, proxy = pull_faults.run, pull_faults.proxy
    options = PERSISTENT["always-503"]
    result = failed(run, "always-503")
    assert "503" in result["msg"] and pull_faults.repos["always-503"] in result["msg"], result["msg"]
    took = elapsed(run, "always-503")
    assert took < documented_bound(**options), took
    # exactly retries + 1 attempts (of the tag's GET, a cold pull's first request), then it gave up
    attempts = proxy.exchanges(None, repo_path(pull_faults.repos["always-503"]))
    assert len(attempts) == options["retries"] + 1, attempts
    assert not (pull_faults.caches / "always-503").exists()


def test_stall_longer_than_timeout_fails_clearly_within_the_documented_bound(pull_faults, samples):
    run, proxy = pull_faults.run, pull_faults.proxy
    options = PERSISTENT["stall"]
    result = failed(run, "stall")
    assert "timed out" in result["msg"].lower(), result["msg"]
    took = elapsed(run, "stall")
    # it waited for the timeout on every attempt, and no longer than the documented bound
    assert (options["retries"] + 1) * options["timeout"] <= took < documented_bound(**options), took
    layer = samples["oci_single"].obj.layers[0]
    stalled = proxy.exchanges("GET", pull_faults.blob("stall", layer.digest))
    assert len(stalled) == options["retries"] + 1, stalled
    cache = pull_faults.caches / "stall"
    assert layer.digest not in assert_blobs_verify(cache)
    assert read_index(cache) == {}


def test_persistently_flipped_blob_fails_clearly_and_is_never_cached(pull_faults, samples):
    img = samples["oci_single"].obj
    bad = img.layers[1].digest
    result = failed(pull_faults.run, "flip-always")
    assert bad in result["msg"] and "expected" in result["msg"], result["msg"]
    # fetched twice (once more from zero after the mismatch), then it gave up
    assert pull_faults.rules["flip_always"].hits == 2
    cache = pull_faults.caches / "flip-always"
    assert bad not in assert_blobs_verify(cache)
    assert partial_files(cache) == []
    assert read_index(cache) == {}


def test_persistently_truncated_blob_fails_clearly_and_is_never_cached(pull_faults, samples):
    big = big_layer(samples["large"].obj)
    result = failed(pull_faults.run, "truncate-always")
    assert big.digest in result["msg"] and "early" in result["msg"], result["msg"]
    cache = pull_faults.caches / "truncate-always"
    assert big.digest not in assert_blobs_verify(cache)
    assert read_index(cache) == {}


def test_persistently_truncated_blob_keeps_its_partial_for_the_rerun(pull_faults):
    gets = pull_faults.rules["truncate_always"].hits
    assert gets == 3, f"{gets} GETs: retries=2 allows the first GET and 2 resumes"
    assert partial_files(pull_faults.caches / "truncate-always")


def test_manifest_not_matching_the_announced_digest_fails_clearly(pull_faults, samples):
    docker = samples["docker_v2"].obj
    result = failed(pull_faults.run, "manifest-replaced")
    assert docker.digest in result["msg"] and samples["oci_single"].digest in result["msg"], result["msg"]
    cache = pull_faults.caches / "manifest-replaced"
    assert blob_files(cache) == {} and read_index(cache) == {}


def test_manifest_mismatch_message_names_the_image(pull_faults):
    msg = failed(pull_faults.run, "manifest-replaced")["msg"]
    assert pull_faults.repos["manifest-replaced"] in msg, msg


# ==================================================================================================
# Transient faults during a push: retried, the push succeeds, the target verifies
# ==================================================================================================
@dataclass
class PushFaults:
    run: PlaybookRun
    proxy: FaultProxy
    target: Registry
    cache: Path
    rules: dict


@pytest.fixture(scope="module")
def push_faults(filled_cache, samples, tmp_path_factory) -> PushFaults:
    root = tmp_path_factory.mktemp("push-faults")
    cache = copy_cache(filled_cache, root / "cache")
    with Registry() as target, FaultProxy(target.host) as proxy:
        rules = {
            "post_503": proxy.add("POST", r"^/v2/faulty/multi/blobs/uploads/", status(503), times=2),
            "head_429": proxy.add("HEAD", r"^/v2/faulty/multi/blobs/", status(429, retry_after=1), times=1),
            "put_reset": proxy.add("PUT", r"^/v2/faulty/multi/manifests/", reset(), times=1),
            # The sample's blobs are small: each goes up with the PUT that completes its session (no PATCH).
            "upload_reset": proxy.add("PUT", r"^/v2/faulty/multi/blobs/uploads/", reset(), times=1),
            "upload_503": proxy.add("PUT", r"^/v2/patch503/app/blobs/uploads/", status(503), times=1),
        }
        ws = AnsibleWorkspace(root / "ansible")
        common = {"cache_dir": str(cache), "retries": 5, "timeout": 10}
        try:
            run = ws.run_playbook(play(
                task("push transient", PUSH, {"name": samples["multi"].ref, "target": f"{proxy.host}/faulty/multi:v1",
                                              **common}, ignore_errors=True),
                task("push patch 503", PUSH, {"name": samples["oci_single"].ref,
                                              "target": f"{proxy.host}/patch503/app:v1", **common},
                     ignore_errors=True)), timeout=180)
        finally:
            ws.cleanup()
        yield PushFaults(run, proxy, target, cache, rules)


def test_transient_faults_during_push_are_retried(push_faults, samples, tmp_path):
    """503 twice on the upload POST, a 429, a reset blob upload, a reset manifest PUT: the push succeeds,
    retries are counted, and the target serves the same digest, every blob verified by skopeo."""
    img = samples["multi"].obj
    result = ok(push_faults.run, "push transient")
    assert result["digest"] == img.digest
    for key in ("post_503", "head_429", "put_reset", "upload_reset"):
        assert push_faults.rules[key].hits == push_faults.rules[key].last, push_faults.rules[key]
    assert result["retries"] >= 4, result["retries"]  # 2 x 503, 429, the manifest PUT reset
    ref = f"{push_faults.target.host}/faulty/multi:v1"
    raw = raw_manifest(ref)
    assert images.sha256_digest(raw) == img.digest
    skopeo("copy", "--all", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'copy'}:x")


def test_one_503_on_a_blob_upload_is_retried(push_faults, samples):
    assert push_faults.rules["upload_503"].hits == 1
    result = ok(push_faults.run, "push patch 503")
    assert result["digest"] == samples["oci_single"].digest


def test_failed_push_leaves_no_tag_behind(push_faults):
    """Whatever the outcome of the upload-503 push, the target never has a tag without its blobs."""
    status_code = registry_head(push_faults.target, "/v2/patch503/app/manifests/v1")
    run = push_faults.run.task("push patch 503")
    assert status_code == (200 if not run.failed else 404)


# ==================================================================================================
# Killed pushes: the target is never corrupt, the next run completes (or resumes the session)
# ==================================================================================================
def sessions_dir(cache: Path) -> Path:
    return cache / ".imagepusher" / "uploads"


def saved_sessions(cache: Path) -> list[dict]:
    """The sessions saved now. The push clears a blob's session once it is complete, which can
    happen between listing the folder and reading a file: such a file is simply gone."""
    folder = sessions_dir(cache)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append(json.loads(path.read_text()))
        except FileNotFoundError:
            continue
    return found


def wait_for(predicate, proc, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.proc.poll() is None, f"the run ended before {what}:\n" + proc.wait().output
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_killed_push_restarts_cleanly_and_the_target_is_never_corrupt(
        filled_cache, samples, fresh_registry, tmp_path):
    """SIGKILL while the 48 MiB layer is going up in one PATCH. Distribution 2.8 cancels a session
    whose PATCH was cut, so the next run finds the saved session gone (GET -> 404) and uploads the
    blob again from zero; before that, the target has neither the tag nor the blob."""
    img = samples["large"].obj
    big = big_layer(img)
    cache = copy_cache(filled_cache, tmp_path / "cache")
    ws = AnsibleWorkspace(tmp_path / "ansible")
    with FaultProxy(fresh_registry.host) as proxy:
        slow = proxy.add("PATCH", r"^/v2/killed/large/blobs/uploads/", throttle(8 * MiB, "up"))
        target = f"{proxy.host}/killed/large:v1"
        pb = play(task("push", PUSH, {"name": samples["large"].ref, "target": target, "cache_dir": str(cache)}))
        proc = ws.start_playbook(pb, timeout=120)

        def big_patch_under_way():
            sessions = [s for s in saved_sessions(cache) if s["digest"] == big.digest]
            patches = [e for e in proxy.exchanges("PATCH", "^/v2/killed/") if e.request_bytes > 8 * MiB]
            return bool(sessions and patches)

        wait_for(big_patch_under_way, proc, "the big layer's PATCH to pass 8 MiB")
        proc.kill()
        killed = proc.wait(timeout=30)
        assert killed.rc == -signal.SIGKILL and not killed.results
        saved = [s for s in saved_sessions(cache) if s["digest"] == big.digest]
        assert len(saved) == 1 and saved[0]["offset"] == 0, saved
        # the target: no tag, no big blob (the cut PATCH left nothing visible)
        assert registry_head(fresh_registry, "/v2/killed/large/manifests/v1") == 404
        assert registry_head(fresh_registry, f"/v2/killed/large/blobs/{big.digest}") == 404

        slow.enabled = False
        mark = proxy.mark()
        rerun = ws.run_playbook(pb, timeout=120)
        result = ok(rerun, "push")
    ws.cleanup()
    assert result["digest"] == img.digest
    uuid = saved[0]["location"].split("/blobs/uploads/", 1)[1].split("?", 1)[0]
    asked = [e for e in proxy.exchanges(since=mark) if uuid in e.target]
    assert [(e.method, e.status) for e in asked] == [("GET", 404)], asked  # the registry had dropped it
    patched = sum(e.request_bytes for e in proxy.exchanges("PATCH", "^/v2/killed/", since=mark))
    assert patched >= big.size  # uploaded again from zero
    assert {b["digest"]: b["action"] for b in result["blobs"]}[big.digest] == "uploaded"
    assert saved_sessions(cache) == []
    ref = f"{fresh_registry.host}/killed/large:v1"
    skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"dir:{tmp_path / 'copy'}")
    assert sha256_file(tmp_path / "copy" / big.digest.split(":")[1]) == big.digest


CHUNK = 8 * MiB


@pytest.fixture(scope="module")
def killed_between_chunks(filled_cache, samples, tmp_path_factory):
    """A push in 8 MiB chunks, SIGKILLed while its 3rd chunk of the big layer is held by the proxy
    (never forwarded): the registry holds 16 MiB of a live session. Then a rerun without faults."""
    big = big_layer(samples["large"].obj)
    tmp_path = tmp_path_factory.mktemp("killed-between-chunks")
    cache = copy_cache(filled_cache, tmp_path / "cache")
    ws = AnsibleWorkspace(tmp_path / "ansible")
    with Registry() as fresh_registry, FaultProxy(fresh_registry.host) as proxy:
        held = proxy.add("PATCH", r"^/v2/chunked/large/blobs/uploads/", stall(60, stage="request"),
                         header=("Content-Range", rf"^{2 * CHUNK}-"))
        target = f"{proxy.host}/chunked/large:v1"
        pb = play(task("push", PUSH, {"name": samples["large"].ref, "target": target, "cache_dir": str(cache),
                                      "chunk_size": "8MiB"}))
        proc = ws.start_playbook(pb, timeout=120)
        wait_for(held.fired.is_set, proc, "the third chunk")
        proc.kill()
        killed = proc.wait(timeout=30)
        assert killed.rc == -signal.SIGKILL and not killed.results
        saved = [s for s in saved_sessions(cache) if s["digest"] == big.digest]
        proxy.clear()
        mark = proxy.mark()
        rerun = ws.run_playbook(pb, timeout=120)
        yield {"rerun": rerun, "saved": saved, "proxy": proxy, "mark": mark, "registry": fresh_registry,
               "big": big, "cache": cache, "tmp": tmp_path}
    ws.cleanup()


def test_killed_chunked_push_resumes_its_upload_session(killed_between_chunks, samples):
    ctx = killed_between_chunks
    big, proxy, mark = ctx["big"], ctx["proxy"], ctx["mark"]
    assert len(ctx["saved"]) == 1 and ctx["saved"][0]["offset"] == 2 * CHUNK, ctx["saved"]
    result = ok(ctx["rerun"], "push")
    assert result["digest"] == samples["large"].digest
    uuid = ctx["saved"][0]["location"].split("/blobs/uploads/", 1)[1].split("?", 1)[0]
    session = [e for e in proxy.exchanges(since=mark) if uuid in e.target]
    # the rerun's first upload request is a GET on the saved session: the registry still has it
    uploads = proxy.exchanges(None, "/blobs/uploads/", since=mark)
    assert uploads and uploads[0] is session[0], uploads
    assert session[0].method == "GET" and session[0].status == 204, session
    assert session[0].response_header("Range") == f"0-{2 * CHUNK - 1}"
    patches = [e for e in session if e.method == "PATCH"]
    assert patches and patches[0].header("Content-Range").startswith(f"{2 * CHUNK}-"), patches
    assert sum(e.request_bytes for e in patches) == big.size - 2 * CHUNK  # only what was missing
    assert not proxy.exchanges("POST", "^/v2/chunked/large/blobs/uploads/", since=mark)
    ref = f"{ctx['registry'].host}/chunked/large:v1"
    copy = ctx["tmp"] / "copy"
    skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"dir:{copy}")
    assert sha256_file(copy / big.digest.split(":")[1]) == big.digest
    assert saved_sessions(ctx["cache"]) == []


def test_resumed_upload_reports_only_the_bytes_sent(killed_between_chunks):
    result = ok(killed_between_chunks["rerun"], "push")
    assert result["bytes_uploaded"] == killed_between_chunks["big"].size - 2 * CHUNK


# ==================================================================================================
# A pull while a push reads the same blobs from the same cache
# ==================================================================================================
def test_pull_while_a_push_reads_the_same_cache(filled_cache, samples, fresh_registry, tmp_path):
    """A push of test/large (its upload held to 2 MiB/s until the pulls are done) and, meanwhile,
    pulls into the same cache:
    test/large again (its cached blobs, which the push is reading), test/multi and test/docker-v2
    (new blobs, index.json and sources.json updates). Both runs succeed and the cache verifies."""
    large = samples["large"]
    cache = copy_cache(filled_cache, tmp_path / "cache")
    ws = AnsibleWorkspace(tmp_path / "ansible")
    with FaultProxy(fresh_registry.host) as proxy:
        slow = proxy.add("PATCH", r"^/v2/concurrent/large/blobs/uploads/", throttle(2 * MiB, "up"))
        push = ws.start_playbook(play(task("push", PUSH, {
            "name": large.ref, "target": f"{proxy.host}/concurrent/large:v1", "cache_dir": str(cache)})), timeout=120)
        wait_for(lambda: any(e.request_bytes > MiB for e in proxy.exchanges("PATCH")), push, "the big upload")
        refs = [large.ref, samples["docker_v2"].ref, samples["multi"].ref]
        pulled = ws.run_playbook(play(task("pull", PULL, {"name": "{{ item }}", "cache_dir": str(cache)},
                                           loop=refs)), timeout=120)
        overlapped = push.proc.poll() is None
        slow.enabled = False  # lift the limit: the push finishes at full speed
        pushed = push.wait()
    ws.cleanup()
    assert slow.hits >= 1
    assert overlapped, "the pulls did not run while the push was uploading"
    results = ok(pulled, "pull")["results"]
    assert [r["digest"] for r in results] == [large.digest, samples["docker_v2"].digest, samples["multi"].digest]
    assert results[0]["bytes_downloaded"] == 0  # every blob of test/large was in the cache already
    assert ok(pushed, "push")["digest"] == large.digest

    files = assert_blobs_verify(cache)
    for name in ("large", "docker_v2", "multi", "oci_single"):
        obj = samples[name].obj
        assert set(obj.blobs) | set(obj.manifests) <= set(files), name
        assert read_index(cache)[samples[name].ref]["digest"] == obj.digest
    assert partial_files(cache) == []
    sources = json.loads((cache / ".imagepusher" / "sources.json").read_text())
    assert f"{proxy.host}/concurrent/large" in sources[big_layer(large.obj).digest]
    skopeo("copy", "--quiet", f"oci:{cache}:{samples['multi'].ref}", f"dir:{tmp_path / 'from-cache'}")
    ref = f"{fresh_registry.host}/concurrent/large:v1"
    skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"dir:{tmp_path / 'from-target'}")


# ==================================================================================================
# The disk fills up: a clear error, nothing partial under blobs/, index.json intact, the rerun
# (after space was made) continues from the partial download
# ==================================================================================================
@pytest.fixture
def small_fs(tmp_path):
    """An 8 MiB tmpfs (root and CAP_SYS_ADMIN needed; skipped otherwise), unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount an 8 MiB tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def test_disk_full_fails_clearly_and_the_rerun_resumes(small_fs, registry, samples, tmp_path):
    large, single = samples["large"], samples["oci_single"]
    big = big_layer(large.obj)
    cache = small_fs / "cache"
    images.write_oci_layout(cache, {single.ref: single.obj})
    index_before = (cache / "index.json").read_bytes()
    ws = AnsibleWorkspace(tmp_path / "ansible")
    pb = play(task("pull", PULL, {"name": large.ref, "cache_dir": str(cache)}, ignore_errors=True))
    try:
        full = ws.run_playbook(pb, timeout=120)
        result = failed(full, "pull")
        assert "disk space" in result["msg"] and big.digest in result["msg"], result["msg"]
        # issue 14: what it stored before the disk filled (the config, the small layers) is said, with changed
        assert result["error"] == "CacheFullError" and result["changed"] is True, result
        assert result["done"]["blobs_downloaded"] >= 1 and result["done"]["cache_names"] == [], result["done"]
        assert (cache / "index.json").read_bytes() == index_before
        files = assert_blobs_verify(cache)
        assert big.digest not in files
        partial = cache / ".imagepusher" / "ingest" / f"sha256-{big.digest.split(':')[1]}.partial"
        assert partial in partial_files(cache)  # kept outside blobs/, for the rerun
        kept = partial.stat().st_size
        assert kept > 0

        remount = subprocess.run(["mount", "-o", "remount,size=80m", str(small_fs)], capture_output=True,
                                 text=True, check=False)
        assert remount.returncode == 0, remount.stderr
        rerun = ws.run_playbook(pb, timeout=120)
    finally:
        ws.cleanup()
    result = ok(rerun, "pull")
    assert result["digest"] == large.digest
    assert {b["digest"]: b["action"] for b in result["blobs"]}[big.digest] == "resumed"
    assert result["bytes_downloaded"] <= sum(len(d) for d in large.obj.blobs.values()) - kept
    assert big.digest in assert_blobs_verify(cache)
    assert set(read_index(cache)) == {single.ref, large.ref}
    assert partial_files(cache) == []


# ==================================================================================================
# A shared cache no local user can turn against a run: links and other entries planted in the
# cache, a malformed index.json, crafted archives, and modes under a strict umask. Each case
# checks that the planted link's target keeps its bytes, that no wrong byte is trusted or sent,
# and that a failure says clearly what is wrong.
# ==================================================================================================
CACHE_ADMIN = "imagepusher.registry.image_cache"
VICTIM = b"victim\n"  # 7 bytes, as in the issue


def plant_link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(target)


@dataclass
class Planted:
    run: PlaybookRun
    strict: PlaybookRun
    outside: Path
    caches: Path
    target: Registry
    wrong: bytes


@pytest.fixture(scope="module")
def planted(registry, samples, filled_cache, tmp_path_factory) -> Planted:
    from tests.support import archives
    root = tmp_path_factory.mktemp("planted")
    outside, caches = root / "outside", root / "caches"
    outside.mkdir()
    single = samples["oci_single"]
    layer = big_layer(single.obj)
    wrong = b"X" * layer.size  # wrong bytes of the right size
    for name in ("partial", "lock", "blob-lock"):
        (outside / name).write_bytes(VICTIM)
    (outside / "wrong").write_bytes(wrong)
    # a planted partial download: the issue's 7-byte file that became 1 MB
    plant_link(caches / "partial" / ".imagepusher" / "ingest" / f"sha256-{layer.digest[7:]}.partial", outside / "partial")
    # blobs that are links to wrong bytes of the right size, in copies of a filled cache
    for name in ("blob-pull", "blob-push", "verify"):
        copy_cache(filled_cache, caches / name)
        plant_link(caches / name / "blobs" / "sha256" / layer.digest[7:], outside / "wrong")
    # linked lock files
    plant_link(caches / "lock" / ".imagepusher" / "locks" / "index.lock", outside / "lock")
    plant_link(caches / "lock" / ".imagepusher" / "locks" / f"{layer.digest[7:]}.lock", outside / "blob-lock")
    # a malformed index.json, and one too large to read
    for name, content in (("not-object", b"[1, 2]\n"), ("oversized", b"{" + b" " * (17 * MiB) + b"}")):
        (caches / name).mkdir(parents=True)
        (caches / name / "index.json").write_bytes(content)
        (caches / name / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    archives.gzip_bomb(root / "bomb.tar.gz", single.obj, "reg.test/bomb:v1", 64 * MiB)
    archives.many_members(root / "many.tar", single.obj, "reg.test/many:v1", 20001)
    bad = [(n, d.replace(b'"reg.test/bad:v1"', json.dumps("../../../etc/passwd\nX").encode()) if n == "index.json"
            else d) for n, d in archives.layout_members(single.obj, "reg.test/bad:v1")]
    archives.raw_tar(root / "bad-name.tar", bad)

    def pull(name, cache, **kw):
        return task(name, PULL, {"name": single.ref, "cache_dir": str(caches / cache)}, ignore_errors=True, **kw)

    def imported(name, archive):
        return task(name, CACHE_ADMIN, {"state": "imported", "path": str(root / archive),
                                        "cache_dir": str(caches / "imports")}, ignore_errors=True)

    def verify(name, **kw):
        return task(name, CACHE_ADMIN, {"state": "verified", "remove_bad": True, "cache_dir": str(caches / "verify")},
                    **kw)

    with Registry() as target:
        ws = AnsibleWorkspace(root / "ansible")
        try:
            run = ws.run_playbook(play(
                pull("partial check", "partial", check_mode=True), pull("partial", "partial"),
                pull("partial again", "partial"),
                pull("blob check", "blob-pull", check_mode=True), pull("blob", "blob-pull"),
                task("push linked blob", PUSH, {"name": single.ref, "target": f"{target.host}/planted/app:v1",
                                                "cache_dir": str(caches / "blob-push")}, ignore_errors=True),
                pull("lock", "lock"),
                verify("verify check", check_mode=True), verify("verify"), verify("verify again"),
                pull("not object", "not-object"), pull("oversized", "oversized"),
                imported("bomb", "bomb.tar.gz"), imported("many", "many.tar"), imported("bad name", "bad-name.tar"),
            ), diff=True, timeout=600)
            old = os.umask(0o077)
            try:
                # With progress: async_wrapper sets umask 022, and the module must restore the task's own.
                strict = ws.run_playbook(play(pull("strict", "strict")), timeout=300, env={"IMAGEPUSHER_PROGRESS": "true"})
            finally:
                os.umask(old)
        finally:
            ws.cleanup()
        yield Planted(run, strict, outside, caches, target, wrong)


def test_nothing_outside_the_cache_is_written_through_a_planted_link(planted):
    assert {p.name: p.read_bytes() for p in planted.outside.iterdir()} == {
        "partial": VICTIM, "lock": VICTIM, "blob-lock": VICTIM, "wrong": planted.wrong}


def layer_action(result: dict, digest: str) -> str:
    return {b["digest"]: b["action"] for b in result["blobs"]}[digest]


def test_a_planted_partial_link_is_not_resumed_through(planted, samples):
    layer = big_layer(samples["oci_single"].obj)
    assert layer_action(ok(planted.run, "partial check"), layer.digest) == "downloaded"
    result = ok(planted.run, "partial")
    assert result["changed"] and layer_action(result, layer.digest) == "downloaded"
    assert layer_action(ok(planted.run, "partial again"), layer.digest) == "cached"
    assert_blobs_verify(planted.caches / "partial")
    assert partial_files(planted.caches / "partial") == []


def test_a_blob_linked_to_wrong_bytes_is_downloaded_not_trusted(planted, samples):
    layer = big_layer(samples["oci_single"].obj)
    assert layer_action(ok(planted.run, "blob check"), layer.digest) == "downloaded"
    result = ok(planted.run, "blob")
    assert layer_action(result, layer.digest) == "downloaded"
    blob = planted.caches / "blob-pull" / "blobs" / "sha256" / layer.digest[7:]
    assert not blob.is_symlink() and sha256_file(blob) == layer.digest
    assert_blobs_verify(planted.caches / "blob-pull")


def test_a_push_never_sends_a_linked_blob(planted, samples):
    layer = big_layer(samples["oci_single"].obj)
    result = failed(planted.run, "push linked blob")
    assert "incomplete" in result["msg"] and "pull it again" in result["msg"], result["msg"]
    assert registry_head(planted.target, f"/v2/planted/app/blobs/{layer.digest}") == 404
    assert registry_head(planted.target, "/v2/planted/app/manifests/v1") == 404


def test_linked_lock_files_are_replaced_not_followed(planted):
    ok(planted.run, "lock")
    locks = planted.caches / "lock" / ".imagepusher" / "locks"
    assert not any(p.is_symlink() for p in locks.iterdir())
    assert_blobs_verify(planted.caches / "lock")


def test_verify_reports_and_removes_a_linked_blob(planted, samples):
    layer = big_layer(samples["oci_single"].obj)
    check = ok(planted.run, "verify check")
    assert [(b["digest"], b["reason"]) for b in check["bad"]] == [(layer.digest, "a symbolic link (never trusted)")]
    assert check["changed"] and check["removed"] == [layer.digest]
    assert [i["name"] for i in check["incomplete"]] == [samples["oci_single"].ref]
    real = ok(planted.run, "verify")
    assert real["changed"] and real["removed"] == [layer.digest]
    assert real["diff"] == {"before": {"bad_blobs": [layer.digest]}, "after": {"bad_blobs": []}}
    again = ok(planted.run, "verify again")
    assert not again["changed"] and again["bad"] == []
    assert not (planted.caches / "verify" / "blobs" / "sha256" / layer.digest[7:]).exists()


@pytest.mark.parametrize("name, words", [("not object", "is not an OCI image index"),
                                         ("oversized", "is larger than 16 MiB")])
def test_a_malformed_index_json_is_a_clear_error_and_never_rewritten(planted, name, words):
    result = failed(planted.run, name)
    assert words in result["msg"] and "index.json" in result["msg"], result["msg"]
    cache = planted.caches / name.replace(" ", "-")
    assert (cache / "index.json").read_bytes() == ({"not object": b"[1, 2]\n"}.get(name)
                                                   or b"{" + b" " * (17 * MiB) + b"}")


@pytest.mark.parametrize("name, words", [("bomb", "decompresses to more than"), ("many", "more than 20000 members"),
                                         ("bad name", "not a valid image reference")])
def test_a_crafted_archive_is_refused_before_anything_is_cached(planted, name, words):
    result = failed(planted.run, name)
    assert words in result["msg"], result["msg"]
    assert not (planted.caches / "imports").exists()  # refused before the cache was even created


def test_under_umask_077_every_file_and_directory_is_private(planted):
    ok(planted.strict, "strict")
    cache = planted.caches / "strict"
    modes = {p.relative_to(cache): p.stat().st_mode & 0o777 for p in [cache, *cache.rglob("*")]}
    assert {Path("index.json"), Path("oci-layout")} <= set(modes)
    assert {m for p, m in modes.items() if (cache / p).is_dir()} == {0o700}
    assert {m for p, m in modes.items() if not (cache / p).is_dir()} == {0o600}
