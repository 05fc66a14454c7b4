# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import inspect
import json
import os

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._sessions import NoSessions, UploadSessions

REGISTRY, REPOSITORY = "127.0.0.1:5000", "team/app"
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
LOCATION = "http://127.0.0.1:5000/v2/team/app/blobs/uploads/1234?_state=signed"


@pytest.fixture
def sessions(tmp_path):
    return UploadSessions(str(tmp_path / "cache"))


def saved_files(sessions):
    return sorted(os.listdir(sessions.directory)) if os.path.isdir(sessions.directory) else []


def test_sessions_live_in_the_cache_state_directory(tmp_path, sessions):
    assert sessions.directory == str(tmp_path / "cache" / ".imagepusher" / "uploads")


def test_nothing_saved_loads_none(sessions):
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) is None
    assert not os.path.exists(sessions.directory)


def test_save_load_clear_round_trip(sessions):
    sessions.save(REGISTRY, REPOSITORY, DIGEST, LOCATION, 4096)
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) == LOCATION
    [name] = saved_files(sessions)
    assert name.endswith(".json") and len(name) == 64 + 5  # a hash: no registry text in a file name
    with open(os.path.join(sessions.directory, name)) as handle:
        assert json.load(handle) == {"location": LOCATION, "offset": 4096, "digest": DIGEST}
    sessions.clear(REGISTRY, REPOSITORY, DIGEST)
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) is None
    assert saved_files(sessions) == []


def test_a_later_save_replaces_the_earlier(sessions):
    sessions.save(REGISTRY, REPOSITORY, DIGEST, LOCATION, 1)
    sessions.save(REGISTRY, REPOSITORY, DIGEST, LOCATION + "&n=2", 2)
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) == LOCATION + "&n=2"
    assert len(saved_files(sessions)) == 1  # no temp file left beside it


def test_sessions_are_keyed_by_registry_repository_and_digest(sessions):
    sessions.save(REGISTRY, REPOSITORY, DIGEST, LOCATION, 0)
    assert sessions.load(REGISTRY, REPOSITORY, OTHER) is None
    assert sessions.load(REGISTRY, "team/other", DIGEST) is None
    assert sessions.load("127.0.0.1:5001", REPOSITORY, DIGEST) is None
    sessions.save(REGISTRY, REPOSITORY, OTHER, LOCATION + "&other", 0)
    sessions.clear(REGISTRY, REPOSITORY, OTHER)
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) == LOCATION


def test_clearing_what_is_not_there_is_fine(sessions):
    sessions.clear(REGISTRY, REPOSITORY, DIGEST)
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) is None


@pytest.mark.parametrize("content", [
    b"",
    b"{not json",
    b"\xff\xfe",
    b"[1, 2]",
    b'"a string"',
    b'{"offset": 12}',
    b'{"location": 12}',
    b'{"location": null}',
    b'{"location": ["http://x"]}',
])
def test_a_damaged_file_is_ignored(sessions, content):
    sessions.save(REGISTRY, REPOSITORY, DIGEST, LOCATION, 0)
    [name] = saved_files(sessions)
    with open(os.path.join(sessions.directory, name), "wb") as handle:
        handle.write(content)
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) is None


def test_a_directory_in_the_way_is_ignored(sessions):
    sessions.save(REGISTRY, REPOSITORY, DIGEST, LOCATION, 0)
    [name] = saved_files(sessions)
    path = os.path.join(sessions.directory, name)
    os.unlink(path)
    os.mkdir(path)
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) is None
    sessions.save(REGISTRY, REPOSITORY, DIGEST, LOCATION, 0)  # best effort: no error
    sessions.clear(REGISTRY, REPOSITORY, DIGEST)


def test_save_is_best_effort_when_the_cache_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    sessions = UploadSessions(str(blocker))
    sessions.save(REGISTRY, REPOSITORY, DIGEST, LOCATION, 0)  # no error: a lost session costs a restart
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) is None


def test_no_sessions_keeps_nothing(tmp_path):
    sessions = NoSessions()
    sessions.save(REGISTRY, REPOSITORY, DIGEST, LOCATION, 10)
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) is None
    sessions.clear(REGISTRY, REPOSITORY, DIGEST)
    assert sessions.load(REGISTRY, REPOSITORY, DIGEST) is None


def test_no_sessions_has_the_same_interface():
    for name in ("load", "save", "clear"):
        assert inspect.signature(getattr(NoSessions, name)) == inspect.signature(getattr(UploadSessions, name))
