"""The role imagepusher.registry.mirror_images passes the registry options through to both modules.

Against REAL registries: the session's seeded registry is the source, and an empty registry
with ``auth: htpasswd`` is the target. One playbook applies the role three times (each in a
block that records the outcome, so one ansible-playbook run covers every case):

- ``authfile``: credentials only in ``mirror_images_auth_file`` (no username/password
  anywhere, no auth file in the default locations), ``target_plain_http: true`` on the entry:
  the image reaches the authenticated target with the source digest.
- ``missing``: ``mirror_images_auth_file`` names a file that does not exist: the pull fails
  with the module's own message, which proves the option reached it.
- ``keyonly``: ``mirror_images_client_key`` without ``mirror_images_client_cert``: the module's
  mutual-TLS check refuses it, which proves both options reach it.
"""

from __future__ import annotations

import secrets

import pytest

from tests.support.ansible import AnsibleWorkspace
from tests.support.auth_files import basic_entry, find_leaks, htpasswd_config, write_auth_file, write_htpasswd
from tests.support.registry import Registry

pytestmark = [pytest.mark.ansible]

PLAYBOOK = """
- name: mirror_images registry options
  hosts: localhost
  gather_facts: false
  tasks:
    - name: authfile | mirror with credentials from mirror_images_auth_file only
      ansible.builtin.include_role:
        name: imagepusher.registry.mirror_images
      vars:
        mirror_images_cache_dir: "{{ opt_cache_dir }}/authfile"
        mirror_images_auth_file: "{{ opt_auth_file }}"
        mirror_images_list:
          - source: "{{ opt_source }}"
            target: "{{ opt_target }}"
            target_plain_http: true

    - name: authfile | export results
      ansible.builtin.debug:
        var: mirror_images_results

    - name: missing | an auth file that does not exist
      block:
        - name: missing | apply the role
          ansible.builtin.include_role:
            name: imagepusher.registry.mirror_images
          vars:
            mirror_images_cache_dir: "{{ opt_cache_dir }}/missing"
            mirror_images_auth_file: "{{ opt_cache_dir }}/no-such-auth.json"
            mirror_images_list:
              - source: "{{ opt_source }}"
                target: "{{ opt_target }}"
      rescue:
        - name: missing | export the failure
          ansible.builtin.debug:
            msg: "{{ ansible_failed_result.results | default([ansible_failed_result]) | map(attribute='msg') | list }}"

    - name: keyonly | a client key without its certificate
      block:
        - name: keyonly | apply the role
          ansible.builtin.include_role:
            name: imagepusher.registry.mirror_images
          vars:
            mirror_images_cache_dir: "{{ opt_cache_dir }}/keyonly"
            mirror_images_client_key: "{{ opt_cache_dir }}/client.key"
            mirror_images_list:
              - source: "{{ opt_source }}"
                target: "{{ opt_target }}"
      rescue:
        - name: keyonly | export the failure
          ansible.builtin.debug:
            msg: "{{ ansible_failed_result.results | default([ansible_failed_result]) | map(attribute='msg') | list }}"
"""


@pytest.fixture(scope="module")
def options_run(samples, tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror-images-options")
    password = secrets.token_urlsafe(18)
    htpasswd = write_htpasswd(root / "htpasswd", {"mirror-bot": password})
    sample = samples["oci_single"]
    ws = AnsibleWorkspace(root / "ansible")
    with Registry(config=htpasswd_config(htpasswd)) as target:
        auth_file = write_auth_file(root / "auth.json", {target.host: basic_entry("mirror-bot", password)})
        run = ws.run_playbook(PLAYBOOK, {
            "opt_cache_dir": str(root / "cache"),
            "opt_auth_file": str(auth_file),
            "opt_source": sample.ref,
            "opt_target": f"{target.host}/mirror/options:v1",
        }, timeout=180)
        manifest_puts = [e for e in target.access_log()
                         if e.method == "PUT" and "/manifests/" in e.path and e.status == 201]
        yield {"run": run, "password": password, "sample": sample, "target": target.host,
               "manifest_puts": manifest_puts}
    ws.cleanup()


def test_auth_file_reaches_both_modules(options_run):
    run = options_run["run"]
    assert run.rc == 0, run.output
    (result,) = run.task("authfile | export results").result["mirror_images_results"]
    assert result["digest"] == options_run["sample"].digest
    assert result["target"] == f"{options_run['target']}/mirror/options:v1"
    assert result["pushed"] is True
    assert len(options_run["manifest_puts"]) == 1, options_run["manifest_puts"]
    assert not find_leaks(run, [options_run["password"]])


def test_missing_auth_file_fails_in_the_module(options_run):
    run = options_run["run"]
    msgs = run.task("missing | export the failure").result["msg"]
    assert any("auth_file" in m and "no-such-auth.json" in m and "does not exist" in m for m in msgs), msgs


def test_client_key_without_cert_fails_in_the_module(options_run):
    run = options_run["run"]
    msgs = run.task("keyonly | export the failure").result["msg"]
    assert any("client_key is set but client_cert is not" in m for m in msgs), msgs
