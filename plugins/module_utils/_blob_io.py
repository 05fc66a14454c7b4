# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blob files moved between one reusable buffer and the disk, around the page cache when possible.

Why: a multi-GB layer written through the page cache costs a kernel copy of every byte plus
the allocation of a fresh page for it (measured at about 3 s of CPU per GB on a VM: more
than hashing it), and it evicts what the host was caching, for data that is read at most
once more. With O_DIRECT the disk reads and writes our buffer itself.

O_DIRECT needs the buffer address, the file offset and the length aligned to the device
block. Buffers here are page-aligned (anonymous mmap) and a multiple of ALIGN long, and
offsets advance by whole buffers, so that holds except for the last piece of a blob or a
resume from an odd offset: those go through the page cache on the same descriptor, as
everything does on filesystems that refuse O_DIRECT (tmpfs, many FUSE and network ones).
A buffer lives as long as the stream that uses it, so memory stays at one buffer per stream.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import mmap
import os
import stat

ALIGN = 4096
BUFFER_SIZE = 1024 * 1024
O_DIRECT = getattr(os, "O_DIRECT", 0)
# IMAGEPUSHER_DIRECT_IO=0 forces the page cache (to compare, or for a filesystem that accepts
# O_DIRECT but handles it badly).
DIRECT_IO = O_DIRECT != 0 and os.environ.get("IMAGEPUSHER_DIRECT_IO", "1") != "0"


def aligned_buffer(size=BUFFER_SIZE):
    """A page-aligned, writable buffer of `size` bytes, returned to the OS when dropped."""
    return mmap.mmap(-1, size)


def _set_direct(fd, on):
    """Turn O_DIRECT on or off for an open descriptor; False when the filesystem refuses it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | O_DIRECT) if on else (flags & ~O_DIRECT))
    except OSError:
        return False
    return True


class _BlobFile:
    """An open blob file that uses O_DIRECT until a request or the filesystem says otherwise."""

    _fd = None
    _direct = False

    def _use_direct(self):
        self._direct = DIRECT_IO and _set_direct(self._fd, True)

    def _buffered(self):
        """From here on through the page cache (an unaligned piece, or a filesystem that refused a request)."""
        _set_direct(self._fd, False)
        self._direct = False

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class BlobWriter(_BlobFile):
    """Write a file sequentially from `offset` (what lies beyond is cut off), then fsync it.

    OSError escapes unchanged: the cache turns it into a message naming the file.
    """

    def __init__(self, path, offset=0, fd=None):
        self.path = path
        # The cache passes a descriptor it opened without following links; the mode follows the umask.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o666) if fd is None else fd
        try:
            os.ftruncate(self._fd, offset)
            os.lseek(self._fd, offset, os.SEEK_SET)
        except OSError:
            os.close(self._fd)
            raise
        self.offset = offset
        self._use_direct()

    def write(self, view):
        """Write all of `view` (bytes-like) at the current offset."""
        view = memoryview(view).cast("B")
        while len(view):
            if self._direct and (self.offset % ALIGN or len(view) % ALIGN):
                self._buffered()  # the tail, or an odd resume offset: the page cache takes it from here
            try:
                written = os.write(self._fd, view)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self._direct:
                    raise
                self._buffered()  # the filesystem accepted the flag but not this request
                continue
            self.offset += written
            view = view[written:]

    def truncate(self, offset=0):
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)
        self.offset = offset

    def sync(self):
        os.fsync(self._fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class BlobReader(_BlobFile):
    """Read a file range into one aligned buffer, bypassing the page cache when possible.

    read() hands out a view of that buffer, valid until the next read(): enough for a
    request body, which is sent before the next block is asked for.
    """

    def __init__(self, path, offset=0, length=None, buffer_size=BUFFER_SIZE, on_bytes=None):
        self._on_bytes = on_bytes  # told of each block handed out (progress; a resent body counts again)
        # A link is never read through (a planted one must not feed a push other bytes) nor a FIFO waited on.
        self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            found = os.fstat(self._fd)
            if not stat.S_ISREG(found.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
            total = found.st_size - offset
        except OSError:
            os.close(self._fd)
            raise
        self.start = offset
        self.length = total if length is None else max(0, min(length, total))
        self._buffer = aligned_buffer(buffer_size)
        self._view = memoryview(self._buffer)
        self._use_direct()
        self.seek_start()

    def seek_start(self):
        self._position = self.start
        self._remaining = self.length

    def __len__(self):
        return self.length

    def read(self, size=-1):
        """The next block (up to the buffer size, whatever `size` asks: fewer syscalls) or b''."""
        if self._remaining <= 0:
            return b""
        while True:
            # O_DIRECT reads whole aligned blocks: read from the block boundary and skip the head.
            head = self._position % ALIGN if self._direct else 0
            want = min(len(self._view) - head, self._remaining)
            length = -(-(head + want) // ALIGN) * ALIGN if self._direct else want  # the file end cuts it short
            try:
                got = os.preadv(self._fd, [self._view[:length]], self._position - head)
                break
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self._direct:
                    raise
                self._buffered()  # the filesystem accepted the flag but not this request
        count = min(got - head, want)
        if count <= 0:
            raise OSError(errno.EIO, "the file ended %d bytes early: it changed while being read" % self._remaining)
        self._position += count
        self._remaining -= count
        if self._on_bytes is not None:
            self._on_bytes(count)
        return self._view[head:head + count]
