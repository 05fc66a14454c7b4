"""Build container images in memory, deterministically, with no network and no engine.

Same call, same bytes: tar entries have fixed mtime/uid/gid/names, gzip has mtime=0, random
payloads come from a seeded PRNG, JSON is serialized with a fixed key order. (gzip bytes
depend on the zlib build, so compare digests within one machine, not against constants.)

Manifests and indexes are serialized with ``indent=3``: no client would produce that layout
by re-serializing, so a client that does not keep the bytes it received changes the digest
and fails the tests that compare digests.

    img = oci_single()            # Image: .manifest (bytes), .digest, .config, .layers, .blobs
    idx = multi_arch_index()      # Index: .manifest, .digest, .images (one Image per platform)
    write_oci_layout(tmp_path / "layout", {"127.0.0.1:5000/test/app:v1": img})

Build your own:

    layer = tar_layer({"etc/hello.txt": b"hi\\n"})                  # gzip, OCI media type
    big = random_layer(mib=8, seed=1)                               # uncompressed OCI tar
    img = build_image([layer, big], platform={"os": "linux", "architecture": "arm64"})
    idx = build_index([img, ...])
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024

# -- media types --------------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# format -> media types used for it
FORMATS = {
    "oci": {"manifest": OCI_MANIFEST, "index": OCI_INDEX, "config": OCI_CONFIG,
            "gzip": OCI_LAYER_GZIP, "tar": OCI_LAYER_TAR},
    "docker": {"manifest": DOCKER_MANIFEST, "index": DOCKER_LIST, "config": DOCKER_CONFIG,
               "gzip": DOCKER_LAYER_GZIP, "tar": None},  # Docker v2 has no plain-tar type
}

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
FIXED_MTIME = 1704067200  # 2024-01-01T00:00:00Z
CREATED = "2024-01-01T00:00:00Z"
MANIFEST_INDENT = 3


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dump_json(obj, indent: int | None = None) -> bytes:
    """Deterministic JSON bytes (insertion key order kept; compact unless indented)."""
    if indent is None:
        return json.dumps(obj, separators=(",", ":")).encode()
    return json.dumps(obj, indent=indent).encode()


# -- value objects --------------------------------------------------------------------------
@dataclass(frozen=True)
class Blob:
    """A config or layer blob. ``diff_id`` is the digest of the uncompressed tar (layers)."""

    data: bytes = field(repr=False)
    media_type: str
    diff_id: str | None = None

    @functools.cached_property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Image:
    """One image manifest with its blobs; ``manifest`` are the exact bytes to push/serve."""

    manifest: bytes = field(repr=False)
    media_type: str
    config: Blob
    layers: tuple[Blob, ...]
    platform: dict

    @functools.cached_property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        return len(self.manifest)

    @property
    def blobs(self) -> dict[str, bytes]:
        """digest -> bytes of the config and every layer (no manifests)."""
        out = {self.config.digest: self.config.data}
        out.update((layer.digest, layer.data) for layer in self.layers)
        return out

    @property
    def manifests(self) -> dict[str, tuple[str, bytes]]:
        """digest -> (media type, bytes) of every manifest in this tree (just this one)."""
        return {self.digest: (self.media_type, self.manifest)}

    @property
    def images(self) -> tuple["Image", ...]:
        return (self,)

    def descriptor(self, with_platform: bool = False) -> dict:
        desc = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if with_platform:
            desc["platform"] = dict(self.platform)
        return desc

    @property
    def parsed(self) -> dict:
        return json.loads(self.manifest)


@dataclass(frozen=True)
class Index:
    """An OCI image index or Docker manifest list and its child images."""

    manifest: bytes = field(repr=False)
    media_type: str
    images: tuple[Image, ...]

    @functools.cached_property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        return len(self.manifest)

    @property
    def blobs(self) -> dict[str, bytes]:
        """digest -> bytes of every config and layer of every child (shared ones once)."""
        out: dict[str, bytes] = {}
        for img in self.images:
            out.update(img.blobs)
        return out

    @property
    def manifests(self) -> dict[str, tuple[str, bytes]]:
        """digest -> (media type, bytes) for the index and each child manifest."""
        out = {self.digest: (self.media_type, self.manifest)}
        for img in self.images:
            out.update(img.manifests)
        return out

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    @property
    def parsed(self) -> dict:
        return json.loads(self.manifest)

    def image_for(self, architecture: str, os: str = "linux", variant: str | None = None) -> Image:
        for img in self.images:
            p = img.platform
            if p["architecture"] == architecture and p["os"] == os and (
                    variant is None or p.get("variant") == variant):
                return img
        raise KeyError(f"no image for {os}/{architecture}/{variant}")


# -- layers -----------------------------------------------------------------------------
def tar_bytes(files: dict[str, bytes]) -> bytes:
    """A deterministic tar of regular files (sorted names, fixed owner/mode/mtime)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size = len(data)
            info.mtime = FIXED_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_layer(files: dict[str, bytes], *, compressed: bool = True, fmt: str = "oci") -> Blob:
    """A layer blob from a {path: content} dict; gzip (mtime=0) unless compressed=False."""
    tar = tar_bytes(files)
    types = FORMATS[fmt]
    if not compressed:
        if types["tar"] is None:
            raise ValueError(f"{fmt} format has no uncompressed layer media type")
        return Blob(tar, types["tar"], diff_id=sha256_digest(tar))
    # compresslevel fixed so the bytes do not depend on a default that could change
    return Blob(gzip.compress(tar, compresslevel=6, mtime=0), types["gzip"],
                diff_id=sha256_digest(tar))


