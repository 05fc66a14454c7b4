"""The role imagepusher.registry.mirror_images against REAL registries, through real ansible-playbook.

Driver for the integration target tests/integration/targets/mirror_images/ (a role whose
tasks/main.yml runs the case files named in ``mirror_test_cases``):

- ``mirrored``: the role mirrors four entries of the seeded registry (the 3-platform index, the
  Docker v2 image, the OCI image with a target that has no tag, and the index narrowed to
  linux/amd64) into an empty registry of its own, with a dedicated cache dir (cold run), in
  ONE image_mirror task. The same playbook runs again (warm run), then once more with an empty
  cache dir while the targets are current. In the background meanwhile, another run applies
  the role to an empty list (which talks to no registry: the exact access-log checks of the
  runs above would see it) and to a list with an entry that has no target. Once the access
  logs of those three runs are taken, a last run applies the role to a list whose second
  entry names a tag that does not exist.
- Each run's summary is checked key by key in the play (``mirror_test_expected``) and again
  here; the tests also check the PLAY RECAPs, the registries' access logs, the cache and, with
  skopeo, the targets.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.ansible import AnsibleWorkspace, PlaybookRun
from tests.support.registry import Registry

pytestmark = [pytest.mark.ansible]

TARGET = Path(__file__).resolve().parent / "targets" / "mirror_images"
PLAYBOOK = f"""
- name: mirror_images integration target
  hosts: localhost
  gather_facts: false
  roles:
    - role: {TARGET}
  tasks:
    - name: export results
      ansible.builtin.debug:
        var: mirror_images_results
