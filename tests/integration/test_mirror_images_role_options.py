"""The role imagepusher.registry.mirror_images passes the registry options through to image_mirror.

Against REAL registries: the session's seeded registry (anonymous), a source registry and a
target registry with ``auth: htpasswd``, and a forward proxy (tests/support/forward_proxy.py)
that reaches those loopback registries under names that are not loopback (``mirror-src.test``,
``mirror-tgt.test``), which the modules only talk plain HTTP to when told to (https to them is
a CONNECT, which the proxy refuses). One playbook applies the role seven times (each failing
case in a block that records the outcome, so one ansible-playbook run covers every case):

- ``authfile``: credentials only in ``mirror_images_auth_file`` (no username/password
  anywhere, no auth file in the default locations), ``target_plain_http: true`` on the entry:
  the image reaches the authenticated target with the source digest.
- ``peritem``: the role-wide passwords are wrong; each entry brings its own source and target
  password, and the entry through the proxy names also its users and sets
  ``source_plain_http``/``target_plain_http``: both images arrive, nothing secret is shown.
  The first entry sets only the passwords: the role gives it the role-wide users (image_mirror
  takes a side's user and password both from the entry or both from its defaults).
- ``rolewide``: role-wide users, passwords and ``mirror_images_plain_http`` only, both
  registries through the proxy: the image arrives.
- ``entrypw``: no role-wide credentials, the auth file for the target, and one of two entries
  with a target user and password of its own: both images arrive, and the whole task is
  ``no_log`` because of that one entry.
- ``plainoff``: ``source_plain_http: false`` on an entry overrides the role-wide
  ``mirror_images_plain_http: true``: the source is asked for over https (a CONNECT) and the
  run fails with the module's message naming the entry.
- ``missing``: ``mirror_images_auth_file`` names a file that does not exist: the task fails
  with the module's own message, which proves the option reached it.
- ``keyonly``: ``mirror_images_client_key`` without ``mirror_images_client_cert``: the module's
  mutual-TLS check refuses it, which proves both options reach it.
"""

from __future__ import annotations

import secrets

import pytest

from tests.support import images, seed
from tests.support.ansible import AnsibleWorkspace
from tests.support.auth_files import basic_entry, find_leaks, htpasswd_config, write_auth_file, write_htpasswd
from tests.support.forward_proxy import ForwardProxy
from tests.support.registry import Registry

pytestmark = [pytest.mark.ansible]

MIRROR = "imagepusher.registry.image_mirror"
SOURCE_ALIAS, TARGET_ALIAS = "mirror-src.test", "mirror-tgt.test"
LOOPBACK = "127.0.0.1,localhost"

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

    - name: peritem | entries bring their own credentials and plain_http; the role-wide passwords are wrong
      ansible.builtin.include_role:
        name: imagepusher.registry.mirror_images
      vars:
        mirror_images_cache_dir: "{{ opt_cache_dir }}/peritem"
        mirror_images_retries: 0
        mirror_images_source_username: src-bot
        mirror_images_source_password: "{{ opt_wrong_password }}"
        mirror_images_target_username: mirror-bot
        mirror_images_target_password: "{{ opt_wrong_password }}"
        mirror_images_list:
          - source: "{{ opt_private_source }}/test/oci-single:v1"
            source_password: "{{ opt_source_password }}"
            target: "{{ opt_target_registry }}/mirror/peritem-loopback:v1"
            target_password: "{{ opt_target_password }}"
          - source: "{{ opt_private_source_alias }}/test/docker-v2:v1"
            source_username: src-bot
            source_password: "{{ opt_source_password }}"
            source_plain_http: true
            target: "{{ opt_target_registry_alias }}/mirror/peritem-aliased:v1"
            target_username: mirror-bot
            target_password: "{{ opt_target_password }}"
            target_plain_http: true

    - name: peritem | export results
      ansible.builtin.debug:
        var: mirror_images_results

    - name: rolewide | role-wide credentials and plain_http reach both registries
      ansible.builtin.include_role:
        name: imagepusher.registry.mirror_images
      vars:
        mirror_images_cache_dir: "{{ opt_cache_dir }}/rolewide"
        mirror_images_retries: 0
        mirror_images_plain_http: true
        mirror_images_source_username: src-bot
        mirror_images_source_password: "{{ opt_source_password }}"
        mirror_images_target_username: mirror-bot
        mirror_images_target_password: "{{ opt_target_password }}"
        mirror_images_list:
          - source: "{{ opt_private_source_alias }}/test/oci-single:v1"
            target: "{{ opt_target_registry_alias }}/mirror/rolewide:v1"

    - name: rolewide | export results
      ansible.builtin.debug:
        var: mirror_images_results

    - name: entrypw | a password in one entry only, the auth file for the other
      ansible.builtin.include_role:
        name: imagepusher.registry.mirror_images
      vars:
        mirror_images_cache_dir: "{{ opt_cache_dir }}/entrypw"
        mirror_images_retries: 0
        mirror_images_auth_file: "{{ opt_auth_file }}"
        mirror_images_list:
          - source: "{{ opt_source }}"
            target: "{{ opt_target_registry }}/mirror/entrypw-own:v1"
            target_username: mirror-bot
            target_password: "{{ opt_target_password }}"
          - source: "{{ opt_source }}"
            target: "{{ opt_target_registry }}/mirror/entrypw-authfile:v1"
            # null means "not set": the module-wide value (here the auth file) and defaults apply
            target_username: null
            target_password: null
            platforms: null
            referrers: null

    - name: entrypw | export results
      ansible.builtin.debug:
        var: mirror_images_results

    - name: plainoff | an entry's source_plain_http false wins over mirror_images_plain_http true
      block:
        - name: plainoff | apply the role
          ansible.builtin.include_role:
            name: imagepusher.registry.mirror_images
          vars:
            mirror_images_cache_dir: "{{ opt_cache_dir }}/plainoff"
            mirror_images_retries: 0
            mirror_images_plain_http: true
            mirror_images_auth_file: "{{ opt_auth_file }}"
            mirror_images_list:
              - source: "{{ opt_public_source_alias }}/test/oci-single:v1"
                source_plain_http: false
                target: "{{ opt_target_registry }}/mirror/plainoff:v1"
      rescue:
        - name: plainoff | export the failure
          ansible.builtin.debug:
            msg: "{{ ansible_failed_result.msg }}"

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
            msg: "{{ ansible_failed_result.msg }}"

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
            msg: "{{ ansible_failed_result.msg }}"
