"""Checks shared by the fault, hostile-registry and bad-option tests.

On a cache (an OCI image layout), made with tools that are not ours: every file under blobs/
hashes to its name, index.json is a valid OCI index, nothing was written outside the cache.
On playbook results: a task succeeded, or failed cleanly (fail_json with a message, no
traceback, no MODULE FAILURE).

    files = assert_blobs_verify(cache)          # {digest: path}, each re-hashed
    names = read_index(cache)                    # {ref name: descriptor}
    before = tree_snapshot(sandbox, skip=[cache]); ...; assert tree_snapshot(...) == before
    run = ws.run_playbook(play(task("pull", PULL, {...}, ignore_errors=True)))
    msg = failed(run, "pull")["msg"]
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

MiB = 1024 * 1024
PULL = "imagepusher.registry.image_pull"
PUSH = "imagepusher.registry.image_push"
MIRROR = "imagepusher.registry.image_mirror"
INFO = "imagepusher.registry.image_info"
CACHE = "imagepusher.registry.image_cache"
REF_NAME = "org.opencontainers.image.ref.name"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * MiB), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def blob_files(cache: Path) -> dict[str, Path]:
    """digest -> file for every file under blobs/ (nothing but blobs/sha256/<hex> allowed)."""
    blobs = Path(cache) / "blobs"
    if not blobs.exists():
        return {}
    algorithms = sorted(p.name for p in blobs.iterdir())
    assert algorithms in ([], ["sha256"]), f"unexpected entries under blobs/: {algorithms}"
    sha = blobs / "sha256"
    return {"sha256:" + p.name: p for p in sha.iterdir()} if sha.exists() else {}


def assert_blobs_verify(cache: Path) -> dict[str, Path]:
    """Every file under blobs/ is a regular file whose sha256 is its name."""
    files = blob_files(cache)
    for digest, path in files.items():
        assert path.is_file() and not path.is_symlink(), path
        assert sha256_file(path) == digest, f"{path} does not hash to its name: a corrupt blob is cached"
    return files


def read_index(cache: Path) -> dict[str, dict]:
    """index.json checked against the image-layout spec; ref name -> descriptor ({} if absent)."""
    index_path = Path(cache) / "index.json"
    if not index_path.exists():
        return {}
    assert json.loads((Path(cache) / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(index_path.read_text())
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX, index
    names = {}
    for desc in index["manifests"]:
        name = desc["annotations"][REF_NAME]
        assert name not in names, f"{name} listed twice in index.json"
        names[name] = desc
    return names


def partial_files(cache: Path) -> list[Path]:
    ingest = Path(cache) / ".imagepusher" / "ingest"
    return sorted(ingest.iterdir()) if ingest.is_dir() else []


def tree_snapshot(root: Path, skip=()) -> dict[str, tuple]:
    """Every path under root (except those under ``skip``) with type, size and content hash."""
    root = Path(root)
    skipped = {Path(p).resolve() for p in skip}
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if (Path(dirpath) / d).resolve() not in skipped]
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.resolve() in skipped:
                continue
            st = path.lstat()
            if path.is_dir() and not path.is_symlink():
                snap[str(path.relative_to(root))] = (st.st_mode, "dir")  # its entries are listed themselves
                continue
            content = sha256_file(path) if path.is_file() and not path.is_symlink() else None
            snap[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, content)
    return snap


def skopeo(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, f"skopeo {' '.join(args)} failed:\n{proc.stderr}"
    return proc


def raw_manifest(ref: str) -> bytes:
    """A registry's manifest bytes for ``ref`` as skopeo (not our client) reads them, byte for byte."""
    proc = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, f"skopeo inspect {ref} failed:\n{proc.stderr.decode()}"
    return proc.stdout


# -- playbooks and their results ---------------------------------------------------------------------
def task(name: str, module: str, args, ignore_errors: bool = False, **keywords) -> dict:
    """One task; ``keywords`` are task keywords (loop, check_mode...)."""
    entry = {"name": name, module: args}
    if ignore_errors:
        entry["ignore_errors"] = True
    entry.update(keywords)
    return entry


def play(*tasks, hosts: str = "localhost") -> str:
    """A one-play playbook (JSON is YAML) from tasks or lists of tasks."""
    flat = []
    for item in tasks:
        flat.extend(item if isinstance(item, list) else [item])
    return json.dumps([{"name": "tests", "hosts": hosts, "gather_facts": False, "tasks": flat}], indent=2) + "\n"


def ok(run, name: str) -> dict:
    """The result of task ``name``, which must have succeeded."""
    rec = run.task(name)
    assert not rec.failed, f"{name} failed: {rec.result.get('msg')}\n{run.output}"
    return rec.result


def clean_failure(result: dict, what: str = "task", is_failed: bool | None = None) -> dict:
    """``result`` is a failure reported by fail_json: a message, no traceback, no crash.
    (A task's own result has no ``failed`` key in the callback's record: pass its status.)"""
    is_failed = result.get("failed") if is_failed is None else is_failed
    assert is_failed, f"{what} should have failed:\n{json.dumps(result, indent=1, default=str)[:3000]}"
    msg = result.get("msg", "")
    assert msg and isinstance(msg, str), result
    assert "module_stderr" not in result and "MODULE FAILURE" not in msg, result
    assert "Traceback" not in msg and "Traceback" not in str(result.get("exception", "")), result
    return result


def failed(run, name: str) -> dict:
    """The result of task ``name``, which must have failed cleanly."""
    rec = run.task(name)
    return clean_failure(rec.result, name, rec.failed)
