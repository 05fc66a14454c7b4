"""Bearer-token authentication against a REAL registry (``auth: token``), through ansible-playbook.

The registry trusts tests/support/token_issuer.py, whose ACL is: anyone may pull public/*,
any user may pull private/*, alice may pull and push team/*, bob may only pull team/*.
The target tests/integration/targets/auth_token runs every case as its own task
(``ignore_errors``, in two playbooks at once: ``pulls`` and ``pushes``) and asserts on the
registered results; then each test here checks one behaviour from the task results, the
issuer's request log and the registry's access log:

- anonymous pull of public/ works; of private/ fails clearly;
- credentials from auth_file, $DOCKER_CONFIG, a credHelpers helper (user/password and an
  identity token), and the username/password options;
- a wrong password and a push without push scope fail with messages naming who and what;
- a cross-repository mount asks for target push + source pull in one token (no bytes sent);
- tokens that expire between requests (the registry refuses one we still believed valid,
  or our cache lets one lapse) do not fail the run;
- no password, identity token or issued token appears anywhere in the run's output.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.support import images, seed
from tests.support.ansible import AnsibleWorkspace
from tests.support.auth_files import basic_entry, find_leaks, install_credential_helper, write_auth_file
from tests.support.registry import Registry
from tests.support.token_issuer import TokenIssuer

pytestmark = [pytest.mark.ansible]

TARGET = Path(__file__).resolve().parent / "targets" / "auth_token"
PLAYBOOK = f"""
- name: token auth target
  hosts: localhost
  gather_facts: false
  roles:
    - role: {TARGET}
