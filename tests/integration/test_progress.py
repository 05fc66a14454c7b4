"""Progress while a transfer runs (issue 14): lines with byte counts, spaced in time, before the result.

A throttled transfer (tests/support/throttle_proxy.py) of a 24 MiB image runs about 3-4 s
through each way a user starts one: a playbook on two hosts at once, the role, ad hoc
`ansible -m`, and ansible-runner (what AWX runs every job with), whose job events must carry
the lines before the task's runner_on_ok. Over the local connection the module runs as any task
and the action reads its progress file from a thread; with become it runs as an async job the
action polls (plugin_utils/_progress_action.py): both are run here. IMAGEPUSHER_PROGRESS_INTERVAL=1 shows a status line
every second instead of every 5, so a short transfer shows several. No TTY anywhere: stdout is
a pipe, read line by line with the time each line arrived.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import images, seed
from tests.support.ansible import AnsibleWorkspace
from tests.support.registry import Registry
from tests.support.throttle_proxy import MiB, ThrottleProxy

pytestmark = pytest.mark.ansible

IMAGE_MIB = 24
RATE = 7 * MiB
ENV = {"IMAGEPUSHER_PROGRESS_INTERVAL": "1", "IMAGEPUSHER_PROGRESS": "true"}
# "[localhost] 127.0.0.1:1234/test/progress:v1: 12.0 MiB of 24.0 MiB (50%) at 6.0 MiB/s, ETA 2s"
STATUS = re.compile(r"^\[(?P<host>[^\]]+)\] (?P<label>\S.*): (?P<done>[0-9.]+ (?:B|KiB|MiB)) of "
                    r"(?P<total>[0-9.]+ MiB) \((?P<percent>\d+)%\)(?:, starting| at \S+ \S+/s, ETA \S+)$")
FINAL = re.compile(r"^\[(?P<host>[^\]]+)\] (?P<label>\S.*): done, [0-9.]+ MiB in \d+s \(\S+ \S+/s\)$")


@pytest.fixture(scope="module")
def source():
    """A registry holding one 24 MiB image, behind a throttling proxy: (proxy, reference)."""
    with Registry() as reg:
        seed.push(reg.url, "test/progress", images.large_image(IMAGE_MIB), "v1")
        with ThrottleProxy("127.0.0.1", reg.port, rate=RATE) as proxy:
            yield proxy, f"{proxy.host}/test/progress:v1"


def timed_lines(cmd, env, cwd, timeout=180):
    """Run `cmd` with stdout on a pipe; [(seconds since start, line)] and the return code."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, cwd=cwd, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        lines.append((time.monotonic() - started, line.rstrip("\n")))
        assert time.monotonic() - started < timeout, "still running after %ds" % timeout
    return lines, proc.wait()


def progress_of(lines, host="localhost"):
    """The status lines of `host`: [(time, MiB done)], and its final lines."""
    statuses = []
    for at, line in lines:
        match = STATUS.match(line)
        if match and match["host"] == host:
            done = match["done"].split()
            statuses.append((at, float(done[0]) / (1024 if done[1] == "KiB" else 1024 * 1024 if done[1] == "B" else 1)))
    finals = [line for _at, line in lines if FINAL.match(line) and FINAL.match(line)["host"] == host]
    return statuses, finals


def assert_progress(lines, result_line, host="localhost"):
    """Status lines with growing byte counts of the whole image, spaced in time, then a final line, then the result."""
    text = "\n".join(line for _at, line in lines)
    statuses, finals = progress_of(lines, host)
    assert len(statuses) >= 2, text
    assert all(STATUS.match(line)["total"] == "%.1f MiB" % IMAGE_MIB for _at, line in lines
               if STATUS.match(line) and STATUS.match(line)["host"] == host), text
    assert [done for _at, done in statuses] == sorted(done for _at, done in statuses), text
    assert statuses[-1][1] > statuses[0][1], text
    assert any(re.search(r" at [0-9.]+ (?:KiB|MiB)/s, ETA \d+s$", line) for _at, line in lines
               if line.startswith("[%s] " % host)), text
    gaps = [b[0] - a[0] for a, b in zip(statuses, statuses[1:])]
    assert min(gaps) >= 0.5, (gaps, text)  # spaced: one per interval, not a burst at the end
    assert len(finals) == 1, text
    result_at = next(i for i, (_at, line) in enumerate(lines) if result_line(line))
    last_progress = max(i for i, (_at, line) in enumerate(lines) if line.startswith("[%s] " % host))
    assert last_progress < result_at, text
    assert statuses[0][0] < lines[result_at][0] - 1, text  # the first line came while it ran


