"""image_push against REAL registries, through real ansible-playbook.

Driver for the integration target tests/integration/targets/image_push/ (a role: its
tasks/main.yml runs the case files named in ``image_push_cases``; _four_times.yml runs one
behaviour community.docker style: check, real, check again, real again, all with diff, and
asserts on the registered results).

How it runs:

1. ``sources``: image_pull fills a cache once from the seeded ``registry``; each case group
   gets a private copy (a push records in the cache where blobs went).
2. ``target_runs``: every case group is one ansible-playbook run against its OWN empty
   registry (the ``fresh_registry`` idea, kept alive until the checks are done). The runs go
   in parallel, a few at a time: an image_push task costs about a second of Ansible overhead
   and they are independent. Hosts and expected digests (from tests/support/images.py,
   never from our code) go in as extra vars.
3. Each test then checks independently of our client: ``skopeo inspect --raw`` /
   ``skopeo copy --all`` of the target, and the TARGET registry's access log, which the
   playbook cuts into one segment per run with marks: after each run a controller-side
   ``GET /v2/<repo>/manifests/<tag>?imagepusher-mark=<label>.<run>`` that also records
   whether the tag existed at that moment (404 right after a check run).

"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.support import images
from tests.support.ansible import AnsibleWorkspace, PlaybookProcess, PlaybookRun
from tests.support.checks import raw_manifest, skopeo
from tests.support.registry import AccessLogEntry, Registry, free_port

pytestmark = [pytest.mark.ansible]

TARGET = Path(__file__).resolve().parent / "targets" / "image_push"
OUR_AGENT = "imagepusher.registry/"
MARK = "imagepusher-mark"
RUNS = ("check", "real", "check_again", "real_again")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
PARALLEL_RUNS = 3
MiB = 1024 * 1024

PULL_PLAYBOOK = """
- name: Fill the cache the pushes read from
  hosts: localhost
  gather_facts: false
  tasks:
    - name: pull the sources
      imagepusher.registry.image_pull:
        name: "{{ item }}"
        cache_dir: "{{ cache_dir }}"
      loop: "{{ refs }}"
"""

PUSH_PLAYBOOK = f"""
- name: image_push integration target
  hosts: localhost
  gather_facts: false
  roles:
    - role: {TARGET}
  tasks:
    - name: export results
      ansible.builtin.debug:
        var: image_push_runs
"""


# -- helpers -----------------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def platform_string(platform: dict) -> str:
    return "/".join([platform["os"], platform["architecture"]]
                    + ([platform["variant"]] if platform.get("variant") else []))


def describe(sample, obj) -> dict:
    """What the playbook needs to know about a source, from the image builder's objects."""
    info = {
        "ref": sample.ref,
        "tag": sample.tag,
        "digest": obj.digest,
        "media_type": obj.media_type,
        "blob_digests": sorted(obj.blobs),
        "blob_bytes": sum(len(d) for d in obj.blobs.values()),
        "manifest_digests": sorted(obj.manifests),
        "platforms": [platform_string(i.platform) for i in obj.images],
    }
    if isinstance(obj, images.Index):
        info["children"] = {platform_string(i.platform): describe(sample, i) for i in obj.images}
    return info


def ours(entries) -> list[AccessLogEntry]:
    return [e for e in entries if e.user_agent.startswith(OUR_AGENT)]


def tree_state(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(root.rglob("*"))}


