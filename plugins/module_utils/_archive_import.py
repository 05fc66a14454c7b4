# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carry images across an air gap, inbound: OCI archives and docker save tarballs into the cache.

Import reads an OCI archive (ours, see _archive.py, or any OCI layout tarred, e.g. by skopeo),
or a ``docker save`` tarball: the newer ones (Docker 25+) carry an OCI layout, which is used;
the older ones (``manifest.json`` + config + ``<id>/layer.tar``) get a Docker v2 schema 2
manifest built for them.  Nothing is ever extracted to a path: members are looked up by name,
manifests and configs are read into memory (bounded), and blobs stream into the cache
through the copy engine (_engine.py) and the cache's download, which verifies digest and size before a blob enters blobs/.
Member names that are absolute or contain ``..`` make the whole archive refused, and
links are followed only to regular files inside the archive.

Limits (an archive is a file anyone may have crafted): at most MAX_MEMBERS members; no single
tar header (pax, GNU long name) or read larger than READ_LIMIT; the decompressed tar may hold no
more than the files the images use (the declared blobs, the manifests and configs, the layout
files) plus TAR_OVERHEAD per member and EXTRA_LIMIT for small files nobody reads, so a gzip bomb
is refused before anything enters the cache; image names must be valid references.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import posixpath
import tarfile

from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as _mt
from ansible_collections.imagepusher.registry.plugins.module_utils import _names
from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._archive import COPY_BUFFER, JSON_LIMIT, ArchiveError, names_of
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import REF_NAME
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import StoreEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._engine import Engine
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import DigestMismatchError, ImagePusherError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import RetryBudget

MAX_LINK_DEPTH = 8
MAX_MEMBERS = 20000  # an image of 100 layers in a classic docker save is about 400 members
READ_LIMIT = max(JSON_LIMIT, _manifest.MAX_MANIFEST_BYTES, _tree.CONFIG_LIMIT, COPY_BUFFER) + 1
TAR_OVERHEAD = 3 * 512  # per member: its header, a pax header, and the padding of its data
EXTRA_LIMIT = 4 * 1024 * 1024  # files no image uses (docker save's repositories, <id>/json, VERSION)
CONTAINERD_IMAGE_NAME = "io.containerd.image.name"
# Uncompressed layer in a Docker v2 manifest (what `docker save` holds); containerd's name for it.
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
GZIP_MAGIC = b"\x1f\x8b"


def _safe_name(name, archive):
    """A member name made relative and canonical ('./a//b' -> 'a/b'); refuses absolute names and '..'."""
    if name.startswith("/") or name.startswith("\\"):
        raise ArchiveError("archive %s has a member with an absolute name (%r); refusing the archive"
                           % (archive, name[:200]), path=archive)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError("archive %s has a member whose name climbs out of it (%r); refusing the archive"
                           % (archive, name[:200]), path=archive)
    return "/".join(parts)


class _CountedStream:
    """The (decompressed) tar stream as tarfile reads it: how far it has reached, reads bounded.

    tarfile reads a pax or GNU long-name header whole, and skips data by seeking, which for a
    compressed archive means decompressing it: counting the furthest position tells how much
    the archive decompresses to, and `limit` (once known) stops it there.
    """

    def __init__(self, fileobj, path):
        self._fileobj = fileobj
        self.path = path
        self.reached = 0
        self.limit = None

    def read(self, size=-1):
        if size is None or size < 0 or size > READ_LIMIT:
            raise ArchiveError("archive %s: a tar header or member needs a read of %s bytes, more than the %d allowed; "
                               "refusing the archive" % (self.path, "all" if size is None or size < 0 else size,
                                                         READ_LIMIT), path=self.path)
        data = self._fileobj.read(size)
        self._advance()
        return data

    def seek(self, offset, whence=0):
        result = self._fileobj.seek(offset, whence)
        self._advance()
        return result

    def tell(self):
        return self._fileobj.tell()

    def seekable(self):
        return True

    def readable(self):
        return True

    def close(self):
        self._fileobj.close()

    def _advance(self):
        position = self._fileobj.tell()
        if position > self.reached:
            self.reached = position
            if self.limit is not None and position > self.limit:
                raise too_large(self.path, position, self.limit)


def too_large(path, size, limit):
    return ArchiveError("archive %s decompresses to more than %d bytes (at least %d), more than its images declare "
                        "plus tar overhead: refusing it (a decompression bomb, or files no image uses)"
                        % (path, limit, size), path=path)


