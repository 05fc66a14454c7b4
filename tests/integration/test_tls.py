"""TLS against REAL registries, through ansible-playbook: a private CA, htpasswd, mutual TLS.

Certificates come from tests/support/pki.py (a CA made by the test). Two registries:

- ``auth: htpasswd`` over TLS: works with ``ca_path`` (a PEM file, and a plain directory that
  was never c_rehash'd), fails clearly without it, works with ``validate_certs: false``;
  a wrong password and missing credentials fail clearly; a push goes through TLS too.
- mutual TLS (``http.tls.clientcas``): works with ``client_cert``/``client_key``, fails with a
  message that says to set them when they are missing.

The target tests/integration/targets/tls runs the cases (part ``basic`` and part ``mutual``, as
two playbooks at once: Ansible's per-task cost dominates) and asserts on the results; the tests
here check the messages in detail, the registries' logs and the outputs for secrets.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import requests

from tests.support import images, seed
from tests.support.ansible import AnsibleWorkspace
from tests.support.auth_files import basic_entry, find_leaks, htpasswd_config, write_auth_file, write_htpasswd
from tests.support.pki import CertificateAuthority, MutualTLSRegistry, tls_registry_config
from tests.support.registry import Registry, deep_merge

pytestmark = [pytest.mark.ansible]

TARGET = Path(__file__).resolve().parent / "targets" / "tls"
PLAYBOOK = f"""
- name: TLS target
  hosts: localhost
  gather_facts: false
  roles:
    - role: {TARGET}
"""
NO_PROXY = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    password = "alice-" + secrets.token_hex(12)
    wrong = "wrong-" + secrets.token_hex(12)
    ca = CertificateAuthority("imagepusher TLS test CA")
    ca_file = ca.write(root / "ca.pem")
    ca_dir = root / "ca-dir"  # a plain directory: no <hash>.0 links
    ca_dir.mkdir()
    (ca_dir / "private-ca.crt").write_bytes(ca.cert_pem)
    (ca_dir / "README.txt").write_text("CA certificates for the test registry\n")
    server = ca.issue("127.0.0.1", ips=["127.0.0.1"], dns=["localhost"]).write(root / "server")
    client = ca.issue("mirror-bot", client=True).write(root / "client")
    img = images.oci_single()

    basic = Registry(config=deep_merge(tls_registry_config(server["cert"], server["key"]),
                                       htpasswd_config(write_htpasswd(root / "htpasswd", {"alice": password}))))
    basic.start()
    mutual = MutualTLSRegistry(config=tls_registry_config(server["cert"], server["key"], client_ca=ca_file),
                               client_cert=client)
    mutual.start()
    seed.push(basic.url, "test/app", img, "v1", auth=("alice", password), verify=str(ca_file))
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_file)
    session.cert = (str(client["cert"]), str(client["key"]))
    seed.push(mutual.url, "test/app", img, "v1", session=session)

    alice = write_auth_file(root / "alice.json", {basic.host: basic_entry("alice", password)})
    wrong_file = write_auth_file(root / "wrong.json", {basic.host: basic_entry("alice", wrong)})
    workspaces = [AnsibleWorkspace(root / "ansible-basic"), AnsibleWorkspace(root / "ansible-mutual")]
    extra_vars = {
        "tls_basic_host": basic.host,
        "tls_mutual_host": mutual.host,
        "tls_ca_file": str(ca_file),
        "tls_ca_dir": str(ca_dir),
        "tls_files": {"alice": str(alice), "wrong": str(wrong_file)},
        "tls_client_cert": str(client["cert"]),
        "tls_client_key": str(client["key"]),
        "tls_cache": str(root / "cache"),
    }
    started = [ws.start_playbook(PLAYBOOK, dict(extra_vars, tls_part=part), env=NO_PROXY, args=["-vvv"], timeout=240)
               for ws, part in zip(workspaces, ("basic", "mutual"))]
    runs = [proc.wait() for proc in started]
    yield {"runs": runs, "basic": basic, "mutual": mutual, "img": img, "password": password, "wrong": wrong,
           "files": {"alice": alice, "wrong": wrong_file}}
    basic.stop()
    mutual.stop()
    for ws in workspaces:
        ws.cleanup()


def record(world, name):
    for run in world["runs"]:
        if any(r["task"] == name for r in run.results):
            return run, run.task(name)
    raise AssertionError("no task %r\n%s" % (name, "\n".join(run.output for run in world["runs"])))


def ok(world, name):
    run, rec = record(world, name)
    assert not rec.failed, f"{name} failed: {rec.result.get('msg')}\n{run.output}"
    return rec.result


def failed(world, name):
    run, rec = record(world, name)
    assert rec.failed, f"{name} should have failed\n{run.output}"
    return rec.result


def test_the_target_assertions_passed(world):
    for run in world["runs"]:
        assert run.rc == 0, run.output


@pytest.mark.parametrize("name", ["ca_path file", "ca_path directory", "validate_certs false"])
def test_htpasswd_over_tls_pulls(world, name):
    assert ok(world, name)["digest"] == world["img"].digest


def test_the_registry_was_only_spoken_to_over_tls(world):
    # Distribution answers plain HTTP on a TLS port with 400: none in the access log means
    # the loopback probe kept https and never downgraded
    log = world["basic"].access_log()
    assert log and not [e for e in log if e.status == 400]


def test_without_ca_path_the_error_says_to_set_it(world):
    res = failed(world, "no ca_path")
    host = world["basic"].host
    assert res["msg"].startswith("TLS verification failed for registry %s: " % host), res["msg"]
    assert "certificate verify failed" in res["msg"]
    assert "set ca_path" in res["msg"] and "validate_certs: false" in res["msg"]
    assert res["error"] == "TLSError"


def test_wrong_password(world):
    res = failed(world, "wrong password")
    assert res["msg"].startswith("authentication failed for %s (user alice, credentials from auth file %s)"
                                 % (world["basic"].host, world["files"]["wrong"])), res["msg"]
    assert res["error"] == "AuthenticationError"


def test_no_credentials(world):
    res = failed(world, "no credentials")
    assert res["msg"].startswith("registry %s requires authentication: set username and password"
                                 % world["basic"].host), res["msg"]


def test_push_over_tls(world):
    res = ok(world, "push over TLS")
    assert res["changed"] and res["digest"] == world["img"].digest
    # the cache knows test/app of this registry holds the blobs: mounted over TLS, not re-sent
    assert {b["action"] for b in res["blobs"]} == {"mounted"}


def test_mutual_tls_with_a_client_certificate(world):
    assert ok(world, "mutual TLS")["digest"] == world["img"].digest


def test_mutual_tls_without_a_client_certificate_says_to_set_one(world):
    res = failed(world, "mutual TLS without a client certificate")
    assert res["msg"].startswith("registry %s requires a client certificate (mutual TLS): set client_cert and "
                                 "client_key" % world["mutual"].host), res["msg"]
    assert res["error"] == "TLSError"


def test_no_secret_in_any_output(world):
    secrets_list = [world["password"], world["wrong"], basic_entry("alice", world["password"])["auth"],
                    basic_entry("alice", world["wrong"])["auth"]]
    for run in world["runs"]:
        leaks = find_leaks(run, secrets_list)
        assert not leaks, leaks
    assert "authentication failed for" in world["runs"][0].stdout
