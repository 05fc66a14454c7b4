"""The role imagepusher.registry.mirror_images against REAL registries, through real ansible-playbook.

Driver for the integration target tests/integration/targets/mirror_images/ (a role whose
tasks/main.yml runs the case files named in ``mirror_test_cases``):

- ``mirrored``: the role mirrors three seeded images (the 3-platform index, the Docker v2
  image, the OCI image; one target without a tag) into an empty registry of its own, with a
  dedicated cache dir, then the same playbook runs again. In the background meanwhile, a
  third run applies the role to a list with an entry that has no target.
- The tests check the two runs' results and PLAY RECAPs, and the target with skopeo.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.ansible import AnsibleWorkspace, PlaybookRun
from tests.support.registry import Registry

pytestmark = [pytest.mark.ansible]

TARGET = Path(__file__).resolve().parent / "targets" / "mirror_images"
PLAYBOOK = f"""
- name: mirror_images integration target
  hosts: localhost
  gather_facts: false
  roles:
    - role: {TARGET}
  tasks:
    - name: export results
      ansible.builtin.debug:
        var: mirror_images_results
"""
RECAP_RE = re.compile(r"^localhost\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                      r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)"
                      r"\s+ignored=(?P<ignored>\d+)", re.M)
PUSH = "imagepusher.registry.image_push"
PULL = "imagepusher.registry.image_pull"


def recap(run: PlaybookRun) -> dict[str, int]:
    found = RECAP_RE.findall(run.stdout)
    assert len(found) == 1, f"expected one PLAY RECAP line for localhost\n{run.output}"
    return dict(zip(("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"),
                    map(int, found[0])))


def raw_digest(ref: str) -> str:
    proc = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, f"skopeo inspect {ref} failed:\n{proc.stderr.decode()}"
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


def exported(run: PlaybookRun) -> list[dict]:
    assert run.rc == 0, f"the mirror_images target failed (rc={run.rc})\n{run.output}"
    return run.task("export results").result["mirror_images_results"]


@pytest.fixture(scope="module")
def mirrored(registry, samples, tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror-images")
    cache_dir = root / "cache"
    ws = AnsibleWorkspace(root / "ansible")
    chosen = [("multi", "mirror/multi:v1"), ("docker_v2", "mirror/docker-v2"),  # no tag: takes v1
              ("oci_single", "mirror/oci-single:stable")]
    with Registry() as target:
        invalid = ws.start_playbook(PLAYBOOK, {
            "mirror_test_cases": ["invalid"],
            "mirror_test_cache_dir": str(root / "invalid-cache"),
            "mirror_test_invalid_list": [{"source": samples["oci_single"].ref}],
        }, timeout=120)
        extra = {
            "mirror_test_cases": ["mirror"],
            "mirror_test_cache_dir": str(cache_dir),
            "mirror_test_list": [{"source": samples[name].ref, "target": f"{target.host}/{dest}"}
                                 for name, dest in chosen],
            "mirror_test_expected": [
                {"target": f"{target.host}/{dest}" + ("" if ":" in dest else f":{samples[name].tag}"),
                 "digest": samples[name].digest,
                 "bytes": sum(len(b) for b in samples[name].obj.blobs.values())}
                for name, dest in chosen],
        }
        first = ws.run_playbook(PLAYBOOK, dict(extra, mirror_test_first_run=True), timeout=180)
        second = ws.run_playbook(PLAYBOOK, dict(extra, mirror_test_first_run=False), timeout=180)
        digests = {e["target"]: raw_digest(e["target"]) for e in extra["mirror_test_expected"]}
        yield {"first": first, "second": second, "invalid": invalid.wait(), "extra": extra,
               "digests": digests, "cache_dir": cache_dir, "target": target.host}
    ws.cleanup()


def test_first_run_mirrors_every_image(mirrored, samples):
    first = mirrored["first"]
    results = exported(first)
    expected = mirrored["extra"]["mirror_test_expected"]
    assert [r["digest"] for r in results] == [e["digest"] for e in expected]
    assert [r["target"] for r in results] == [e["target"] for e in expected]
    assert all(r["pulled"] and r["pushed"] for r in results), results
    # skopeo reads each target tag back with the source digest (one target had no tag: v1)
    assert mirrored["digests"] == {e["target"]: e["digest"] for e in expected}
    assert f"{mirrored['target']}/mirror/docker-v2:v1" in mirrored["digests"]
    pushes = [r for r in first.results if r["action"] == PUSH]
    assert [r["status"] for r in pushes] == ["changed"]
    assert [i["changed"] for i in pushes[0]["result"]["results"]] == [True] * 3
    assert (recap(first)["changed"], recap(first)["failed"]) == (2, 0)  # the pull and the push task
    # the dedicated cache holds the three images (and the default cache was not used)
    assert (mirrored["cache_dir"] / "index.json").is_file()
    assert "Traceback" not in first.stdout + first.stderr


def test_second_run_changes_nothing(mirrored):
    second = mirrored["second"]
    results = exported(second)
    assert [(r["pulled"], r["pushed"], r["bytes_downloaded"], r["bytes_uploaded"]) for r in results] \
        == [(False, False, 0, 0)] * 3
    assert [r["digest"] for r in results] == [e["digest"] for e in mirrored["extra"]["mirror_test_expected"]]
    counts = recap(second)
    assert counts["changed"] == 0 and counts["failed"] == 0, second.output
    changed = [(r["task"], r["action"]) for r in second.results if r["status"] == "changed"]
    assert changed == [], f"tasks that changed on the second run: {changed}"
    for action in (PULL, PUSH):
        (record,) = [r for r in second.results if r["action"] == action]
        assert [i["changed"] for i in record["result"]["results"]] == [False] * 3, record


def test_entry_without_target_fails_argument_validation(mirrored):
    run = mirrored["invalid"]
    assert run.rc == 0, f"the invalid case's asserts failed\n{run.output}"
    failed = [r for r in run.results if r["status"] == "failed"]
    assert len(failed) == 1, run.output
    msg = failed[0]["result"]["msg"]
    assert "missing required arguments: target" in msg and "mirror_images_list" in msg, msg
    assert recap(run)["rescued"] == 1
    assert not [r for r in run.results if r["action"] in (PULL, PUSH)], "a module ran despite the invalid list"
