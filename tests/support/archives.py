"""Write image archives the way other tools do, with no engine: ``docker save`` tarballs
(the classic layout and the Docker 25+ one that carries an OCI layout) and hand-made
hostile tars, for the image_cache import tests.

    docker_save_legacy(path, {"app:v1": img})    # manifest.json + <id>/layer.tar + <hex>.json
    docker_save_oci(path, {"app:v1": img})       # Docker 25+: OCI layout + manifest.json
    raw_tar(path, [("../evil", b"x")])           # any members, names taken verbatim

Layers are stored uncompressed, as docker save does; build the images with
``images.build_image([...], fmt=...)`` from gzip or plain layers, this module unpacks them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from tests.support import images

CONTAINERD_IMAGE_NAME = "io.containerd.image.name"


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *, link: str | None = None,
         symlink: str | None = None, directory: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = images.FIXED_MTIME
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    elif symlink is not None:
        info.type, info.linkname = tarfile.SYMTYPE, symlink
        tar.addfile(info)
    elif link is not None:
        info.type, info.linkname = tarfile.LNKTYPE, link
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


def uncompressed(layer: images.Blob) -> bytes:
    return gzip.decompress(layer.data) if layer.data[:2] == b"\x1f\x8b" else layer.data


def docker_save_legacy(path, tagged: dict, *, symlink_shared: bool = True) -> Path:
    """A classic ``docker save`` tarball of ``{repo_tag or None: Image}`` (None: untagged).

    Each layer goes to ``<v1 id>/layer.tar`` (uncompressed). A layer already written for an
    earlier image becomes a symlink ``../<first id>/layer.tar``, as Docker does."""
    path = Path(path)
    listing, repositories, first_for_diff, names_written = [], {}, {}, set()
    with tarfile.open(path, "w") as tar:
        for repo_tag, img in tagged.items():
            layer_names = []
            parent = ""
            for layer in img.layers:
                v1_id = hashlib.sha256((parent + layer.diff_id).encode()).hexdigest()
                name = f"{v1_id}/layer.tar"
                if name not in names_written:
                    names_written.add(name)
                    _add(tar, v1_id, directory=True)
                    _add(tar, f"{v1_id}/VERSION", b"1.0")
                    _add(tar, f"{v1_id}/json", json.dumps({"id": v1_id}).encode())
                    if symlink_shared and layer.diff_id in first_for_diff:
                        _add(tar, name, symlink=f"../{first_for_diff[layer.diff_id]}")
                    else:
                        _add(tar, name, uncompressed(layer))
                        first_for_diff.setdefault(layer.diff_id, name)
                layer_names.append(name)
                parent = v1_id
            config_name = img.config.digest.split(":", 1)[1] + ".json"
            if config_name not in [m.name for m in tar.getmembers()]:
                _add(tar, config_name, img.config.data)
            listing.append({"Config": config_name, "RepoTags": [repo_tag] if repo_tag else None,
                            "Layers": layer_names})
            if repo_tag:
                repo, tag = repo_tag.rsplit(":", 1)
                repositories.setdefault(repo, {})[tag] = parent
        _add(tar, "manifest.json", json.dumps(listing).encode())
        _add(tar, "repositories", json.dumps(repositories).encode())
    return path


def docker_save_oci(path, tagged: dict) -> Path:
    """A Docker 25+ ``docker save`` tarball: an OCI layout whose index names images with
    io.containerd.image.name (ref.name is only the tag), plus the classic manifest.json."""
    path = Path(path)
    entries, listing, seen = [], [], set()
    with tarfile.open(path, "w") as tar:
        _add(tar, "blobs", directory=True)
        _add(tar, "blobs/sha256", directory=True)
        for repo_tag, img in tagged.items():
            content = dict(img.blobs)
            content[img.digest] = img.manifest
            for digest, data in content.items():
                if digest not in seen:
                    seen.add(digest)
                    _add(tar, "blobs/sha256/" + digest.split(":", 1)[1], data)
            full = repo_tag if "/" in repo_tag.split(":")[0] else f"docker.io/library/{repo_tag}"
            entries.append({"mediaType": img.media_type, "digest": img.digest, "size": img.size,
                            "annotations": {CONTAINERD_IMAGE_NAME: full,
                                            images.REF_NAME_ANNOTATION: repo_tag.rsplit(":", 1)[1]}})
            listing.append({"Config": "blobs/sha256/" + img.config.digest.split(":", 1)[1],
                            "RepoTags": [repo_tag],
                            "Layers": ["blobs/sha256/" + layer.digest.split(":", 1)[1] for layer in img.layers]})
        _add(tar, "index.json", json.dumps({"schemaVersion": 2, "mediaType": images.OCI_INDEX,
                                            "manifests": entries}).encode())
        _add(tar, "manifest.json", json.dumps(listing).encode())
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "repositories", b"{}")
    return path


def raw_tar(path, members, *, mode: str = "w") -> Path:
    """A tar of ``(name, bytes)`` / ``(name, {"symlink": target})`` / ``(name, {"link": target})``
    with names exactly as given (no sanitizing: for hostile-archive tests)."""
    path = Path(path)
    with tarfile.open(path, mode) as tar:
        for name, content in members:
            if isinstance(content, dict):
                _add(tar, name, symlink=content.get("symlink"), link=content.get("link"))
            else:
                _add(tar, name, content)
    return path


def layout_members(obj, ref_name: str) -> list:
    """(name, bytes) members of an OCI layout holding ``obj`` under ``ref_name``."""
    content = dict(obj.blobs)
    content.update((d, data) for d, (_t, data) in obj.manifests.items())
    desc = obj.descriptor()
    desc["annotations"] = {images.REF_NAME_ANNOTATION: ref_name}
    index = {"schemaVersion": 2, "mediaType": images.OCI_INDEX, "manifests": [desc]}
    members = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", json.dumps(index).encode())]
    members += [("blobs/sha256/" + d.split(":", 1)[1], data) for d, data in sorted(content.items())]
    return members


class _Zeros:
    """`size` zero bytes as a file object for tarfile.addfile, never held in memory whole."""

    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def gzip_bomb(path, obj, ref_name: str, zeros: int) -> Path:
    """A valid OCI archive (.tar.gz) of ``obj`` plus one member no image uses holding ``zeros``
    zero bytes: a few KB on disk per 10 MB decompressed."""
    path = Path(path)
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        for name, data in layout_members(obj, ref_name):
            _add(tar, name, data)
        info = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
        info.size, info.mode, info.mtime = zeros, 0o644, images.FIXED_MTIME
        tar.addfile(info, _Zeros(zeros))
    return path


def many_members(path, obj, ref_name: str, count: int) -> Path:
    """A valid OCI archive of ``obj`` padded with ``count`` empty members."""
    path = Path(path)
    with tarfile.open(path, "w") as tar:
        for name, data in layout_members(obj, ref_name):
            _add(tar, name, data)
        for number in range(count):
            _add(tar, "pad/%d" % number, b"")
    return path
