# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sources.json: the repositories ("registry/repository") each blob was seen in, a hint for mounts.

A push asks it for every blob it plans (where could the target mount this from?) and a pull and
a push record into it once per image. Read whole and rewritten whole, the file grows with the
number of images the cache has seen, so a fleet of 300 images that read and rewrote it for each
image spent a fifth of its CPU on it. Now, in one process:

- records are kept in memory and written at most once a second (the first one at once, so a
  cache that cannot be written says so at the first image), and the rest when the run ends
  (flush_all(), which _module.run calls; at interpreter exit too, for library callers);
- the file is parsed again only when it is another file than the one last parsed (inode,
  size and modification time of the descriptor read), and what is not written yet is merged in.

It is a hint, never trusted for content: a mount the registry refuses falls back to an upload,
and a record lost with a killed process only costs that mount.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import json
import os
import threading
import time

from ansible_collections.imagepusher.registry.plugins.module_utils import _safe_files
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError

FLUSH_EVERY = 1.0  # seconds between two writes of one process
LIMIT = 16 * 1024 * 1024  # read whole: larger is not a file of ours

_STATES = {}  # sources.json path -> _State, shared by every Cache object of the process
_STATES_GUARD = threading.Lock()


class _State:
    def __init__(self):
        self.guard = threading.Lock()
        self.pending = {}  # digest -> [repository, ...] recorded, not yet written
        self.flushed_at = None  # monotonic time of the last write (None: none yet)
        self.parsed = None  # (identity of the file read, its data)
        self.flush = None  # how to write `pending` (set by the first BlobSources of this path)


def _state(path):
    with _STATES_GUARD:
        return _STATES.setdefault(path, _State())


class BlobSources:
    """The sources.json of one cache. `lock()` gives the file lock that guards its writes, `write(data)`
    replaces it (raising the cache's errors)."""

    def __init__(self, root, path, lock, write):
        self.root = root
        self.path = path
        self._lock = lock
        self._write = write
        self._state = _state(path)

    def of(self, digest):
        """Repositories known to hold `digest`: the file's and this process's unwritten records."""
        found = self._parsed().get(digest)
        known = [s for s in found if isinstance(s, str)] if isinstance(found, list) else []
        with self._state.guard:
            return known + [s for s in self._state.pending.get(digest, ()) if s not in known]

    def record(self, digests, repository_name):
        """Remember that `repository_name` holds each of `digests`; written now if no write happened in the
        last FLUSH_EVERY seconds, else with a later record or at the end of the run."""
        state = self._state
        with state.guard:
            _merge(state.pending, dict((digest, [repository_name]) for digest in digests))
            due = state.flushed_at is None or time.monotonic() - state.flushed_at >= FLUSH_EVERY
            if state.flush is None:
                state.flush = self.flush
                atexit.register(_flush_quietly, self.flush)
        if due:
            self.flush()

    def flush(self):
        """Write what this process recorded and has not written yet (merged into the file as it is now)."""
        state = self._state
        with self._lock():
            with state.guard:
                pending, state.pending = state.pending, {}
                state.flushed_at = time.monotonic()
            if not pending:
                return
            try:
                data = dict((k, list(v) if isinstance(v, list) else v) for k, v in self._parsed().items())
                if _merge(data, pending):
                    self._write(json.dumps(data, sort_keys=True).encode("utf-8"))
            except BaseException:
                with state.guard:  # not written: kept for the next try
                    _merge(state.pending, pending)
                raise
            finally:
                state.parsed = None  # the file changed (or may have): parse it again when next read

    def _parsed(self):
        """The parsed file, kept while the file read is the same one (never change what this returns)."""
        try:
            fd = _safe_files.open_file(self.root, self.path, os.O_RDONLY)
        except (OSError, CacheError):
            return {}  # absent, or a link planted there: nothing known (the next write replaces it)
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(handle.fileno())
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            parsed = self._state.parsed
            if parsed is not None and parsed[0] == identity:
                return parsed[1]
            raw = handle.read(LIMIT + 1)
        try:
            data = json.loads(raw.decode("utf-8")) if len(raw) <= LIMIT else {}
        except (ValueError, UnicodeDecodeError):
            data = {}  # damaged: replaced by the next write
        data = data if isinstance(data, dict) else {}
        self._state.parsed = (identity, data)
        return data


def _merge(data, pending):
    """Add pending (digest -> repositories) into data; True when data changed."""
    changed = False
    for digest, repositories in pending.items():
        known = data.get(digest)
        if not isinstance(known, list):  # absent, or damaged by hand: start again
            known = data[digest] = []
        for repository in repositories:
            if repository not in known:
                known.append(repository)
                changed = True
    return changed


def flush_all():
    """Write every cache's unwritten records (the end of a module run). Errors go up (the caller warns)."""
    with _STATES_GUARD:
        flushes = [s.flush for s in _STATES.values() if s.flush is not None and s.pending]
    for flush in flushes:
        flush()


def _flush_quietly(flush):
    try:
        flush()
    except Exception:  # noqa: only a hint, and the interpreter is exiting: nobody to tell
        pass
