# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import os
import stat

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _safe_files
from ansible_collections.imagepusher.registry.plugins.module_utils._safe_files import UnsafeEntryError

SECRET = b"outside!"


@pytest.fixture
def outside(tmp_path):
    """A file outside the cache that a planted link points at: it must keep its bytes."""
    path = tmp_path / "outside" / "victim"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "cache"
    (path / "sub").mkdir(parents=True)
    return str(path)


def test_a_link_to_a_file_is_refused_for_reading_and_writing(root, outside):
    link = os.path.join(root, "sub", "f")
    os.symlink(str(outside), link)
    for flags in (os.O_RDONLY, os.O_WRONLY | os.O_CREAT, os.O_RDWR | os.O_CREAT):
        with pytest.raises(UnsafeEntryError) as info:
            _safe_files.open_file(root, link, flags)
        assert link in info.value.message and "symbolic link" in info.value.message
    assert outside.read_bytes() == SECRET


def test_a_dangling_link_is_not_created_through(root, tmp_path):
    link = os.path.join(root, "sub", "f")
    os.symlink(str(tmp_path / "nowhere"), link)
    with pytest.raises(UnsafeEntryError):
        _safe_files.open_file(root, link, os.O_WRONLY | os.O_CREAT)
    assert not (tmp_path / "nowhere").exists()


def test_a_linked_directory_on_the_way_is_refused(root, outside):
    os.symlink(str(outside.parent), os.path.join(root, "linked"))
    target = os.path.join(root, "linked", "victim")
    with pytest.raises(UnsafeEntryError) as info:
        _safe_files.open_file(root, target, os.O_RDONLY)
    assert os.path.join(root, "linked") in info.value.message
    with pytest.raises(UnsafeEntryError):
        _safe_files.replace_file(root, target, b"x")
    assert outside.read_bytes() == SECRET
    assert sorted(os.listdir(str(outside.parent))) == ["victim"]


def test_a_fifo_is_refused_without_hanging(root):
    fifo = os.path.join(root, "sub", "f")
    os.mkfifo(fifo)
    for flags in (os.O_RDONLY, os.O_WRONLY | os.O_CREAT):
        with pytest.raises(UnsafeEntryError):
            _safe_files.open_file(root, fifo, flags)
    assert _safe_files.regular_size(root, fifo) is None


def test_regular_size_never_trusts_a_link(root, outside):
    link = os.path.join(root, "sub", "f")
    os.symlink(str(outside), link)
    assert _safe_files.regular_size(root, link) is None
    assert stat.S_ISLNK(_safe_files.entry_stat(root, link).st_mode)
    assert _safe_files.entry_stat(root, os.path.join(root, "sub", "absent")) is None


def test_remove_entry_removes_the_link_not_its_target(root, outside):
    link = os.path.join(root, "sub", "f")
    os.symlink(str(outside), link)
    assert _safe_files.remove_entry(root, link) is True
    assert not os.path.lexists(link)
    assert outside.read_bytes() == SECRET
    assert _safe_files.remove_entry(root, link) is False


def test_remove_entry_refuses_a_directory(root):
    with pytest.raises(UnsafeEntryError):
        _safe_files.remove_entry(root, os.path.join(root, "sub"))


def test_replace_file_replaces_a_link_instead_of_writing_through_it(root, outside):
    link = os.path.join(root, "sub", "f")
    os.symlink(str(outside), link)
    _safe_files.replace_file(root, link, b"new")
    assert not os.path.islink(link)
    assert open(link, "rb").read() == b"new"
    assert outside.read_bytes() == SECRET
    assert os.listdir(os.path.join(root, "sub")) == ["f"]  # no temp file left


def test_replace_file_creates_directories(root):
    path = os.path.join(root, "a", "b", "f")
    _safe_files.replace_file(root, path, b"data")
    assert _safe_files.read_bounded(root, path, 10) == b"data"


def test_read_bounded_reads_one_byte_past_the_limit(root):
    path = os.path.join(root, "sub", "f")
    with open(path, "wb") as handle:
        handle.write(b"x" * 100)
    assert len(_safe_files.read_bounded(root, path, 10)) == 11


def test_move_file_replaces_a_link_at_the_target(root, outside):
    source, target = os.path.join(root, "sub", "p"), os.path.join(root, "blobs", "t")
    with open(source, "wb") as handle:
        handle.write(b"good")
    os.makedirs(os.path.dirname(target))
    os.symlink(str(outside), target)
    _safe_files.move_file(root, source, target)
    assert not os.path.islink(target) and open(target, "rb").read() == b"good"
    assert outside.read_bytes() == SECRET


def test_move_file_refuses_a_link_as_source(root, outside):
    source = os.path.join(root, "sub", "p")
    os.symlink(str(outside), source)
    with pytest.raises(UnsafeEntryError):
        _safe_files.move_file(root, source, os.path.join(root, "sub", "t"))


@pytest.mark.parametrize("umask, file_mode, dir_mode", [
    (0o077, 0o600, 0o700), (0o022, 0o644, 0o755), (0o000, 0o666, 0o777)])
def test_modes_follow_the_umask(root, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        path = os.path.join(root, "new", "f")
        _safe_files.replace_file(root, path, b"x")
        fd = _safe_files.open_file(root, os.path.join(root, "new", "g"), os.O_WRONLY | os.O_CREAT)
        os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == file_mode
    assert stat.S_IMODE(os.stat(os.path.join(root, "new", "g")).st_mode) == file_mode
    assert stat.S_IMODE(os.stat(os.path.join(root, "new")).st_mode) == dir_mode


def test_paths_outside_the_root_are_a_programming_error(root, tmp_path):
    with pytest.raises(ValueError):
        _safe_files.open_file(root, str(tmp_path / "elsewhere"), os.O_RDONLY)
