# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module's progress file read by a thread of the controller's worker, while the module runs beside it.

Where the module runs on the controller's own machine as the controller's user (the local connection
without become), the action runs it as any task (no async job) and this thread reads the progress file
it writes, once per interval, with no command run for it: the module's end is known the moment it
returns. See _progress_action.py for where this applies and for the async job used everywhere else.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading

from ansible_collections.imagepusher.registry.plugins.module_utils import _safe_files
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError

MAX_BYTES = 1024 * 1024  # a progress file holds one status line and at most 50 final lines: a few KB


def read_state(path):
    """The progress file's JSON object; None while it is missing, or is not a small regular file holding one.

    The module replaces the file atomically, so a read sees a whole file or none. A link or a FIFO put in its
    place is never followed or waited on (_safe_files.read_bounded, as the cache reads its own files).
    """
    try:
        data = _safe_files.read_bounded(os.path.dirname(path), path, MAX_BYTES)
    except (OSError, ImagePusherError):  # missing, or not a regular file (UnsafeEntryError)
        return None
    if len(data) > MAX_BYTES:
        return None
    try:
        return json_object(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def json_object(text):
    """The JSON object `text` holds, or None (not JSON, or JSON but not an object): a status or progress file."""
    try:
        value = json.loads(text.strip())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class ProgressWatch:
    """Calls `on_state(state)` with the file's content every `interval` seconds while started, and once more
    at stop(), after the thread has ended: a line the module wrote in its last moments is still shown, and
    every call comes before stop() returns (so before the task's result)."""

    def __init__(self, path, on_state, interval):
        self.path = path
        self.on_state = on_state
        self.interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imagepusher-progress", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._look()

    def _run(self):
        while not self._stopping.wait(self.interval):
            self._look()

    def _look(self):
        # The same state again is passed on too: a status line may be due now that more time has gone by.
        state = read_state(self.path)
        if state is None:
            return
        try:
            self.on_state(state)
        except Exception:  # pylint: disable=broad-except
            # Progress is a courtesy: a line that cannot be shown never fails the task.
            self._stopping.set()
