# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import errno
import os

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _cache
from ansible_collections.imagepusher.registry.plugins.module_utils import _cache_errors
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._cache_errors import os_error
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    CacheFullError,
    CachePermissionError,
    CacheReadOnlyError,
)

ME = os.geteuid()


def oserror(number):
    return OSError(number, os.strerror(number))


def test_a_full_disk_names_the_path_and_the_fix(tmp_path):
    error = os_error(oserror(errno.ENOSPC), "writing blob sha256:ab", "/c/x.partial", "/c")
    assert isinstance(error, CacheFullError)
    assert error.message == "cache is out of disk space while writing blob sha256:ab (/c/x.partial): free space or choose another cache_dir"
    assert error.details == {"path": "/c/x.partial", "cause": "ENOSPC"}


def test_a_read_only_file_system_names_the_cache_and_the_fix():
    error = os_error(oserror(errno.EROFS), "updating index.json", "/c/index.json", "/c")
    assert isinstance(error, CacheReadOnlyError)
    assert error.message == ("cache /c is on a read-only file system (while updating index.json: /c/index.json): "
                             "choose a cache_dir on a writable file system")


def test_a_cache_of_another_user_says_whose_it_is_and_what_to_do(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    (root / "sub").mkdir(parents=True)
    monkeypatch.setattr(_cache_errors.os, "geteuid", lambda: ME + 1000)  # we are someone else
    error = os_error(oserror(errno.EACCES), "opening cache lock sources.lock", str(root / "sub" / "x.lock"), str(root))
    assert isinstance(error, CachePermissionError)
    assert error.message == (
        "permission denied while opening cache lock sources.lock (%s): the cache %s belongs to another user "
        "(uid %d; this task runs as uid %d): choose a cache_dir of your own, or run as its owner"
        % (root / "sub" / "x.lock", root, ME, ME + 1000))
    assert error.details["owner_uid"] == ME and error.details["cause"] == "EACCES"


def test_a_cache_to_create_in_another_users_directory_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(_cache_errors.os, "geteuid", lambda: ME + 1000)
    root = str(tmp_path / "cache")
    error = os_error(oserror(errno.EACCES), "creating the cache", root, root)
    assert error.message == ("permission denied while creating the cache (%s): the cache would be created in a directory "
                             "that belongs to another user (uid %d; this task runs as uid %d): choose a cache_dir of "
                             "your own" % (root, ME, ME + 1000))


def test_a_file_of_another_user_in_our_cache_is_told_apart(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    root.mkdir()
    (root / "index.json").write_text("{}")
    real_lstat = os.lstat

    def lstat(path):  # index.json was written by someone else (root ran a task in our cache)
        result = real_lstat(path)
        if str(path).endswith("index.json"):
            return os.stat_result((result.st_mode, 0, 0, 1, ME + 7, 0, 2, 0, 0, 0))
        return result
    monkeypatch.setattr(_cache_errors.os, "lstat", lstat)
    error = os_error(oserror(errno.EPERM), "updating index.json", str(root / "index.json"), str(root))
    assert "that file belongs to another user (uid %d; this task runs as uid %d)" % (ME + 7, ME) in error.message
    assert "chown -R %d %s" % (ME, root) in error.message


def test_our_own_file_with_a_mode_that_forbids_it_says_chmod(tmp_path):
    error = os_error(oserror(errno.EACCES), "writing", str(tmp_path / "nope"), str(tmp_path))
    assert "its permissions do not allow this user (uid %d)" % ME in error.message
    assert "chmod -R u+rwX" in error.message


def test_any_other_os_error_keeps_its_reason():
    error = os_error(oserror(errno.EIO), "reading blob sha256:ab", "/c/b", "/c")
    assert isinstance(error, CacheError)
    assert not isinstance(error, (CacheFullError, CachePermissionError, CacheReadOnlyError))
    assert error.message == "cache error while reading blob sha256:ab (/c/b): Input/output error"


def test_a_lock_file_that_cannot_be_opened_is_a_typed_error_not_a_raw_errno(tmp_path, monkeypatch):
    cache = Cache(str(tmp_path / "cache")).ensure()
    real_open = os.open

    def denied(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(_cache.os, "open", denied)
    with pytest.raises(CachePermissionError) as info:
        cache.record_sources(["sha256:" + "a" * 64], "reg.test/app")
    assert info.value.message.startswith("permission denied while opening cache lock sources.lock (%s)"
                                         % os.path.join(cache.root, ".imagepusher", "locks", "sources.lock"))
    assert "[Errno" not in info.value.message


@pytest.mark.parametrize("number, cls", [(errno.EROFS, CacheReadOnlyError), (errno.EACCES, CachePermissionError)])
def test_an_existing_cache_that_cannot_be_written_is_not_being_created(tmp_path, monkeypatch, number, cls):
    cache = Cache(str(tmp_path / "cache")).ensure()

    def refuse(*args, **kwargs):
        raise OSError(number, os.strerror(number))
    monkeypatch.setattr(_cache.os, "open", refuse)
    with pytest.raises(cls) as info:
        Cache(cache.root).ensure()
    assert "creating the cache" not in info.value.message
    assert "opening cache lock index.lock" in info.value.message or "opening the cache" in info.value.message