def playbook_cmd(ws, playbook, inventory=None):
    path = ws.root / ("playbook-%d.yml" % time.monotonic_ns())
    path.write_text(playbook)
    return [ws.ansible_playbook, "-i", str(inventory or ws.inventory), str(path)]


def test_playbook_on_two_hosts_shows_progress_per_host(source):
    proxy, ref = source
    with AnsibleWorkspace() as ws:
        inventory = ws.root / "two.ini"
        inventory.write_text("".join("%s ansible_connection=local ansible_python_interpreter=%s\n" % (host, ws.python)
                                     for host in ("first", "second")))
        playbook = (
            "- hosts: all\n  gather_facts: false\n  tasks:\n"
            "    - name: pull\n      imagepusher.registry.image_pull:\n"
            "        name: %s\n        cache_dir: '%s/cache-{{ inventory_hostname }}'\n      register: pulled\n"
            "    - name: quiet\n      imagepusher.registry.image_pull:\n"
            "        name: %s\n        cache_dir: '%s/cache-{{ inventory_hostname }}'\n        progress: false\n"
            "      register: again\n" % (ref, ws.root, ref, ws.root))
        lines, rc = timed_lines(playbook_cmd(ws, playbook, inventory), ws.env(ws.root / "results.jsonl", ENV), ws.root)
        text = "\n".join(line for _at, line in lines)
        assert rc == 0, text
        for host in ("first", "second"):
            assert_progress(lines, lambda line, host=host: line == "changed: [%s]" % host, host)
        records = [json.loads(line) for line in (ws.root / "results.jsonl").read_text().splitlines()]
        pulled = [r["result"] for r in records if r["task"] == "pull"]
        again = [r["result"] for r in records if r["task"] == "quiet"]
        # No async job ran (none was needed over the local connection), and the progress files went with the
        # tasks' temporary directories.
        assert not (ws.home / ".ansible_async").exists()
        assert list((ws.root / "tmp" / "remote").glob("*")) == []
    # The result is the module's own (no async keys), with what the run cost.
    for result in pulled:
        assert result["changed"] and result["bytes_downloaded"] > IMAGE_MIB * MiB
        assert not set(result) & {"ansible_job_id", "finished", "started", "results_file"}
        assert result["elapsed"] > 1 and 0 < result["bytes_per_second"] < 2 * RATE
    for result in again:  # progress: false runs the module as any other: same keys, nothing to move
        assert not result["changed"] and result["bytes_per_second"] == 0
        assert set(result) - {"elapsed"} == set(pulled[0]) - {"elapsed"}


@pytest.mark.skipif(os.geteuid() != 0, reason="su to root without a password needs root (CI runs as root)")
def test_become_runs_an_async_job_that_shows_progress(source):
    """With become the module's files belong to the become user: the action polls an async job instead."""
    proxy, ref = source
    with AnsibleWorkspace() as ws:
        async_dir = ws.root / "async"
        playbook = (
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
            "    - name: pull\n      imagepusher.registry.image_pull:\n"
            "        name: %s\n        cache_dir: '%s/cache'\n"
            "      become: true\n      become_method: ansible.builtin.su\n"  # root to root: no password
            "      vars: {ansible_async_dir: '%s'}\n"
            "      register: pulled\n" % (ref, ws.root, async_dir))
        lines, rc = timed_lines(playbook_cmd(ws, playbook), ws.env(ws.root / "results.jsonl", ENV), ws.root)
        text = "\n".join(line for _at, line in lines)
        assert rc == 0, text
        assert_progress(lines, lambda line: line == "changed: [localhost]")
        records = [json.loads(line) for line in (ws.root / "results.jsonl").read_text().splitlines()]
        result = next(r["result"] for r in records if r["task"] == "pull")
        # It ran as a job: its status file and progress file were in the async directory, and are gone.
        assert async_dir.is_dir() and list(async_dir.glob("*")) == [], list(async_dir.glob("*"))
    assert result["changed"] and result["bytes_downloaded"] > IMAGE_MIB * MiB
    assert not set(result) & {"ansible_job_id", "finished", "started", "results_file"}


