# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Looking after the on-host cache: list images, remove names, prune, verify.

Everything here works on a _cache.Cache through its public methods plus the layout
it documents (blobs/<alg>/<hex>, .imagepusher/ingest/<alg>-<hex>.partial), and is
Ansible-free.  Every operation takes ``check_mode`` and then only reads.

Prune and concurrent runs (pulls, imports) on the same cache
-------------------------------------------------------------
A pull writes blobs first (_download.download_blob, under a per-blob lock), then manifests, then
its name in index.json (Cache.set_ref, under the "index" lock).  So, between its first
blob and its set_ref, what it wrote is reachable from no name, and holding the "index"
lock alone cannot protect it: ingest does not take that lock.  prune therefore

1. notes its start time from the file system itself (the mtime of a file it creates in
   .imagepusher/, so a coarse kernel clock or an NFS server's clock cannot fool it),
2. takes the "index" lock and holds it until it is done, so no name can be added or
   removed between the moment it reads index.json (mark) and its last deletion (sweep):
   a concurrent set_ref waits, and then only names blobs that still exist,
3. deletes only unreachable blobs whose mtime AND ctime are both older than that start
   (and than ``older_than`` when given).  A blob renamed into blobs/ after the start
   has a new ctime (rename updates it) even when its bytes were written earlier, so
   nothing that appears while the prune runs is ever deleted,
4. removes a partial download only while holding that blob's ingest lock without
   waiting for it (a partial being written is locked, so it is left alone).

What remains is a pull that started before the prune and decided to reuse an old
unreferenced blob (or wrote one before the prune started) and names it after the
prune: ``older_than`` (e.g. 1h) closes that in practice, and the ref would be
reported incomplete by state=verified (image_pull then downloads the blob again).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import hashlib
import os
import re
import stat as stat_mod
import tempfile
import time

from ansible_collections.imagepusher.registry.plugins.module_utils import _close_names
from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _safe_files
from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import REF_NAME, STATE_DIR
from ansible_collections.imagepusher.registry.plugins.module_utils._cache_errors import os_error
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    ImagePusherError,
    LockTimeoutError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._names import ref_name, resolve

HASH_BUFFER = 1024 * 1024
# Leftover temp files of an atomic write (".tmp-*") are only removed once this old: such a
# write lasts milliseconds, so an older one belongs to a process that died.
TEMP_FILE_MIN_AGE = 3600
_AGE_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PARTIAL_RE = re.compile(r"^([a-z0-9]+)-([a-f0-9]+)\.partial$")


def parse_age(text):
    """Seconds in '90', '45s', '30m', '12h', '7d' or '2w'; ValueError otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("an age cannot be negative")
        return text
    match = _AGE_RE.match(str(text))
    if not match:
        raise ValueError("%r is not an age such as 45s, 30m, 12h, 7d or 2w" % (text,))
    return int(match.group(1)) * _AGE_UNITS[match.group(2).lower()]


# -- files under blobs/ and .imagepusher/ingest -------------------------------------

def _real_dir(cache, path):
    """Whether `path` is a directory reached from the cache root without following a link."""
    try:
        with _safe_files.Directory(cache.root, path):
            return True
    except (OSError, CacheError):
        return False


def blob_files(cache, odd=None):
    """(digest, path, stat) of every blob file, plus (path, stat) of leftover temp files.

    Links and other non-regular entries (which are never trusted) are left out; given a list `odd`,
    (digest or None, path, lstat) of each of them is appended to it.
    """
    blobs, temps = [], []
    top = os.path.join(cache.root, "blobs")
    if not _real_dir(cache, top):
        if odd is not None and os.path.lexists(top):
            odd.append((None, top, os.lstat(top)))
        return blobs, temps
    try:
        algorithms = sorted(os.listdir(top))
    except OSError as exc:
        raise os_error(exc, "listing the blobs", top, cache.root)
    for algorithm in algorithms:
        directory = os.path.join(top, algorithm)
        if algorithm not in _digest.ALGORITHMS:
            continue
        if not _real_dir(cache, directory):
            if odd is not None and os.path.lexists(directory):
                odd.append((None, directory, os.lstat(directory)))
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue  # removed meanwhile
            if not _is_regular(st):
                if odd is not None and _valid_digest("%s:%s" % (algorithm, name)):
                    odd.append(("%s:%s" % (algorithm, name), path, st))
                continue
            if name.startswith(".tmp-"):
                temps.append((path, st))
                continue
            digest = "%s:%s" % (algorithm, name)
            try:
                _digest.validate(digest)
            except ImagePusherError:
                continue  # not ours: never touch a file we cannot name
            blobs.append((digest, path, st))
    return blobs, temps


def _valid_digest(digest):
    try:
        _digest.validate(digest)
    except ImagePusherError:
        return False
    return True


def temp_files(cache):
    """(path, stat) of leftover atomic-write temp files (".tmp-*") beside index.json and in .imagepusher/."""
    found = []
    for directory in (cache.root, os.path.join(cache.root, STATE_DIR)):
        if not _real_dir(cache, directory):
            continue
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if name.startswith(".tmp-"):
                try:
                    st = os.lstat(os.path.join(directory, name))
                except OSError:
                    continue
                if _is_regular(st):
                    found.append((os.path.join(directory, name), st))
    return found


def partial_files(cache):
    """(digest, path, stat) of every partial download."""
    directory = os.path.join(cache.root, STATE_DIR, "ingest")
    found = []
    if not _real_dir(cache, directory):
        return found
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return found
    for name in names:
        match = _PARTIAL_RE.match(name)
        if not match:
            continue
        digest = "%s:%s" % match.groups()
        try:
            _digest.validate(digest)
            st = os.lstat(os.path.join(directory, name))
        except (ImagePusherError, OSError):
            continue
        if _is_regular(st):
            found.append((digest, os.path.join(directory, name), st))
    return found


def _is_regular(st):
    return stat_mod.S_ISREG(st.st_mode)


def _changed_ns(st):
    """When the file last got its content or its name: the later of mtime and ctime."""
    return max(st.st_mtime_ns, st.st_ctime_ns)


def _same_file(path, st):
    try:
        now = os.lstat(path)
    except OSError:
        return False
    return (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)


# -- state=present ------------------------------------------------------------------

def _matching(entries, names):
    """([(cache name, entry)] that `names` designate, each once, in order; [the names that designate none])."""
    selected, seen, not_found = [], set(), []
    for name in names:
        matches = resolve(entries, name)
        if not matches:
            not_found.append(name)
        for found, entry in matches:
            if found not in seen:
                seen.add(found)
                selected.append((found, entry))
    return selected, not_found


def list_images(cache, names=None):
    """Images in index.json (all, or those `names` designate), sorted by name, and unmatched names."""
    entries = cache.entries() if cache.exists() else []
    not_found = []
    if names:
        selected, not_found = _matching(entries, names)
    else:
        selected = [(ref_name(e) or e.get("digest"), e) for e in entries]
    images = []
    for name, entry in sorted(selected, key=lambda pair: str(pair[0])):
        images.append(describe_entry(cache, name, entry, _tree.entry_tree(cache, entry)))
    return images, not_found


def describe_entry(cache, name, entry, scan):
    annotations = entry.get("annotations") or {}
    return {
        "name": name,
        "digest": entry.get("digest"),
        "media_type": entry.get("mediaType") or (scan.top.media_type if scan.top else None),
        "platforms": list(scan.platforms),
        "size": scan.size,
        "complete": scan.complete,
        "annotations": dict((k, v) for k, v in annotations.items() if k != REF_NAME),
    }


def disk_usage(cache):
    """Counts and bytes of blobs, partial downloads, and what a prune would free now."""
    blobs, temps = blob_files(cache)
    partials = partial_files(cache)
    usage = {
        "blobs": len(blobs),
        "blob_bytes": sum(st.st_size for _d, _p, st in blobs),
        "partials": len(partials) + len(temps),
        "partial_bytes": sum(st.st_size for _d, _p, st in partials) + sum(st.st_size for _p, st in temps),
        "unreferenced_blobs": None,
        "unreferenced_bytes": None,
    }
    usage["total_bytes"] = usage["blob_bytes"] + usage["partial_bytes"]
    entries = cache.entries() if cache.exists() else []
    reachable = set()
    for entry in entries:
        scan = _tree.entry_tree(cache, entry)
        if not scan.readable:
            return usage  # what the damaged name needs is unknown: so is what a prune frees
        reachable |= scan.digests
    orphans = [st.st_size for digest, _p, st in blobs if digest not in reachable]
    usage["unreferenced_blobs"] = len(orphans)
    usage["unreferenced_bytes"] = sum(orphans)
    return usage


def not_found_message(entries, not_found, prefix=""):
    """'not in the cache: a (did you mean b?), c' for names that designate nothing; '' when all were found."""
    if not not_found:
        return ""
    held = [ref_name(e) or e.get("digest") for e in entries]
    return prefix + "not in the cache: " + ", ".join(
        name + _close_names.hint(_close_names.close_names(name, held)) for name in not_found)


# -- state=absent --------------------------------------------------------------------

def remove_refs(cache, names, check_mode=False):
    """Remove names from index.json (blobs stay: prune removes what nothing reaches any more)."""
    entries = cache.entries() if cache.exists() else []
    before = dict((ref_name(e) or e.get("digest"), e.get("digest")) for e in entries)
    selected, not_found = _matching(entries, names)
    removed = [found for found, _entry in selected]
    if not check_mode and removed:
        cache.ensure()  # the lock directory, for a layout another tool made
        removed = [name for name in removed if cache.remove_ref(name)]
    after = dict((k, v) for k, v in before.items() if k not in removed)
    return {
        "msg": ("%s %d name%s from index.json; the blobs stay until image_cache state=pruned removes what no name "
                "reaches" % ("would remove" if check_mode else "removed", len(removed), "" if len(removed) == 1 else "s")
                if removed else "no name to remove") + not_found_message(entries, not_found, "; "),
        "changed": bool(removed),
        "removed": removed,
        "not_found": not_found,
        "images": sorted(after),
        "diff": {"before": {"images": before}, "after": {"images": after}},
    }


# -- state=pruned --------------------------------------------------------------------

class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def _make_state_dirs(cache):
    """The lock and ingest directories, for a layout another tool made (no index lock taken)."""
    for sub in ("locks", "ingest"):
        directory = os.path.join(cache.root, STATE_DIR, sub)
        try:
            with _safe_files.Directory(cache.root, directory, create=True):
                pass
        except OSError as exc:
            raise os_error(exc, "writing in the cache", directory, cache.root)


def filesystem_now_ns(cache):
    """The current time as the cache's file system stamps files (create, stat, delete a file)."""
    directory = os.path.join(cache.root, STATE_DIR)
    try:
        with _safe_files.Directory(cache.root, directory, create=True):
            pass
        fd, path = tempfile.mkstemp(dir=directory, prefix=".tmp-prune-start-")
    except OSError as exc:
        raise os_error(exc, "writing in the cache", directory, cache.root)
    try:
        return os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
        os.unlink(path)


def _unreadable_message(cache, bad):
    parts = []
    for name, scan in bad[:5]:
        what = ", ".join(["%s missing" % d for d in scan.missing_manifests]
                         + ["%s damaged (%s)" % (d["digest"], d["reason"]) for d in scan.damaged])
        parts.append("%s (%s)" % (name, what))
    return ("cannot prune %s: the manifests of %d image%s cannot be read, so the blobs they need are unknown: %s. "
            "Pull them again with imagepusher.registry.image_pull, or remove them with state=absent, then prune"
            % (cache.root, len(bad), "" if len(bad) == 1 else "s", "; ".join(parts)))


def prune(cache, older_than=None, check_mode=False, started_ns=None):
    """Delete blobs no name reaches, and stale partial downloads; see the module docstring."""
    result = {"changed": False, "removed_blobs": [], "removed_partials": [], "kept_recent": 0,
              "partials_in_use": 0, "bytes_freed": 0, "blobs": 0, "blob_bytes": 0}
    if not cache.exists():
        result["diff"] = {"before": {"blobs": 0, "blob_bytes": 0}, "after": {"blobs": 0, "blob_bytes": 0}}
        return result
    if check_mode:
        start = started_ns if started_ns is not None else time.time_ns()
        lock = _NoLock()
    else:
        # The start is taken before waiting for the lock: whatever is written while we wait is newer.
        # (Not cache.ensure(): it takes the index lock itself, and we would stamp the start after it.)
        _make_state_dirs(cache)
        start = started_ns if started_ns is not None else filesystem_now_ns(cache)
        lock = cache.lock("index")
    cutoff = start - int((older_than or 0) * 1e9)
    with lock:
        reachable = set()
        unreadable = []
        for entry in cache.entries():
            scan = _tree.entry_tree(cache, entry)
            if not scan.readable:
                unreadable.append((ref_name(entry) or entry.get("digest"), scan))
            reachable |= scan.digests
        if unreadable:
            raise CacheError(_unreadable_message(cache, unreadable), path=cache.root)
        blobs, temps = blob_files(cache)
        before = {"blobs": len(blobs), "blob_bytes": sum(st.st_size for _d, _p, st in blobs)}
        for digest, path, st in blobs:
            if digest in reachable:
                continue
            if _changed_ns(st) >= cutoff:  # cutoff <= start: written since the prune began, or too young
                result["kept_recent"] += 1
                continue
            if not check_mode:
                if not _same_file(path, st):
                    result["kept_recent"] += 1
                    continue
                _remove(path)
            result["removed_blobs"].append({"digest": digest, "size": st.st_size})
        _prune_partials(cache, result, cutoff, check_mode)
        temp_cutoff = min(cutoff, start - TEMP_FILE_MIN_AGE * 10 ** 9)
        for path, st in temps + temp_files(cache):
            if _changed_ns(st) < temp_cutoff:
                if not check_mode:
                    _remove(path)
                result["removed_partials"].append({"path": os.path.relpath(path, cache.root), "size": st.st_size})
    freed_blobs = sum(b["size"] for b in result["removed_blobs"])
    result["bytes_freed"] = freed_blobs + sum(p["size"] for p in result["removed_partials"])
    result["changed"] = bool(result["removed_blobs"] or result["removed_partials"])
    after = {"blobs": before["blobs"] - len(result["removed_blobs"]), "blob_bytes": before["blob_bytes"] - freed_blobs}
    result["blobs"], result["blob_bytes"] = after["blobs"], after["blob_bytes"]
    result["diff"] = {"before": before, "after": after}
    return result


def _prune_partials(cache, result, cutoff, check_mode):
    for digest, path, st in partial_files(cache):
        if _changed_ns(st) >= cutoff:
            continue
        hexdigest = _digest.split(digest)[1]
        if check_mode:
            if not _lock_free(cache.lock(hexdigest).path):
                result["partials_in_use"] += 1
                continue
        else:
            lock = cache.lock(hexdigest)
            lock.timeout = 0  # held means an ingest is writing this partial now: leave it
            try:
                with lock:
                    if not _same_file(path, st):
                        continue
                    _remove(path)
            except LockTimeoutError:
                result["partials_in_use"] += 1
                continue
        result["removed_partials"].append({"path": os.path.relpath(path, cache.root), "size": st.st_size})


def _lock_free(path):
    """Whether nobody holds the flock on `path` (probed read-only; creates nothing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return True  # absent, or a link: no run holds a lock through it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError):
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def _remove(path):
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise os_error(exc, "removing a file", path)


# -- state=verified ---------------------------------------------------------------------

def _odd_entry(cache, digest, path, st):
    """A bad-blob report for a link or other non-regular entry under blobs/."""
    kind = "a symbolic link" if stat_mod.S_ISLNK(st.st_mode) else (
        "a directory" if stat_mod.S_ISDIR(st.st_mode) else "not a regular file")
    return {"digest": digest, "actual_digest": None, "size": None, "path": os.path.relpath(path, cache.root),
            "reason": "%s (never trusted)" % kind, "_stat": st, "_path": path}


def hash_file(path, algorithm):
    hasher = hashlib.new(algorithm)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not _is_regular(os.fstat(fd)):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    with os.fdopen(fd, "rb") as handle:
        while True:
            chunk = handle.read(HASH_BUFFER)
            if not chunk:
                break
            hasher.update(chunk)
    return "%s:%s" % (algorithm, hasher.hexdigest())


def verify(cache, remove_bad=False, check_mode=False):
    """Re-hash every blob; report (and optionally delete) those that do not match their name, and the
    links and other non-regular entries under blobs/, which are never trusted."""
    odd = []
    blobs, _temps = blob_files(cache, odd)
    bad, checked_bytes = [_odd_entry(cache, digest, path, st) for digest, path, st in odd], 0
    for digest, path, st in blobs:
        try:
            actual = hash_file(path, _digest.split(digest)[0])
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue  # removed meanwhile (a prune): nothing to verify
            raise os_error(exc, "reading blob %s" % digest, path, cache.root)
        checked_bytes += st.st_size
        if actual != digest:
            bad.append({"digest": digest, "actual_digest": actual, "size": st.st_size, "reason": "digest mismatch",
                        "path": os.path.relpath(path, cache.root), "_stat": st, "_path": path})
    removed = []
    if remove_bad:
        for item in bad:
            if not check_mode:
                if not _same_file(item["_path"], item["_stat"]):
                    continue  # rewritten since we hashed it (a pull repairing it): not ours to delete
                _safe_files.remove_entry(cache.root, item["_path"])  # a link goes, never what it points at
            removed.append(item["digest"] or item["path"])
    gone = frozenset(removed)
    bad_digests = set(item["digest"] or item["path"] for item in bad)
    incomplete, affected = [], []
    for entry in cache.entries() if cache.exists() else []:
        name = ref_name(entry) or entry.get("digest")
        scan = _tree.entry_tree(cache, entry, gone=gone)
        if bad_digests & scan.digests:
            affected.append(name)
        if not scan.complete:
            incomplete.append({"name": name, "digest": entry.get("digest"), "missing": scan.missing,
                               "damaged": [d["digest"] for d in scan.damaged]})
    for item in bad:
        del item["_stat"], item["_path"]
    return {
        "changed": bool(removed),
        "checked": len(blobs),
        "bytes_checked": checked_bytes,
        "bad": bad,
        "removed": removed,
        "affected": sorted(affected),
        "incomplete": incomplete,
        "diff": {"before": {"bad_blobs": sorted(bad_digests)},
                 "after": {"bad_blobs": sorted(bad_digests - gone)}},
    }
