"""`timeout` bounds a trickling registry: a run ends within a small multiple of it (issue 15).

A registry that sends one byte at a time, slowly, never trips a per-read timeout; the
deadline (plugins/module_utils/_deadline.py) cuts a connection that moves less than 1 KiB/s
over a window of `timeout` seconds. tests/support/hostile_registry.py trickles the manifest
of one repository and a layer of another; with retries=0 each pull must fail cleanly, saying
why, within a few times `timeout` (before: until the last byte, here about an hour).

Run: .venv/bin/python -m pytest tests/integration/test_deadline.py -q
"""

from __future__ import annotations

import pytest

from tests.support import images
from tests.support.ansible import AnsibleWorkspace
from tests.support.checks import PULL, failed, partial_files, play, task
from tests.support.hostile_registry import HostileRegistry

pytestmark = [pytest.mark.ansible]

TIMEOUT = 2
TRICKLE = 0.5  # seconds between two bytes: 2 bytes/s


def timed(name: str, module: str, args: dict) -> list[dict]:
    """The task between two time stamps taken by the controller."""
    key = name.replace(" ", "_")
    stamp = "{{ now(utc=true).timestamp() }}"
    return [{"name": f"{name} t0", "ansible.builtin.set_fact": {f"{key}_t0": stamp}},
            task(name, module, args, ignore_errors=True),
            {"name": f"{name} t1", "ansible.builtin.set_fact": {f"{key}_t1": stamp}}]


def elapsed(run, name: str) -> float:
    key = name.replace(" ", "_")
    start = float(run.task(f"{name} t0").result["ansible_facts"][f"{key}_t0"])
    return float(run.task(f"{name} t1").result["ansible_facts"][f"{key}_t1"]) - start


@pytest.fixture(scope="module")
def trickled(tmp_path_factory):
    img = images.oci_single()
    layer = max(img.layers, key=lambda b: b.size)
    root = tmp_path_factory.mktemp("deadline")
    ws = AnsibleWorkspace(root / "ansible")
    with HostileRegistry() as evil:
        # The manifest is trickled by tag and by digest (a pull reads it by the digest a HEAD gave).
        for repo_name, slow in (("slow/manifest", ("v1", img.digest)), ("slow/blob", (layer.digest,))):
            repo = evil.repo(repo_name)
            repo.manifest("v1", img.manifest, img.media_type)
            repo.blobs.update(img.blobs)
            repo.trickle.update(dict.fromkeys(slow, TRICKLE))
        tasks = [timed(name, PULL, {"name": f"{evil.host}/slow/{name}:v1", "cache_dir": str(root / name),
                                    "timeout": TIMEOUT, "retries": 0})
                 for name in ("manifest", "blob")]
        run = ws.run_playbook(play(*tasks), timeout=300)
    yield run, root, layer
    ws.cleanup()


@pytest.mark.parametrize("name", ["manifest", "blob"])
def test_a_trickle_ends_the_run_within_a_small_multiple_of_timeout(trickled, name):
    run, _root, _layer = trickled
    result = failed(run, name)
    assert "bytes/s" in result["msg"] and "timeout" in result["msg"], result["msg"]
    # one attempt: about 2 * timeout; the rest is the module's start-up
    assert elapsed(run, name) < 4 * TIMEOUT + 6, elapsed(run, name)


def test_a_trickled_blob_is_never_trusted(trickled):
    _run, root, layer = trickled
    assert not (root / "blob" / "blobs" / "sha256" / layer.digest.split(":")[1]).exists()
    for partial in partial_files(root / "blob"):
        assert partial.stat().st_size < layer.size  # kept to resume from, never renamed into blobs/
