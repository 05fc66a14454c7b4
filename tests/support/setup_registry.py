"""ansible-test's side of the integration targets: a seeded registry that outlives the task starting it.

The setup_registry target runs

    python -m tests.support.setup_registry start STATE_DIR     # prints the target variables as JSON
    python -m tests.support.setup_registry stop STATE_DIR      # (its handler, at the end of the play)

from the collection root. `start` forks a small keeper process that starts Distribution
(tests/support/registry.py: its own config and storage, 127.0.0.1 on a free port), seeds it with
what the targets expect (tests/support/target_seeds.py, the same images the pytest drivers seed),
starts a second, empty registry as the target of mirrors,
holds a bound-but-never-listening port for "unreachable", and writes the variables the pytest
drivers pass as extra vars to STATE_DIR/vars.json. The keeper stops the registry when `stop`
asks, or by itself when the ansible-playbook that started it is gone (a failed play runs no
handlers), so no registry outlives its run.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path

from tests.support import seed, target_seeds
from tests.support.registry import Registry

START_TIMEOUT = 120  # seconds for the registry to start and be seeded (slow, loaded CI machines)


def target_vars(registry: Registry, target: Registry, state: Path, unreachable: socket.socket) -> dict:
    """Seed `registry` and return the variables the targets' pytest drivers pass in (`target` stays empty)."""
    digests = {}
    for name, (repo, tag, build) in target_seeds.SAMPLES.items():
        obj = build()
        seed.push(registry.url, repo, obj, tag)
        digests[name] = obj.digest
    latest, docker_list = target_seeds.latest_image(), target_seeds.docker_list()
    seed.push(registry.url, target_seeds.LATEST_REPO, latest, "latest")
    seed.push(registry.url, target_seeds.DOCKER_LIST_REPO, docker_list, "v1")
    multi = target_seeds.SAMPLES["multi"][2]()
    digests.update(latest=latest.digest, docker_list=docker_list.digest,
                   multi_arm64=multi.image_for("arm64").digest, multi_amd64=multi.image_for("amd64").digest)
    cache_root = state / "caches"
    cache_root.mkdir()
    not_a_dir = state / "a-regular-file"
    not_a_dir.write_text("not a directory\n")
    return {
        "registry": registry.host,
        "source_registry": registry.host,  # image_mirror, image_push_source: the seeded one is the source
        "target_registry": target.host,
        "registry_localhost": "localhost:%d" % registry.port,
        "latest_repo": target_seeds.LATEST_REPO,
        "docker_list_repo": target_seeds.DOCKER_LIST_REPO,
        "digests": digests,
        "cache_root": str(cache_root),
        "unreachable": "127.0.0.1:%d" % unreachable.getsockname()[1],
        "not_a_dir": str(not_a_dir),
    }


def playbook_pid() -> int:
    """The ansible-playbook this command runs under (the keeper watches it), else our parent.

    The outermost one: a task runs in a forked worker (same command line) that ends with the task.
    """
    pid, found = os.getppid(), None
    while pid > 1:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        if any(part.endswith(b"ansible-playbook") for part in cmdline[:2]):
            found = pid
        pid = ppid
    return found or os.getppid()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def keep(state: Path, watched: int) -> None:
    """The keeper: start and seed the registry, publish the variables, wait for stop or for the playbook to end."""
    unreachable = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    unreachable.bind(("127.0.0.1", 0))
    registry, target = Registry(), Registry()
    try:
        registry.start()
        target.start()
        variables = target_vars(registry, target, state, unreachable)
        variables["setup_registry_state"] = str(state)
        (state / "vars.json.tmp").write_text(json.dumps(variables))
        os.replace(state / "vars.json.tmp", state / "vars.json")
        while alive(watched) and not (state / "stop").exists():
            time.sleep(0.5)
    except Exception:  # reported to `start`, which is waiting for vars.json or this
        (state / "error.txt").write_text(traceback.format_exc())
    finally:
        registry.stop()
        target.stop()
        unreachable.close()
        (state / "stopped").write_text("")


def start(state: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    watched = playbook_pid()
    if os.fork() == 0:  # the keeper: its own session, detached from the module's pipes
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        try:
            keep(state, watched)
        finally:
            os._exit(0)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if (state / "vars.json").exists():
            print((state / "vars.json").read_text())
            return 0
        if (state / "error.txt").exists():
            print("setup_registry: the registry did not start:\n" + (state / "error.txt").read_text(), file=sys.stderr)
            return 1
        time.sleep(0.2)
    print("setup_registry: no registry after %d s" % START_TIMEOUT, file=sys.stderr)
    return 1


def stop(state: Path) -> int:
    if not state.is_dir():
        return 0
    (state / "stop").write_text("")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (state / "stopped").exists():
        time.sleep(0.2)
    return 0 if (state / "stopped").exists() else 1


def main(argv) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: python -m tests.support.setup_registry start|stop STATE_DIR", file=sys.stderr)
        return 2
    return (start if argv[1] == "start" else stop)(Path(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