"""


def port(host: str) -> str:
    return host.rsplit(":", 1)[1]


@pytest.fixture(scope="module")
def options_run(samples, tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror-images-options")
    password, source_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    wrong_password = "wrong-" + secrets.token_urlsafe(12)
    sample = samples["oci_single"]
    ws = AnsibleWorkspace(root / "ansible")
    proxy = ForwardProxy(hosts={SOURCE_ALIAS: "127.0.0.1", TARGET_ALIAS: "127.0.0.1"}).start()
    try:
        with Registry(config=htpasswd_config(write_htpasswd(root / "htpasswd", {"mirror-bot": password}))) as target, \
                Registry(config=htpasswd_config(write_htpasswd(root / "src-htpasswd",
                                                               {"src-bot": source_password}))) as source:
            for repo, image in (("test/oci-single", images.oci_single()), ("test/docker-v2", images.docker_v2())):
                seed.push(source.url, repo, image, "v1", auth=("src-bot", source_password))
            auth_file = write_auth_file(root / "auth.json", {target.host: basic_entry("mirror-bot", password)})
            proxied = {name: proxy.url for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy")}
            run = ws.run_playbook(PLAYBOOK, {
                "opt_cache_dir": str(root / "cache"),
                "opt_auth_file": str(auth_file),
                "opt_source": sample.ref,
                "opt_target": f"{target.host}/mirror/options:v1",
                "opt_target_registry": target.host,
                "opt_target_registry_alias": f"{TARGET_ALIAS}:{port(target.host)}",
                "opt_private_source": source.host,
                "opt_private_source_alias": f"{SOURCE_ALIAS}:{port(source.host)}",
                "opt_public_source_alias": f"{SOURCE_ALIAS}:{port(sample.host)}",
                "opt_source_password": source_password,
                "opt_target_password": password,
                "opt_wrong_password": wrong_password,
            }, env=dict(proxied, NO_PROXY=LOOPBACK, no_proxy=LOOPBACK), timeout=300)
            manifest_puts = [e.path for e in target.access_log()
                             if e.method == "PUT" and "/manifests/" in e.path and e.status == 201]
            yield {"run": run, "password": password, "source_password": source_password,
                   "wrong_password": wrong_password, "sample": sample, "target": target.host,
                   "source": source.host, "manifest_puts": manifest_puts, "proxied": list(proxy.requests)}
    finally:
        proxy.stop()
        ws.cleanup()


def exported(run, case):
    assert run.rc == 0, run.output
    return run.task(f"{case} | export results").result["mirror_images_results"]


def tag_puts(options_run, repository):
    return [p for p in options_run["manifest_puts"] if p == f"/v2/{repository}/manifests/v1"]


def test_auth_file_reaches_the_module(options_run):
    run = options_run["run"]
    (result,) = exported(run, "authfile")
    assert result["digest"] == options_run["sample"].digest
    assert result["target"] == f"{options_run['target']}/mirror/options:v1"
    assert result["pushed"] is True and result["pulled"] is True and result["cached"] is True
    assert len(tag_puts(options_run, "mirror/options")) == 1, options_run["manifest_puts"]


def test_entries_credentials_and_plain_http_win_over_the_role_wide_ones(options_run):
    run = options_run["run"]
    results = exported(run, "peritem")
    source_alias, target_alias = (f"{alias}:{port(options_run[key])}"
                                  for alias, key in ((SOURCE_ALIAS, "source"), (TARGET_ALIAS, "target")))
    assert [(r["source"], r["target"], r["digest"], r["pulled"], r["pushed"]) for r in results] == [
        (f"{options_run['source']}/test/oci-single:v1", f"{options_run['target']}/mirror/peritem-loopback:v1",
         images.oci_single().digest, True, True),
        (f"{source_alias}/test/docker-v2:v1", f"{target_alias}/mirror/peritem-aliased:v1",
         images.docker_v2().digest, True, True),
    ]
    for repository in ("mirror/peritem-loopback", "mirror/peritem-aliased"):
        assert len(tag_puts(options_run, repository)) == 1, options_run["manifest_puts"]
    # the aliased entry spoke plain HTTP to both registries (through the proxy), never https
    proxied = options_run["proxied"]
    assert ("GET", f"http://{source_alias}/v2/test/docker-v2/manifests/v1") in proxied, proxied
    assert ("PUT", f"http://{target_alias}/v2/mirror/peritem-aliased/manifests/v1") in proxied, proxied
    assert ("CONNECT", f"{source_alias}:443") not in proxied and ("CONNECT", source_alias) not in proxied


def test_role_wide_credentials_and_plain_http_reach_both_registries(options_run):
    run = options_run["run"]
    (result,) = exported(run, "rolewide")
    target_alias = f"{TARGET_ALIAS}:{port(options_run['target'])}"
    assert result["target"] == f"{target_alias}/mirror/rolewide:v1"
    assert result["digest"] == images.oci_single().digest and result["pushed"] is True
    assert len(tag_puts(options_run, "mirror/rolewide")) == 1, options_run["manifest_puts"]
    assert ("PUT", f"http://{target_alias}/v2/mirror/rolewide/manifests/v1") in options_run["proxied"]


def test_entry_plain_http_false_overrides_the_role_wide_true(options_run):
    run = options_run["run"]
    msg = run.task("plainoff | export the failure").result["msg"]
    source_alias = f"{SOURCE_ALIAS}:{port(options_run['sample'].host)}"
    target = f"{options_run['target']}/mirror/plainoff:v1"
    assert msg.startswith(f"images[0] ({source_alias}/test/oci-single:v1 -> {target}): "), msg
    assert ("CONNECT", source_alias) in options_run["proxied"], options_run["proxied"]
    assert not [url for _method, url in options_run["proxied"] if url.startswith(f"http://{source_alias}/")]
    assert not tag_puts(options_run, "mirror/plainoff")


def test_one_entry_with_a_password_among_others(options_run):
    run = options_run["run"]
    results = exported(run, "entrypw")
    assert [(r["target"], r["digest"], r["pushed"]) for r in results] == [
        (f"{options_run['target']}/mirror/entrypw-{name}:v1", options_run["sample"].digest, True)
        for name in ("own", "authfile")]
    for repository in ("mirror/entrypw-own", "mirror/entrypw-authfile"):
        assert len(tag_puts(options_run, repository)) == 1, options_run["manifest_puts"]


def test_tasks_with_a_password_show_nothing_secret(options_run):
    run = options_run["run"]
    mirrors = [r for r in run.results if r["action"] == MIRROR and r["status"] != "failed"]
    # authfile (no password: visible); peritem, rolewide (role-wide passwords) and entrypw (a
    # password in one entry only): the one task for the whole list is no_log
    assert ["censored" in r["result"] for r in mirrors] == [False, True, True, True]
    assert "images" in mirrors[0]["result"] and not [r for r in mirrors[1:] if "images" in r["result"]]
    assert not find_leaks(run, [options_run["password"], options_run["source_password"],
                                options_run["wrong_password"]])


def test_missing_auth_file_fails_in_the_module(options_run):
    run = options_run["run"]
    msg = run.task("missing | export the failure").result["msg"]
    assert "auth_file" in msg and "no-such-auth.json" in msg and "does not exist" in msg, msg


def test_client_key_without_cert_fails_in_the_module(options_run):
    run = options_run["run"]
    msg = run.task("keyonly | export the failure").result["msg"]
    assert "client_key is set but client_cert is not" in msg, msg
