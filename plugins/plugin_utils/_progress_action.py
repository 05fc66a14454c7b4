# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action behind image_pull, image_push and image_mirror: progress lines while the module runs.

Ansible shows a module's output only when it ends, so a transfer of minutes is minutes of silence.
The module replaces a small progress file at most once a second, named by $IMAGEPUSHER_PROGRESS_FILE
(module_utils/_progress.py), and the action shows its new lines through Display, which reaches the main
process (and ansible-runner's event stream) from a worker, before the task's result. Two ways to read it:

- Over the local connection without become, the module runs on this machine as this user: it runs as any
  task does, the file in the task's temporary directory, and a thread of this worker reads the file once a
  second (plugin_utils/_progress_watch.py). No command runs for it, and the task ends when the module does.
- Everywhere else the module runs as an async job on the host, the file in the async directory, and one
  shell command per poll reads it and the job's status file (no module run: a few milliseconds, where an
  async_status run costs a Python start-up and an AnsiballZ unpack). A thread would run its commands
  over the same connection as the module's, whose become and password state is per connection, not per
  command. When the job is done the action returns the module's result as async_status reads it, without
  the async keys, and removes the job's files.

The module runs as usual (no progress) in check mode, when the task sets async itself, with
progress=false, and over a connection that runs modules its own way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect
import os
import re
import secrets
import shlex
import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash
from ansible.vars.clean import remove_internal_keys
from ansible_collections.imagepusher.registry.plugins.plugin_utils._progress_watch import ProgressWatch, json_object

display = Display()

ENV_FILE = "IMAGEPUSHER_PROGRESS_FILE"  # read by module_utils/_progress.py on the host
ENV_UMASK = "IMAGEPUSHER_UMASK"  # the task's umask, which async_wrapper replaces by 022 (module_utils/_progress.py)
ENV_SWITCH = "IMAGEPUSHER_PROGRESS"  # on the controller: false turns progress off for every task
ENV_INTERVAL = "IMAGEPUSHER_PROGRESS_INTERVAL"  # on the controller: seconds between two status lines
DEFAULT_INTERVAL = 5.0
ASYNC_LIMIT = 7 * 24 * 3600  # async_wrapper kills a job past its limit; a transfer has none of its own
# One poll a second at most. Each poll waits on the host, up to WAIT_TENTHS tenths of a second, while the job
# runs (its status file still says "started"), so a task learns of its job's end within a tenth of a second
# however long it ran, for one command a second (polling every second from the controller, it waited half a
# second on average; polling faster costs a command each time, which over SSH is a round trip).
POLL_DELAY = 1.0
WAIT_TENTHS = 10
MARK = "--imagepusher-progress--"
LOCAL_FILE = "imagepusher-progress.json"  # in the task's temporary directory, removed with it
LOST_AFTER = 10  # polls in a row without the job's status file: it is gone (removed, or the host rebooted)
ASYNC_KEYS = ("ansible_job_id", "finished", "started", "results_file")


UMASK_RE = re.compile(r"^[0-7]{1,4}$")
# ansible-core 2.19 parses a module's output for a profile; 2.16 to 2.18 take the output alone.
_PARSE_TAKES_PROFILE = "profile" in inspect.signature(ActionBase._parse_returned_data).parameters


def controller_allows_progress(environ=None):
    """False when $IMAGEPUSHER_PROGRESS on the controller says so (false, no, 0, off): progress off for every task."""
    value = (os.environ if environ is None else environ).get(ENV_SWITCH)
    return True if value is None or not value.strip() else boolean(value, strict=False)


def display_interval(environ=None):
    """Seconds between two status lines: $IMAGEPUSHER_PROGRESS_INTERVAL (at least 1), else DEFAULT_INTERVAL."""
    value = (os.environ if environ is None else environ).get(ENV_INTERVAL)
    try:
        return max(1.0, float(value)) if value else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL


def shell_path(path):
    """`path` quoted for a POSIX shell, a leading ~/ left for the shell to expand."""
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def poll_command(job_path, progress_path):
    """The shell command of one poll: wait while the job runs (a tenth of a second at a time, up to WAIT_TENTHS;
    at once where sleep takes no fraction), then print the job file, MARK and the progress file."""
    job = shell_path(job_path)
    return ("i=0; while [ $i -lt %d ] && grep -q -- '\"started\"' %s 2>/dev/null; do sleep 0.1 2>/dev/null || break; "
            "i=$((i+1)); done; cat -- %s 2>/dev/null; echo; echo %s; cat -- %s 2>/dev/null"
            % (WAIT_TENTHS, job, job, MARK, shell_path(progress_path)))


def pause_after(poll_seconds):
    """Seconds to sleep after a poll of an unfinished job that took `poll_seconds`: what the host's wait left of
    POLL_DELAY (nothing after a full wait; all of it when the host could not wait)."""
    return max(0.0, POLL_DELAY - poll_seconds)


def split_poll(stdout):
    """The poll command's output -> (the job file's text, its JSON or None while unreadable, progress state dict)."""
    job_text, _mark, progress_text = stdout.partition(MARK)
    return job_text.strip(), json_object(job_text), json_object(progress_text) or {}


def job_finished(status):
    """async_wrapper writes {"started": true, "finished": false, ...} first, the module's result (no "started") last."""
    return isinstance(status, dict) and "started" not in status


def show_new(lines, state, host):
    """Display the lines of `state` that ProgressLines `lines` has not shown yet, each prefixed with the host."""
    for line in lines.new(state):
        display.display("[%s] %s" % (host, line))


