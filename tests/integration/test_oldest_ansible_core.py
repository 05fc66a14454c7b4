"""Smoke run under the oldest ansible-core the collection claims (meta/runtime.yml), in its own venv.

The rest of the suite runs the ansible-core of tests/requirements.txt; this file runs a pull (check mode,
real, again), an image_mirror (check mode, real) and the mirror_images role with the ansible-core of
tests/core-oldest-requirements.txt (`make core-venv` builds .venv-core-oldest), the venv's Python being
both controller and target. A wider matrix (ansible-core 2.17/2.18, target Pythons 3.8-3.10 and 3.13) is
not run here: Debian 12 ships Python 3.11 only and no older or newer interpreter is installable from the
package registries this project uses.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from tests.support import REPO_ROOT
from tests.support.ansible import AnsibleWorkspace
from tests.support.registry import Registry

pytestmark = [pytest.mark.ansible]

VENV = REPO_ROOT / ".venv-core-oldest"
RUNTIME = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text())


def oldest_claimed() -> str:
    """'2.16.0' from requires_ansible '>=2.16.0'."""
    spec = RUNTIME["requires_ansible"]
    assert spec.startswith(">="), spec
    return spec[2:].split(",")[0].strip()


def pinned() -> str:
    for line in (REPO_ROOT / "tests" / "core-oldest-requirements.txt").read_text().splitlines():
        if line.startswith("ansible-core=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError("tests/core-oldest-requirements.txt pins no ansible-core")


@pytest.fixture(scope="module")
def old_core():
    if not (VENV / "bin" / "ansible-playbook").exists():
        pytest.fail(f"{VENV} not found: run `make core-venv` (ansible-core {pinned()} in a venv of its own)",
                    pytrace=False)
    version = subprocess.run([str(VENV / "bin" / "python"), "-c", "import ansible; print(ansible.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return version


def test_the_pin_is_the_oldest_claimed_version(old_core):
    assert pinned() == oldest_claimed() == old_core


SMOKE = """\
- name: Smoke under the oldest ansible-core
  hosts: localhost
  gather_facts: false
  vars:
    pull_args: &pull
      name: "{{ source }}/test/multi:v1"
      platforms: [linux/amd64]
      cache_dir: "{{ cache_root }}/pull"
    mirror_args: &mirror
      images:
        - source: "{{ source }}/test/oci-single:v1"
          target: "{{ target }}/smoke/oci-single:v1"
      cache_dir: "{{ cache_root }}/mirror"
  tasks:
    - name: Pull | check mode
      imagepusher.registry.image_pull: *pull
      check_mode: true
      diff: true
      register: pull_check
    - name: Pull | real
      imagepusher.registry.image_pull: *pull
      diff: true
      register: pull_real
    - name: Pull | again
      imagepusher.registry.image_pull: *pull
      # With become, progress runs the module as an async job (as root: su to root needs no password).
      become: "{{ as_root }}"
      become_method: ansible.builtin.su
      register: pull_again
    - name: Mirror | check mode
      imagepusher.registry.image_mirror: *mirror
      check_mode: true
      diff: true
      register: mirror_check
    - name: Mirror | real
      imagepusher.registry.image_mirror: *mirror
      diff: true
      register: mirror_real
    - name: The role
      ansible.builtin.include_role:
        name: imagepusher.registry.mirror_images
      vars:
        mirror_images_cache_dir: "{{ cache_root }}/role"
        mirror_images_list:
          - source: "{{ source }}/test/docker-v2:v1"
            target: "{{ target }}/smoke/docker-v2"
    - name: Results
      ansible.builtin.assert:
        that:
          - pull_check is changed and pull_real is changed and pull_again is not changed
          - pull_check.digest == pull_real.digest == digests.multi_amd64
          - pull_real.diff.after.digest == digests.multi_amd64
          - mirror_check is changed and mirror_real is changed
          - mirror_check.images[0].bytes_uploaded == mirror_real.images[0].bytes_uploaded > 0
          - mirror_real.images[0].digest == digests.oci_single
          - mirror_images_mirrored.images[0].digest == digests.docker_v2
"""


def test_pull_mirror_role_and_check_mode_under_the_oldest_core(old_core, registry, samples, tmp_path):
    ws = AnsibleWorkspace(tmp_path / "ansible", python=str(VENV / "bin" / "python"))
    with Registry() as target:
        extra = {"source": registry.host, "target": target.host, "cache_root": str(tmp_path / "caches"),
                 "digests": {"multi_amd64": samples["multi"].obj.image_for("amd64").digest,
                             "oci_single": samples["oci_single"].digest, "docker_v2": samples["docker_v2"].digest},
                 "as_root": os.geteuid() == 0}
        # Progress on: read beside the module over the local connection, an async job with become.
        run = ws.run_playbook(SMOKE, extra, timeout=600, env={"IMAGEPUSHER_PROGRESS": "true"})
    assert run.rc == 0, run.output
    assert "Traceback" not in run.stdout + run.stderr, run.output
    assert [r["task"] for r in run.results if r["status"] == "failed"] == [], run.output
    assert run.task("Results").status == "ok", json.dumps(run.task("Results").result)
    ws.cleanup()
