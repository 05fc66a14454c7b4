# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compiled code of this collection's module_utils, kept between module runs.

Ansible runs a module from a zip file (AnsiballZ), and Python cannot keep bytecode for what it
imports from a zip: every run compiled all of this collection's module_utils again, about 0.2 s
of CPU per task (bench/STARTUP.md). This keeps the compiled code, as Python's own __pycache__
does for an installed package, in a directory of the user the module runs as:
``$IMAGEPUSHER_BYTECODE_CACHE`` if set to a path (``off`` turns it off), else
``$XDG_CACHE_HOME/imagepusher-bytecode`` or ``~/.cache/imagepusher-bytecode``; one directory per
Python bytecode version inside.

Code read from there is executed, so it is trusted only as far as the user's own files:
- the directory is created 0700 and used only while it is owned by the user the module runs as
  and closed to group and others; it is opened once, without following a link, and every file is
  then opened relative to it, also without following a link;
- an entry is used only if it is a regular file of that user, not writable by others, and
  carries the magic number of this Python, the SHA-256 of the exact source it was compiled from
  (the source is read from the zip and hashed at each run: a file name proves nothing) and the
  SHA-256 of the compiled code (a torn write is never executed);
- an entry is written to a temporary file and renamed into place: a reader sees all or nothing.
Anything unexpected, at any step, means compiling as Python would have: this never fails a run.
PYTHONDONTWRITEBYTECODE (set in many container images to keep .pyc files out of their layers) is
not read: this is not Python's __pycache__ beside the sources; IMAGEPUSHER_BYTECODE_CACHE=off is
the switch.

Only modules imported from a zip go through it: run from a directory (unit tests, the
controller's plugins) the import system is left as it is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import importlib.machinery
import importlib.util
import marshal
import os
import stat
import sys
import zipimport

PACKAGE = __name__.rpartition(".")[0]  # ansible_collections.imagepusher.registry.plugins.module_utils
ENV = "IMAGEPUSHER_BYTECODE_CACHE"
_OFF = ("off", "false", "no", "0", "")
# magic + SHA-256 of the source + SHA-256 of the marshalled code, then the code.
_TAG = b"IPBC"
_HEADER_SIZE = len(_TAG) + 4 + 32 + 32
_MAX_ENTRY = 8 * 1024 * 1024  # far above any compiled module_utils file; a bigger file is not ours
_MAX_ENTRIES = 512  # about eight versions of the collection; the oldest half goes beyond that
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def default_directory(environ=None):
    """Where the compiled code goes, or None when the user turned the cache off."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(ENV)
    if chosen is not None:
        if chosen.strip().lower() in _OFF:
            return None
        base = os.path.expanduser(chosen)
    else:
        cache_home = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(cache_home, "imagepusher-bytecode")
    return os.path.join(base, sys.implementation.cache_tag or "python")


def open_private_directory(path):
    """A descriptor of `path` (created 0700 if missing) when it is a directory of this user that group
    and others cannot enter; None otherwise."""
    try:
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        info = None
    if info is None or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        os.close(fd)
        return None
    return fd


class BytecodeCache:
    """Compiled code by source hash, in one private directory (a descriptor of it)."""

    def __init__(self, dir_fd):
        self.dir_fd = dir_fd

    @staticmethod
    def entry_name(source_digest):
        return source_digest.hex() + ".pyc"

    def load(self, source_digest):
        """The code compiled from the source whose SHA-256 is `source_digest`, or None."""
        try:
            fd = os.open(self.entry_name(source_digest), _OPEN_FLAGS, dir_fd=self.dir_fd)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022
                    or not _HEADER_SIZE < info.st_size <= _MAX_ENTRY):
                return None
            data = _read_all(fd, info.st_size)
        except OSError:
            return None
        finally:
            os.close(fd)
        if data[:_HEADER_SIZE - 32] != _TAG + importlib.util.MAGIC_NUMBER + source_digest:
            return None
        body = data[_HEADER_SIZE:]
        if hashlib.sha256(body).digest() != data[_HEADER_SIZE - 32:_HEADER_SIZE]:
            return None
        try:
            return marshal.loads(body)
        except (EOFError, ValueError, TypeError):
            return None

    def store(self, source_digest, code):
        """Keep `code`; any failure (full disk, read-only home...) only means compiling next time."""
        body = marshal.dumps(code)
        data = _TAG + importlib.util.MAGIC_NUMBER + source_digest + hashlib.sha256(body).digest() + body
        name = self.entry_name(source_digest)
        temp = ".%s.%d.tmp" % (name, os.getpid())
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_CLOEXEC", 0), 0o600, dir_fd=self.dir_fd)
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError:
            _unlink(temp, self.dir_fd)
            return
        self._trim()

    def _trim(self):
        """Bound the directory: past _MAX_ENTRIES entries (older versions of the collection), drop the
        oldest half, and temporary files a killed run left."""
        try:
            names = os.listdir(self.dir_fd)
        except OSError:
            return
        if len(names) <= _MAX_ENTRIES:
            return
        aged = []
        for name in names:
            try:
                aged.append((os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False).st_mtime, name))
            except OSError:
                continue
        aged.sort()
        for _mtime, name in aged[:len(aged) // 2]:
            _unlink(name, self.dir_fd)


def _read_all(fd, size):
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _unlink(name, dir_fd):
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


class CachedSourceLoader:
    """Loads one module_utils file from the zip through the cache; the zip's own loader does the rest."""

    def __init__(self, importer, origin, source, cache):
        self._importer = importer
        self._origin = origin
        self._source = source
        self._cache = cache

    def __getattr__(self, name):  # get_data, get_source, is_package, get_resource_reader...
        return getattr(self._importer, name)

    def get_filename(self, fullname):
        return self._origin  # zipimport's own compiles the module to answer (Python 3.11)

    def create_module(self, spec):
        return None  # the default module object, as the zip's loader makes

    def exec_module(self, module):
        exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, fullname):
        source, self._source = self._source, None
        if source is None:
            source = self._importer.get_data(self._origin)
        digest = hashlib.sha256(source).digest()
        code = self._cache.load(digest)
        if code is None:
            # What zipimport does: universal newlines, then compile with the file's path.
            source = source.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            code = compile(source, self._origin, "exec", dont_inherit=True)
            self._cache.store(digest, code)
        else:
            _fix_filenames(code, self._origin)
        return code


