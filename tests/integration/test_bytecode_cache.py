"""The modules' compiled module_utils, kept between runs, through real ansible-playbook.

Ansible runs a module from a zip, where Python cannot keep bytecode: without a cache every
task compiled all of this collection's module_utils again (plugins/module_utils/_bytecode_cache.py,
bench/STARTUP.md). Here a real playbook runs with the default location (the other tests share
one directory between workspaces): the user's ~/.cache/imagepusher-bytecode fills on the first
task, private to the user, and the next run reads it without rewriting anything. That a hit
compiles nothing, and what is refused, is in tests/unit/plugins/module_utils/test__bytecode_cache.py.

Run: .venv/bin/python -m pytest tests/integration/test_bytecode_cache.py -q
"""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

pytestmark = [pytest.mark.ansible]


def play(ref: str, target: str) -> str:
    tasks = [{"name": "info", "imagepusher.registry.image_info": {"name": ref}},
             {"name": "mirror, check mode", "check_mode": True,
              "imagepusher.registry.image_mirror": {"images": [{"source": ref, "target": target}]}}]
    return json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]) + "\n"


def snapshot(directory):
    return {entry.name: (entry.stat().st_mtime_ns, entry.stat().st_ino) for entry in directory.iterdir()}


def test_the_users_cache_fills_once_privately_and_is_read_after(ansible, samples):
    sample = samples["oci_single"]
    text = play(sample.ref, f"{sample.host}/bytecode/never-written:v1")
    unset = {"IMAGEPUSHER_BYTECODE_CACHE": None}
    first = ansible.run_playbook(text, env=unset)
    assert first.rc == 0, first.output
    assert first.task("info").result["digest"] == sample.digest
    assert first.task("mirror, check mode").changed  # would copy: the module ran to its end

    directory = ansible.home / ".cache" / "imagepusher-bytecode" / sys.implementation.cache_tag
    entries = snapshot(directory)
    assert len(entries) > 20  # the module_utils both modules import
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for entry in directory.iterdir():
        info = entry.lstat()
        assert stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()
        assert stat.S_IMODE(info.st_mode) == 0o600

    second = ansible.run_playbook(text, env=unset)
    assert second.rc == 0, second.output
    assert second.task("info").result["digest"] == sample.digest
    assert second.task("mirror, check mode").result["images"] == first.task("mirror, check mode").result["images"]
    assert snapshot(directory) == entries  # every file read, none written again