# -- running the target's case groups ----------------------------------------------------------------
@dataclass
class CaseRun:
    """One ansible-playbook run of some of the target's cases against its own registry."""

    key: str
    cases: list[str]
    extra: dict
    prepare: object = None  # fn(CaseRun) -> extra vars, called just before the start
    data: dict = field(default_factory=dict)  # whatever prepare wants the test to see
    registry: Registry | None = None
    workspace: AnsibleWorkspace | None = None
    proc: PlaybookProcess | None = None
    run: PlaybookRun | None = None
    error: Exception | None = None  # raised by the start (prepare, registry), re-raised by result()
    dir: Path | None = None

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def runs(self) -> dict:
        """image_push_runs as exported at the end of the play (fails with the output if the play failed)."""
        assert self.run.rc == 0, f"the image_push target failed (rc={self.run.rc})\n{self.run.output}"
        return self.run.task("export results").result["image_push_runs"]

    def marks(self) -> tuple[dict[str, list[AccessLogEntry]], dict[str, AccessLogEntry]]:
        """(segments, marks): the target's access log cut at the marks; each segment holds the
        requests made before its mark (the marks themselves are left out)."""
        segments, marks, current = {}, {}, []
        for entry in self.registry.access_log():
            if MARK in entry.query:
                name = parse_qs(entry.query)[MARK][0]
                segments[name], marks[name] = current, entry
                current = []
            else:
                current.append(entry)
        return segments, marks

    def assert_four_times_log(self, label: str, repo: str, tag: str, absent_before: bool = True):
        """What the TARGET saw from each of the four runs of one behaviour; returns the segments."""
        segments, marks = self.marks()
        for run in RUNS:
            assert f"{label}.{run}" in segments, f"no access-log mark for {label}.{run}: {sorted(segments)}"
            assert marks[f"{label}.{run}"].path == f"/v2/{repo}/manifests/{tag}"
        check = segments[f"{label}.check"]
        assert ours(check), "the check run sent no request at all"
        writes = [(e.method, e.path) for e in check if e.method in WRITES]
        assert writes == [], f"check mode wrote to the target registry: {writes}"
        assert {e.method for e in ours(check)} == {"HEAD"}, [(e.method, e.path) for e in ours(check)]
        if absent_before:
            assert marks[f"{label}.check"].status == 404, "the target tag existed right after the check run"
        for run in ("real", "check_again", "real_again"):
            assert marks[f"{label}.{run}"].status == 200, f"the target tag was missing after {label}.{run}"
        for run in ("check_again", "real_again"):
            got = [(e.method, e.path) for e in segments[f"{label}.{run}"]]
            assert got == [("HEAD", f"/v2/{repo}/manifests/{tag}")], \
                f"{label}.{run}: expected exactly one manifest HEAD, the registry saw {got}"
        assert any(e.method == "PUT" and e.path == f"/v2/{repo}/manifests/{tag}" and e.status == 201
                   for e in segments[f"{label}.real"])
        return segments


class TargetRunner:
    """Starts the queued CaseRuns, PARALLEL_RUNS at a time, in order; result() waits for one."""

    def __init__(self, root: Path, cache: Path, sources: dict):
        self.root, self.cache, self.sources = root, cache, sources
        self.queue: list[CaseRun] = []
        self.running: list[CaseRun] = []
        self.all: dict[str, CaseRun] = {}

    def add(self, key: str, cases: list[str], prepare=None, **extra) -> None:
        case = CaseRun(key, cases, extra, prepare)
        self.queue.append(case)
        self.all[key] = case

    def _start(self, case: CaseRun) -> None:
        case.dir = self.root / case.key
        case.dir.mkdir()
        shutil.copytree(self.cache, case.dir / "cache", symlinks=True)
        case.registry = Registry().start()
        extra = dict(case.extra)
        if case.prepare:
            extra.update(case.prepare(case))
        extra_vars = {
            "image_push_cases": case.cases,
            "image_push_cache_dir": str(case.dir / "cache"),
            "image_push_target_host": case.registry.host,
            "image_push_target_url": case.registry.url,
            "image_push_sources": self.sources,
        }
        extra_vars.update({f"image_push_{k}": v for k, v in extra.items()})
        case.workspace = AnsibleWorkspace(case.dir / "ansible")
        case.proc = case.workspace.start_playbook(PUSH_PLAYBOOK, extra_vars, timeout=240)
        self.running.append(case)

    def _pump(self) -> None:
        for case in list(self.running):
            if case.proc.proc.poll() is not None:
                case.run = case.proc.wait()
                self.running.remove(case)
        while self.queue and len(self.running) < PARALLEL_RUNS:
            case = self.queue.pop(0)
            try:
                self._start(case)
            except Exception as exc:  # noqa: BLE001 - handed to the test that needs this case
                case.error = exc

    def result(self, key: str) -> CaseRun:
        assert key in self.all, f"case group {key!r} was not queued: map the test to it in GROUP_OF_TEST"
        case = self.all[key]
        deadline = time.monotonic() + 300
        while case.run is None and case.error is None:
            assert time.monotonic() < deadline, f"{key}: no result after 300 s"
            self._pump()
            if case.run is None:
                time.sleep(0.05)
        if case.error is not None:
            raise case.error
        return case

    def close(self) -> None:
        self.queue.clear()
        for case in self.running:
            case.proc.kill()
            case.proc.proc.wait()
        for case in self.all.values():
            if case.registry is not None:
                case.registry.stop()


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sources(registry, samples, tmp_path_factory):
    """(cache dir filled by image_pull with every sample, {sample: describe()})."""
    cache = tmp_path_factory.mktemp("image-push-sources") / "cache"
    ws = AnsibleWorkspace(tmp_path_factory.mktemp("image-push-pull"))
    try:
        run = ws.run_playbook(PULL_PLAYBOOK, {"cache_dir": str(cache),
                                              "refs": [s.ref for s in samples.values()]})
    finally:
        ws.cleanup()
    assert run.rc == 0, run.output
    pulled = run.task("pull the sources").result["results"]
    assert [r["digest"] for r in pulled] == [s.digest for s in samples.values()]
    return cache, {name: describe(s, s.obj) for name, s in samples.items()}