class _BoundedTarFile(tarfile.TarFile):
    """A TarFile reading through a _CountedStream from its first header on (tarfile.open picks the
    decompressor and hands its file object here)."""

    def __init__(self, name=None, mode="r", fileobj=None, **kwargs):
        owned = fileobj is None
        if owned:
            fileobj = open(name, "rb")
        self.stream = _CountedStream(fileobj, name)
        try:
            super(_BoundedTarFile, self).__init__(name, mode, self.stream, **kwargs)
        except BaseException:
            if owned:
                fileobj.close()
            raise
        if owned:
            self._extfileobj = False  # ours to close


class _Archive:
    """A tar opened for random access by member name, without extracting anything."""

    def __init__(self, path):
        self.path = path
        try:
            self.tar = _BoundedTarFile.open(path, "r:*")
        except (tarfile.TarError, EOFError) as exc:
            raise ArchiveError("%s is not a tar archive (an OCI archive or a docker save tarball): %s" % (path, exc),
                               path=path)
        except OSError as exc:
            raise ArchiveError("cannot read %s: %s" % (path, exc.strerror or exc), path=path)
        self.stream = self.tar.stream
        self.used = {}  # name -> TarInfo of every regular member an image needs
        try:
            self.members = {}
            for count, info in enumerate(self.tar, 1):
                if count > MAX_MEMBERS:
                    raise ArchiveError("archive %s has more than %d members; refusing it" % (path, MAX_MEMBERS),
                                       path=path)
                name = _safe_name(info.name, path)
                if not name or info.isdir():
                    continue
                if name in self.members:
                    raise ArchiveError("archive %s holds %s twice; refusing an ambiguous archive" % (path, name), path=path)
                self.members[name] = info
        except (tarfile.TarError, EOFError) as exc:
            self.close()
            raise ArchiveError("archive %s is damaged or truncated: %s" % (path, exc), path=path)
        except BaseException:
            self.close()
            raise

    def close(self):
        self.tar.close()

    def bound(self):
        """Refuse an archive that decompresses to more than what its images use plus overhead; bound the rest."""
        limit = sum(info.size for info in self.used.values()) + TAR_OVERHEAD * (len(self.members) + 1) \
            + tarfile.RECORDSIZE + EXTRA_LIMIT
        if self.stream.reached > limit:
            raise too_large(self.path, self.stream.reached, limit)
        self.stream.limit = limit

    def __contains__(self, name):
        return name in self.members

    def regular(self, name, depth=0):
        """The TarInfo of the regular file `name` designates (links followed inside the archive), or None."""
        info = self.members.get(name)
        if info is not None and info.isreg():
            self.used[info.name] = info
        if info is None or info.isreg():
            return info
        if depth >= MAX_LINK_DEPTH:
            raise ArchiveError("archive %s: links from %s nest too deep" % (self.path, name), path=self.path)
        if info.issym():
            if info.linkname.startswith("/"):
                raise ArchiveError("archive %s: %s links to an absolute path; refusing it" % (self.path, name),
                                   path=self.path)
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), info.linkname))
        elif info.islnk():
            target = info.linkname
        else:
            raise ArchiveError("archive %s: %s is not a regular file" % (self.path, name), path=self.path)
        return self.regular(_safe_name(target, self.path), depth + 1)

    def read(self, name, limit, what):
        info = self.regular(name)
        if info is None:
            raise ArchiveError("archive %s has no %s (%s)" % (self.path, what, name), path=self.path)
        if info.size > limit:
            raise ArchiveError("archive %s: %s (%s) is %d bytes, more than the %d allowed"
                               % (self.path, what, name, info.size, limit), path=self.path)
        handle = self.tar.extractfile(info)
        try:
            return handle.read(limit + 1)
        finally:
            handle.close()

    def read_json(self, name, what):
        data = self.read(name, JSON_LIMIT, what)
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArchiveError("archive %s: %s (%s) is not valid JSON: %s" % (self.path, what, name, exc), path=self.path)

    def head(self, info, count):
        handle = self.tar.extractfile(info)
        try:
            return handle.read(count)
        finally:
            handle.close()

    def opener(self, info):
        """opener(offset) for download_blob, streaming the member from `offset`."""
        def opener(offset):
            handle = self.tar.extractfile(info)
            handle.seek(offset)

            def chunks():
                while True:
                    chunk = handle.read(COPY_BUFFER)
                    if not chunk:
                        return
                    yield chunk
            return chunks(), offset, handle.close
        return opener


def _blob_member(digest):
    return "blobs/%s" % _digest.validate(digest).replace(":", "/", 1)


class _Image:
    def __init__(self, name, top, manifests, annotations=None):
        self.name = name
        self.top = top
        self.manifests = manifests  # children first
        self.annotations = annotations or {}


