"""Bad options: wrong types and values for every option of every module, each a clear failure.

One ansible-playbook run holds every case (a start costs about 1.5 s, and each case about a
second of CPU, half Ansible's controller, half the module's imports): four inventory hosts
(all local) run their share of the table in parallel, one looping task per module with the
module arguments templated from the case (Ansible warns that templated args are unsafe; here
they are our own data), ``ignore_errors`` on; each case is then asserted
here on its own: the task failed through fail_json (no traceback, no MODULE FAILURE), its
``msg`` says what is wrong (a regex per case), and nothing was created (the caches named in
the table stay absent).

Run: .venv/bin/python -m pytest tests/integration/test_bad_options.py -q
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import images
from tests.support.ansible import AnsibleWorkspace, PlaybookRun
from tests.support.checks import CACHE, INFO, MIRROR, PULL, PUSH, clean_failure, tree_snapshot

pytestmark = [pytest.mark.ansible]

HOSTS = 4
MODULES = {"pull": PULL, "push": PUSH, "info": INFO, "cache": CACHE, "mirror": MIRROR}
# Placeholders filled in by the fixture: a real registry reference, a regular file, a missing path,
# the root of the caches the table names, a registry host that refuses connections at once.
REF, FILE, MISSING, CACHE_DIR, NOWHERE, FILLED = "@REF@", "@FILE@", "@MISSING@", "@CACHE@", "@NOWHERE@", "@FILLED@"
SCRATCH = "@SCRATCH@"  # where a case that wrongly runs may write (outside CACHE_DIR)
# Ansible itself turns a list given for a str or path option into a string (with a warning), so
# such cases test ansible-core, not these modules, and are left out.


@dataclass(frozen=True)
class Case:
    id: str
    module: str  # key of MODULES
    args: dict
    expect: str  # regex searched in msg
    bug: str | None = None  # xfail reason when the behaviour is wrong


def registry_cases(module: str, base: dict, variants: bool = False) -> list[Case]:
    """The shared registry options (doc_fragments/registry.py) of ``module``, each wrong once; with
    ``variants``, every kind of wrong value (the code is shared, so one module gets them all)."""
    def case(name, args, expect, bug=None):
        return Case(f"{module}-{name}", module, {**base, **args}, expect, bug)

    cases = [
        case("username-without-password", {"username": "bot"}, r"username is set but password is not"),
        case("password-without-username", {"password": "s3cret"}, r"password is set but username is not"),
        case("auth-file-missing", {"auth_file": MISSING}, r"auth_file.*" + re.escape(MISSING)),
        case("validate-certs-not-bool", {"validate_certs": "maybe"}, r"validate_certs.*not a valid boolean"),
        case("ca-path-missing", {"ca_path": MISSING}, r"ca_path .*does not exist"),
        case("client-cert-missing", {"client_cert": MISSING}, r"client_cert .*does not exist"),
        case("client-key-without-cert", {"client_key": FILE}, r"client_key is set but client_cert is not"),
        case("plain-http-not-bool", {"plain_http": "sometimes"}, r"plain_http.*not a valid boolean"),
        case("timeout-zero", {"timeout": 0}, r"timeout must be a positive number of seconds, got 0"),
        case("retries-too-many", {"retries": 21}, r"retries must be between 0 and 20, got 21"),
    ]
    if variants:
        cases += [
            case("unknown-option", {"retires": 3}, r"Unsupported parameters for .*: retires"),
            case("ca-path-not-pem", {"ca_path": FILE}, r"ca_path .*holds no PEM certificate"),
            case("retries-negative", {"retries": -1}, r"retries must be between 0 and 20, got -1"),
        ]
    return cases


def cache_option_cases(module: str, base: dict) -> list[Case]:
    return [Case(f"{module}-concurrency-zero", module, {**base, "concurrency": 0},
                 r"concurrency must be between 1 and 32, got 0")]


def table() -> list[Case]:
    cases = []
    pull = {"name": REF, "cache_dir": CACHE_DIR + "/pull"}
    cases += [
        Case("pull-name-missing", "pull", {"cache_dir": CACHE_DIR + "/pull"}, r"missing required arguments: name"),
        Case("pull-name-empty", "pull", {**pull, "name": ""}, r"name: .*(empty|invalid)"),
        Case("pull-name-invalid", "pull", {**pull, "name": "Not A/Reference!"}, r"name: .*(invalid|reference)"),
        Case("pull-name-digest-bad", "pull", {**pull, "name": "127.0.0.1:1/x@sha256:abc"}, r"name: .*digest"),
        Case("pull-platforms-os-only", "pull", {**pull, "platforms": ["linux"]}, r"Invalid platform 'linux'"),
        Case("pull-platforms-too-deep", "pull", {**pull, "platforms": ["linux/arm64/v8/x"]},
             r"Invalid platform 'linux/arm64/v8/x'"),
        Case("pull-cache-dir-is-a-file", "pull", {**pull, "cache_dir": FILE}, r"cache.*" + re.escape(FILE)),
        Case("pull-cache-dir-empty", "pull", {**pull, "cache_dir": ""}, r"cache_dir"),
    ]
    cases += registry_cases("pull", pull, variants=True) + cache_option_cases("pull", pull)

    push = {"name": REF, "target": NOWHERE + "/target/app:v1", "cache_dir": FILLED, "retries": 0}
    cases += [
        Case("push-target-missing", "push", {"name": REF, "cache_dir": CACHE_DIR + "/push"},
             r"missing required arguments: target"),
        Case("push-name-layout-and-source-missing", "push", {"target": push["target"]},
             r"one of the following is required: name, layout, source"),
        Case("push-name-not-cached", "push", {**push, "cache_dir": CACHE_DIR + "/push"},
             r"not in the cache.*pull it first"),
        Case("push-target-invalid", "push", {**push, "target": "Not A/Target!"}, r"target: "),
        Case("push-layout-missing", "push", {"layout": MISSING, "target": push["target"]},
             re.escape(MISSING) + r" is not an OCI image layout"),
        Case("push-platforms-os-only", "push", {**push, "platforms": ["amd64"]}, r"Invalid platform 'amd64'"),
        Case("push-chunk-size-words", "push", {**push, "chunk_size": "lots"},
             r"chunk_size 'lots' is not a size such as 16MiB"),
        Case("push-chunk-size-too-small", "push", {**push, "chunk_size": "10"},
             r"chunk_size must be at least 1024 bytes, got 10"),
        Case("push-cache-dir-is-a-file", "push", {**push, "cache_dir": FILE}, r"not a directory"),
        Case("push-source-and-name", "push", {**push, "source": REF}, r"mutually exclusive: name\|source"),
        Case("push-source-invalid", "push", {"source": "Not A/Reference!", "target": push["target"],
                                             "cache_dir": CACHE_DIR + "/source", "retries": 0},
             r"source: Invalid image reference"),
        Case("push-source-username-without-source", "push", {**push, "source_username": "bot"},
             r"missing parameter\(s\) required by 'source_username': source"),
        Case("push-source-username-without-password", "push",
             {"source": REF, "source_username": "bot", "target": push["target"], "cache_dir": SCRATCH,
              "retries": 0}, r"source_username is set but source_password is not"),
    ]
    cases += registry_cases("push", push) + cache_option_cases("push", push)

    info = {"name": NOWHERE + "/x:v1", "retries": 0}
    cases += [
        Case("info-name-missing", "info", {}, r"missing required arguments: name"),
        Case("info-name-invalid", "info", {"name": "Not A/Reference!"}, r"name: "),
        Case("info-source-bad", "info", {**info, "source": "elsewhere"},
             r"value of source must be one of: registry, cache, got: elsewhere"),
        Case("info-list-tags-not-bool", "info", {**info, "list_tags": "perhaps"}, r"list_tags.*not a valid boolean"),
        Case("info-cache-dir-is-a-file", "info", {**info, "source": "cache", "cache_dir": FILE},
             r"not a directory"),
    ]
    cases += registry_cases("info", info)

    cached = {"cache_dir": CACHE_DIR + "/cache"}
    cases += [
        Case("cache-state-bad", "cache", {**cached, "state": "gone"}, r"value of state must be one of: .*got: gone"),
        Case("cache-absent-without-name", "cache", {**cached, "state": "absent"},
             r"state is absent but all of the following are missing: name"),
        Case("cache-exported-without-path", "cache", {**cached, "state": "exported", "name": [REF]},
             r"state is exported but all of the following are missing: path"),
        Case("cache-name-empty-list", "cache", {**cached, "name": []}, r"name must list at least one image"),
        Case("cache-name-with-pruned", "cache", {**cached, "state": "pruned", "name": [REF]},
             r"name is not used with state=pruned"),
        Case("cache-path-missing-import", "cache", {**cached, "state": "imported", "path": MISSING},
             re.escape(MISSING)),
        Case("cache-path-dir-missing-export", "cache",
             {**cached, "state": "exported", "name": [REF], "path": MISSING + "/images.tar"}, re.escape(MISSING)),
        Case("cache-older-than-words", "cache", {**cached, "state": "pruned", "older_than": "soon"},
             r"older_than: 'soon' is not an age such as 45s"),
        Case("cache-older-than-negative", "cache", {**cached, "state": "pruned", "older_than": "-5d"},
             r"older_than: "),
        Case("cache-older-than-with-verified", "cache", {**cached, "state": "verified", "older_than": "1d"},
             r"older_than is not used with state=verified"),
        Case("cache-remove-bad-not-bool", "cache", {**cached, "state": "verified", "remove_bad": "x"},
             r"remove_bad.*not a valid boolean"),
        Case("cache-force-not-bool", "cache", {**cached, "state": "exported", "name": [REF], "path": FILE,
                                               "force": "x"}, r"force.*not a valid boolean"),
        Case("cache-cache-dir-is-a-file", "cache", {"cache_dir": FILE}, re.escape(FILE) + r".*Not a directory"),
        Case("cache-unknown-option", "cache", {**cached, "stat": "present"}, r"Unsupported parameters for .*: stat"),
    ]
    mirror = {"images": [{"source": REF, "target": NOWHERE + "/target/app:v1"}], "cache_dir": CACHE_DIR + "/mirror",
              "retries": 0}
    one = mirror["images"][0]
    cases += [
        Case("mirror-images-missing", "mirror", {"cache_dir": CACHE_DIR + "/mirror"},
             r"missing required arguments: images"),
        Case("mirror-entry-without-target", "mirror", {**mirror, "images": [{"source": REF}]},
             r"missing required arguments: target found in images"),
        Case("mirror-entry-unknown-key", "mirror", {**mirror, "images": [{**one, "tagret": "x"}]},
             r"Unsupported parameters for .*: images.*tagret|tagret"),
        Case("mirror-entry-source-invalid", "mirror", {**mirror, "images": [{**one, "source": "Not A/Reference!"}]},
             r"images\[0\]\.source: "),
        Case("mirror-second-entry-target-invalid", "mirror",
             {**mirror, "images": [one, {**one, "target": "Not A/Target!"}]}, r"images\[1\]\.target: "),
        Case("mirror-entry-username-without-password", "mirror",
             {**mirror, "images": [{**one, "target_username": "bot"}]},
             r"images\[0\]: the target registry has a user name but no password"),
        Case("mirror-entry-plain-http-not-bool", "mirror",
             {**mirror, "images": [{**one, "source_plain_http": "sometimes"}]}, r"source_plain_http.*not a valid boolean"),
        Case("mirror-platforms-os-only", "mirror", {**mirror, "platforms": ["linux"]}, r"Invalid platform 'linux'"),
        Case("mirror-source-username-without-password", "mirror", {**mirror, "source_username": "bot"},
             r"images\[0\]: the source registry has a user name but no password"),
    ]
    # image_mirror settles credentials per image (an entry may hold the other half), so a half pair
    # module-wide is named at the first entry it leaves incomplete.
    per_image = {"mirror-username-without-password": r"images\[0\]: the target registry has a user name but no password",
                 "mirror-password-without-username": r"images\[0\]: the target registry has a password but no user name"}
    cases += [Case(c.id, c.module, c.args, per_image.get(c.id, c.expect), c.bug)
              for c in registry_cases("mirror", mirror)] + cache_option_cases("mirror", mirror)
    return cases


CASES = table()
assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


def fill(value, values: dict):
    if isinstance(value, str):
        for key, replacement in values.items():
            value = value.replace(key, replacement)
        return value
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    return value


@dataclass
class BadOptionsRun:
    run: PlaybookRun
    results: dict  # case id -> item result
    values: dict  # placeholder -> its value
    cache_root: Path
    filled_before: dict
    filled_after: dict
    workspace: AnsibleWorkspace


@pytest.fixture(scope="module")
def bad_options(samples, tmp_path_factory) -> BadOptionsRun:
    root = tmp_path_factory.mktemp("bad-options")
    regular = root / "a-regular-file"
    regular.write_text("not a directory, not a certificate\n")
    filled = images.write_oci_layout(root / "filled", {samples["oci_single"].ref: samples["oci_single"].obj})
    values = {REF: samples["oci_single"].ref, FILE: str(regular), MISSING: str(root / "missing"),
              CACHE_DIR: str(root / "caches"), NOWHERE: "127.0.0.1:1", FILLED: str(filled),
              SCRATCH: str(root / "scratch")}
    filled_before = tree_snapshot(filled)
    # Each host gets every HOSTS-th case of each module, so their loops are about as long.
    share = {f"h{i}": {m: [] for m in MODULES} for i in range(HOSTS)}
    for module in MODULES:
        for index, case in enumerate(c for c in CASES if c.module == module):
            share[f"h{index % HOSTS}"][module].append({"id": case.id, "args": fill(case.args, values)})
    ws = AnsibleWorkspace(root / "ansible")
    inventory = ws.root / "hosts.ini"
    inventory.write_text("[cases]\n" + "".join(
        f"h{i} ansible_connection=local ansible_python_interpreter={ws.python}\n" for i in range(HOSTS)))
    tasks = [{"name": f"bad {short}", fqcn: "{{ item.args }}", "loop": f"{{{{ share[inventory_hostname].{short} }}}}",
              "loop_control": {"label": "{{ item.id }}"}, "ignore_errors": True}
             for short, fqcn in MODULES.items()]
    playbook = json.dumps([{"name": "bad options", "hosts": "cases", "gather_facts": False, "tasks": tasks}],
                          indent=2) + "\n"
    try:
        run = ws.run_playbook(playbook, {"share": share}, timeout=300, args=["-i", str(inventory)],
                              env={"ANSIBLE_FORKS": str(HOSTS), "ANSIBLE_PIPELINING": "True"})
    finally:
        ws.cleanup()
    results = {}
    for record in run.results:
        for item in record["result"].get("results", []):
            results[item["item"]["id"]] = item
    yield BadOptionsRun(run, results, values, root / "caches", filled_before, tree_snapshot(filled), ws)


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_option_fails_clearly(bad_options, case):
    result = bad_options.results.get(case.id)
    assert result is not None, f"no result for {case.id}\n{bad_options.run.output[-5000:]}"
    clean_failure(result, case.id)
    expect = fill(case.expect, {k: re.escape(v) for k, v in bad_options.values.items()})
    assert re.search(expect, result["msg"], re.I), f"{case.id}: {expect!r} not in {result['msg']!r}"


def test_bad_options_create_no_cache(bad_options):
    """Refused options leave no trace: none of the caches the table names was created, the cache
    pushes read from is unchanged, and the default cache (in the workspace's HOME) was not made."""
    assert not bad_options.cache_root.exists(), sorted(str(p) for p in bad_options.cache_root.rglob("*"))
    assert bad_options.filled_after == bad_options.filled_before


def test_bad_options_do_not_write_the_default_cache(bad_options):
    assert not bad_options.workspace.cache_dir.exists()
