"""image_info against the REAL registry, through real ansible-playbook.

The integration target (targets/image_info/tasks/main.yml) runs once: the 3-platform index
four times (check, real, check, real, with diff), the single-platform images, what does not
exist, the cache source and a user error. This file passes it the registry and the
expected values, computed from the seeded bytes by tests/support/images.py (not by our
code), and checks that every task ran and that nothing was written to the registry.

Run: .venv/bin/python -m pytest tests/integration/test_image_info.py -q
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.support import images
from tests.support.ansible import AnsibleWorkspace

pytestmark = [pytest.mark.ansible]

TARGET = Path(__file__).resolve().parent / "targets" / "image_info"
TARGET_PLAY = f"""\
- name: image_info integration target
  hosts: localhost
  gather_facts: false
  roles:
    - role: {TARGET}
"""
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def platform_string(platform: dict) -> str:
    return "/".join([platform["os"], platform["architecture"]] + ([platform["variant"]] if platform.get("variant") else []))


def image_total(img: images.Image) -> int:
    return img.size + sum(len(data) for data in img.blobs.values())


def describe(sample) -> dict:
    obj = sample.obj
    manifests = obj.manifests.values()
    info = {
        "ref": sample.ref,
        "digest": obj.digest,
        "media_type": obj.media_type,
        "manifest_size": obj.size,
        "total_size": sum(len(d) for d in obj.blobs.values()) + sum(len(raw) for _t, raw in manifests),
        "platforms": [{"platform": platform_string(img.platform), "digest": img.digest,
                       "config_digest": img.config.digest, "layers": [layer.digest for layer in img.layers],
                       "total_size": image_total(img)} for img in obj.images],
    }
    if isinstance(obj, images.Image):
        cfg = json.loads(obj.config.data)["config"]
        info.update(labels=cfg["Labels"], cmd=cfg["Cmd"], layer_media_type=obj.layers[0].media_type)
    return info


@pytest.fixture(scope="module")
def target(registry, samples, tmp_path_factory):
    ws = AnsibleWorkspace(tmp_path_factory.mktemp("image-info-target"))
    extra_vars = {
        "registry": registry.host,
        "expected": {name: describe(samples[name]) for name in ("oci_single", "docker_v2", "multi")},
        "cache_dir": str(ws.root / "cache"),
    }
    mark = registry.mark()
    run = ws.run_playbook(TARGET_PLAY, extra_vars, env={"ANSIBLE_PIPELINING": "True"}, timeout=240)
    yield run, registry.access_log(since=mark)
    ws.cleanup()


def _expected_task_names() -> Counter:
    tasks = yaml.safe_load((TARGET / "tasks" / "main.yml").read_text())
    return Counter(task["name"] for task in tasks)


def test_target_runs_every_task(target):
    run, _log = target
    assert run.rc == 0, run.output
    assert "Traceback" not in run.stdout + run.stderr, run.output
    assert Counter(r["task"] for r in run.results) == _expected_task_names(), run.output
    assert [r["task"] for r in run.results if r["status"] == "skipped"] == []
    failed = [r for r in run.results if r["status"] == "failed"]
    assert failed and all(r["ignore_errors"] and r["task"].startswith("Fail:") for r in failed), failed
    assert all(r["status"] == "ok" for r in run.results if r["action"] == "ansible.builtin.assert")


def test_image_info_only_reads(target):
    """No write request reached the registry, and no blob larger than a config was fetched."""
    run, log = target
    assert run.rc == 0, run.output
    assert log, "the access log is empty: the target did not reach the registry"
    assert [e for e in log if e.method in WRITES] == []
    large = images.large_image()
    assert [e for e in log if large.layers[0].digest in e.path] == []
    blob_gets = [e for e in log if e.method == "GET" and "/blobs/" in e.path]
    assert blob_gets and max(e.size for e in blob_gets if e.status == 200) < 64 * 1024
