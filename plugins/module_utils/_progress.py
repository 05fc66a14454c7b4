# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress while a copy runs: lines the controller can show, written to a small file on the host.

Ansible shows a module's output only when it ends. The collection's action plugins read the file
named by $IMAGEPUSHER_PROGRESS_FILE while the module runs, from a thread beside it or by polling an
async job (see plugins/plugin_utils/_progress_action.py); without that variable nothing is written.

The file is JSON, replaced atomically at most once per WRITE_INTERVAL (and at each image's end):
    {"status": {"seq": 7, "text": "<image>: 12.0 MiB of 48.0 MiB (25%) at 4.0 MiB/s, ETA 9s"},
     "finals": [{"seq": 5, "text": "<image>: done, 48.0 MiB in 12s (4.0 MiB/s)"}, ...]}
`seq` grows with every line, so a reader shows only what it has not shown yet. Progress never
fails a transfer: a file that cannot be written is given up on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile
import threading
import time

from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Events

ENV_FILE = "IMAGEPUSHER_PROGRESS_FILE"
ENV_UMASK = "IMAGEPUSHER_UMASK"  # the task's umask, passed by the action to an async job: async_wrapper sets 022
WRITE_INTERVAL = 1.0  # seconds between two writes of the file (the controller polls about as often)
KEEP_FINALS = 50
# Seconds of transfer before a rate means anything (a first small blob arrives in no time).
MIN_RATE_TIME = 1.0  # image-end lines kept in the file for a reader that polled late


def human_bytes(count):
    """1536 -> '1.5 KiB' (binary units, as skopeo and du -h show them)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return "%d B" % count if unit == "B" else "%.1f %s" % (value, unit)
        value /= 1024
    return "%.1f TiB" % value  # not reached


def human_duration(seconds):
    """9 -> '9s', 125 -> '2m05s', 3725 -> '1h02m'."""
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


def rate(count, elapsed):
    """Bytes per second, 0 for no time at all."""
    return int(count / elapsed) if elapsed > 0 else 0


def status_line(label, done, total, elapsed):
    """'<label>: 12.0 MiB of 48.0 MiB (25%) at 4.0 MiB/s, ETA 9s' (no rate yet within the first second)."""
    percent = 100 * done // total if total else 100
    line = "%s: %s of %s (%d%%)" % (label, human_bytes(done), human_bytes(total), percent)
    speed = rate(done, elapsed) if elapsed >= MIN_RATE_TIME else 0
    if not speed:
        return line + ", starting"
    return line + " at %s/s, ETA %s" % (human_bytes(speed), human_duration((total - done) / float(speed)))


def final_line(label, moved, elapsed):
    """'<label>: done, 48.0 MiB in 12s (4.0 MiB/s)'."""
    return "%s: done, %s in %s (%s/s)" % (label, human_bytes(moved), human_duration(elapsed),
                                          human_bytes(rate(moved, elapsed)))


def add_timing(result, elapsed, moved):
    """The result with `elapsed` (seconds) and `bytes_per_second` (the average over `moved` bytes)."""
    result["elapsed"] = round(elapsed, 3)
    result["bytes_per_second"] = rate(moved, elapsed)
    return result


def moved_bytes(result):
    """The blob bytes a job result says this run moved: downloaded or uploaded, whichever is more."""
    return max(result.get("bytes_downloaded") or 0, result.get("bytes_uploaded") or 0)


def restore_umask(environ=None):
    """Set the umask the action found for the task ($IMAGEPUSHER_UMASK, octal), if it passed one: run as an
    async job, the module would otherwise create the cache's files with async_wrapper's umask 022."""
    value = (os.environ if environ is None else environ).get(ENV_UMASK, "")
    try:
        mask = int(value, 8)
    except ValueError:
        return None
    if not 0 <= mask <= 0o777:
        return None
    os.umask(mask)
    return mask


def timed(operation, check_mode=False, clock=time.monotonic):
    """operation() -> result, with add_timing() applied (no bytes moved in check mode): for the modules' run()."""
    def run():
        started = clock()
        result = operation()
        return add_timing(result, clock() - started, 0 if check_mode else moved_bytes(result))
    return run


class ProgressFile:
    """The JSON file a reader polls; replaced atomically (a reader never sees half a file)."""

    def __init__(self, path):
        self.path = path
        self.broken = False

    def write(self, state):
        if self.broken:
            return
        directory = os.path.dirname(self.path) or "."
        try:
            fd, temp = tempfile.mkstemp(prefix=".progress-", dir=directory)
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(state, handle)
                os.replace(temp, self.path)
            except BaseException:
                os.unlink(temp)
                raise
        except (OSError, TypeError, ValueError):
            self.broken = True  # progress is a courtesy: the transfer goes on without it


class _Image:
    """What one image has to move and has moved: sizes and bytes done by digest."""

    def __init__(self, started):
        self.started = started
        self.first_byte = None  # the rate counts from here: planning is not transfer time
        self.sizes = {}
        self.done = {}


class Reporter(Events):
    """Engine events -> status lines at most once per `interval`, and one final line per image that moved bytes.

    Totals are by digest: a blob both downloaded and uploaded counts once, done when either step ends.
    Several images may run at once (image_mirror's image_concurrency): each engine run reports through
    for_image(label); the status line then sums the images running, and each image ends with its own line.
    Events that name no image go to the image started last (a pull or push is one image).
    """

    def __init__(self, sink, clock=time.monotonic, interval=WRITE_INTERVAL):
        self.sink = sink  # .write(state)
        self.clock = clock
        self.interval = interval
        self._lock = threading.Lock()
        self._seq = 0
        self._finals = []
        self._status = None
        self._written = None
        self._images = {}  # label -> _Image, for the images running
        self.label = ""
        self.image_started("")

    def for_image(self, label):
        return _ImageEvents(self, label)

    def image_started(self, label):
        with self._lock:
            self._images.pop("", None)  # the placeholder of a reporter no image was started on yet
            self.label = label
            self._images[label] = _Image(self.clock())

    def planned(self, steps, label=None):
        with self._lock:
            image = self._image(label)
            for step in steps:
                image.sizes[step.digest] = step.size

    def bytes_moved(self, step, count, label=None):
        with self._lock:
            image = self._image(label)
            if image.first_byte is None:
                image.first_byte = self.clock()
            image.done[step.digest] = min(image.sizes.get(step.digest, step.size), image.done.get(step.digest, 0) + count)
            self._maybe_write()

    def blob_finished(self, step, outcome, label=None):
        with self._lock:
            image = self._image(label)
            if step.digest in image.sizes:
                image.done[step.digest] = image.sizes[step.digest]
            self._maybe_write()

    def image_finished(self, label):
        with self._lock:
            image = self._images.pop(label, None) or _Image(self.clock())
            moved = sum(image.done.values())
            if moved:
                self._seq += 1
                self._finals = (self._finals + [{"seq": self._seq, "text": final_line(
                    label, moved, self.clock() - image.started)}])[-KEEP_FINALS:]
                self._write()

    def _image(self, label):
        label = self.label if label is None else label
        if label not in self._images:
            self._images[label] = _Image(self.clock())
        return self._images[label]

    def _maybe_write(self):
        now = self.clock()
        if self._written is not None and now - self._written < self.interval:
            return
        images = list(self._images.items())
        label = images[0][0] if len(images) == 1 else "%d images" % len(images)
        starts = [image.first_byte for _label, image in images if image.first_byte is not None]
        self._seq += 1
        self._status = {"seq": self._seq, "text": status_line(
            label, sum(sum(image.done.values()) for _label, image in images),
            sum(sum(image.sizes.values()) for _label, image in images), now - min(starts or [now]))}
        self._write()

    def _write(self):
        self._written = self.clock()
        self.sink.write({"status": self._status, "finals": self._finals})


class _ImageEvents(Events):
    """The engine events of one image of a Reporter that follows several at once."""

    def __init__(self, reporter, label):
        self.reporter = reporter
        self.label = label

    def planned(self, steps):
        self.reporter.planned(steps, self.label)

    def bytes_moved(self, step, count):
        self.reporter.bytes_moved(step, count, self.label)

    def blob_finished(self, step, outcome):
        self.reporter.blob_finished(step, outcome, self.label)


def reporter(environ=None):
    """A Reporter writing to $IMAGEPUSHER_PROGRESS_FILE, else the silent Events."""
    path = (os.environ if environ is None else environ).get(ENV_FILE)
    # The action passes the async directory as the user wrote it (~/.ansible_async): expanded here, as async_wrapper does.
    return Reporter(ProgressFile(os.path.expanduser(path))) if path else Events()


def track(events, label, operation):
    """operation() -> result, reported to `events` as one image called `label`."""
    events.image_started(label)
    result = operation()
    events.image_finished(label)
    return result
