"""Failures that tell the truth (issue 14): real registry, real modules, real users.

- A cache owned by root, used by `nobody` (setpriv): a push changes the target, then cannot
  write the cache; it fails with changed=true, what it pushed, and a message that says whose
  the cache is and what to do; the cache and the target are left whole. A pull fails at once,
  changed=false, without "creating the cache".
- A dead proxy port in HTTPS_PROXY: the message names the proxy and the variable.
- A name that does not resolve: one attempt. A refused connection: a few attempts, whatever
  `retries` allows (attempts are read from the message, never from wall time).

The module runs as `nobody` directly (python -m ...modules.image_push args.json), as Ansible's
AnsiballZ would run it: Ansible's own `become` needs sudo or a login shell, and nobody has
neither here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.ansible import make_collections_dir
from tests.support.checks import clean_failure, raw_manifest, tree_snapshot
from tests.support.registry import free_port

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                   "NO_PROXY", "no_proxy")


@pytest.fixture
def shared_dir():
    """A directory every user can reach (pytest's tmp_path is root's alone)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a module as another user")
    path = Path(tempfile.mkdtemp(prefix="imagepusher-failures-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_as_nobody(shared: Path, module: str, args: dict) -> dict:
    """Run a module of this collection as `nobody` and return its JSON result."""
    collections = make_collections_dir(shared / "collections")
    home = shared / "nobody-home"
    home.mkdir(exist_ok=True)
    home.chmod(0o777)
    args_file = shared / ("%s-args.json" % module)
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    args_file.chmod(0o644)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C.UTF-8",
           "PYTHONPATH": str(collections), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(NOBODY + [sys.executable, "-m", "ansible_collections.imagepusher.registry.plugins.modules."
                                    + module, str(args_file)],
                          capture_output=True, text=True, env=env, cwd=str(home), timeout=120, check=False)
    assert proc.stdout.strip(), "no result from %s as nobody:\n%s" % (module, proc.stderr)
    return json.loads(proc.stdout)


def test_another_users_cache_push_says_changed_what_it_pushed_and_whose_the_cache_is(
        ansible, samples, registry, shared_dir):
    sample = samples["oci_single"]
    cache = shared_dir / "root-cache"
    pulled = ansible.run_module("image_pull", {"name": sample.ref, "cache_dir": str(cache)})
    assert pulled.rc == 0 and pulled.result["digest"] == sample.digest
    before = tree_snapshot(cache)
    target = "%s/failures/nobody-push:v1" % registry.host

    result = run_as_nobody(shared_dir, "image_push", {"name": sample.ref, "target": target, "cache_dir": str(cache)})
    clean_failure(result, "a push as nobody into root's cache")
    assert result["changed"] is True, result
    assert result["error"] == "CachePermissionError"
    msg = result["msg"]
    assert "the cache %s belongs to another user (uid 0; this task runs as uid 65534)" % cache in msg, msg
    assert "choose a cache_dir of your own, or run as its owner" in msg and "[Errno" not in msg, msg
    done = result["done"]
    assert done["manifests_pushed"] == [target], done
    # the target registry is the source's too: its blobs are mounted from the source repository
    assert done["blobs_uploaded"] + done["blobs_mounted"] == len(sample.obj.blobs), done
    # Nothing half-written: the target holds the whole image (as skopeo reads it), the cache is untouched.
    assert raw_manifest(target) == sample.obj.manifest
    assert tree_snapshot(cache) == before

    # A pull as nobody cannot even open root's cache: unchanged, and it is not "creating" a cache that exists.
    pull = run_as_nobody(shared_dir, "image_pull", {"name": samples["docker_v2"].ref, "cache_dir": str(cache)})
    clean_failure(pull, "a pull as nobody into root's cache")
    assert pull.get("changed") in (None, False) and "done" not in pull, pull
    assert "belongs to another user (uid 0" in pull["msg"] and "creating the cache" not in pull["msg"], pull["msg"]
    assert tree_snapshot(cache) == before


@pytest.fixture
def no_proxy_environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def attempts_in(msg: str) -> int:
    found = re.search(r"after (\d+) attempt\(s\) over \d+\.\ds: ", msg)
    assert found, msg
    return int(found.group(1))


def test_a_dead_proxy_is_named_with_the_variable_that_set_it(ansible, no_proxy_environment):
    port = free_port()
    run = ansible.run_module("image_pull", {"name": "registry.example.test:5000/team/app:v1", "retries": 1},
                             env={"HTTPS_PROXY": "http://127.0.0.1:%d" % port})
    result = clean_failure(run.result, "a pull through a dead proxy", run.failed)
    msg = result["msg"]
    assert msg.startswith("cannot reach registry registry.example.test:5000 after "), msg
    assert "the proxy http://127.0.0.1:%d (set by HTTPS_PROXY) failed: " % port in msg, msg
    assert "Connection refused" in msg and "NO_PROXY" in msg, msg
    assert '"' not in msg and "))" not in msg, msg
    assert result["proxy_source"] == "HTTPS_PROXY" and not run.changed


def test_a_name_that_does_not_resolve_fails_after_one_attempt(ansible, no_proxy_environment):
    run = ansible.run_module("image_pull", {"name": "registry.invalid/team/app:v1", "retries": 5})
    msg = clean_failure(run.result, "a pull from a name that does not resolve", run.failed)["msg"]
    assert attempts_in(msg) == 1 and "the name does not resolve (not retried)" in msg, msg
    assert run.result.get("retries") is None and not run.changed


def test_a_refused_connection_is_retried_a_few_times_whatever_retries_allows(ansible, no_proxy_environment):
    run = ansible.run_module("image_pull", {"name": "127.0.0.1:%d/team/app:v1" % free_port(), "retries": 20})
    msg = clean_failure(run.result, "a pull from a closed port", run.failed)["msg"]
    # REFUSED_WAIT (3 s) of backoff at 0.5 s doubling: 3 to 5 retries, never the 20 allowed.
    assert 3 <= attempts_in(msg) <= 6, msg
    assert "Connection refused" in msg and "nothing accepts connections there" in msg, msg