def _image_name(text, archive, normalize=True):
    """An image name from the archive, checked against the reference grammar (normalized, with `normalize`)."""
    try:
        reference = ImageReference.parse(text)
    except ImagePusherError as exc:
        raise ArchiveError("archive %s names an image %r, which is not a valid image reference (%s); refusing the "
                           "archive" % (archive.path, text[:200], exc.message), path=archive.path)
    return str(reference) if normalize else text


def _read_oci(archive):
    layout = archive.read_json("oci-layout", "oci-layout file")
    if not isinstance(layout, dict) or not isinstance(layout.get("imageLayoutVersion"), str):
        raise ArchiveError("archive %s: oci-layout is not an OCI image layout header" % archive.path, path=archive.path)
    index = archive.read_json("index.json", "index.json")
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list):
        raise ArchiveError("archive %s: index.json has no 'manifests' list" % archive.path, path=archive.path)
    blobs = {}  # digest -> (descriptor, TarInfo or None)

    def load(descriptor):
        name = _blob_member(descriptor.digest)
        raw = archive.read(name, _manifest.MAX_MANIFEST_BYTES, "manifest %s" % descriptor.digest)
        if len(raw) != descriptor.size:
            raise ArchiveError("archive %s: manifest %s is %d bytes but is listed with %d"
                               % (archive.path, descriptor.digest, len(raw), descriptor.size), path=archive.path)
        return _manifest.parse(raw, descriptor.media_type, expected_digest=descriptor.digest)

    images = []
    for position, item in enumerate(entries):
        descriptor = _manifest.Descriptor.from_dict(item, "manifests[%d]" % position, "archive %s: index.json" % archive.path)
        annotations = dict(descriptor.annotations)
        name = annotations.get(CONTAINERD_IMAGE_NAME)  # docker save: ref.name is only the tag
        if name:
            name = _image_name(name, archive)
        elif annotations.get(REF_NAME):
            name = _image_name(annotations[REF_NAME], archive, normalize=False)
        else:
            name = descriptor.digest
        annotations.pop(REF_NAME, None)
        try:
            top = load(descriptor)
            tree = _tree.walk(top, load)
        except ImagePusherError as exc:
            raise type(exc)("archive %s, image %s: %s" % (archive.path, name, exc.message), **exc.details)
        for blob in tree.blobs:
            if blob.digest not in blobs:
                info = archive.regular(_blob_member(blob.digest))
                if info is not None or not _tree.is_foreign(blob):  # a foreign layer need not travel with the image
                    blobs[blob.digest] = (blob, info)
        images.append(_Image(name, top, tree.manifests, annotations))
    return images, blobs


def _docker_manifest(config, layers):
    document = {
        "schemaVersion": 2,
        "mediaType": _mt.DOCKER_MANIFEST,
        "config": {"mediaType": _mt.DOCKER_CONFIG, "size": config.size, "digest": config.digest},
        "layers": [{"mediaType": layer.media_type, "size": layer.size, "digest": layer.digest} for layer in layers],
    }
    # Docker writes schema 2 manifests with a 3-space indent; so do we, and always the same way.
    raw = json.dumps(document, indent=3).encode("utf-8")
    return _manifest.parse(raw, _mt.DOCKER_MANIFEST)


def _read_docker(archive):
    listing = archive.read_json("manifest.json", "manifest.json")
    if not isinstance(listing, list) or not listing:
        raise ArchiveError("archive %s: manifest.json is not a list of images" % archive.path, path=archive.path)
    images, blobs = [], {}
    for position, item in enumerate(listing):
        where = "archive %s: manifest.json[%d]" % (archive.path, position)
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str) or not isinstance(item.get("Layers"), list):
            raise ArchiveError("%s needs 'Config' (a file name) and 'Layers' (a list)" % where, path=archive.path)
        config_name, config, diff_ids = _docker_config(archive, item, where)
        layers = []
        for layer_name, diff_id in zip(item["Layers"], diff_ids):
            layer, info = _docker_layer(archive, layer_name, diff_id, where)
            layers.append(layer)
            blobs.setdefault(layer.digest, (layer, info))
        blobs.setdefault(config.digest, (config, archive.regular(config_name)))
        top = _docker_manifest(config, layers)
        tags = item.get("RepoTags") if isinstance(item.get("RepoTags"), list) else []
        names = [_image_name(t, archive) for t in tags if isinstance(t, str)] or [top.digest]
        for name in names:
            images.append(_Image(name, top, [top]))
    return images, blobs


