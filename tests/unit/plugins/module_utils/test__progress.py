# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import json
import os
import threading

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils import _progress
from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Events

MiB = 1024 * 1024


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Sink:
    def __init__(self):
        self.states = []

    def write(self, state):
        self.states.append(json.loads(json.dumps(state)))  # a copy, as the file holds


class Step:
    def __init__(self, digest, size):
        self.digest, self.size = digest, size


@pytest.mark.parametrize("count, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (48 * MiB, "48.0 MiB"),
    (3 * 1024 * MiB, "3.0 GiB"), (5000 * 1024 * MiB, "5000.0 GiB"),
])
def test_human_bytes(count, text):
    assert _progress.human_bytes(count) == text


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (9.4, "9s"), (59.6, "1m00s"), (125, "2m05s"), (3725, "1h02m"),
                                           (-3, "0s")])
def test_human_duration(seconds, text):
    assert _progress.human_duration(seconds) == text


def test_status_line_has_image_bytes_percent_rate_and_eta():
    line = _progress.status_line("reg/app:v1", 12 * MiB, 48 * MiB, 3.0)
    assert line == "reg/app:v1: 12.0 MiB of 48.0 MiB (25%) at 4.0 MiB/s, ETA 9s"


def test_status_line_within_the_first_second_has_no_rate():
    assert _progress.status_line("x", 180, MiB, 0.01) == "x: 180 B of 1.0 MiB (0%), starting"
    assert _progress.status_line("x", 0, MiB, 5.0) == "x: 0 B of 1.0 MiB (0%), starting"
    assert _progress.status_line("x", 0, 0, 1.0) == "x: 0 B of 0 B (100%), starting"


def test_final_line():
    assert _progress.final_line("a -> b", 48 * MiB, 12.2) == "a -> b: done, 48.0 MiB in 12s (3.9 MiB/s)"


def test_timed_adds_elapsed_and_the_rate_of_the_bytes_moved():
    clock = Clock()

    def job():
        clock.now += 4.0
        return {"bytes_downloaded": 8 * MiB, "bytes_uploaded": 2 * MiB}

    result = _progress.timed(job, clock=clock)()
    assert result == {"bytes_downloaded": 8 * MiB, "bytes_uploaded": 2 * MiB, "elapsed": 4.0,
                      "bytes_per_second": 2 * MiB}
    assert _progress.timed(job, check_mode=True, clock=clock)()["bytes_per_second"] == 0
    assert _progress.timed(lambda: {"changed": False}, clock=clock)() == {"changed": False, "elapsed": 0.0,
                                                                          "bytes_per_second": 0}


def test_reporter_writes_at_most_once_per_interval_then_a_final_line():
    clock, sink = Clock(), Sink()
    reporter = _progress.Reporter(sink, clock=clock, interval=1.0)
    big, small = Step("sha256:b", 8 * MiB), Step("sha256:s", MiB)
    reporter.image_started("reg/app:v1")
    reporter.planned([big, small])
    clock.now += 2  # planning is not transfer time
    reporter.bytes_moved(big, MiB)
    assert sink.states[-1]["status"]["text"].startswith("reg/app:v1: 1.0 MiB of 9.0 MiB (11%), starting")
    for _write in range(4):  # within the interval: no write
        clock.now += 0.125
        reporter.bytes_moved(big, MiB)
    assert len(sink.states) == 1
    clock.now += 0.5  # 1.0 s after the first write
    reporter.bytes_moved(big, MiB)
    assert len(sink.states) == 2
    assert sink.states[-1]["status"]["text"] == "reg/app:v1: 6.0 MiB of 9.0 MiB (66%) at 6.0 MiB/s, ETA 0s"
    clock.now += 0.5
    reporter.blob_finished(big, _plan.Outcome(_plan.DOWNLOADED, 8 * MiB))  # done: its whole size counts
    reporter.blob_finished(small, _plan.Outcome(_plan.UPLOADED, MiB))  # no bytes reported (a send): counts at its end
    reporter.image_finished("reg/app:v1")
    state = sink.states[-1]
    assert state["finals"] == [{"seq": state["status"]["seq"] + 1, "text": "reg/app:v1: done, 9.0 MiB in 4s (2.6 MiB/s)"}]


def test_reporter_counts_a_blob_once_however_often_it_moves():
    clock, sink = Clock(), Sink()
    reporter = _progress.Reporter(sink, clock=clock, interval=0)
    blob = Step("sha256:b", 4 * MiB)
    reporter.planned([blob])
    reporter.planned([blob])  # the copy's fetch and send of one digest
    reporter.bytes_moved(blob, 6 * MiB)  # more than its size (a resumed download re-reported): capped
    assert "4.0 MiB of 4.0 MiB (100%)" in sink.states[-1]["status"]["text"]
    reporter.blob_finished(Step("sha256:config", 10), None)  # stored outside the plan: not counted
    assert "4.0 MiB of 4.0 MiB" in sink.states[-1]["status"]["text"]


