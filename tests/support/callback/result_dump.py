# Test-only Ansible callback: append every task result to a JSON-lines file.
# Enabled by tests/support/ansible.py (ANSIBLE_CALLBACKS_ENABLED=result_dump) next to the
# normal stdout callback, so tests read structured results instead of parsing screen output.
from __future__ import annotations

DOCUMENTATION = """
name: result_dump
type: aggregate
short_description: write every task result as one JSON line to $IMAGEPUSHER_TEST_RESULTS
description:
  - For the imagepusher.registry test suite only.
  - Each line is an object with play, task, action, host, status (ok, changed, failed,
    skipped, unreachable), ignore_errors, warnings, deprecations and result (the module
    result as a callback sees it; no_log results are already censored by Ansible).
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "result_dump"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("IMAGEPUSHER_TEST_RESULTS")
        self._play = ""

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()

    def _write(self, result, status, ignore_errors=False):
        if not self._path:
            return
        if hasattr(result, "result"):
            data = result.result  # ansible-core 2.19 API: a copy with native types
            task, host = result.task, result.host
            # 2.19 moved warnings/deprecations out of the result dict; keep their text
            warnings = [w.event.msg for w in result.warnings]
            deprecations = [d.event.msg for d in result.deprecations]
        else:  # ansible-core 2.16-2.18 (tests/integration/test_oldest_ansible_core.py)
            data = dict(result._result)
            task, host = result._task, result._host
            warnings = list(data.get("warnings") or [])
            deprecations = [d.get("msg") if isinstance(d, dict) else str(d) for d in data.get("deprecations") or []]
        if status == "ok" and data.get("changed"):
            status = "changed"
        line = {
            "play": self._play,
            "task": result.task_name,
            "action": task.action,
            "host": host.get_name(),
            "status": status,
            "ignore_errors": ignore_errors,
            "warnings": warnings,
            "deprecations": deprecations,
            "result": data,
        }
        # one write per line, flushed at once: a killed run keeps what it had
        with open(self._path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, "failed", ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._write(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._write(result, "unreachable")