def _docker_config(archive, item, where):
    """(member name, descriptor, diff_ids) of a docker save image's config; one diff_id per layer."""
    config_name = _safe_name(item["Config"], archive.path)
    config_raw = archive.read(config_name, _tree.CONFIG_LIMIT, "image config")
    config = _manifest.Descriptor(_mt.DOCKER_CONFIG, _digest.of_bytes(config_raw), len(config_raw))
    try:
        diff_ids = json.loads(config_raw.decode("utf-8"))["rootfs"]["diff_ids"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        raise ArchiveError("%s: config %s has no rootfs.diff_ids" % (where, config_name), path=archive.path)
    if not isinstance(diff_ids, list) or len(diff_ids) != len(item["Layers"]):
        raise ArchiveError("%s lists %d layers but its config has %d diff_ids"
                           % (where, len(item["Layers"]), len(diff_ids) if isinstance(diff_ids, list) else 0),
                           path=archive.path)
    return config_name, config, diff_ids


def _docker_layer(archive, layer_name, diff_id, where):
    """(descriptor, TarInfo) of one layer member of a docker save image."""
    if not isinstance(layer_name, str):
        raise ArchiveError("%s: a layer name is not a string" % where, path=archive.path)
    layer_name = _safe_name(layer_name, archive.path)
    info = archive.regular(layer_name)
    if info is None:
        raise ArchiveError("%s: layer %s is not in the archive" % (where, layer_name), path=archive.path)
    compressed = archive.head(info, 2) == GZIP_MAGIC
    parts = layer_name.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        digest = _digest.validate("%s:%s" % (parts[1], parts[2]))  # named by its own digest
    elif compressed:
        raise ArchiveError("%s: layer %s is compressed, so its digest is not known from the config; docker save "
                           "tarballs hold uncompressed layers" % (where, layer_name), path=archive.path)
    else:
        digest = _digest.validate(diff_id)  # an uncompressed layer's digest is its diff_id
    return _manifest.Descriptor(_mt.DOCKER_LAYER if compressed else DOCKER_LAYER_TAR, digest, info.size), info


def read_archive(path):
    """(format, images, blobs, archive) of an OCI archive or docker save tarball; close archive after use."""
    archive = _Archive(path)
    try:
        if "index.json" in archive and "oci-layout" in archive:
            images, blobs = _read_oci(archive)
            kind = "oci"
        elif "manifest.json" in archive:
            images, blobs = _read_docker(archive)
            kind = "docker"
        else:
            raise ArchiveError("%s is neither an OCI archive (oci-layout + index.json) nor a docker save tarball "
                               "(manifest.json)" % path, path=path)
        for _descriptor, info in blobs.values():
            if info is not None:
                archive.used[info.name] = info
        archive.bound()
    except BaseException:
        archive.close()
        raise
    return kind, images, blobs, archive


def import_archive(cache, path, check_mode=False):
    """Load every image of the archive at `path` into the cache, verified, and name each one."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise ArchiveError("archive %s does not exist or is not a file" % path, path=path)
    kind, images, blobs, archive = read_archive(path)
    try:
        return _import(cache, path, kind, images, blobs, archive, check_mode)
    finally:
        archive.close()


def _import(cache, path, kind, images, blobs, archive, check_mode):
    blob_plan = _plan_blobs(cache, path, blobs)
    manifest_plan, manifests = _plan_manifests(cache, images)
    entries = cache.entries() if cache.exists() else []
    before = names_of(entries)
    image_plan = _plan_images(entries, images)
    if not check_mode:
        cache.ensure()
        _ingest_blobs(cache, path, archive, [p for p in blob_plan if p["action"] != "cached"])
        for item in manifest_plan:
            cache.write_blob_bytes(item["digest"], manifests[item["digest"]].raw)
        _name_images(cache, image_plan)
    for item in blob_plan:
        del item["_info"]
    for item in image_plan:
        del item["_image"]
    after = dict(before)
    for item in image_plan:
        after[item["name"]] = item["digest"]
    changed = any(p["action"] != "cached" for p in blob_plan + manifest_plan) or any(
        p["action"] != "unchanged" for p in image_plan)
    return {
        "changed": changed,
        "path": path,
        "format": kind,
        "images": image_plan,
        "blobs": blob_plan,
        "manifests": manifest_plan,
        "bytes_imported": sum(p["size"] for p in blob_plan if p["action"] != "cached"),
        "diff": {"before": {"images": before}, "after": {"images": after}},
    }


def _plan_blobs(cache, path, blobs):
    """What happens to each blob the images need, by digest: already cached, or imported from its member."""
    blob_plan = []
    for digest in sorted(blobs):
        descriptor, info = blobs[digest]
        cached = cache.has_blob(digest, descriptor.size)
        if not cached and info is None:
            raise ArchiveError("archive %s lacks blob %s, which its images need and the cache does not hold"
                               % (path, digest), path=path)
        if not cached and info.size != descriptor.size:
            raise ArchiveError("archive %s: blob %s is %d bytes but its manifest says %d"
                               % (path, digest, info.size, descriptor.size), path=path)
        blob_plan.append({"digest": digest, "size": descriptor.size, "media_type": descriptor.media_type,
                          "action": "cached" if cached else "imported", "_info": info})
    return blob_plan


def _plan_manifests(cache, images):
    """(plan, {digest: Manifest}) for every manifest of the images, each once, in image order."""
    manifest_plan, manifests = [], {}
    for image in images:
        for manifest in image.manifests:
            if manifest.digest not in manifests:
                manifests[manifest.digest] = manifest
                manifest_plan.append({"digest": manifest.digest, "media_type": manifest.media_type,
                                      "size": manifest.size,
                                      "action": "cached" if cache.has_blob(manifest.digest, manifest.size) else "imported"})
    return manifest_plan, manifests


def _plan_images(entries, images):
    """What each image's name becomes in the cache's index.json: added, updated or unchanged."""
    existing = dict((_names.ref_name(e), e) for e in entries if _names.ref_name(e))
    image_plan = []
    for image in images:
        entry = {"mediaType": image.top.media_type, "digest": image.top.digest, "size": image.top.size,
                 "annotations": dict(image.annotations)}
        entry["annotations"][REF_NAME] = image.name
        previous = existing.get(image.name)
        action = "added" if previous is None else ("unchanged" if previous == entry else "updated")
        image_plan.append({"name": image.name, "digest": image.top.digest, "media_type": image.top.media_type,
                           "action": action, "previous_digest": previous.get("digest") if previous else None,
                           "_image": image})
    return image_plan


def _ingest_blobs(cache, path, archive, todo):
    """Copy each member into the cache, which verifies digest and size before the blob is kept: the
    engine's fetch from the archive as a source endpoint, one blob at a time in archive order (one
    pass over a gzip stream)."""
    todo = sorted(todo, key=lambda p: p["_info"].offset_data)
    steps = [_plan.BlobStep(p["digest"], p["size"], p["media_type"], _plan.DOWNLOADED, p["size"], ()) for p in todo]
    source = ArchiveSource(archive, dict((p["digest"], p["_info"]) for p in todo))
    try:
        Engine(1).fetch(steps, source, StoreEndpoint(cache))
    except DigestMismatchError as exc:
        member = source.members.get(exc.details.get("expected_digest"))
        raise ArchiveError("archive %s: the member %s does not match the digest it is named by: %s"
                           % (path, member.name if member else "?", exc.message), path=path)


class ArchiveSource:
    """An archive as the source endpoint of a copy into the cache: each blob streams from its member.

    A local file needs no retries; a member that cannot be read means the archive is damaged.
    """

    def __init__(self, archive, members):
        self.archive = archive
        self.members = members  # digest -> TarInfo

    def blob_exists(self, digest, size=None):
        return digest in self.members

    def opener(self, digest):
        info = self.members[digest]
        member = self.archive.opener(info)

        def open_at(offset):
            try:
                body, start, close = member(offset)
            except (tarfile.TarError, EOFError) as exc:
                raise _damaged(self.archive.path, info.name, exc)
            return _Damaged(body, self.archive.path, info.name), start, close

        return open_at, RetryBudget(0)


class _Damaged:
    """Chunks of a member; a tar that ends early or is corrupt becomes an ArchiveError naming the member."""

    def __init__(self, chunks, path, name):
        self._chunks = chunks
        self._path = path
        self._name = name

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._chunks)
        except (tarfile.TarError, EOFError) as exc:
            raise _damaged(self._path, self._name, exc)

    next = __next__  # Python 2


def _damaged(path, name, exc):
    return ArchiveError("archive %s is damaged or truncated (reading %s): %s" % (path, name, exc), path=path)


def _name_images(cache, image_plan):
    for item in image_plan:
        image = item["_image"]
        # Checked under the index lock: a prune racing this import cannot leave the name dangling.
        reached = [m.digest for m in image.manifests] + [b.digest for m in image.manifests for b in m.blobs()
                                                         if not _tree.is_foreign(b) or cache.has_blob(b.digest, b.size)]
        cache.set_ref(image.name, {"mediaType": image.top.media_type, "digest": image.top.digest,
                                   "size": image.top.size}, image.annotations, require=reached)