class ProgressLines:
    """Which lines of the progress file to show: every image-end line once, a status line every `interval`."""

    def __init__(self, interval, clock=time.monotonic):
        self.interval = interval
        self.clock = clock
        self.shown_at = clock()  # a task shorter than `interval` shows no status line
        self.final_seq = 0
        self.status_seq = 0

    def new(self, state):
        lines = [final["text"] for final in state.get("finals") or [] if final["seq"] > self.final_seq]
        self.final_seq = max([self.final_seq] + [final["seq"] for final in state.get("finals") or []])
        status, now = state.get("status"), self.clock()
        # A status older than the last image-end line belongs to that image: it says less than its end.
        if status and status["seq"] > max(self.status_seq, self.final_seq) and now - self.shown_at >= self.interval:
            lines.append(status["text"])
            self.status_seq = status["seq"]
        if lines:
            self.shown_at = now
        return lines


class ProgressAction(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super(ProgressAction, self).run(tmp, task_vars)
        del tmp  # unused, as in every action since ansible-core 2.10
        wrap_async = self._task.async_val and not self._connection.has_native_async
        if self._wants_progress() and not wrap_async:
            if self._runs_here():
                return merge_hash(result, self._run_beside_progress(task_vars or {}))
            return merge_hash(result, self._run_with_progress(task_vars or {}))
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _wants_progress(self):
        return (boolean(self._task.args.get("progress", True), strict=False) and controller_allows_progress()
                and not self._task.async_val
                and not self._task.check_mode and not self._connection.has_native_async
                and not self._connection.always_pipeline_modules)

    def _runs_here(self):
        """True when the module runs on this machine as this process's user: the local connection without become."""
        return getattr(self._connection, "transport", None) == "local" and not getattr(self._connection, "become", None)

    def _run_beside_progress(self, task_vars):
        """Run the module as any task, reading its progress file from a thread meanwhile: the module's result."""
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        progress_path = os.path.join(tmpdir, LOCAL_FILE)
        lines = ProgressLines(display_interval())
        host = task_vars.get("inventory_hostname", self._play_context.remote_addr)
        watch = ProgressWatch(progress_path, lambda state: show_new(lines, state, host), POLL_DELAY)
        index = len(self._task.environment)
        self._task.environment.append({ENV_FILE: progress_path})
        try:
            watch.start()
            return self._execute_module(task_vars=task_vars)
        finally:
            watch.stop()
            del self._task.environment[index]
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _run_with_progress(self, task_vars):
        # Not expanded here: async_wrapper expands it with the module's $HOME, and so do the module and the shell.
        async_dir = self.get_shell_option("async_dir", default="~/.ansible_async")
        progress_path = self._connection._shell.join_path(async_dir, "imagepusher-progress-%s.json" % secrets.token_hex(8))
        started = self._start(task_vars, progress_path)
        jid = started.get("ansible_job_id")
        if started.get("failed") or not jid:
            return started
        job_path = self._connection._shell.join_path(async_dir, jid)
        try:
            job_text = self._wait(job_path, progress_path, task_vars.get("inventory_hostname", self._play_context.remote_addr))
        finally:
            self._low_level_execute_command("rm -f -- %s %s" % (shell_path(job_path), shell_path(progress_path)),
                                            sudoable=True)
        if job_text is None:
            return {"failed": True, "changed": False, "ansible_job_id": jid,
                    "msg": "the module's async job %s on the host lost its status file %s: whether it ran to its end "
                           "is unknown; run the task again (or with progress=false)" % (jid, job_path)}
        return self._job_result(job_text)

    def _job_result(self, job_text):
        """The module's result from its job file, as _execute_module makes it of a module's output.

        This is what async_status would print, read by the last poll already: one module run less per task.
        """
        data = {"stdout": job_text, "stderr": "", "rc": 0}
        final = self._parse_returned_data(data, "legacy") if _PARSE_TAKES_PROFILE else self._parse_returned_data(data)
        final.pop("_ansible_suppress_tmpdir_delete", None)
        remove_internal_keys(final)
        for key in ASYNC_KEYS:
            final.pop(key, None)
        if "stderr" in final and "stderr_lines" not in final:
            final["stderr_lines"] = (final["stderr"] or "").splitlines()
        return final

    def _start(self, task_vars, progress_path):
        """Start the module as an async job that writes progress to `progress_path`: the job's start result."""
        # As _execute_module itself passes ANSIBLE_ASYNC_DIR: one more entry, for this run only.
        # async_wrapper sets umask 022 before it runs the module: the module restores the task's own, so the
        # cache's files are as private as a run without progress makes them.
        umask = self._low_level_execute_command("umask", sudoable=True).get("stdout", "").strip()
        entry = {ENV_FILE: progress_path}
        if UMASK_RE.match(umask):
            entry[ENV_UMASK] = umask
        index = len(self._task.environment)
        self._task.environment.append(entry)
        async_val, self._task.async_val = self._task.async_val, ASYNC_LIMIT
        try:
            return self._execute_module(task_vars=task_vars, wrap_async=True)
        finally:
            del self._task.environment[index]
            self._task.async_val = async_val

    def _wait(self, job_path, progress_path, host):
        """Poll until the job is done, showing new progress lines prefixed with the host: the job file's text, None if lost."""
        lines, missing = ProgressLines(display_interval()), 0
        command = poll_command(job_path, progress_path)
        while True:
            started = time.monotonic()
            job_text, status, state = split_poll(self._low_level_execute_command(command, sudoable=True).get("stdout", ""))
            show_new(lines, state, host)
            if job_finished(status):
                return job_text
            missing = 0 if status else missing + 1
            if missing >= LOST_AFTER:
                return None
            time.sleep(pause_after(time.monotonic() - started))
