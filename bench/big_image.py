"""An image of several GB written straight into an OCI layout, a chunk at a time.

tests/support/images.build_image holds every blob in memory, which is fine for the 1.4 GB image but
not for the 5 GB one of the memory row. This builds the same kind of image (uncompressed tar
layers, each one file of incompressible bytes, a generated config, an OCI manifest) while streaming
each layer to disk and hashing it as it goes. The bytes are an AES-CTR keystream (2 GB/s here,
against 150 MB/s for random.randbytes or os.urandom): deterministic and incompressible.
"""

import collections
import hashlib
import json
import os
import tarfile
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.support import images

CHUNK = 8 << 20
Layer = collections.namedtuple("Layer", "digest size diff_id")


def _write_layer(blob_dir, size, seed, name):
    """One uncompressed tar layer holding `name` of `size` bytes; returns its Layer."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    # The end of the file is padded to a 512-byte block, then two zero blocks end the archive.
    trailer = b"\0" * (-size % 512) + b"\0" * 1024
    stream = Cipher(algorithms.AES(hashlib.sha256(b"%d" % seed).digest()), modes.CTR(b"\0" * 16)).encryptor()
    zeros = bytes(CHUNK)
    digest = hashlib.sha256(header)
    partial = blob_dir / (".partial-%d" % seed)
    with open(partial, "wb") as out:
        out.write(header)
        left = size
        while left:
            piece = stream.update(zeros[:min(left, CHUNK)])
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
        digest.update(trailer)
        out.write(trailer)
        written = out.tell()
    hex_digest = digest.hexdigest()
    os.rename(partial, blob_dir / hex_digest)
    return Layer("sha256:" + hex_digest, written, "sha256:" + hex_digest)


def _write_blob(blob_dir, data):
    hex_digest = hashlib.sha256(data).hexdigest()
    (blob_dir / hex_digest).write_bytes(data)
    return "sha256:" + hex_digest


def write_big_layout(path, total_mb, layers, ref="bench"):
    """Write an OCI layout at `path` naming one image `ref` of `layers` layers, `total_mb` MiB in all.

    Returns the layout's path."""
    root = Path(path)
    blob_dir = root / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    per_layer = int(total_mb * images.MiB / layers)
    built = [_write_layer(blob_dir, per_layer, 5000 + n, "data/%d.bin" % n) for n in range(layers)]
    config = images.dump_json(images.image_config(built, {"architecture": "amd64", "os": "linux"},
                                                  labels={"bench": "%dMB" % total_mb}))
    manifest = images.dump_json({
        "schemaVersion": 2,
        "mediaType": images.OCI_MANIFEST,
        "config": {"mediaType": images.OCI_CONFIG, "digest": _write_blob(blob_dir, config), "size": len(config)},
        "layers": [{"mediaType": images.OCI_LAYER_TAR, "digest": layer.digest, "size": layer.size} for layer in built],
    }, images.MANIFEST_INDENT)
    entry = {"mediaType": images.OCI_MANIFEST, "digest": _write_blob(blob_dir, manifest), "size": len(manifest),
             "annotations": {images.REF_NAME_ANNOTATION: ref}}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": images.OCI_INDEX,
                                                 "manifests": [entry]}, indent=2))
    return root