# Which case group each test reads (parametrized tests: from their parameters), so that a
# selection (-k) runs only the playbooks it needs.
GROUP_OF_TEST = {
    "test_push_to_empty_registry": lambda p: f"basic-{p['name']}",
    "test_target_without_tag_takes_the_source_tag": lambda p: "basic-docker_v2",
    "test_second_repository_mounts_every_blob": lambda p: "mount",
    "test_chunked_upload_of_a_large_layer": lambda p: f"chunked-{p['chunk_size']}",
    "test_push_from_an_oci_layout": lambda p: "layout",
    "test_platforms_narrow_the_index": lambda p: "platforms",
    "test_platforms_result_lists_the_platform_pushed": lambda p: "platforms",
    "test_target_without_tag_after_a_narrowed_pull_takes_the_source_tag": lambda p: "narrowed_pull",
    "test_failures_say_what_to_do": lambda p: "failures",
}


@pytest.fixture(scope="module")
def target_runs(request, sources, registry, tmp_path_factory):
    """The target's case groups the selected tests need, queued in test order, run in the background."""
    runner = TargetRunner(tmp_path_factory.mktemp("image-push-runs"), *sources)

    def skopeo_layout(case):
        layout = case.dir / "skopeo-layout"
        skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/test/oci-single:v1",
               f"oci:{layout}:app:v1")
        case.data["layout"], case.data["before"] = layout, tree_state(layout)
        return {"layout_dir": str(layout)}

    def two_image_layout(case):
        layout = images.write_oci_layout(case.dir / "two-images", {
            "first:v1": images.oci_single(), "second:v1": images.docker_v2()})
        case.data["free_port"] = free_port()
        return {"layout_multi_dir": str(layout), "free_port": case.data["free_port"]}

    groups = {
        "basic-multi": (["basic"], None, {"source": "multi", "basic_target": "basic/multi:v1"}),
        "basic-docker_v2": (["basic"], None, {"source": "docker_v2", "basic_target": "basic/docker-v2"}),
        "mount": (["mount"], None, {}),
        "chunked-1048576": (["chunked"], None, {"chunk_size": "1048576"}),
        "chunked-1MiB": (["chunked"], None, {"chunk_size": "1MiB"}),
        "layout": (["layout"], skopeo_layout, {}),
        "platforms": (["platforms"], None, {}),
        "narrowed_pull": (["narrowed_pull"], None, {}),
        "failures": (["failures"], two_image_layout, {}),
    }
    wanted = []
    for item in request.session.items:
        if item.module is request.module and item.originalname in GROUP_OF_TEST:
            params = item.callspec.params if hasattr(item, "callspec") else {}
            key = GROUP_OF_TEST[item.originalname](params)
            if key not in wanted:
                wanted.append(key)
    for key in wanted:
        cases, prepare, extra = groups[key]
        runner.add(key, cases, prepare, **extra)
    runner._pump()
    try:
        yield runner
    finally:
        runner.close()