"""
RECAP_RE = re.compile(r"^localhost\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                      r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)"
                      r"\s+ignored=(?P<ignored>\d+)", re.M)
MIRROR = "imagepusher.registry.image_mirror"
PUSH = "imagepusher.registry.image_push"
PULL = "imagepusher.registry.image_pull"
REF_NAME = "org.opencontainers.image.ref.name"
# (sample, target repository[:tag], platforms): the last entry shares every blob with the first
ENTRIES = [("multi", "mirror/multi:v1", None),
           ("docker_v2", "mirror/docker-v2", None),  # no tag: takes v1
           ("oci_single", "mirror/oci-single:stable", None),
           ("multi", "mirror/multi-amd64:v1", ["linux/amd64"])]


def recap(run: PlaybookRun) -> dict[str, int]:
    found = RECAP_RE.findall(run.stdout)
    assert len(found) == 1, f"expected one PLAY RECAP line for localhost\n{run.output}"
    return dict(zip(("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"),
                    map(int, found[0])))


def skopeo_raw(ref: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          capture_output=True, timeout=60, check=False)


def raw_digest(ref: str) -> str:
    proc = skopeo_raw(ref)
    assert proc.returncode == 0, f"skopeo inspect {ref} failed:\n{proc.stderr.decode()}"
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


def exported(run: PlaybookRun) -> list[dict]:
    assert run.rc == 0, f"the mirror_images target failed (rc={run.rc})\n{run.output}"
    return run.task("export results").result["mirror_images_results"]


def expected_summary(samples, target_host: str, run: str) -> list[dict]:
    """mirror_images_results for run 'cold' (empty cache and target), 'warm' or 'cache_gone'."""
    summary = []
    for name, dest, platforms in ENTRIES:
        sample = samples[name]
        image = sample.obj.image_for("amd64") if platforms else sample.obj
        size = sum(len(b) for b in image.blobs.values())
        # the narrowed entry comes after the full index: its blobs are in the cache, and in
        # another repository of the target, which the cache knows of (mounted, not uploaded)
        moved = run == "cold" and not platforms
        summary.append({
            "source": sample.ref,
            "target": f"{target_host}/{dest}" + ("" if ":" in dest else f":{sample.tag}"),
            "digest": image.digest,
            "cache_name": sample.ref + ("+linux-amd64" if platforms else ""),
            "cached": run != "cache_gone",
            "pulled": moved,
            "pushed": run == "cold",
            "bytes_downloaded": size if moved else 0,
            "bytes_uploaded": size if moved else 0,
        })
    return summary


def manifest_heads(entries) -> list[tuple[str, str]]:
    return sorted((e.method, e.path) for e in entries)


@pytest.fixture(scope="module")
def mirrored(registry, samples, tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror-images")
    cache_dir = root / "cache"
    ws = AnsibleWorkspace(root / "ansible")
    with Registry() as target:
        invalid = ws.start_playbook(PLAYBOOK, {
            "mirror_test_cases": ["empty", "invalid"],
            "mirror_test_cache_dir": str(root / "invalid-cache"),
            "mirror_test_invalid_list": [{"source": samples["oci_single"].ref}],
        }, timeout=120)
        listed = []
        for name, dest, platforms in ENTRIES:
            entry = {"source": samples[name].ref, "target": f"{target.host}/{dest}"}
            if platforms:
                entry["platforms"] = platforms
            listed.append(entry)
        extra = {"mirror_test_cases": ["mirror"], "mirror_test_cache_dir": str(cache_dir),
                 "mirror_test_list": listed}
        runs, logs, cache_names = {}, {}, []
        for run, cache in (("cold", cache_dir), ("warm", cache_dir), ("cache_gone", root / "empty-cache")):
            marks = registry.mark(), target.mark()
            runs[run] = ws.run_playbook(PLAYBOOK, dict(extra, mirror_test_cache_dir=str(cache),
                                                       mirror_test_expected=expected_summary(samples, target.host,
                                                                                             run)), timeout=240)
            logs[run] = {"source": registry.access_log(since=marks[0]), "target": target.access_log(since=marks[1])}
            if run == "cold" and (cache_dir / "index.json").exists():  # what the cold run left in the cache
                index = json.loads((cache_dir / "index.json").read_text())
                cache_names = sorted(m["annotations"][REF_NAME] for m in index["manifests"])
        # the logged runs are over: now a list that stops at its second entry
        unknown_list = [{"source": f"{samples[name].host}/{samples[name].repo}:{tag}",
                         "target": f"{target.host}/failing/{name}:v1"}
                        for name, tag in (("oci_single", "v1"), ("multi", "no-such-tag"), ("docker_v2", "v1"))]
        unknown = ws.run_playbook(PLAYBOOK, {"mirror_test_cases": ["unknown"],
                                             "mirror_test_cache_dir": str(root / "unknown-cache"),
                                             "mirror_test_unknown_list": unknown_list}, timeout=240)
        unknown_requests = [(e.method, e.path) for e in target.access_log()]
        digests = {e["target"]: raw_digest(e["target"]) for e in expected_summary(samples, target.host, "cold")}
        yield {"runs": runs, "logs": logs, "invalid": invalid.wait(), "listed": listed, "digests": digests,
               "cache_names": cache_names, "cache_dir": cache_dir, "empty_cache": root / "empty-cache",
               "target": target.host, "unknown": unknown, "unknown_list": unknown_list,
               "unknown_requests": unknown_requests,
               "unknown_first": skopeo_raw(unknown_list[0]["target"])}
    ws.cleanup()


def test_first_run_mirrors_every_image(mirrored, samples):
    first = mirrored["runs"]["cold"]
    results = exported(first)
    expected = expected_summary(samples, mirrored["target"], "cold")
    assert results == expected
    assert [(r["pulled"], r["pushed"]) for r in results] == [(True, True)] * 3 + [(False, True)]
    # skopeo reads each target tag back with the source digest (one target had no tag: v1)
    assert mirrored["digests"] == {e["target"]: e["digest"] for e in expected}
    assert f"{mirrored['target']}/mirror/docker-v2:v1" in mirrored["digests"]
    # one image_mirror task, no loop, one changed result per image in list order; no other module
    (mirror,) = [r for r in first.results if r["action"] == MIRROR]
    assert mirror["status"] == "changed" and "results" not in mirror["result"]
    assert [(i["source"], i["changed"]) for i in mirror["result"]["images"]] \
        == [(e["source"], True) for e in expected]
    assert (mirror["result"]["bytes_downloaded"], mirror["result"]["bytes_uploaded"]) \
        == (sum(e["bytes_downloaded"] for e in expected), sum(e["bytes_uploaded"] for e in expected))
    assert not [r for r in first.results if r["action"] in (PULL, PUSH)]
    assert (recap(first)["changed"], recap(first)["failed"]) == (1, 0)
    assert "Traceback" not in first.stdout + first.stderr


def test_first_run_fills_the_cache(mirrored, samples):
    cache = mirrored["cache_dir"]
    names = [e["cache_name"] for e in expected_summary(samples, mirrored["target"], "cold")]
    assert mirrored["cache_names"] == sorted(set(names))
    for blob in (cache / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob
    # skopeo reads the entries with OCI media types (skopeo 1.9 cannot resolve Docker v2 ones)
    for name in names:
        if name.startswith(samples["docker_v2"].ref):
            continue
        proc = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{cache}:{name}"],
                              capture_output=True, timeout=60, check=False)
        assert proc.returncode == 0, f"skopeo cannot read {name} from the cache:\n{proc.stderr.decode()}"


def test_second_run_changes_nothing(mirrored, samples):
    second = mirrored["runs"]["warm"]
    results = exported(second)
    assert results == expected_summary(samples, mirrored["target"], "warm")
    assert [(r["pulled"], r["pushed"], r["bytes_downloaded"], r["bytes_uploaded"]) for r in results] \
        == [(False, False, 0, 0)] * len(ENTRIES)
    counts = recap(second)
    assert counts["changed"] == 0 and counts["failed"] == 0, second.output
    changed = [(r["task"], r["action"]) for r in second.results if r["status"] == "changed"]
    assert changed == [], f"tasks that changed on the second run: {changed}"
    (record,) = [r for r in second.results if r["action"] == MIRROR]
    assert record["status"] == "ok", record
    assert [i["changed"] for i in record["result"]["images"]] == [False] * len(ENTRIES), record


def test_warm_run_costs_one_manifest_head_per_image_per_registry(mirrored, samples):
    logs = mirrored["logs"]["warm"]
    sources = [samples[name] for name, _dest, _platforms in ENTRIES]
    assert manifest_heads(logs["source"]) == sorted(("HEAD", f"/v2/{s.repo}/manifests/{s.tag}") for s in sources)
    targets = [e["target"].split("/", 1)[1].rsplit(":", 1)
               for e in expected_summary(samples, mirrored["target"], "warm")]
    assert manifest_heads(logs["target"]) == sorted(("HEAD", f"/v2/{repo}/manifests/{tag}") for repo, tag in targets)
    assert {e.status for e in logs["source"] + logs["target"]} == {200}


def test_current_targets_with_an_empty_cache_change_nothing(mirrored, samples):
    run = mirrored["runs"]["cache_gone"]
    results = exported(run)
    assert results == expected_summary(samples, mirrored["target"], "cache_gone")
    assert [r["cached"] for r in results] == [False] * len(ENTRIES)
    assert recap(run)["changed"] == 0, run.output
    # no blob moved either way, and the cache was not filled
    logs = mirrored["logs"]["cache_gone"]
    assert [e for e in logs["target"] if e.method != "HEAD"] == []
    assert manifest_heads(logs["target"]) == manifest_heads(mirrored["logs"]["warm"]["target"])
    assert not (mirrored["empty_cache"] / "index.json").exists()


def test_current_targets_with_an_empty_cache_cost_one_head_per_registry(mirrored, samples):
    """Each whole image: one HEAD on each registry, as with a warm cache. The narrowed entry also
    reads the index (its digest is the one the index gives amd64), and nothing else."""
    logs = mirrored["logs"]["cache_gone"]
    multi = samples["multi"]
    index_get = ("GET", "/v2/%s/manifests/%s" % (multi.repo, multi.digest))
    assert manifest_heads(logs["source"]) == sorted(manifest_heads(mirrored["logs"]["warm"]["source"]) + [index_get])
    assert manifest_heads(logs["target"]) == manifest_heads(mirrored["logs"]["warm"]["target"])


def test_empty_list_mirrors_nothing(mirrored):
    run = mirrored["invalid"]  # the empty case runs first in that playbook
    assert run.rc == 0, f"the empty case's asserts failed\n{run.output}"
    (mirror,) = [r for r in run.results if r["action"] == MIRROR]
    assert mirror["status"] == "ok", mirror
    assert (mirror["result"]["images"], mirror["result"]["bytes_downloaded"], mirror["result"]["bytes_uploaded"]) \
        == ([], 0, 0)
    assert run.task("empty | the summary is empty and no cache was created").status == "ok"


def test_entry_without_target_fails_argument_validation(mirrored):
    run = mirrored["invalid"]
    assert run.rc == 0, f"the invalid case's asserts failed\n{run.output}"
    failed = [r for r in run.results if r["status"] == "failed"]
    assert len(failed) == 1, run.output
    msg = failed[0]["result"]["msg"]
    assert "missing required arguments: target" in msg and "mirror_images_list" in msg, msg
    assert recap(run)["rescued"] == 1
    # the one image_mirror task of this playbook is the empty case's
    assert len([r for r in run.results if r["action"] in (PULL, PUSH, MIRROR)]) == 1, \
        "a module ran despite the invalid list"


def test_unknown_tag_fails_the_role_naming_the_entry(mirrored, samples):
    run, listed = mirrored["unknown"], mirrored["unknown_list"]
    assert run.rc == 0, f"the unknown case's asserts failed\n{run.output}"
    (failed,) = [r for r in run.results if r["status"] == "failed"]
    assert failed["action"] == MIRROR, failed
    msg = failed["result"]["msg"]
    assert msg.startswith(f"images[1] ({listed[1]['source']} -> {listed[1]['target']}): "), msg
    assert "no-such-tag" in msg.split("): ", 1)[1], msg
    assert [i["target"] for i in failed["result"]["images"]] == [listed[0]["target"]]
    assert run.task("unknown | export the failure").result["msg"] == msg
    assert (recap(run)["failed"], recap(run)["rescued"]) == (0, 1)
    assert "Traceback" not in run.stdout + run.stderr
    # the entry before it was mirrored (skopeo reads the source digest), the one after it never started
    first = mirrored["unknown_first"]
    assert first.returncode == 0, f"skopeo cannot read {listed[0]['target']}:\n{first.stderr.decode()}"
    assert "sha256:" + hashlib.sha256(first.stdout).hexdigest() == samples["oci_single"].digest
    failing, later = ("/v2/%s/" % e["target"].split("/", 1)[1].rsplit(":", 1)[0] for e in listed[1:])
    assert (failing, later) == ("/v2/failing/multi/", "/v2/failing/docker_v2/")
    # The failing entry only asked the target for its tag (a HEAD, read before the source); the next never started.
    requests = mirrored["unknown_requests"]
    assert [r for r in requests if r[1].startswith(failing)] == [("HEAD", failing + "manifests/v1")], requests
    assert not [r for r in requests if r[1].startswith(later)], requests
    assert not [r for r in run.results if "mirror_images_results" in r["result"].get("ansible_facts", {})]
