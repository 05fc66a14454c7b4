"""image_cache against REAL registries, through real ansible-playbook: the air gap, prune, verify.

The integration target (targets/image_cache/tasks/) runs in two phases, with changes made by
hand to the caches in between (see its main.yml):

  phase1   image_pull two images into cache_a -> image_cache (list) -> exported (x4) -> copy the
           file -> imported into cache_b (x4) -> image_push to an EMPTY registry; then a
           `docker save` tarball (built by tests/support/archives.py) imported and pushed
  by hand  an orphan blob written into cache_a; one blob of cache_b corrupted
  phase2   absent (x4) and pruned (x4) on cache_a, verified with remove_bad (x4) on cache_b,
           then two user errors (an image the cache lacks, an archive with a `..` member)

Then, with tools that are not ours: skopeo reads the exported archive
(``oci-archive:<path>:<name>``), copies what was pushed across the air gap out of the target
registry (re-verifying every blob) and copies the image that survived the prune out of
cache_a; the digests are compared with the seeded bytes, and cache_a is hashed file by file.

Run: .venv/bin/python -m pytest tests/integration/test_image_cache.py -q
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support import archives, images
from tests.support.ansible import AnsibleWorkspace, PlaybookRun
from tests.support.registry import Registry

pytestmark = [pytest.mark.ansible]

TARGET = Path(__file__).resolve().parent / "targets" / "image_cache"
TARGET_PLAY = f"""\
- name: image_cache integration target
  hosts: localhost
  gather_facts: false
  roles:
    - role: {TARGET}