def _fix_filenames(code, path):
    """Tracebacks name this run's zip, not the first run's (what importlib does for a .pyc)."""
    fix = getattr(sys.modules.get("_imp"), "_fix_co_filename", None)
    if fix is not None:
        fix(code, path)


def _zip_importer(entry):
    importer = sys.path_importer_cache.get(entry)
    if importer is None:
        try:
            importer = zipimport.zipimporter(entry)
        except (zipimport.ZipImportError, OSError, TypeError, ValueError):
            return None
    return importer if isinstance(importer, zipimport.zipimporter) else None


class ZipBytecodeFinder:
    """Finds this collection's module_utils files in the zip they are run from, and loads them through the
    cache. Anything else (another package, a package directory, a file not in a zip) is left to the import
    system. The spec is built here: in Python 3.11, zipimport's own find_spec compiles the module once
    just to name its file, and exec_module compiles it again."""

    def __init__(self, cache):
        self.cache = cache

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(PACKAGE + ".") or not path:
            return None
        name = fullname.rpartition(".")[2]
        for entry in path:
            importer = _zip_importer(entry)
            if importer is None:
                return None
            origin = os.path.join(importer.archive, importer.prefix, name + ".py")
            try:
                source = importer.get_data(origin)
            except OSError:
                continue
            spec = importlib.machinery.ModuleSpec(fullname, CachedSourceLoader(importer, origin, source, self.cache),
                                                  origin=origin)
            spec.has_location = True
            return spec
        return None


def install(environ=None):
    """Put the finder in front of the import system when this file itself came from a zip (a module run by
    Ansible) and the cache directory is usable; a second call does nothing. Returns the finder or None."""
    for finder in sys.meta_path:
        if isinstance(finder, ZipBytecodeFinder):
            return finder
    spec = globals().get("__spec__")
    if spec is None or not isinstance(spec.loader, zipimport.zipimporter):
        return None
    directory = default_directory(environ)
    dir_fd = open_private_directory(directory) if directory else None
    if dir_fd is None:
        return None
    finder = ZipBytecodeFinder(BytecodeCache(dir_fd))
    sys.meta_path.insert(0, finder)
    return finder