# -- the four-times behaviours ------------------------------------------------------------------------
@pytest.mark.parametrize("name, repo", [("multi", "basic/multi"), ("docker_v2", "basic/docker-v2")])
def test_push_to_empty_registry(name, repo, target_runs, samples, tmp_path):
    case = target_runs.result(f"basic-{name}")
    runs = case.runs[f"basic-{name}"]
    sample = samples[name]
    assert [runs[r]["changed"] for r in RUNS] == [True, True, False, False]
    assert {b["action"] for b in runs["check"]["blobs"]} == {"uploaded"}
    assert runs["check"]["bytes_uploaded"] == sum(len(d) for d in sample.obj.blobs.values())
    assert runs["check"]["diff"]["before"]["digest"] is None
    assert runs["real"]["diff"]["after"]["digest"] == sample.digest

    segments = case.assert_four_times_log(f"basic-{name}", repo, "v1")
    real = segments[f"basic-{name}.real"]
    assert sorted(e.path.rsplit("/", 1)[1] for e in real if e.method == "PUT" and "/manifests/" in e.path) \
        == sorted([d for d in sample.obj.manifests if d != sample.digest] + ["v1"])

    # A third party reads back exactly the bytes we stored ...
    raw = raw_manifest(f"{case.host}/{repo}:v1")
    assert sha256(raw) == sample.digest
    assert raw == sample.obj.manifest
    # ... and copies the whole image, verifying every blob (and child manifest) we uploaded.
    layout = tmp_path / "copied"
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{case.host}/{repo}:v1", f"oci:{layout}:x")
    index = json.loads((layout / "index.json").read_text())
    assert len(index["manifests"]) == 1
    if sample.obj.media_type.startswith("application/vnd.oci."):
        assert index["manifests"][0]["digest"] == sample.digest  # OCI in, OCI out: no conversion


def test_target_without_tag_takes_the_source_tag(target_runs, samples):
    case = target_runs.result("basic-docker_v2")  # its target is basic/docker-v2, no tag
    runs = case.runs["basic-docker_v2"]
    assert {runs[r]["target"] for r in RUNS} == {f"{case.host}/basic/docker-v2:v1"}
    assert runs["real"]["diff"]["after"]["target"] == f"{case.host}/basic/docker-v2:v1"
    assert sha256(raw_manifest(f"{case.host}/basic/docker-v2:v1")) == samples["docker_v2"].digest
    latest = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{case.host}/basic/docker-v2:latest",
                    check=False)
    assert latest.returncode != 0 and "manifest unknown" in latest.stderr


def test_second_repository_mounts_every_blob(target_runs, samples):
    case = target_runs.result("mount")
    second = case.runs["mount-second"]
    sample = samples["multi"]
    assert [second[r]["changed"] for r in RUNS] == [True, True, False, False]
    for r in ("check", "real"):
        assert {b["action"] for b in second[r]["blobs"]} == {"mounted"}
        assert second[r]["bytes_uploaded"] == 0

    segments = case.assert_four_times_log("mount-second", "mount/second", "v1")
    # The sample's blobs are small: each goes up with the PUT that completes its session (POST, PUT).
    assert {e.method for e in segments["mount-first.real"] if e.method in WRITES} == {"POST", "PUT"}
    real = ours(segments["mount-second.real"])
    posts = [e for e in real if e.method == "POST"]
    assert len(posts) == len(sample.obj.blobs)
    for post in posts:
        query = parse_qs(post.query)
        assert query.get("from") == ["mount/first"], post
        assert query.get("mount", [None])[0] in sample.obj.blobs, post
        assert post.status == 201, post
    assert [e for e in real if e.method == "PATCH"] == []
    assert [e for e in real if e.method == "PUT" and "/blobs/" in e.path] == []
    assert sha256(raw_manifest(f"{case.host}/mount/second:v1")) == sample.digest


