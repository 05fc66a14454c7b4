# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files below the cache root, reached without following any link: a shared cache no local user can turn against a run.

The cache may sit in a directory others can write to. Every path below the root is reached one
directory at a time, each opened with O_DIRECTORY|O_NOFOLLOW relative to the one before (openat),
and the file itself is opened with O_NOFOLLOW and must be a regular file. So a symlink planted
where a blob, a partial download, a lock or index.json should be can never make a run write
through it, nor make it trust the bytes it points at. The root itself is the user's choice and
may be a link.

Modes: new files get 0666 and new directories 0777, less the umask (the kernel applies it), so
every file the cache creates follows the umask of the run that creates it, the same way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import errno
import fcntl
import os
import stat

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError

FILE_MODE = 0o666
DIR_MODE = 0o777
TEMP_PREFIX = ".tmp-"  # what prune sweeps when a writer died (see _cache_admin.TEMP_FILE_MIN_AGE)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | _CLOEXEC


class UnsafeEntryError(CacheError):
    """A link or a non-regular entry where the cache expects a regular file or a directory."""


def refuse(path, expected="regular file"):
    return UnsafeEntryError("%s is a symbolic link or not a %s: the cache never follows links nor trusts such entries "
                            "(planted by someone, or made by another tool); remove it" % (path, expected), path=path)


def _parts(root, path):
    if path == root:
        return []
    prefix = root.rstrip(os.sep) + os.sep
    if path.startswith(prefix):  # the usual case, cheaper than relpath: paths the cache built from its root
        parts = [part for part in path[len(prefix):].split(os.sep) if part not in ("", os.curdir)]
    else:
        relative = os.path.relpath(path, root)
        parts = [] if relative == os.curdir else relative.split(os.sep)
    if os.pardir in parts:
        raise ValueError("%s is not below %s" % (path, root))
    return parts


def open_directory(root, path, create=False):
    """A descriptor of directory `path`, reached from `root` without following a link (made, with `create`)."""
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    try:
        parts = _parts(root, path)
        for depth, part in enumerate(parts, 1):
            if create:
                try:
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                except OSError as exc:
                    if exc.errno != errno.EEXIST:
                        raise
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise refuse(os.path.join(root, *parts[:depth]), "directory")
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class Directory:
    """open_directory as a context manager: `with Directory(root, path) as dir_fd:`."""

    def __init__(self, root, path, create=False):
        self._args = (root, path, create)
        self.fd = None

    def __enter__(self):
        self.fd = open_directory(*self._args)
        return self.fd

    def __exit__(self, *exc_info):
        os.close(self.fd)


def open_at(dir_fd, name, path, flags):
    """Open `name` in `dir_fd` without following a link; UnsafeEntryError unless it is a regular file."""
    try:
        # O_NONBLOCK: a FIFO planted here must not hang the run before fstat refuses it.
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC, FILE_MODE, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise refuse(path)
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refuse(path)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(root, path, flags, create_dirs=False):
    """A descriptor of the regular file `path` below `root` (see the module docstring)."""
    with Directory(root, os.path.dirname(path), create_dirs) as dir_fd:
        return open_at(dir_fd, os.path.basename(path), path, flags)


def entry_stat(root, path):
    """The lstat of `path` (no link followed on the way), or None when nothing is there."""
    try:
        with Directory(root, os.path.dirname(path)) as dir_fd:
            return os.stat(os.path.basename(path), dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def regular_size(root, path):
    """The size of the regular file at `path`; None when absent or not a regular file (never trusted)."""
    found = entry_stat(root, path)
    if found is None or not stat.S_ISREG(found.st_mode):
        return None
    return found.st_size


def remove_entry(root, path):
    """Unlink `path` itself (a link goes, what it points at stays); True when something was removed."""
    try:
        with Directory(root, os.path.dirname(path)) as dir_fd:
            os.unlink(os.path.basename(path), dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        if exc.errno in (errno.EISDIR, errno.EPERM):
            raise refuse(path)
        raise
    return True


def read_bounded(root, path, limit):
    """Up to `limit` + 1 bytes of the regular file `path` (one more than allowed tells the caller it is too large)."""
    fd = open_file(root, path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit + 1)


def replace_file(root, path, data):
    """Write `data` to a new temp file beside `path`, fsync it, and rename it over `path` (a link there is
    replaced, never followed). Creates missing directories."""
    with Directory(root, os.path.dirname(path), create=True) as dir_fd:
        temp = TEMP_PREFIX + binascii.hexlify(os.urandom(8)).decode("ascii")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, FILE_MODE, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(temp, os.path.basename(path), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(temp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        _fsync(dir_fd)


def move_file(root, source, target):
    """Rename the regular file `source` to `target` (both below `root`); a link at `target` is replaced."""
    with Directory(root, os.path.dirname(source)) as source_fd:
        with Directory(root, os.path.dirname(target), create=True) as target_fd:
            found = os.stat(os.path.basename(source), dir_fd=source_fd, follow_symlinks=False)
            if not stat.S_ISREG(found.st_mode):
                raise refuse(source)
            os.rename(os.path.basename(source), os.path.basename(target), src_dir_fd=source_fd, dst_dir_fd=target_fd)
            _fsync(target_fd)


def _fsync(fd):
    try:
        os.fsync(fd)
    except OSError:
        pass
