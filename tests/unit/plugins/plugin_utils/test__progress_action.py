# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of the progress action: what a poll read, which lines to show, the interval.

The action itself runs in tests/integration/test_progress.py (ansible-playbook, the role, ad hoc, ansible-runner).
"""

import json
import subprocess
import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.plugin_utils import _progress_action as action


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def state(status=None, finals=()):
    return {"status": status and {"seq": status[0], "text": status[1]},
            "finals": [{"seq": seq, "text": text} for seq, text in finals]}


@pytest.mark.parametrize("environ, seconds", [
    ({}, 5.0), ({action.ENV_INTERVAL: "2"}, 2.0), ({action.ENV_INTERVAL: "0.1"}, 1.0),
    ({action.ENV_INTERVAL: "soon"}, 5.0), ({action.ENV_INTERVAL: ""}, 5.0),
])
def test_display_interval(environ, seconds):
    assert action.display_interval(environ) == seconds


@pytest.mark.parametrize("poll_seconds, pause", [(0.02, 0.98), (0.4, 0.6), (1.0, 0.0), (1.3, 0.0)])
def test_one_poll_a_second_whatever_the_host_waited(poll_seconds, pause):
    assert action.pause_after(poll_seconds) == pytest.approx(pause)


def run_poll(job, progress, job_text=None):
    """Run one poll command with sh: (seconds it took, what split_poll makes of its output)."""
    if job_text is not None:
        job.write_text(job_text)
    command = action.poll_command(str(job), str(progress))
    started = time.monotonic()
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False).stdout  # rc: the last cat
    return time.monotonic() - started, action.split_poll(out)


def test_a_poll_returns_at_once_for_a_finished_or_missing_job(tmp_path):
    progress = tmp_path / "progress"
    progress.write_text('{"seq": 1}')
    took, (_text, status, state) = run_poll(tmp_path / "job", progress, '{"changed": false, "msg": "not started yet"}')
    assert took < 0.5 and status == {"changed": False, "msg": "not started yet"} and state == {"seq": 1}
    took, (text, status, state) = run_poll(tmp_path / "no-such-job", tmp_path / "no-such-progress")
    assert took < 0.5 and text == "" and status is None and state == {}


def test_a_poll_waits_on_the_host_while_the_job_runs_and_returns_when_it_ends(tmp_path):
    job, progress = tmp_path / "job", tmp_path / "progress"
    took, (_text, status, _state) = run_poll(job, progress, '{"started": 1, "finished": 0}')
    assert took >= 0.9 and status == {"started": 1, "finished": 0}  # a full wait: about a second
    ender = threading.Timer(0.3, job.write_text, args=('{"changed": true}',))
    ender.start()
    took, (_text, status, _state) = run_poll(job, progress)
    ender.join()
    assert 0.25 <= took < 0.9 and status == {"changed": True}  # learnt within a tenth of a second of the end


@pytest.mark.parametrize("path, quoted", [
    ("~/.ansible_async/j1", "~/.ansible_async/j1"),
    ("~/dir with space/j1", "~/'dir with space/j1'"),
    ("/var/tmp/async/j1", "/var/tmp/async/j1"),
    ("/tmp/$(rm -rf x)", "'/tmp/$(rm -rf x)'"),
])
def test_shell_path_quotes_all_but_a_leading_home(path, quoted):
    assert action.shell_path(path) == quoted


def test_split_poll_while_running_and_when_done():
    running = json.dumps({"started": True, "finished": False, "ansible_job_id": "j1"})
    progress = json.dumps(state((3, "x: 1 of 2")))
    text, status, got = action.split_poll("%s\n%s\n%s" % (running, action.MARK, progress))
    assert status["started"] and not action.job_finished(status)
    assert got["status"]["text"] == "x: 1 of 2"
    done = json.dumps({"changed": True, "digest": "sha256:1"})
    text, status, got = action.split_poll("%s\n%s\n" % (done, action.MARK))
    assert action.job_finished(status) and json.loads(text)["digest"] == "sha256:1" and got == {}


def test_split_poll_of_missing_or_broken_files():
    text, status, got = action.split_poll("\n%s\n{half" % action.MARK)
    assert (text, status, got) == ("", None, {})
    assert not action.job_finished(status)
    assert action.split_poll("[1, 2]\n%s\n[]" % action.MARK)[1:] == (None, {})


def test_progress_lines_show_a_status_line_per_interval_and_every_final_once():
    clock = Clock()
    lines = action.ProgressLines(5.0, clock=clock)
    clock.now = 1.0
    assert lines.new(state((1, "a 10%"))) == []  # a task shorter than the interval shows no status
    clock.now = 5.0
    assert lines.new(state((2, "a 20%"))) == ["a 20%"]
    clock.now = 6.0
    assert lines.new(state((3, "a 30%"))) == []
    clock.now = 10.0
    assert lines.new(state((3, "a 30%"))) == ["a 30%"]
    clock.now = 15.0
    assert lines.new(state((3, "a 30%"))) == []  # nothing new: no repeat
    clock.now = 15.5
    assert lines.new(state((4, "a 90%"), [(5, "a done"), (6, "b done")])) == ["a done", "b done"]
    clock.now = 30.0
    # the status line older than the last final belongs to a finished image
    assert lines.new(state((4, "a 90%"), [(5, "a done"), (6, "b done")])) == []
    assert lines.new(state((7, "c 5%"), [(5, "a done"), (6, "b done")])) == ["c 5%"]


@pytest.mark.parametrize("environ, allowed", [({}, True), ({"IMAGEPUSHER_PROGRESS": ""}, True),
                                              ({"IMAGEPUSHER_PROGRESS": "false"}, False),
                                              ({"IMAGEPUSHER_PROGRESS": "0"}, False), ({"IMAGEPUSHER_PROGRESS": "no"}, False),
                                              ({"IMAGEPUSHER_PROGRESS": "true"}, True), ({"IMAGEPUSHER_PROGRESS": "yes"}, True)])
def test_the_controller_can_turn_progress_off_for_every_task(environ, allowed):
    assert action.controller_allows_progress(environ) is allowed


@pytest.mark.parametrize("text, ok", [("0077", True), ("022", True), ("0002", True), ("", False), ("u=rwx,g=rx", False)])
def test_only_an_octal_umask_is_passed_on(text, ok):
    assert bool(action.UMASK_RE.match(text)) is ok


class Connection:
    def __init__(self, transport, become=None):
        self.transport = transport
        self.become = become


@pytest.mark.parametrize("connection, here", [
    (Connection("local"), True),
    (Connection("local", become=object()), False),  # the module runs as another user: its files are not ours
    (Connection("ssh"), False),
    (Connection("community.docker.docker"), False),
    (object(), False),
])
def test_only_a_local_module_without_become_is_read_beside_it(connection, here):
    """Elsewhere a thread's reads would be commands over the module's own connection: the async job is used."""
    progress = object.__new__(action.ProgressAction)
    progress._connection = connection
    assert progress._runs_here() is here