def random_layer(mib: float, seed: int, *, compressed: bool = False, fmt: str = "oci",
                 name: str = "data/random.bin") -> Blob:
    """A layer holding one file of ``mib`` MiB from random.Random(seed): incompressible,
    so its blob size really is ~mib MiB. Uncompressed tar by default (gzip would only
    burn CPU without shrinking it)."""
    payload = random.Random(seed).randbytes(int(mib * MiB))
    return tar_layer({name: payload}, compressed=compressed, fmt=fmt)


# -- images -------------------------------------------------------------------------------
def image_config(layers, platform: dict, *, env=None, cmd=None, labels=None,
                 created: str = CREATED) -> dict:
    """A valid image config (OCI image-spec config / Docker image JSON share this shape)."""
    cfg = {"created": created, "architecture": platform["architecture"], "os": platform["os"]}
    if platform.get("variant"):
        cfg["variant"] = platform["variant"]
    cfg["config"] = {
        "Env": list(env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
        "Cmd": list(cmd or ["/bin/sh"]),
        "Labels": dict(labels or {}),
    }
    cfg["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
    cfg["history"] = [{"created": created, "created_by": f"imagepusher tests layer {i}"}
                      for i in range(len(layers))]
    return cfg


def build_image(layers, *, fmt: str = "oci", platform: dict | None = None, env=None,
                cmd=None, labels=None, annotations: dict | None = None) -> Image:
    """An image manifest over ``layers`` with a generated config, in 'oci' or 'docker' format."""
    types = FORMATS[fmt]
    platform = dict(platform or {"architecture": "amd64", "os": "linux"})
    layers = tuple(layers)
    for layer in layers:
        if layer.diff_id is None:
            raise ValueError("layers need a diff_id (build them with tar_layer/random_layer)")
    config = Blob(dump_json(image_config(layers, platform, env=env, cmd=cmd, labels=labels)),
                  types["config"])
    manifest = {
        "schemaVersion": 2,
        "mediaType": types["manifest"],  # required for Docker v2, recommended for OCI
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if annotations:
        if fmt != "oci":
            raise ValueError("annotations are an OCI feature")
        manifest["annotations"] = dict(annotations)
    return Image(dump_json(manifest, MANIFEST_INDENT), types["manifest"], config, layers,
                 platform)


def build_index(images, *, fmt: str = "oci", annotations: dict | None = None) -> Index:
    """An OCI index / Docker manifest list over ``images`` (each with its platform)."""
    types = FORMATS[fmt]
    images = tuple(images)
    index = {
        "schemaVersion": 2,
        "mediaType": types["index"],
        "manifests": [img.descriptor(with_platform=True) for img in images],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    return Index(dump_json(index, MANIFEST_INDENT), types["index"], images)


# -- canned samples (cached: same objects, same bytes, built once per process) ----------------
def _files(tag: str, n: int = 2) -> dict[str, bytes]:
    return {f"imagepusher/{tag}/file{i}.txt": f"{tag} file {i}\n".encode() * 64
            for i in range(n)}


@functools.lru_cache(maxsize=None)
def oci_single() -> Image:
    """OCI image, linux/amd64, two small gzip layers."""
    return build_image(
        [tar_layer(_files("oci-single-base")), tar_layer(_files("oci-single-app"))],
        labels={"org.opencontainers.image.title": "oci-single"},
        annotations={"org.opencontainers.image.description": "imagepusher test image"},
    )


@functools.lru_cache(maxsize=None)
def docker_v2() -> Image:
    """Docker v2 schema 2 image, linux/amd64, two small gzip layers, Docker media types."""
    return build_image(
        [tar_layer(_files("docker-base"), fmt="docker"),
         tar_layer(_files("docker-app"), fmt="docker")],
        fmt="docker", cmd=["/bin/true"], labels={"sample": "docker-v2"},
    )


MULTI_PLATFORMS = (
    {"architecture": "amd64", "os": "linux"},
    {"architecture": "arm64", "os": "linux", "variant": "v8"},
    {"architecture": "s390x", "os": "linux"},
)


@functools.lru_cache(maxsize=None)
def multi_arch_index() -> Index:
    """OCI index of 3 platforms (linux/amd64, linux/arm64/v8, linux/s390x); every image has
    one layer shared by all three plus one layer of its own."""
    shared = tar_layer(_files("multi-shared", 3))
    images = []
    for p in MULTI_PLATFORMS:
        arch = p["architecture"] + p.get("variant", "")
        own = tar_layer({f"imagepusher/multi/{arch}.txt": f"built for {arch}\n".encode()})
        images.append(build_image([shared, own], platform=p, labels={"arch": arch}))
    return build_index(images)


@functools.lru_cache(maxsize=None)
def large_image(mib: int = 48) -> Image:
    """OCI image with one big incompressible uncompressed layer (``mib`` MiB) + one small."""
    return build_image([random_layer(mib, seed=mib), tar_layer(_files("large-small"))],
                       labels={"sample": f"large-{mib}mib"})


# -- OCI image layout ---------------------------------------------------------------------------
def write_oci_layout(path, refs: dict) -> Path:
    """Write an OCI image layout at ``path`` holding ``{ref_name: Image | Index}``.

    ``index.json`` names each entry with the org.opencontainers.image.ref.name annotation
    (e.g. "127.0.0.1:5000/test/app:v1" or just "v1"); blobs go to blobs/sha256/<hex>.
    An existing layout at ``path`` is overwritten (index.json is replaced, blobs added).
    """
    root = Path(path)
    blob_dir = root / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entries = []
    for ref, obj in refs.items():
        content = dict(obj.blobs)
        content.update((d, data) for d, (_media_type, data) in obj.manifests.items())
        for digest, data in content.items():
            target = blob_dir / digest.split(":", 1)[1]
            if not target.exists():
                target.write_bytes(data)
        desc = obj.descriptor()
        desc["annotations"] = {REF_NAME_ANNOTATION: ref}
        entries.append(desc)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    (root / "index.json").write_text(json.dumps(index, indent=2))
    return root
