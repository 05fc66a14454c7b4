# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OSError in the cache -> a typed CacheError whose message names the path, the cause and the fix.

Every file operation of the cache (_cache.py, _cache_admin.py) goes through os_error(), so a
user never sees a bare "[Errno 13] Permission denied" and always learns what to change:
another user's cache (choose a cache_dir of your own, or run as its owner), a file whose
mode forbids it, a full disk or quota, a read-only file system.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    CacheFullError,
    CachePermissionError,
    CacheReadOnlyError,
)

_PERMISSION = (errno.EACCES, errno.EPERM)
_FULL = (errno.ENOSPC, errno.EDQUOT)


def os_error(exc, what, path, root=None):
    """The CacheError for `exc`, raised while `what` (e.g. "writing blob sha256:...") on `path` in cache `root`."""
    number = getattr(exc, "errno", None)
    cause = errno.errorcode.get(number, "") if number else ""
    if number in _FULL:
        if number == errno.EDQUOT:
            return CacheFullError("cache is over its disk quota while %s (%s): free space or choose another cache_dir"
                                  % (what, path), path=path, cause=cause)
        return CacheFullError("cache is out of disk space while %s (%s): free space or choose another cache_dir"
                              % (what, path), path=path, cause=cause)
    if number == errno.EROFS:
        return CacheReadOnlyError("cache %s is on a read-only file system (while %s: %s): choose a cache_dir on a "
                                  "writable file system" % (root or path, what, path), path=path, cause=cause)
    if number in _PERMISSION:
        return _permission_error(what, path, root, cause)
    return CacheError("cache error while %s (%s): %s" % (what, path, getattr(exc, "strerror", None) or exc),
                      path=path, cause=cause or None)


def _permission_error(what, path, root, cause):
    """Whose the file is decides the fix: another user's cache is not ours to chmod."""
    me = os.geteuid()
    root_owner = _owner(root, None) if root else None
    owner = _owner(path, root)
    if root_owner is not None and root_owner != me and root and not os.path.lexists(root):
        return CachePermissionError(
            "permission denied while %s (%s): the cache would be created in a directory that belongs to another user "
            "(uid %d; this task runs as uid %d): choose a cache_dir of your own" % (what, path, root_owner, me),
            path=path, cause=cause, owner_uid=root_owner)
    if root_owner is not None and root_owner != me:
        return CachePermissionError(
            "permission denied while %s (%s): the cache %s belongs to another user (uid %d; this task runs as uid %d): "
            "choose a cache_dir of your own, or run as its owner" % (what, path, root, root_owner, me),
            path=path, cause=cause, owner_uid=root_owner)
    if owner is not None and owner != me:
        return CachePermissionError(
            "permission denied while %s (%s): that file belongs to another user (uid %d; this task runs as uid %d), "
            "who wrote into the cache %s: run as that user, give the files back (chown -R %d %s), or choose another "
            "cache_dir" % (what, path, owner, me, root or path, me, root or path),
            path=path, cause=cause, owner_uid=owner)
    return CachePermissionError(
        "permission denied while %s (%s): its permissions do not allow this user (uid %d): "
        "give the owner write access to the cache %s (chmod -R u+rwX), or choose another cache_dir"
        % (what, path, me, root or path), path=path, cause=cause)


def _owner(path, root):
    """The uid owning `path`, else its nearest existing parent (stopping at the cache root's parent); None if unknown."""
    stop = os.path.dirname(root) if root else None
    current = path
    while current:
        try:
            return os.lstat(current).st_uid  # lstat: a link in a shared cache is never followed
        except OSError:
            parent = os.path.dirname(current)
            if parent == current or current == stop:
                return None
            current = parent
    return None
