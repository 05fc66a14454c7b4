# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carry images across an air gap, outbound: OCI archives out of the cache (inbound: _archive_import.py).

Export writes a tar of an OCI image layout (``oci-layout``, ``index.json`` naming each
image by its cache name, ``blobs/<alg>/<hex>``) that ``skopeo copy oci-archive:<path>:<name>``
reads.  Blobs stream from the cache into the tar through a hashing reader (memory stays
flat, and a blob damaged in the cache is refused instead of shipped); the archive is
written to a temp file beside ``path`` and renamed into place.  Members have fixed
owners, modes and mtimes and a fixed order, so the same images give the same bytes.
The error, limits and index view both directions share live here too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import tarfile
import tempfile

from ansible_collections.imagepusher.registry.plugins.module_utils import _close_names
from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as _mt
from ansible_collections.imagepusher.registry.plugins.module_utils import _names
from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import REF_NAME
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Engine
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    NotCachedError,
)

COPY_BUFFER = 1024 * 1024
JSON_LIMIT = 4 * 1024 * 1024
ARCHIVE_MTIME = 946684800  # 2000-01-01T00:00:00Z: fixed, so an export is reproducible


class ArchiveError(CacheError):
    """An archive that cannot be read, is unsafe, or lacks what it names."""


def _dump_index(entries):
    document = {"schemaVersion": 2, "mediaType": _mt.OCI_INDEX, "manifests": entries}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def names_of(entries):
    """{name: digest} of index.json entries (an unnamed entry under its digest): what an archive or cache holds."""
    return dict((_names.entry_name(e), e.get("digest")) for e in entries)


# -- export ------------------------------------------------------------------------------

class _Member:
    def __init__(self, name, size=0, data=None, digest=None, directory=False):
        self.name = name
        self.size = size
        self.data = data
        self.digest = digest
        self.directory = directory

    def tarinfo(self):
        info = tarfile.TarInfo(self.name)
        info.mtime = ARCHIVE_MTIME
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if self.directory:
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
        else:
            info.size = self.size
            info.mode = 0o644
        return info

    @property
    def key(self):
        return (self.name, self.size, tarfile.DIRTYPE if self.directory else tarfile.REGTYPE)


def select(cache, names):
    """(ref name, index.json entry) for each of `names`, or NotCachedError naming what is missing."""
    entries = cache.entries() if cache.exists() else []
    selected, missing = [], []
    for name in names:
        matches = _names.resolve(entries, name)
        if not matches:
            missing.append(name)
        for found in matches:
            if found[0] not in [s[0] for s in selected]:
                selected.append(found)
    if missing:
        held = sorted(names_of(entries))
        close = dict((name, _close_names.close_names(name, held)) for name in missing)
        raise NotCachedError("image%s %s not in the cache %s (it holds: %s); pull %s first with imagepusher.registry.image_pull"
                             % ("s" if len(missing) > 1 else "", ", ".join(name + _close_names.hint(close[name])
                                                                           for name in missing), cache.root,
                                ", ".join(held[:10]) + (", ..." if len(held) > 10 else "") if held else "nothing",
                                "them" if len(missing) > 1 else "it"), name=missing[0],
                             did_you_mean=dict((k, v) for k, v in close.items() if v) or None)
    return sorted(selected, key=lambda pair: pair[0])


def plan_export(cache, names):
    """The members of the archive for `names` (in order: layout files and directories, then the blobs by
    digest) and the images it names."""
    selected = select(cache, names)
    entries, members, seen = [], [], set()
    for name, entry in selected:
        scan = _tree.entry_tree(cache, entry)
        if not scan.complete:
            raise NotCachedError("image %s is incomplete in the cache %s (%s); pull it again with "
                                 "imagepusher.registry.image_pull before exporting it"
                                 % (name, cache.root, ", ".join(
                                     ["%s missing" % d for d in scan.missing]
                                     + ["%s damaged" % d["digest"] for d in scan.damaged])), name=name)
        exported = dict(entry)
        exported["annotations"] = dict(entry.get("annotations") or {})
        exported["annotations"][REF_NAME] = name
        entries.append(exported)
        for manifest in scan.manifests:
            seen.add((manifest.digest, manifest.size))
        for blob in scan.blobs:
            if not _tree.is_foreign(blob) or cache.has_blob(blob.digest, blob.size):  # a foreign layer may be absent
                seen.add((blob.digest, blob.size))
    index = _dump_index(entries)
    members = [
        _Member("oci-layout", data=b'{"imageLayoutVersion":"1.0.0"}'),
        _Member("index.json", data=index),
        _Member("blobs", directory=True),
    ]
    for algorithm in sorted(set(d.split(":", 1)[0] for d, _s in seen)):
        members.append(_Member("blobs/%s" % algorithm, directory=True))
    for digest, size in sorted(seen):
        members.append(_Member("blobs/%s" % digest.replace(":", "/", 1), size=size, digest=digest))
    for member in members:
        if member.data is not None:
            member.size = len(member.data)
    images = [{"name": _names.ref_name(e), "digest": e.get("digest"), "media_type": e.get("mediaType")}
              for e in entries]
    return members, index, images