"""

NO_PROXY = {"NO_PROXY": "127.0.0.1,127.0.0.2,localhost", "no_proxy": "127.0.0.1,127.0.0.2,localhost"}
# Tokens for these repositories expire early, and the token for the mount (a second scope set)
# takes DELAY seconds to come, so the push-scope token of the same run has lapsed by the end.
DELAY = 2.2
VALID_FOR = 2


def expiry_policy(account, scopes):
    mount = len(scopes) > 1
    if any(":team/stale-copy:" in s for s in scopes):
        # the answer claims 300 s but the registry only accepts the token for ~VALID_FOR s:
        # our cache still believes in it, the registry answers 401, we must fetch anew and retry
        return {"expires_in": 300, "valid_for": VALID_FOR, "delay": DELAY if mount else 0}
    if any(":team/short-copy:" in s for s in scopes):
        # honest short lifetime: our cache drops the token before the registry would refuse it
        return {"expires_in": VALID_FOR, "valid_for": VALID_FOR, "delay": DELAY if mount else 0}
    return None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-token")
    pw = {"alice": "alice-" + secrets.token_hex(12), "bob": "bob-" + secrets.token_hex(12)}
    identity = "idtok-" + secrets.token_hex(16)
    wrong = "wrong-" + secrets.token_hex(12)
    issuer = TokenIssuer(users=pw, refresh_tokens={identity: "alice"}, policy=expiry_policy).start()
    registry = Registry(config=issuer.registry_config()).start()
    img = images.oci_single()
    for repo in ("public/app", "private/app", "team/app"):
        seed.push(registry.url, repo, img, "v1", session=issuer.admin_session(repo))
    host = registry.host
    files = {
        "alice": write_auth_file(root / "alice.json", {host: basic_entry("alice", pw["alice"])}),
        "bob": write_auth_file(root / "bob.json", {"http://%s/v1/" % host: basic_entry("bob", pw["bob"])}),
        "wrong": write_auth_file(root / "wrong.json", {host: basic_entry("alice", wrong)}),
        # $DOCKER_CONFIG/config.json with the older username/password fields
        "docker_config": write_auth_file(root / "dockercfg" / "config.json",
                                         {host: {"username": "alice", "password": pw["alice"]}}).parent,
        "helper_config": write_auth_file(root / "helpercfg" / "config.json",
                                         cred_helpers={host: "imagepusher-test"}).parent,
        "token_config": write_auth_file(root / "tokencfg" / "config.json",
                                        cred_helpers={host: "imagepusher-idtoken"}).parent,
    }
    bin_dir = root / "bin"
    helpers = {
        "password": install_credential_helper(bin_dir, "imagepusher-test", {host: ("alice", pw["alice"])}),
        "token": install_credential_helper(bin_dir, "imagepusher-idtoken", {host: ("<token>", identity)}),
    }
    workspaces = [AnsibleWorkspace(root / "ansible-pulls"), AnsibleWorkspace(root / "ansible-pushes")]
    extra_vars = {
        "auth_token_host": host,
        "auth_token_cache": str(root / "cache"),
        "auth_token_files": {k: str(v) for k, v in files.items()},
        "auth_token_path": f"{bin_dir}:{workspaces[0].env()['PATH']}",
        "auth_token_bob_password": pw["bob"],
    }
    # two playbooks at once: Ansible costs about 1.5 s per task here, the registry is idle
    started = [ws.start_playbook(PLAYBOOK, dict(extra_vars, auth_token_part=part), env=NO_PROXY, args=["-vvv"],
                                 timeout=240)
               for ws, part in zip(workspaces, ("pulls", "pushes"))]
    runs = [proc.wait() for proc in started]
    yield {"runs": runs, "issuer": issuer, "registry": registry, "pw": pw, "identity": identity, "wrong": wrong,
           "files": files, "helpers": helpers, "img": img, "host": host}
    registry.stop()
    issuer.stop()
    for ws in workspaces:
        ws.cleanup()


def record(world, name):
    for run in world["runs"]:
        if any(r["task"] == name for r in run.results):
            return run, run.task(name)
    raise AssertionError("no task %r\n%s" % (name, "\n".join(run.output for run in world["runs"])))


def result(world, name):
    return record(world, name)[1].result


def ok(world, name):
    run, rec = record(world, name)
    assert not rec.failed, f"{name} failed: {rec.result.get('msg')}\n{run.output}"
    return rec.result


def failed(world, name):
    run, rec = record(world, name)
    assert rec.failed, f"{name} should have failed\n{run.output}"
    return rec.result["msg"]


def token_requests(world, repo, account=...):
    return world["issuer"].requests_for(f":{repo}:", account)


def test_the_target_assertions_passed(world):
    for run in world["runs"]:
        assert run.rc == 0, run.output


def test_anonymous_pull_of_a_public_repository(world):
    res = ok(world, "anonymous public")
    assert res["digest"] == world["img"].digest
    anon = token_requests(world, "public/app")
    assert anon and all(r.account is None and not r.had_authorization for r in anon)
    assert anon[0].scopes == ["repository:public/app:pull"]


def test_anonymous_pull_of_a_private_repository_is_a_clear_error(world):
    msg = failed(world, "anonymous private")
    assert msg.startswith("anonymous may not pull from private/app"), msg
    assert result(world, "anonymous private")["error"] == "AuthorizationError"


@pytest.mark.parametrize("name", ["auth_file option", "DOCKER_CONFIG", "credential helper",
                                  "identity token from a helper"])
def test_credentials_from_files_and_helpers(world, name):
    assert ok(world, name)["digest"] == world["img"].digest


def test_every_credential_source_reached_the_token_service_as_alice(world):
    reqs = token_requests(world, "private/app")
    by_kind = {(r.method, r.grant_type, r.account, r.status) for r in reqs}
    assert ("GET", None, "alice", 200) in by_kind  # Basic from auth file / DOCKER_CONFIG / helper
    assert ("POST", "refresh_token", "alice", 200) in by_kind  # the helper's identity token
    assert ("GET", None, None, 401) in by_kind  # the wrong password


def test_the_helpers_were_asked_for_this_registry(world):
    for helper in world["helpers"].values():
        assert helper.calls() and all(call == [["get"], world["host"]] for call in map(list, helper.calls()))


def test_username_and_password_options(world):
    assert ok(world, "options")["digest"] == world["img"].digest
    assert any(r.account == "bob" for r in token_requests(world, "team/app"))


def test_wrong_password_says_authentication_failed_for_the_registry(world):
    msg = failed(world, "wrong password")
    assert msg == ("authentication failed for %s: the token service refused the credentials of alice (from auth "
                   "file %s)" % (world["host"], world["files"]["wrong"])), msg


def test_push_without_push_scope(world):
    msg = failed(world, "bob may not push")
    assert msg.startswith("bob may not push to team/bob-copy"), msg
    assert result(world, "bob may not push")["error"] == "AuthorizationError"
    reqs = token_requests(world, "team/bob-copy", "bob")
    assert reqs and all(r.status == 200 for r in reqs)  # bob is who he says; the token just lacks push
    assert not [grant for r in reqs for grant in r.granted if "push" in grant["actions"]]


def test_mount_asks_for_target_push_and_source_pull_in_one_token(world):
    res = ok(world, "alice mounts")
    assert res["changed"] and res["digest"] == world["img"].digest
    assert res["bytes_uploaded"] == 0
    assert {b["action"] for b in res["blobs"]} == {"mounted"}
    mount_sets = {r.scope_set for r in token_requests(world, "team/copy", "alice")}
    assert frozenset(["repository:team/copy:pull,push", "repository:team/app:pull"]) in mount_sets
    assert frozenset(["repository:team/copy:pull,push"]) in mount_sets
    # no token request asked for more than the operation needs
    for r in token_requests(world, "team/copy", "alice"):
        assert set(r.scopes) <= {"repository:team/copy:pull,push", "repository:team/app:pull"}


def test_tokens_are_cached_per_scope_set_within_a_run(world):
    # one push of three blobs + a manifest: one token per scope set (the mount set, the push set)
    reqs = token_requests(world, "team/copy", "alice")
    assert len(reqs) == len({r.scope_set for r in reqs}) == 2, reqs


def _manifest_puts(world, repo):
    return [e.status for e in world["registry"].access_log()
            if e.method == "PUT" and e.path == f"/v2/{repo}/manifests/v1"]


def test_a_token_the_registry_refuses_mid_run_is_replaced_and_the_request_retried(world):
    res = ok(world, "token refused mid-run")
    assert res["changed"] and res["bytes_uploaded"] == 0 and res["digest"] == world["img"].digest
    assert _manifest_puts(world, "team/stale-copy") == [401, 201]
    push_only = [r for r in token_requests(world, "team/stale-copy", "alice") if len(r.scopes) == 1]
    assert len(push_only) >= 2  # the first token, and the one fetched after the 401


def test_a_token_that_lapses_in_our_cache_is_renewed_before_the_request(world):
    res = ok(world, "token lapses mid-run")
    assert res["changed"] and res["bytes_uploaded"] == 0
    assert _manifest_puts(world, "team/short-copy") == [201]  # renewed before sending: no 401
    push_only = [r for r in token_requests(world, "team/short-copy", "alice") if len(r.scopes) == 1]
    assert len(push_only) >= 2  # the first token, and its renewal


def test_no_secret_in_any_output(world):
    issued = [r.token for r in world["issuer"].requests if r.token]
    assert len(issued) >= 10
    pw = world["pw"]
    secrets_list = [pw["alice"], pw["bob"], world["wrong"], world["identity"], *issued,
                    basic_entry("alice", pw["alice"])["auth"], basic_entry("bob", pw["bob"])["auth"],
                    basic_entry("alice", world["wrong"])["auth"]]
    for run in world["runs"]:
        leaks = find_leaks(run, secrets_list)
        assert not leaks, leaks
    # the output is not empty: the failures are there, with their messages
    assert "may not push to team/bob-copy" in world["runs"][1].stdout
    assert "anonymous may not pull from private/app" in world["runs"][0].stdout
