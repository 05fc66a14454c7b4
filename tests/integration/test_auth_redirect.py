"""What reaches whom: blob redirects to object storage, and proxies from the environment.

A REAL registry (``auth: htpasswd``, so every request of ours carries ``Authorization: Basic``)
is configured with Distribution's ``redirect`` storage middleware: it answers each blob GET
and HEAD with ``307`` to tests/support/object_store.py on ANOTHER loopback host (127.0.0.2),
which serves the bytes and records the headers it received. The registry's Authorization
must not be among them.

The second run puts tests/support/forward_proxy.py in $HTTP_PROXY (with NO_PROXY cleared) and
checks the module's requests went through it: proxies from the environment are honoured.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.support import images, seed
from tests.support.ansible import AnsibleWorkspace
from tests.support.auth_files import basic_entry, find_leaks, htpasswd_config, write_auth_file, write_htpasswd
from tests.support.forward_proxy import ForwardProxy
from tests.support.object_store import ObjectStore
from tests.support.registry import Registry, deep_merge

pytestmark = [pytest.mark.ansible]

LOOPBACK = "127.0.0.1,127.0.0.2,localhost"
TARGET = Path(__file__).resolve().parent / "targets" / "auth_redirect"
PLAYBOOK = f"""
- name: redirect and proxy target
  hosts: localhost
  gather_facts: false
  roles:
    - role: {TARGET}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("redirect")
    password = "alice-" + secrets.token_hex(12)
    store = ObjectStore().start()
    registry = Registry(config=deep_merge(store.registry_config(),
                                          htpasswd_config(write_htpasswd(root / "htpasswd", {"alice": password}))))
    registry.start()
    store.root = registry.storage_dir
    img = images.docker_v2()
    seed.push(registry.url, "test/app", img, "v1", auth=("alice", password))
    proxy = ForwardProxy().start()
    alice = write_auth_file(root / "alice.json", {registry.host: basic_entry("alice", password)})
    ws = AnsibleWorkspace(root / "ansible")
    extra_vars = {"redirect_ref": f"{registry.host}/test/app:v1", "redirect_auth_file": str(alice),
                  "redirect_proxy": proxy.url, "redirect_cache": str(root / "cache")}
    run = ws.run_playbook(PLAYBOOK, extra_vars, env={"NO_PROXY": LOOPBACK, "no_proxy": LOOPBACK}, args=["-vvv"],
                          timeout=240)
    yield {"run": run, "store": store, "registry": registry, "proxy": proxy, "img": img, "password": password}
    registry.stop()
    store.stop()
    proxy.stop()
    ws.cleanup()


def ok(world, name):
    rec = world["run"].task(name)
    assert not rec.failed, f"{name} failed: {rec.result.get('msg')}\n{world['run'].output}"
    return rec.result


def test_the_target_assertions_passed(world):
    assert world["run"].rc == 0, world["run"].output


def test_blob_downloads_follow_the_redirect(world):
    res = ok(world, "pull through the redirect")
    assert res["digest"] == world["img"].digest
    assert res["bytes_downloaded"] == sum(len(data) for data in world["img"].blobs.values())
    redirected = [e for e in world["registry"].access_log() if "/blobs/" in e.path and e.status == 307]
    assert len(redirected) >= len(world["img"].blobs)


def test_object_storage_never_sees_the_registry_authorization(world):
    store_requests = world["store"].requests
    gets = [r for r in store_requests if r.method == "GET" and r.status == 200]
    assert len(gets) >= 2 * len(world["img"].blobs)  # both pulls downloaded every blob from storage
    assert all(r.path.startswith("/docker/registry/v2/blobs/sha256/") for r in store_requests)
    for request in store_requests:
        assert not [k for k in request.headers if k.lower() in ("authorization", "proxy-authorization")], request
        assert world["password"] not in json.dumps(request.headers)


def test_proxies_from_the_environment_are_used(world):
    res = ok(world, "pull through the proxy")
    assert res["digest"] == world["img"].digest
    host = world["registry"].host
    seen = world["proxy"].requests
    assert ("GET", f"http://{host}/v2/test/app/manifests/v1") in seen, seen  # a cold pull reads the tag by GET
    # the redirected blob downloads went through the proxy too, to the object store's host
    assert [url for _method, url in seen if url.startswith(world["store"].url + "/docker/registry/v2/blobs/")]


def test_no_secret_in_any_output(world):
    secrets_list = [world["password"], basic_entry("alice", world["password"])["auth"]]
    assert not find_leaks(world["run"], secrets_list)
