"""Killed pushes resume by default, and two pushes of one image upload each blob once (issue 15).

Against the REAL registry (Distribution 2.8) behind tests/support/fault_proxy.py, through real
ansible-playbook, on caches written by the test image builder.

What Distribution 2.8 does with a killed upload (measured, see bench/RESULTS.md): the bytes of a
PATCH cut mid-body are written, but the signed offset in the session's Location is not moved,
so the next GET on the session answers 404 BLOB_UPLOAD_INVALID: a cut PATCH loses its session
(test_faults.py::test_killed_push_restarts_cleanly... checks that restart). What survives a kill
is every piece the registry acknowledged: a big blob goes up by default in pieces of
_upload.RESUMABLE_CHUNK, its session saved before the first byte and after each piece. So here
the kill lands mid-blob between two pieces (the proxy holds the second piece's PATCH).

Run: .venv/bin/python -m pytest tests/integration/test_push_resume.py -q
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support import images
from tests.support.ansible import AnsibleWorkspace
from tests.support.checks import PUSH, ok, play, sha256_file, skopeo, task
from tests.support.fault_proxy import MiB, FaultProxy, stall, throttle
from tests.support.registry import Registry

pytestmark = [pytest.mark.ansible]

PIECE = 128 * MiB  # _upload.RESUMABLE_CHUNK: the default piece of a big blob pushed from the cache
NAME = "127.0.0.1:5999/resume/big:v1"  # the image's name in the cache (no registry is asked for it)


def saved_sessions(cache: Path) -> list[dict]:
    found = []
    for path in sorted((cache / ".imagepusher" / "uploads").glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except FileNotFoundError:  # cleared by the push between listing and reading
            continue
    return found


def wait_for(predicate, proc, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.proc.poll() is None, f"the run ended before {what}:\n" + proc.wait().output
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def big_image() -> images.Image:
    """About 200 MiB: one incompressible layer of 200 MiB (two pieces) and a small one."""
    return images.build_image([images.random_layer(200, seed=15), images.random_layer(1, seed=16)])


@pytest.fixture(scope="module")
def killed_and_rerun(big_image, tmp_path_factory):
    """A default push (no chunk_size), its first 128 MiB piece throttled and acknowledged, SIGKILLed
    while the proxy holds the second piece; then a rerun without faults."""
    big = max(big_image.layers, key=lambda b: b.size)
    root = tmp_path_factory.mktemp("push-resume")
    cache = root / "cache"
    images.write_oci_layout(cache, {NAME: big_image})
    ws = AnsibleWorkspace(root / "ansible")
    with Registry() as target, FaultProxy(target.host) as proxy:
        held = proxy.add("PATCH", r"^/v2/resume/big/blobs/uploads/", stall(120, stage="request"),
                         header=("Content-Range", rf"^{PIECE}-"))
        proxy.add("PATCH", r"^/v2/resume/big/blobs/uploads/", throttle(64 * MiB, "up"))
        pb = play(task("push", PUSH, {"name": NAME, "target": f"{proxy.host}/resume/big:v1",
                                      "cache_dir": str(cache)}))
        proc = ws.start_playbook(pb, timeout=180)
        wait_for(held.fired.is_set, proc, "the second piece of the big layer")
        saved = [s for s in saved_sessions(cache) if s["digest"] == big.digest]
        proc.kill()
        killed = proc.wait(timeout=30)
        assert killed.rc == -signal.SIGKILL and not killed.results
        proxy.clear()
        mark = proxy.mark()
        rerun = ws.run_playbook(pb, timeout=180)
        yield {"rerun": rerun, "saved": saved, "proxy": proxy, "mark": mark, "target": target, "big": big,
               "cache": cache, "tmp": root}
    ws.cleanup()


def test_the_session_was_saved_at_the_acknowledged_piece(killed_and_rerun):
    saved = killed_and_rerun["saved"]
    assert len(saved) == 1 and saved[0]["offset"] == PIECE, saved


def test_the_rerun_resumes_and_sends_only_what_the_registry_lacked(killed_and_rerun, big_image):
    ctx = killed_and_rerun
    big, proxy = ctx["big"], ctx["proxy"]
    result = ok(ctx["rerun"], "push")
    assert result["digest"] == big_image.digest
    assert {b["digest"]: b["action"] for b in result["blobs"]}[big.digest] == "resumed"
    uuid = ctx["saved"][0]["location"].split("/blobs/uploads/", 1)[1].split("?", 1)[0]
    session = [e for e in proxy.exchanges(since=ctx["mark"]) if uuid in e.target]
    assert session[0].method == "GET" and session[0].status == 204, session
    assert session[0].response_header("Range") == f"0-{PIECE - 1}"
    big_patches = [e for e in session if e.method == "PATCH"]
    assert big_patches[0].header("Content-Range").startswith(f"{PIECE}-")
    assert sum(e.request_bytes for e in big_patches) == big.size - PIECE  # clearly less than the blob
    sent = sum(e.request_bytes for e in proxy.exchanges("PATCH", "^/v2/resume/", since=ctx["mark"]))
    assert result["bytes_uploaded"] == sent  # only the bytes this run sent
    assert sent < big.size - 64 * MiB
    assert saved_sessions(ctx["cache"]) == []


def test_skopeo_reads_the_resumed_blob_back_intact(killed_and_rerun, big_image):
    ctx = killed_and_rerun
    ok(ctx["rerun"], "push")
    copy = ctx["tmp"] / "copy"
    skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{ctx['target'].host}/resume/big:v1", f"dir:{copy}")
    for blob in big_image.layers:
        assert sha256_file(copy / blob.digest.split(":")[1]) == blob.digest


# ==================================================================================================
# Two runs pushing the same image to the same target at once: each blob is uploaded once
# ==================================================================================================
def test_two_concurrent_pushes_upload_each_blob_once(tmp_path):
    layers = [images.random_layer(8, seed=seed) for seed in (21, 22, 23)]
    image = images.build_image(layers)
    cache = tmp_path / "cache"
    images.write_oci_layout(cache, {NAME: image})
    ws = AnsibleWorkspace(tmp_path / "ansible")
    with Registry() as target, FaultProxy(target.host) as proxy:
        # Every upload start waits 3 s: both runs have planned (HEAD: every blob missing) before any
        # blob exists, so without coordination both would upload everything.
        proxy.add("POST", r"^/v2/both/app/blobs/uploads/", stall(3, stage="request"))
        proxy.add("PATCH", r"^/v2/both/app/blobs/uploads/", throttle(8 * MiB, "up"))
        pb = play(task("push", PUSH, {"name": NAME, "target": f"{proxy.host}/both/app:v1", "cache_dir": str(cache)}))
        runs = [ws.start_playbook(pb, timeout=180), ws.start_playbook(pb, timeout=180)]
        results = [ok(run.wait(), "push") for run in runs]
        log = proxy.exchanges(None, "^/v2/both/app/")
    ws.cleanup()
    blobs = [image.config.digest] + [layer.digest for layer in layers]
    assert all(r["digest"] == image.digest for r in results)
    missing = [e for e in log if e.method == "HEAD" and "/blobs/sha256:" in e.target and e.status == 404]
    assert len(missing) >= 2 * len(blobs), "both runs planned every blob as missing"
    finished = [parse_qs(urlsplit(e.target).query).get("digest", [""])[0]
                for e in log if e.method == "PUT" and "/blobs/uploads/" in e.target]
    assert sorted(finished) == sorted(blobs)  # each blob uploaded once, by one of the two runs
    assert len([e for e in log if e.method == "POST"]) == len(blobs)
    actions = [{b["digest"]: b["action"] for b in r["blobs"]} for r in results]
    for digest in blobs:
        assert sorted(a[digest] for a in actions) == ["exists", "uploaded"], actions
    assert sum(r["bytes_uploaded"] for r in results) == sum(len(image.blobs[d]) for d in blobs)