"""
ORPHAN = b"a blob no image names: prune must remove it\n"
SAVED_TAG = "team/saved:v3"  # as docker save writes RepoTags
SAVED_NAME = "docker.io/team/saved:v3"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    return sha256(path.read_bytes())


def skopeo(*args: str) -> bytes:
    proc = subprocess.run(["skopeo", *args], capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, f"skopeo {' '.join(args)} failed:\n{proc.stderr.decode()}"
    return proc.stdout


def platform_string(platform: dict) -> str:
    return "/".join([platform["os"], platform["architecture"]] + ([platform["variant"]] if platform.get("variant") else []))


def describe(sample) -> dict:
    obj = sample.obj
    files = sorted(set(obj.blobs) | set(obj.manifests))
    return {
        "ref": sample.ref,
        "digest": obj.digest,
        "media_type": obj.media_type,
        "platforms": [platform_string(i.platform) for i in obj.images],
        "size": sum(len(d) for d in obj.blobs.values()) + sum(len(raw) for _t, raw in obj.manifests.values()),
        "files": files,
    }


def saved_image() -> images.Image:
    base = images.tar_layer({"etc/os-release": b"ID=saved\n"}, fmt="docker")
    app = images.tar_layer({"srv/app": b"#!/bin/sh\necho saved\n"}, fmt="docker")
    return images.build_image([base, app], fmt="docker", cmd=["/srv/app"], labels={"from": "docker save"})


@dataclass
class Flow:
    phase1: PlaybookRun
    phase2: PlaybookRun | None
    extra: dict
    target: Registry
    root: Path

    @property
    def cache_a(self) -> Path:
        return Path(self.extra["cache_a"])

    @property
    def cache_b(self) -> Path:
        return Path(self.extra["cache_b"])


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def flow(registry, samples, tmp_path_factory):
    root = tmp_path_factory.mktemp("image-cache-target")
    ws = AnsibleWorkspace(root / "ansible")
    (root / "out").mkdir()
    (root / "transfer").mkdir()
    saved = saved_image()
    archives.docker_save_legacy(root / "save.tar", {SAVED_TAG: saved})
    with Registry() as target:
        extra = {
            "image_cache_phase": "phase1",
            "cache_a": str(root / "cache_a"),
            "cache_b": str(root / "cache_b"),
            "export_path": str(root / "out" / "images.tar"),
            "transfer_dir": str(root / "transfer"),
            "target_registry": target.host,
            "samples": {name: describe(samples[name]) for name in ("multi", "docker_v2")},
            "docker_save": {"path": str(root / "save.tar"), "name": SAVED_NAME, "config_digest": saved.config.digest},
        }
        env = {"ANSIBLE_PIPELINING": "True"}
        phase1 = ws.run_playbook(TARGET_PLAY, extra, env=env, timeout=240)
        phase2 = None
        if phase1.rc == 0:
            # by hand: an orphan in cache_a, a damaged layer in cache_b
            orphan = sha256(ORPHAN)
            (Path(extra["cache_a"]) / "blobs" / "sha256" / orphan.split(":")[1]).write_bytes(ORPHAN)
            corrupted = samples["multi"].obj.images[0].layers[0].digest  # shared by all three platforms
            corrupt(Path(extra["cache_b"]) / "blobs" / "sha256" / corrupted.split(":")[1])
            multi_files = set(extra["samples"]["multi"]["files"])
            pruned = sorted(set(extra["samples"]["docker_v2"]["files"]) - multi_files) + [orphan]
            hostile = archives.raw_tar(root / "hostile.tar", [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                                                              ("../../escaped", b"outside\n")])
            extra = dict(extra, image_cache_phase="phase2", orphan=orphan, corrupted=corrupted, pruned_blobs=pruned,
                         hostile_archive=str(hostile))
            phase2 = ws.run_playbook(TARGET_PLAY, extra, env=env, timeout=240)
        yield Flow(phase1, phase2, extra, target, root)
    ws.cleanup()


def _expected_task_names(phase: str) -> Counter:
    tasks_dir = TARGET / "tasks"

    def walk(tasks, counter, label=None):
        for task in tasks:
            include = task.get("ansible.builtin.include_tasks")
            if include == "{{ image_cache_phase }}.yml":
                counter[task["name"]] += 1
                walk(yaml.safe_load((tasks_dir / f"{phase}.yml").read_text()), counter)
            elif include:
                counter[task["name"]] += 1
                walk(yaml.safe_load((tasks_dir / include).read_text()), counter, task["vars"]["label"])
            else:
                counter[task["name"].replace("{{ label }}", label or "")] += 1
        return counter

    return walk(yaml.safe_load((tasks_dir / "main.yml").read_text()), Counter())


@pytest.mark.parametrize("phase", ["phase1", "phase2"])
def test_target_runs_every_task(flow, phase):
    run = getattr(flow, phase)
    assert run is not None, "phase1 failed, so phase2 did not run"
    assert run.rc == 0, run.output
    assert "Traceback" not in run.stdout + run.stderr, run.output
    ran = Counter(r["task"] for r in run.results)
    assert ran == _expected_task_names(phase), run.output
    assert [r["task"] for r in run.results if r["status"] == "skipped"] == []
    failed = [r for r in run.results if r["status"] == "failed"]
    assert all(r["ignore_errors"] and r["task"].startswith("Fail:") for r in failed), failed
    assert bool(failed) == (phase == "phase2")
    asserts = [r for r in run.results if r["action"] == "ansible.builtin.assert"]
    assert len(asserts) >= 4 and all(r["status"] == "ok" for r in asserts)


def test_air_gap_preserves_digests(flow, samples, tmp_path):
    """What crossed the air gap is, byte for byte, what the source registry serves."""
    assert flow.phase1.rc == 0, flow.phase1.output
    for name in ("multi", "docker_v2"):
        obj = samples[name].obj
        ref = f"{flow.target.host}/airgap/{name}:v1"
        assert skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}") == obj.manifest
    # skopeo re-verifies every blob it copies: every platform of the index is whole
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{flow.target.host}/airgap/multi:v1",
           f"oci:{tmp_path / 'copy'}:x")
    index = json.loads((tmp_path / "copy" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [samples["multi"].digest]


def test_skopeo_reads_the_export(flow, samples, tmp_path):
    assert flow.phase1.rc == 0, flow.phase1.output
    archive = flow.extra["export_path"]
    skopeo("copy", "--all", f"oci-archive:{archive}:{samples['multi'].ref}", f"oci:{tmp_path / 'x'}:x")
    index = json.loads((tmp_path / "x" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [samples["multi"].digest]
    # the copied archive is the same file
    assert sha256_file(Path(flow.extra["transfer_dir"]) / "images.tar") == sha256_file(Path(archive))


def test_docker_save_image_reached_the_registry(flow, tmp_path):
    assert flow.phase1.rc == 0, flow.phase1.output
    ref = f"{flow.target.host}/airgap/saved:v1"
    manifest = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    saved = saved_image()
    assert manifest["mediaType"] == images.DOCKER_MANIFEST
    assert manifest["config"]["digest"] == saved.config.digest
    assert [layer["digest"] for layer in manifest["layers"]] == [layer.diff_id for layer in saved.layers]
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'saved'}:x")  # verifies every blob
    config = json.loads(skopeo("inspect", "--config", "--tls-verify=false", f"docker://{ref}"))
    assert config["config"]["Labels"] == {"from": "docker save"}


def test_prune_kept_every_blob_of_the_remaining_image_and_nothing_else(flow, samples, tmp_path):
    assert flow.phase2 is not None and flow.phase2.rc == 0, (flow.phase2 or flow.phase1).output
    blobs = {"sha256:" + p.name: p for p in (flow.cache_a / "blobs" / "sha256").iterdir()}
    assert set(blobs) == set(flow.extra["samples"]["multi"]["files"])
    for digest, path in blobs.items():
        assert sha256_file(path) == digest
    assert sha256(ORPHAN) not in blobs
    skopeo("copy", "--all", f"oci:{flow.cache_a}:{samples['multi'].ref}", f"oci:{tmp_path / 'kept'}:x")


def test_verify_removed_only_the_corrupted_blob(flow, samples):
    assert flow.phase2 is not None and flow.phase2.rc == 0, (flow.phase2 or flow.phase1).output
    corrupted = flow.extra["corrupted"]
    blobs = {"sha256:" + p.name: p for p in (flow.cache_b / "blobs" / "sha256").iterdir()}
    assert corrupted not in blobs
    for digest, path in blobs.items():
        assert sha256_file(path) == digest, f"{digest} left damaged"
    wanted = set(flow.extra["samples"]["multi"]["files"]) | set(flow.extra["samples"]["docker_v2"]["files"])
    assert wanted - set(blobs) == {corrupted}


def test_failures_wrote_nothing(flow):
    assert flow.phase2 is not None and flow.phase2.rc == 0, (flow.phase2 or flow.phase1).output
    assert sorted(p.name for p in Path(flow.extra["transfer_dir"]).iterdir()) == ["images.tar"]
    assert not (flow.root.parent / "escaped").exists() and not (flow.root / "escaped").exists()
