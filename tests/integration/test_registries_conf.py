"""containers-registries.conf against REAL registries, through real ansible-playbook.

The target (targets/registries_conf/tasks/main.yml) runs once: prefix/location rewriting, a mirror that
serves, a mirror that is down (falls through to the next), every mirror down (the registry serves),
image_mirror / image_push source= / image_info through the file, `insecure` (a TLS registry whose
certificate nothing trusts), `blocked` (read and write refused), a malformed file (the error names
file and line), and the option aliases users bring (platform, authfile). This file starts the
registries, passes them in, and checks on the registries' access logs what the results cannot show.

Run: .venv/bin/python -m pytest tests/integration/test_registries_conf.py -q
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import images, seed
from tests.support.ansible import AnsibleWorkspace
from tests.support.auth_files import write_auth_file
from tests.support.pki import CertificateAuthority, tls_registry_config
from tests.support.registry import Registry

pytestmark = [pytest.mark.ansible]

TARGET = Path(__file__).resolve().parent / "targets" / "registries_conf"
TARGET_PLAY = f"""\
- name: registries_conf integration target
  hosts: localhost
  gather_facts: false
  roles:
    - role: {TARGET}
"""
CONF_APP = "test/conf-app"


@pytest.fixture(scope="module")
def conf_app() -> images.Image:
    return images.build_image([images.tar_layer({"imagepusher/conf-app.txt": b"served by a mirror\n"})],
                              labels={"sample": "registries-conf"})


@pytest.fixture(scope="module")
def target(registry, samples, conf_app, tmp_path_factory):
    root = tmp_path_factory.mktemp("registries-conf")
    ca = CertificateAuthority("imagepusher untrusted CA")  # never given to the module
    server = ca.issue("127.0.0.1", ips=["127.0.0.1"], dns=["localhost"]).write(root / "server")
    tls_app = images.oci_single()
    seed.push(registry.url, CONF_APP, conf_app, "v1")
    with Registry() as mirror, Registry(config=tls_registry_config(server["cert"], server["key"])) as tls:
        seed.push(mirror.url, "cache/conf-app", conf_app, "v1")
        seed.push(tls.url, "test/app", tls_app, "v1", verify=str(ca.write(root / "ca.pem")))
        down = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # bound, never listening: refused
        down.bind(("127.0.0.1", 0))
        ws = AnsibleWorkspace(root / "ansible")
        (ws.root / "conf").mkdir()
        (ws.root / "caches").mkdir()
        extra_vars = {
            "origin": registry.host, "mirror": mirror.host, "tls_host": tls.host,
            "down": "127.0.0.1:%d" % down.getsockname()[1],
            "digests": {"oci_single": samples["oci_single"].digest, "conf_app": conf_app.digest,
                        "tls_app": tls_app.digest},
            "conf_dir": str(ws.root / "conf"), "cache_root": str(ws.root / "caches"),
            "auth_file": str(write_auth_file(root / "auth.json", {})),
        }
        origin_mark, mirror_mark = registry.mark(), mirror.mark()
        try:
            run = ws.run_playbook(TARGET_PLAY, extra_vars, env={"ANSIBLE_PIPELINING": "True"}, timeout=900)
        finally:
            down.close()
        yield run, registry.access_log(since=origin_mark), mirror.access_log(since=mirror_mark)
        ws.cleanup()


def test_target_runs_every_task(target):
    run, _origin, _mirror = target
    assert run.rc == 0, run.output
    assert "Traceback" not in run.stdout + run.stderr, run.output
    records = [r for r in run.results if r["action"] != "ansible.builtin.include_tasks"]
    assert [r["task"] for r in records if r["status"] == "skipped"] == []
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 4 and all(r["ignore_errors"] and r["task"].startswith("Fail:") for r in failed), failed
    asserts = [r for r in records if r["action"] == "ansible.builtin.assert"]
    assert len(asserts) >= 10 and all(r["status"] == "ok" for r in asserts)


def test_the_mirror_served_and_the_origin_only_when_every_mirror_was_down(target, conf_app):
    run, origin, mirror = target
    assert run.rc == 0, "the target failed; see test_target_runs_every_task"
    layer = conf_app.layers[0].digest
    # the blob crossed the wire from the mirror (cases mirror, mirror_down, image_mirror: each its own cache)
    mirror_gets = [
        e for e in mirror if e.method == "GET" and e.path == f"/v2/cache/conf-app/blobs/{layer}"]
    assert len(mirror_gets) == 3, mirror_gets
    # the origin served conf-app's blob once: the all-mirrors-down case
    origin_gets = [e for e in origin if e.method == "GET" and e.path == f"/v2/{CONF_APP}/blobs/{layer}"]
    assert len(origin_gets) == 1, origin_gets
    # a blocked registry is refused before any request
    assert not [e for e in origin if "/blocked/" in e.path]