def test_reporter_writes_no_final_line_for_an_image_that_moved_nothing_and_keeps_the_last_finals():
    clock, sink = Clock(), Sink()
    reporter = _progress.Reporter(sink, clock=clock, interval=0)
    reporter.image_started("current")
    reporter.image_finished("current")
    assert sink.states == []
    for number in range(_progress.KEEP_FINALS + 5):
        reporter.image_started("image%d" % number)
        reporter.planned([Step("sha256:%d" % number, 10)])
        reporter.bytes_moved(Step("sha256:%d" % number, 10), 10)
        reporter.image_finished("image%d" % number)
    finals = sink.states[-1]["finals"]
    assert len(finals) == _progress.KEEP_FINALS
    assert finals[-1]["text"].startswith("image%d: done" % (_progress.KEEP_FINALS + 4))
    assert [f["seq"] for f in finals] == sorted(f["seq"] for f in finals)


def test_reporter_is_safe_from_several_threads():
    sink = Sink()
    reporter = _progress.Reporter(sink, interval=0)
    steps = [Step("sha256:%d" % n, 1000) for n in range(8)]
    reporter.planned(steps)
    threads = [threading.Thread(target=lambda s=s: [reporter.bytes_moved(s, 10) for _chunk in range(100)]) for s in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "7.8 KiB of 7.8 KiB (100%)" in sink.states[-1]["status"]["text"]
    assert [s["status"]["seq"] for s in sink.states] == sorted(s["status"]["seq"] for s in sink.states)


def test_progress_file_is_replaced_whole_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "progress.json"
    progress_file = _progress.ProgressFile(str(path))
    progress_file.write({"status": {"seq": 1, "text": "a"}, "finals": []})
    progress_file.write({"status": {"seq": 2, "text": "b"}, "finals": []})
    assert json.loads(path.read_text())["status"] == {"seq": 2, "text": "b"}
    assert os.listdir(str(tmp_path)) == ["progress.json"]


def test_progress_file_gives_up_quietly_when_it_cannot_write(tmp_path):
    progress_file = _progress.ProgressFile(str(tmp_path / "missing" / "progress.json"))
    progress_file.write({"status": None, "finals": []})  # no exception: progress never fails a transfer
    assert progress_file.broken
    unserializable = _progress.ProgressFile(str(tmp_path / "p.json"))
    unserializable.write({"bad": object()})
    assert unserializable.broken and os.listdir(str(tmp_path)) == []


def test_reporter_from_the_environment(tmp_path, monkeypatch):
    silent = _progress.reporter({})
    assert isinstance(silent, Events) and not isinstance(silent, _progress.Reporter)
    monkeypatch.setenv("HOME", str(tmp_path))
    reporter = _progress.reporter({_progress.ENV_FILE: "~/p.json"})
    assert isinstance(reporter, _progress.Reporter)
    assert reporter.sink.path == str(tmp_path / "p.json")  # expanded on the host, as async_wrapper does


def test_track_reports_one_image_around_the_operation():
    seen = []

    class Recorder(Events):
        def image_started(self, label):
            seen.append(("started", label))

        def image_finished(self, label):
            seen.append(("finished", label))

    assert _progress.track(Recorder(), "a -> b", lambda: seen.append("run") or {"ok": 1}) == {"ok": 1}
    assert seen == [("started", "a -> b"), "run", ("finished", "a -> b")]


def test_images_running_at_once_keep_their_own_counts_and_end_lines():
    clock, sink = Clock(), Sink()
    reporter = _progress.Reporter(sink, clock=clock, interval=0)
    one, two = reporter.for_image("a -> b"), reporter.for_image("c -> d")
    reporter.image_started("a -> b")
    reporter.image_started("c -> d")  # the second image does not reset the first one's counts
    one.planned([Step("sha256:1", 100)])
    two.planned([Step("sha256:2", 300)])
    clock.now += 2
    one.bytes_moved(Step("sha256:1", 100), 100)
    two.bytes_moved(Step("sha256:2", 300), 100)
    assert sink.states[-1]["status"]["text"].startswith("2 images: 200 B of 400 B (50%)")
    one.blob_finished(Step("sha256:1", 100), None)
    reporter.image_finished("a -> b")
    assert sink.states[-1]["finals"][-1]["text"].startswith("a -> b: done, 100 B")
    two.bytes_moved(Step("sha256:2", 300), 200)
    assert sink.states[-1]["status"]["text"].startswith("c -> d: 300 B of 300 B (100%)")
    reporter.image_finished("c -> d")
    assert sink.states[-1]["finals"][-1]["text"].startswith("c -> d: done, 300 B")


@pytest.mark.parametrize("value, expected", [("0077", 0o077), ("022", 0o022), ("7", 0o007), ("", None), ("u=rwx", None),
                                             ("0999", None), ("17777", None)])
def test_restore_umask_sets_the_tasks_umask_when_the_action_passed_one(value, expected):
    before = os.umask(0o022)
    try:
        assert _progress.restore_umask({"IMAGEPUSHER_UMASK": value}) == expected
        now = os.umask(0o022)
        assert now == (0o022 if expected is None else expected)
    finally:
        os.umask(before)