@pytest.mark.parametrize("chunk_size", [
    "1048576",
    "1MiB",
])
def test_chunked_upload_of_a_large_layer(chunk_size, target_runs, samples):
    case = target_runs.result(f"chunked-{chunk_size}")
    runs = case.runs["chunked"]
    sample = samples["large"]
    assert [runs[r]["changed"] for r in RUNS] == [True, True, False, False]
    segments = case.assert_four_times_log("chunked", "chunked/large", "v1")

    # Every upload session: its PATCHes (one per chunk) and the PUT that names the digest.
    real = ours(segments["chunked.real"])
    patches: dict[str, int] = {}
    for e in real:
        if e.method == "PATCH":
            patches[e.path] = patches.get(e.path, 0) + 1
    finished = {parse_qs(e.query)["digest"][0]: e.path for e in real
                if e.method == "PUT" and "/blobs/uploads/" in e.path}
    assert sorted(finished) == sorted(sample.obj.blobs)
    for digest, data in sample.obj.blobs.items():
        assert patches.get(finished[digest], 0) == math.ceil(len(data) / MiB), digest
    big = max(sample.obj.blobs.values(), key=len)
    assert patches[finished[sha256(big)]] >= 48
    assert sha256(raw_manifest(f"{case.host}/chunked/large:v1")) == sample.digest


def test_push_from_an_oci_layout(target_runs, samples):
    case = target_runs.result("layout")
    runs = case.runs["layout-named"]
    sample = samples["oci_single"]
    assert [runs[r]["changed"] for r in RUNS] == [True, True, False, False]
    case.assert_four_times_log("layout-named", "layout/named", "v1")
    for repo in ("layout/named", "layout/only"):
        assert sha256(raw_manifest(f"{case.host}/{repo}:v1")) == sample.digest
    assert tree_state(case.data["layout"]) == case.data["before"], \
        "image_push wrote into the OCI layout it pushed from"


def test_platforms_narrow_the_index(target_runs, samples):
    case = target_runs.result("platforms")
    runs = case.runs
    index = samples["multi"].obj
    amd64, arm64 = index.image_for("amd64"), index.image_for("arm64", variant="v8")

    one = runs["platform-one"]
    assert [one[r]["changed"] for r in RUNS] == [True, True, False, False]
    assert one["real"]["digest"] == amd64.digest
    case.assert_four_times_log("platform-one", "plat/app", "amd64")
    assert raw_manifest(f"{case.host}/plat/app:amd64") == amd64.manifest  # the child itself

    two = runs["platform-two"]
    assert (two["real"]["changed"], two["real_again"]["changed"]) == (True, False)
    raw = raw_manifest(f"{case.host}/plat/app:two")
    assert sha256(raw) == two["real"]["digest"] != index.digest
    narrowed = json.loads(raw)
    assert narrowed["mediaType"] == index.media_type
    source_entries = {m["digest"]: m for m in index.parsed["manifests"]}
    assert narrowed["manifests"] == [source_entries[amd64.digest], source_entries[arm64.digest]]


def test_platforms_result_lists_the_platform_pushed(target_runs):
    case = target_runs.result("platforms")
    one = case.runs["platform-one"]
    assert one["real"]["platforms"] == ["linux/amd64"]
    assert one["check"]["platforms"] == ["linux/amd64"]
    task = "platforms | the result lists the platform pushed"
    assert case.run.task(task).status == "ok"


def test_target_without_tag_after_a_narrowed_pull_takes_the_source_tag(target_runs, samples):
    case = target_runs.result("narrowed_pull")
    runs = case.runs["narrowed"]
    assert runs["real"]["target"] == f"{case.host}/narrowed/app:v1"
    assert (runs["real"]["changed"], runs["real_again"]["changed"]) == (True, False)
    assert raw_manifest(f"{case.host}/narrowed/app:v1") == samples["multi"].obj.image_for("amd64").manifest


# -- failures ---------------------------------------------------------------------------------
def test_failures_say_what_to_do(target_runs):
    case = target_runs.result("failures")
    run = case.run
    assert run.rc == 0, run.output  # the target's asserts on the failures passed
    failed = [r for r in run.results if r["action"] == "imagepusher.registry.image_push"]
    assert [r["status"] for r in failed] == ["failed"] * 5, run.output
    messages = [r["result"]["msg"] for r in failed]
    assert "pull it first with imagepusher.registry.image_pull" in messages[0]
    assert f"127.0.0.1:{case.data['free_port']}" in messages[1]
    assert messages[2].startswith("target: ")
    assert "chunk_size" in messages[3]
    assert "first:v1, second:v1" in messages[4]
    assert "Traceback" not in run.stdout + run.stderr
    writes = [(e.method, e.path) for e in case.registry.access_log() if e.method in WRITES]
    assert writes == [], f"a failed push wrote to the registry: {writes}"