def test_role_shows_progress(source):
    proxy, ref = source
    with Registry() as target, AnsibleWorkspace() as ws:
        playbook = (
            "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: imagepusher.registry.mirror_images\n"
            "      mirror_images_cache_dir: %s/cache\n"
            "      mirror_images_list:\n        - {source: '%s', target: '%s/mirror/progress:v1'}\n"
            % (ws.root, ref, target.host))
        # With pipelining the module needs no temporary directory of its own: the action makes one for the
        # progress file, and it goes when the task ends.
        lines, rc = timed_lines(playbook_cmd(ws, playbook), ws.env(None, dict(ENV, ANSIBLE_PIPELINING="true")), ws.root)
        assert rc == 0, "\n".join(line for _at, line in lines)
        assert_progress(lines, lambda line: line == "changed: [localhost]")
        assert any(FINAL.match(line) and " -> %s/mirror/progress:v1" % target.host in line for _at, line in lines)
        assert list((ws.root / "tmp" / "remote").glob("*")) == []


def test_ad_hoc_shows_progress(source):
    proxy, ref = source
    with AnsibleWorkspace() as ws:
        cmd = [str(Path(ws.ansible_playbook).with_name("ansible")), "localhost", "-i", str(ws.inventory),
               "-m", "imagepusher.registry.image_pull", "-a", "name=%s cache_dir=%s/cache" % (ref, ws.root)]
        lines, rc = timed_lines(cmd, ws.env(None, ENV), ws.root)
        assert rc == 0, "\n".join(line for _at, line in lines)
        assert_progress(lines, lambda line: line.startswith("localhost | CHANGED"))


def test_ansible_runner_job_events_carry_progress_before_the_result(source):
    proxy, ref = source
    runner = Path(sys.executable).with_name("ansible-runner")
    if not runner.exists():
        pytest.fail("ansible-runner not installed in the venv (tests/requirements.txt pins it)", pytrace=False)
    with AnsibleWorkspace() as ws:
        data = ws.root / "runner"
        (data / "project").mkdir(parents=True)
        (data / "inventory").mkdir()
        shutil.copy(ws.inventory, data / "inventory" / "hosts")
        (data / "project" / "pull.yml").write_text(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
            "    - name: pull\n      imagepusher.registry.image_pull: {name: '%s', cache_dir: '%s/cache'}\n"
            % (ref, ws.root))
        env = ws.env(None, ENV)
        for key in ("ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_CALLBACK_PLUGINS",
                    "ANSIBLE_CALLBACK_RESULT_FORMAT"):
            env.pop(key)  # ansible-runner brings its own event callback
        done = subprocess.run([str(runner), "run", str(data), "-p", "pull.yml", "--ident", "job"], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        events = sorted((json.loads(path.read_text()) for path in (data / "artifacts" / "job" / "job_events").glob("*.json")),
                        key=lambda event: event["counter"])
    ok = next(e for e in events if e["event"] == "runner_on_ok" and e["event_data"].get("task") == "pull")
    progress = [e for e in events if STATUS.match(e.get("stdout", "").strip()) or FINAL.match(e.get("stdout", "").strip())]
    assert len([e for e in progress if STATUS.match(e["stdout"].strip())]) >= 2, [e.get("stdout") for e in events]
    assert all(e["counter"] < ok["counter"] for e in progress)
    assert ok["event_data"]["res"]["changed"] and ok["event_data"]["res"]["bytes_per_second"] > 0
