# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The progress file read beside a module that runs on the controller's machine (local connection, no become).

The action that uses it runs in tests/integration/test_progress.py, through ansible-playbook, the role, ad hoc and
ansible-runner; here: what a read accepts, and when the watch calls back.
"""

import json
import os
import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.plugin_utils import _progress_watch as watch


STATE = {"status": {"seq": 2, "text": "a: 1.0 MiB of 2.0 MiB (50%), starting"}, "finals": []}


def test_a_whole_file_is_read(tmp_path):
    path = tmp_path / "progress.json"
    path.write_text(json.dumps(STATE))
    assert watch.read_state(str(path)) == STATE


@pytest.mark.parametrize("content", [b"", b"{\"status\": ", b"[1, 2]", b"\"text\"", b"\xff\xfe{}", b"null"])
def test_anything_but_a_json_object_is_no_state(tmp_path, content):
    path = tmp_path / "progress.json"
    path.write_bytes(content)
    assert watch.read_state(str(path)) is None


def test_a_missing_file_is_no_state(tmp_path):
    assert watch.read_state(str(tmp_path / "not-yet")) is None


def test_a_link_is_not_followed(tmp_path):
    real = tmp_path / "elsewhere.json"
    real.write_text(json.dumps(STATE))
    os.symlink(str(real), str(tmp_path / "progress.json"))
    assert watch.read_state(str(tmp_path / "progress.json")) is None


def test_a_fifo_is_neither_read_nor_waited_on(tmp_path):
    path = tmp_path / "progress.json"
    os.mkfifo(str(path))
    started = time.monotonic()
    assert watch.read_state(str(path)) is None
    assert time.monotonic() - started < 1


def test_a_directory_is_no_state(tmp_path):
    (tmp_path / "progress.json").mkdir()
    assert watch.read_state(str(tmp_path / "progress.json")) is None


def test_a_file_above_the_bound_is_not_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(watch, "MAX_BYTES", 64)
    path = tmp_path / "progress.json"
    path.write_text(json.dumps({"status": {"seq": 1, "text": "x" * 80}}))
    assert watch.read_state(str(path)) is None
    path.write_text(json.dumps({"status": {"seq": 1, "text": "x" * 10}}))
    assert watch.read_state(str(path)) == {"status": {"seq": 1, "text": "x" * 10}}


class Seen:
    """on_state for a watch: the states, with the thread each came from."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, state):
        with self.lock:
            self.calls.append((state, threading.current_thread().name))


def test_the_watch_reads_while_started_and_once_more_at_stop(tmp_path):
    path = tmp_path / "progress.json"
    seen = Seen()
    progress = watch.ProgressWatch(str(path), seen, interval=0.05)
    progress.start()
    time.sleep(0.2)
    assert seen.calls == []  # no file yet: nothing to show
    path.write_text(json.dumps({"status": {"seq": 1, "text": "one"}}))
    deadline = time.monotonic() + 5
    while not seen.calls and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen.calls and seen.calls[0] == ({"status": {"seq": 1, "text": "one"}}, "imagepusher-progress")
    # The same state is passed again at each read: a status line may become due as time goes by.
    while len(seen.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(seen.calls) >= 2 and all(state["status"]["seq"] == 1 for state, _name in seen.calls)
    # What the module wrote last, the thread has not read yet: stop() reads it, in the caller's thread.
    path.write_text(json.dumps({"finals": [{"seq": 2, "text": "done"}]}))
    progress.interval = 3600  # a watch between two reads
    progress.stop()
    assert seen.calls[-1] == ({"finals": [{"seq": 2, "text": "done"}]}, threading.current_thread().name)
    count = len(seen.calls)
    time.sleep(0.2)
    assert len(seen.calls) == count  # nothing after stop() returned


def test_stop_returns_at_once_however_long_the_interval(tmp_path):
    progress = watch.ProgressWatch(str(tmp_path / "progress.json"), Seen(), interval=3600)
    progress.start()
    started = time.monotonic()
    progress.stop()
    assert time.monotonic() - started < 1


def test_a_watch_never_started_still_reads_at_stop(tmp_path):
    path = tmp_path / "progress.json"
    path.write_text(json.dumps(STATE))
    seen = Seen()
    watch.ProgressWatch(str(path), seen, interval=3600).stop()
    assert [state for state, _name in seen.calls] == [STATE]


def test_a_failing_display_ends_the_watch_without_an_error(tmp_path):
    path = tmp_path / "progress.json"
    path.write_text(json.dumps(STATE))
    calls = []

    def broken(state):
        calls.append(state)
        raise RuntimeError("display gone")

    progress = watch.ProgressWatch(str(path), broken, interval=0.02)
    progress.start()
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert len(calls) == 1  # the thread stopped reading after the failure
    progress.stop()  # the last read fails the same way, and is swallowed too
    assert len(calls) == 2