def _existing_archive(path, members, index):
    """(names it holds, whether it is the archive we would write) for a file already at `path`."""
    try:
        with tarfile.open(path, "r:") as tar:
            found = tar.getmembers()
            handle = tar.extractfile("index.json")
            data = handle.read(JSON_LIMIT + 1) if handle else b""
    except (tarfile.TarError, OSError, KeyError, EOFError):
        return {}, False
    try:
        names = names_of(json.loads(data.decode("utf-8")).get("manifests") or [])
    except (ValueError, AttributeError, UnicodeDecodeError):
        names = {}
    same = data == index and [(m.name, m.size, m.type) for m in found] == [m.key for m in members]
    return names, same


def export_images(cache, names, path, check_mode=False, force=False):
    """Write the images `names` designate to an OCI archive at `path` (temp file + rename)."""
    path = os.path.abspath(os.path.expanduser(path))
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise ArchiveError("path %s is a directory; give the archive's file name, e.g. %s/images.tar"
                           % (path, path.rstrip("/")), path=path)
    if not os.path.isdir(directory):
        raise ArchiveError("cannot write %s: the directory %s does not exist" % (path, directory), path=path)
    members, index, images = plan_export(cache, names)
    before, same = ({}, False)
    if os.path.exists(path):
        before, same = _existing_archive(path, members, index)
    after = dict((i["name"], i["digest"]) for i in images)
    result = {
        "changed": not same or force,
        "path": path,
        "images": images,
        "blobs": len([m for m in members if m.digest]),
        "size": None,
        "diff": {"before": {"path": path, "images": before}, "after": {"path": path, "images": after}},
    }
    if result["changed"] and not check_mode:
        _write_archive(cache, members, path)
    if os.path.isfile(path) and not (check_mode and result["changed"]):
        result["size"] = os.path.getsize(path)
    else:
        result["size"] = _archive_size(members)
    return result


def _archive_size(members):
    """Bytes of the tar we write (USTAR-sized headers: names and sizes here never need PAX records)."""
    total = 0
    for member in members:
        total += tarfile.BLOCKSIZE + (0 if member.directory else -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE)
    total += 2 * tarfile.BLOCKSIZE
    return -(-total // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _write_archive(cache, members, path):
    directory, base = os.path.split(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % base, suffix=".tmp")
    except OSError as exc:
        raise ArchiveError("cannot write in %s: %s" % (directory, exc.strerror), path=path)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.copybufsize = COPY_BUFFER  # large reads: the default 16 KiB costs twice the time
                blobs = [m for m in members if m.digest]
                for member in members[:len(members) - len(blobs)]:  # plan_export lists the blobs last
                    tar.addfile(member.tarinfo(), io.BytesIO(member.data) if member.data is not None else None)
                # The blobs are a copy cache -> archive: the engine's send, one at a time, in order.
                steps = [_plan.BlobStep(m.digest, m.size, None, _plan.UPLOADED, m.size, ()) for m in blobs]
                Engine(1).send(steps, StoreEndpoint(cache), ArchiveTarget(tar, blobs))
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except OSError as exc:
        _unlink(tmp)
        raise ArchiveError("cannot write the archive %s: %s" % (path, exc.strerror or exc), path=path)
    except BaseException:
        _unlink(tmp)
        raise


class ArchiveTarget:
    """An archive being written, as the target endpoint of a copy from the cache: each blob becomes
    a member, streamed from the cache through a hashing reader (a damaged blob is refused, not shipped)."""

    def __init__(self, tar, members):
        self.tar = tar
        self.members = dict((m.digest, m) for m in members)

    def blob_exists(self, digest, size=None):
        return False  # the archive is written from scratch

    def put_blob(self, digest, size, store, mount_from=(), on_bytes=None):
        member = self.members[digest]
        _add_blob(store.cache, self.tar, member.tarinfo(), member)
        return _plan.UPLOADED, member.size


def _add_blob(cache, tar, info, member):
    handle = cache.open_blob(member.digest)
    with handle:
        if os.fstat(handle.fileno()).st_size != member.size:
            raise CacheError("blob %s in the cache %s is %d bytes, not %d: the cache is damaged; run image_cache "
                             "with state=verified" % (member.digest, cache.root, os.fstat(handle.fileno()).st_size,
                                                      member.size), path=cache.root)
        reader = _digest.HashingReader(handle, member.digest, member.size)
        tar.addfile(info, reader)
        if not reader.matches:
            raise CacheError("blob %s in the cache %s does not match its digest: the cache is damaged; run "
                             "image_cache with state=verified (nothing was exported)" % (member.digest, cache.root),
                             path=cache.root)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass
