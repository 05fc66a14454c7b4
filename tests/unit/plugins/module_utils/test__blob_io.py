"""Blob files: aligned direct I/O where the filesystem allows it, the page cache where not."""

import errno
import os
import shutil
import tempfile

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _blob_io
from ansible_collections.imagepusher.registry.plugins.module_utils._blob_io import (
    ALIGN,
    BlobReader,
    BlobWriter,
    aligned_buffer,
)

DATA = os.urandom(3 * _blob_io.BUFFER_SIZE + 12345)  # whole buffers, then a tail that is not aligned


@pytest.fixture(params=["disk", "tmpfs", "no-direct"])
def where(request, tmp_path, monkeypatch):
    """A disk directory (O_DIRECT works on ext4), tmpfs (which refuses it), and the switch turned off."""
    if request.param == "tmpfs":
        if not (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)):
            pytest.skip("no writable /dev/shm")
        path = tempfile.mkdtemp(dir="/dev/shm", prefix="blob-io-")
        request.addfinalizer(lambda: shutil.rmtree(path, ignore_errors=True))
        return path
    if request.param == "no-direct":
        monkeypatch.setattr(_blob_io, "DIRECT_IO", False)
    return str(tmp_path)


def write_in_buffers(path, data, offset=0):
    buffer = aligned_buffer()
    view = memoryview(buffer)
    with BlobWriter(path, offset) as writer:
        position = offset
        while position < len(data):
            piece = data[position:position + len(view)]
            view[:len(piece)] = piece
            writer.write(view[:len(piece)])
            position += len(piece)
        writer.sync()
        assert writer.offset == len(data)


def read_all(reader):
    parts = []
    while True:
        block = reader.read(8192)  # http.client asks for small blocks; the reader hands out whole buffers
        if not block:
            return b"".join(bytes(p) for p in parts)
        parts.append(bytes(block))


def test_aligned_buffer_is_page_aligned_and_writable():
    buffer = aligned_buffer(2 * ALIGN)
    view = memoryview(buffer)
    view[:3] = b"abc"
    assert len(view) == 2 * ALIGN and bytes(view[:3]) == b"abc"


def test_writer_writes_whole_buffers_and_the_tail(where):
    path = os.path.join(where, "blob")
    write_in_buffers(path, DATA)
    with open(path, "rb") as handle:
        assert handle.read() == DATA


@pytest.mark.parametrize("offset", [ALIGN * 10, 777, _blob_io.BUFFER_SIZE])
def test_writer_resumes_at_any_offset_and_cuts_off_what_lies_beyond(where, offset):
    path = os.path.join(where, "blob")
    with open(path, "wb") as handle:
        handle.write(DATA[:offset] + b"junk that a resume must overwrite or cut off" * 100)
    write_in_buffers(path, DATA, offset)
    with open(path, "rb") as handle:
        assert handle.read() == DATA


def test_writer_accepts_unaligned_memory(where):
    path = os.path.join(where, "blob")
    with BlobWriter(path) as writer:
        writer.write(b"x" * ALIGN)  # bytes objects are not page-aligned: O_DIRECT refuses, the page cache takes it
        writer.write(memoryview(bytearray(b"y" * 10)))
    with open(path, "rb") as handle:
        assert handle.read() == b"x" * ALIGN + b"y" * 10


def test_writer_truncate_starts_over(where):
    path = os.path.join(where, "blob")
    write_in_buffers(path, DATA)
    with BlobWriter(path, len(DATA)) as writer:
        writer.truncate(0)
        writer.write(b"fresh")
    with open(path, "rb") as handle:
        assert handle.read() == b"fresh"


def test_writer_lets_a_disk_error_through_unchanged(where, monkeypatch):
    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(_blob_io.os, "write", full)
    with BlobWriter(os.path.join(where, "blob")) as writer:
        with pytest.raises(OSError) as info:
            writer.write(b"data")
    assert info.value.errno == errno.ENOSPC


@pytest.mark.parametrize("offset, length", [
    (0, None), (0, len(DATA)), (1, None), (ALIGN - 1, 2 * ALIGN + 3), (_blob_io.BUFFER_SIZE + 5, None),
    (len(DATA) - 7, None), (len(DATA), None), (100, 0), (0, 10 * len(DATA)),
])
def test_reader_serves_any_range_in_buffer_sized_blocks(where, offset, length):
    path = os.path.join(where, "blob")
    write_in_buffers(path, DATA)
    reader = BlobReader(path, offset, length)
    expected = DATA[offset:] if length is None else DATA[offset:offset + length]
    try:
        assert len(reader) == len(expected)
        assert read_all(reader) == expected
        reader.seek_start()  # a request sent again (after a 401) sends the same bytes
        first = reader.read()
        assert len(first) <= _blob_io.BUFFER_SIZE
        assert bytes(first) == expected[:len(first)]
    finally:
        reader.close()


def test_reader_tells_on_bytes_of_each_block_it_hands_out(where):
    path = os.path.join(where, "blob")
    write_in_buffers(path, DATA)
    told = []
    reader = BlobReader(path, 5, on_bytes=told.append)
    try:
        assert read_all(reader) == DATA[5:]
    finally:
        reader.close()
    assert sum(told) == len(DATA) - 5 and len(told) >= 2  # block by block, as a push sends them


def test_reader_reports_a_file_that_shrank_while_being_read(where):
    path = os.path.join(where, "blob")
    write_in_buffers(path, DATA)
    reader = BlobReader(path)
    os.truncate(path, 1000)
    with pytest.raises(OSError) as info:
        read_all(reader)
    reader.close()
    assert info.value.errno == errno.EIO
    assert "ended" in info.value.strerror
