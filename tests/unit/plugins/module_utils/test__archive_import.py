# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _archive as archive
from ansible_collections.imagepusher.registry.plugins.module_utils import _archive_import as archive_import
from ansible_collections.imagepusher.registry.plugins.module_utils import _cache_admin as admin
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import REF_NAME, Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError, MissingBlobError
from ansible_collections.imagepusher.registry.plugins.module_utils._tree import entry_tree
from tests.support import archives, images
from tests.unit.plugins.module_utils.test__archive import MULTI, SINGLE, filled_cache


@pytest.fixture
def cache(tmp_path):
    return filled_cache(tmp_path)


def members(path):
    with tarfile.open(path) as tar:
        return dict((m.name, m) for m in tar.getmembers())


def names_in(cache):
    return dict((e["annotations"][REF_NAME], e["digest"]) for e in cache.entries())


# -- import: our own archives -----------------------------------------------------------------

def test_import_round_trip_check_real_again(cache, tmp_path):
    path = str(tmp_path / "out.tar")
    archive.export_images(cache, [SINGLE, MULTI], path)
    target = Cache(str(tmp_path / "other"))

    check = archive_import.import_archive(target, path, check_mode=True)
    assert check["changed"] and check["format"] == "oci"
    assert [(i["name"], i["action"]) for i in check["images"]] == [(MULTI, "added"), (SINGLE, "added")]
    assert set(b["action"] for b in check["blobs"]) == {"imported"}
    assert not os.path.exists(str(tmp_path / "other"))

    real = archive_import.import_archive(target, path)
    assert real["blobs"] == check["blobs"] and real["images"] == check["images"]
    assert real["bytes_imported"] == check["bytes_imported"] > 0
    assert names_in(target) == {SINGLE: images.oci_single().digest, MULTI: images.multi_arch_index().digest}
    assert target.get_ref(SINGLE) == cache.get_ref(SINGLE)  # annotations travel too
    for name in (SINGLE, MULTI):
        assert entry_tree(target, target.get_ref(name)).complete
    assert admin.verify(target)["bad"] == []
    assert real["diff"]["before"]["images"] == {} and set(real["diff"]["after"]["images"]) == {SINGLE, MULTI}

    again = archive_import.import_archive(target, path)
    assert not again["changed"] and again["bytes_imported"] == 0
    assert set(i["action"] for i in again["images"]) == {"unchanged"}
    assert set(b["action"] for b in again["blobs"] + again["manifests"]) == {"cached"}


def test_import_never_names_an_image_whose_blob_vanished(cache, tmp_path, monkeypatch):
    """A prune between the import's last blob and its set_ref (simulated: the blob is deleted just
    before naming) fails the import; index.json never names an image with a blob missing."""
    path = str(tmp_path / "out.tar")
    archive.export_images(cache, [SINGLE], path)
    target = Cache(str(tmp_path / "other"))
    layer = images.oci_single().layers[0].digest
    real_set_ref = Cache.set_ref

    def pruned_first(self, name, descriptor, annotations=None, require=()):
        os.unlink(self.blob_path(layer))  # what a concurrent prune of unnamed blobs would do
        return real_set_ref(self, name, descriptor, annotations, require)
    monkeypatch.setattr(Cache, "set_ref", pruned_first)
    with pytest.raises(MissingBlobError) as raised:
        archive_import.import_archive(target, path)
    assert layer in raised.value.message
    assert names_in(target) == {}


def test_import_moves_a_name_to_a_new_digest(cache, tmp_path):
    target = Cache(str(tmp_path / "other"))
    old = str(tmp_path / "old.tar")
    archives.raw_tar(old, archives.layout_members(images.docker_v2(), SINGLE))
    archive_import.import_archive(target, old)
    new = str(tmp_path / "new.tar")
    archive.export_images(cache, [SINGLE], new)
    result = archive_import.import_archive(target, new)
    [image] = result["images"]
    assert image["action"] == "updated" and image["previous_digest"] == images.docker_v2().digest


def test_import_gzip_compressed_archive(cache, tmp_path):
    path = str(tmp_path / "out.tar")
    archive.export_images(cache, [MULTI], path)
    with open(path, "rb") as src, gzip.open(path + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    target = Cache(str(tmp_path / "other"))
    result = archive_import.import_archive(target, path + ".gz")
    assert result["changed"] and names_in(target) == {MULTI: images.multi_arch_index().digest}
    assert admin.verify(target)["bad"] == []


def test_import_foreign_layout_names_verbatim_and_unnamed_by_digest(tmp_path):
    members = archives.layout_members(images.oci_single(), "v1")
    index = json.loads(members[1][1])
    index["manifests"].append(dict(images.docker_v2().descriptor()))
    members[1] = ("index.json", json.dumps(index).encode())
    content = dict(images.docker_v2().blobs)
    content[images.docker_v2().digest] = images.docker_v2().manifest
    members += [("blobs/sha256/" + d[7:], data) for d, data in content.items()]
    path = archives.raw_tar(tmp_path / "skopeo.tar", members)
    target = Cache(str(tmp_path / "c"))
    archive_import.import_archive(target, str(path))
    assert names_in(target) == {"v1": images.oci_single().digest,
                                images.docker_v2().digest: images.docker_v2().digest}


def test_import_keeps_a_blob_the_cache_has_when_the_archive_lacks_it(cache, tmp_path):
    img = images.oci_single()
    members = [m for m in archives.layout_members(img, "x:v1") if m[0] != "blobs/sha256/" + img.layers[0].digest[7:]]
    path = archives.raw_tar(tmp_path / "thin.tar", members)
    result = archive_import.import_archive(cache, str(path))
    assert [b["action"] for b in result["blobs"] if b["digest"] == img.layers[0].digest] == ["cached"]
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "empty")), str(path))
    assert "lacks blob %s" % img.layers[0].digest in raised.value.message


# -- import: docker save ------------------------------------------------------------------------

def docker_image():
    """Two images sharing a base layer, as `docker save a b` would carry them."""
    base = images.tar_layer({"etc/os-release": b"ID=test\n"})
    app = images.tar_layer({"app/run": b"#!/bin/sh\necho hi\n"})
    first = images.build_image([base, app], fmt="docker", cmd=["/app/run"])
    second = images.build_image([app, base], fmt="docker", cmd=["/bin/sh"])  # same layers, other chain
    return first, second


def test_import_legacy_docker_save(tmp_path):
    first, second = docker_image()
    path = archives.docker_save_legacy(tmp_path / "save.tar", {"app:v1": first, "registry.example.com/team/app:v2": second})
    assert any(m.issym() for m in members(path).values())  # the shared layer of the 2nd is a symlink
    target = Cache(str(tmp_path / "c"))
    result = archive_import.import_archive(target, str(path))
    assert result["format"] == "docker"
    names = names_in(target)
    assert set(names) == {"docker.io/library/app:v1", "registry.example.com/team/app:v2"}
    for name, img in (("docker.io/library/app:v1", first), ("registry.example.com/team/app:v2", second)):
        entry = target.get_ref(name)
        assert entry["mediaType"] == images.DOCKER_MANIFEST
        manifest = _manifest.parse(target.read_small_blob(entry["digest"], 1 << 20), entry["mediaType"])
        assert manifest.config.digest == img.config.digest and manifest.config.media_type == images.DOCKER_CONFIG
        assert [layer.digest for layer in manifest.layers] == [layer.diff_id for layer in img.layers]
        assert set(layer.media_type for layer in manifest.layers) == {archive_import.DOCKER_LAYER_TAR}
        assert manifest.raw.startswith(b'{\n   "schemaVersion": 2')  # Docker's 3-space indent
        assert entry_tree(target, entry).complete
    assert admin.verify(target)["bad"] == []
    # the manifest we build is always the same: a second import changes nothing
    again = archive_import.import_archive(target, str(path))
    assert not again["changed"] and names_in(target) == names


def test_import_legacy_untagged_is_named_by_digest(tmp_path):
    first, _second = docker_image()
    path = archives.docker_save_legacy(tmp_path / "save.tar", {None: first})
    target = Cache(str(tmp_path / "c"))
    [image] = archive_import.import_archive(target, str(path))["images"]
    assert image["name"] == image["digest"]


def test_import_docker_25_prefers_the_oci_layout(tmp_path):
    img = images.build_image([images.tar_layer({"a": b"a\n"}, compressed=False)])
    path = archives.docker_save_oci(tmp_path / "save.tar", {"busybox:latest": img})
    target = Cache(str(tmp_path / "c"))
    result = archive_import.import_archive(target, str(path))
    assert result["format"] == "oci"
    assert names_in(target) == {"docker.io/library/busybox:latest": img.digest}  # the digest is preserved


def test_import_legacy_layer_that_lies_about_its_digest(tmp_path):
    first, _second = docker_image()
    path = archives.docker_save_legacy(tmp_path / "save.tar", {"app:v1": first})
    config = json.loads(first.config.data)
    config["rootfs"]["diff_ids"][0] = "sha256:" + "3" * 64
    raw = images.dump_json(config)
    rebuilt = []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                listing = json.loads(data)
                listing[0]["Config"] = "patched.json"
                data = json.dumps(listing).encode()
            rebuilt.append((member.name, data if data is not None else {"symlink": member.linkname}))
    rebuilt = [m for m in rebuilt if not isinstance(m[1], dict) or m[1]["symlink"]]
    rebuilt.append(("patched.json", raw))
    bad = archives.raw_tar(tmp_path / "bad.tar", [m for m in rebuilt if isinstance(m[1], bytes)])
    target = Cache(str(tmp_path / "c"))
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(target, str(bad))
    assert "does not match" in raised.value.message
    assert not target.has_blob("sha256:" + "3" * 64) and target.entries() == []


# -- import: hostile and broken archives ----------------------------------------------------------

def layout(img=None, name="x:v1"):
    return archives.layout_members(img or images.oci_single(), name)


@pytest.mark.parametrize("bad_member, words", [
    (("../evil", b"x"), "climbs out"),
    (("blobs/../../evil", b"x"), "climbs out"),
    (("/etc/evil", b"x"), "absolute"),
])
def test_import_refuses_unsafe_member_names(tmp_path, bad_member, words):
    path = archives.raw_tar(tmp_path / "bad.tar", layout() + [bad_member])
    target = Cache(str(tmp_path / "c"))
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(target, str(path))
    assert words in raised.value.message
    assert not os.path.exists(str(tmp_path / "c"))
    assert not os.path.exists("/etc/evil") and not (tmp_path.parent / "evil").exists()


def test_import_refuses_a_link_out_of_the_archive(tmp_path):
    img = images.oci_single()
    name = "blobs/sha256/" + img.layers[0].digest[7:]
    members = [m for m in layout(img) if m[0] != name] + [(name, {"symlink": "../../../../etc/passwd"})]
    path = archives.raw_tar(tmp_path / "bad.tar", members)
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert "climbs out" in raised.value.message


def test_import_refuses_a_tampered_blob(tmp_path):
    img = images.oci_single()
    name = "blobs/sha256/" + img.layers[1].digest[7:]
    members = [(n, (d[:-1] + bytes([d[-1] ^ 1])) if n == name else d) for n, d in layout(img)]
    path = archives.raw_tar(tmp_path / "bad.tar", members)
    target = Cache(str(tmp_path / "c"))
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(target, str(path))
    assert img.layers[1].digest in raised.value.message
    assert not target.has_blob(img.layers[1].digest) and target.entries() == []
    assert os.listdir(os.path.join(target.root, ".imagepusher", "ingest")) == []


def test_import_refuses_a_tampered_manifest(tmp_path):
    img = images.oci_single()
    name = "blobs/sha256/" + img.digest[7:]
    members = [(n, d.replace(b'"schemaVersion": 2', b'"schemaVersion":  2') if n == name else d) for n, d in layout(img)]
    path = archives.raw_tar(tmp_path / "bad.tar", members)
    with pytest.raises(CacheError):
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))


@pytest.mark.parametrize("content, words", [
    (b"this is not a tar file at all" * 100, "not a tar archive"),
    (None, "neither an OCI archive"),
])
def test_import_refuses_what_is_not_an_image_archive(tmp_path, content, words):
    path = tmp_path / "x.tar"
    if content is None:
        archives.raw_tar(path, [("hello.txt", b"hi")])
    else:
        path.write_bytes(content)
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert words in raised.value.message


def test_import_refuses_duplicates_and_missing_files(tmp_path):
    path = archives.raw_tar(tmp_path / "dup.tar", layout() + [("index.json", b"{}")])
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert "twice" in raised.value.message
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(tmp_path / "nothing.tar"))
    assert "does not exist" in raised.value.message


# -- import: docker save tarballs that cannot be converted -------------------------------------

def docker_listing_members(config, layers, listing_item=None):
    """A one-image docker save tarball: config.json, the layer members, manifest.json."""
    item = listing_item or {"Config": "config.json", "RepoTags": ["app:v1"], "Layers": [name for name, _d in layers]}
    return [("config.json", config)] + list(layers) + [("manifest.json", json.dumps([item]).encode())]


def test_import_legacy_refuses_what_it_cannot_convert(tmp_path):
    layer = gzip.compress(b"not a tar, but gzip magic")
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}}).encode()
    cases = [
        (docker_listing_members(config, [("l/layer.tar", layer)]),
         "layer l/layer.tar is compressed, so its digest is not known from the config"),
        (docker_listing_members(b"{}", [("l/layer.tar", b"x")]), "config config.json has no rootfs.diff_ids"),
        (docker_listing_members(config, []), "lists 0 layers but its config has 1 diff_ids"),
        (docker_listing_members(config, [("l/layer.tar", b"x")], {"Config": "config.json", "Layers": [7]}),
         "a layer name is not a string"),
        (docker_listing_members(config, [], {"Config": "config.json", "Layers": ["gone/layer.tar"]}),
         "layer gone/layer.tar is not in the archive"),
        (docker_listing_members(config, [], {"Config": "config.json"}), "needs 'Config' (a file name) and 'Layers'"),
    ]
    for number, (members_, words) in enumerate(cases):
        path = archives.raw_tar(tmp_path / ("bad%d.tar" % number), members_)
        target = Cache(str(tmp_path / "c"))
        with pytest.raises(archive.ArchiveError) as raised:
            archive_import.import_archive(target, str(path))
        assert "manifest.json[0]" in raised.value.message and words in raised.value.message, raised.value.message
        assert not os.path.exists(target.root)


def test_import_legacy_layer_named_by_its_digest_keeps_its_compression(tmp_path):
    layer = gzip.compress(b"layer bytes")
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}}).encode()
    name = "blobs/sha256/" + digest[7:]
    path = archives.raw_tar(tmp_path / "save.tar", docker_listing_members(config, [(name, layer)]))
    target = Cache(str(tmp_path / "c"))
    result = archive_import.import_archive(target, str(path))
    assert result["format"] == "docker" and [i["name"] for i in result["images"]] == ["docker.io/library/app:v1"]
    layers = [b for b in result["blobs"] if b["digest"] == digest]
    assert layers == [{"digest": digest, "size": len(layer), "media_type": images.DOCKER_LAYER_GZIP,
                       "action": "imported"}]
    assert target.has_blob(digest, len(layer))


def test_import_names_the_member_that_does_not_match_its_digest(tmp_path):
    img = images.oci_single()
    name = "blobs/sha256/" + img.layers[0].digest[7:]
    members = [(n, (d[:-1] + bytes([d[-1] ^ 1])) if n == name else d) for n, d in layout(img)]
    path = archives.raw_tar(tmp_path / "bad.tar", members)
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert "the member %s does not match the digest it is named by" % name in raised.value.message


def test_a_member_that_cannot_be_read_is_a_damaged_archive(tmp_path):
    """The archive as a source endpoint: a tar error while a member streams names the archive and the member."""

    class Unreadable:
        path = "/tmp/x.tar"

        def opener(self, info):
            def open_at(offset):
                def chunks():
                    yield b"abc"
                    raise tarfile.ReadError("unexpected end of data")
                return chunks(), offset, lambda: None
            return open_at

    info = tarfile.TarInfo("blobs/sha256/" + "a" * 64)
    source = archive_import.ArchiveSource(Unreadable(), {"sha256:" + "a" * 64: info})
    assert source.blob_exists("sha256:" + "a" * 64) and not source.blob_exists("sha256:" + "b" * 64)
    open_at, budget = source.opener("sha256:" + "a" * 64)
    assert budget.remaining == 0  # a local file: nothing to retry
    body, start, _close = open_at(0)
    assert start == 0 and next(body) == b"abc"
    with pytest.raises(archive.ArchiveError) as raised:
        next(body)
    assert raised.value.message == ("archive /tmp/x.tar is damaged or truncated (reading %s): unexpected end of data"
                                    % info.name)


# -- import limits -------------------------------------------------------------------------------

def cache_untouched(tmp_path):
    return not os.path.exists(str(tmp_path / "c"))


def test_import_refuses_a_gzip_bomb_before_writing_anything(tmp_path):
    path = archives.gzip_bomb(tmp_path / "bomb.tar.gz", images.oci_single(), "reg.test/x:v1", 64 * 1024 * 1024)
    assert path.stat().st_size < 1024 * 1024
    for check_mode in (True, False):
        with pytest.raises(archive.ArchiveError) as raised:
            archive_import.import_archive(Cache(str(tmp_path / "c")), str(path), check_mode=check_mode)
        assert "decompresses to more than" in raised.value.message and str(path) in raised.value.message
        assert cache_untouched(tmp_path)


def test_import_accepts_small_files_no_image_uses(tmp_path):
    path = archives.raw_tar(tmp_path / "ok.tar", layout() + [("README", b"x" * 4096), ("repositories", b"{}")])
    result = archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert [i["name"] for i in result["images"]] == ["x:v1"]


def test_the_stream_stops_at_its_limit_while_ingesting(tmp_path, monkeypatch):
    """The limit also holds while blobs stream: a tar that reads further than it was bound to is refused."""
    path = archives.raw_tar(tmp_path / "ok.tar", layout())
    monkeypatch.setattr(archive_import, "EXTRA_LIMIT", -10 ** 9)  # every archive is then too large
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert "decompresses to more than" in raised.value.message


def test_import_refuses_too_many_members(tmp_path, monkeypatch):
    monkeypatch.setattr(archive_import, "MAX_MEMBERS", 50)
    path = archives.many_members(tmp_path / "many.tar", images.oci_single(), "reg.test/x:v1", 60)
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert "more than 50 members" in raised.value.message
    assert cache_untouched(tmp_path)
    fine = archives.many_members(tmp_path / "fine.tar", images.oci_single(), "reg.test/x:v1", 10)
    assert archive_import.import_archive(Cache(str(tmp_path / "c")), str(fine))["changed"]


@pytest.mark.parametrize("first", [True, False])
def test_import_refuses_an_oversized_tar_header(tmp_path, monkeypatch, first):
    monkeypatch.setattr(archive_import, "READ_LIMIT", 8192)
    path = tmp_path / "pax.tar"
    with tarfile.open(str(path), "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [] if first else layout():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("x")
        info.pax_headers = {"comment": "y" * 20000}
        tar.addfile(info, None)
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert "more than the 8192 allowed" in raised.value.message


@pytest.mark.parametrize("bad_name", ["../../../etc/passwd\nX", "Reg.test/UPPER:v1", "x:v1 ; rm", ""])
def test_import_refuses_a_bad_image_name(tmp_path, bad_name):
    img = images.oci_single()
    members = archives.layout_members(img, "placeholder")
    members = [(n, d.replace(b'"placeholder"', json.dumps(bad_name).encode()) if n == "index.json" else d)
               for n, d in members]
    path = archives.raw_tar(tmp_path / "bad.tar", members)
    if not bad_name:  # an empty name is no name: the image is named by its digest
        assert archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))["images"][0]["name"] == img.digest
        return
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert "not a valid image reference" in raised.value.message and repr(bad_name) in raised.value.message
    assert cache_untouched(tmp_path)


def test_import_refuses_a_bad_repo_tag_in_a_docker_save(tmp_path):
    path = archives.docker_save_legacy(tmp_path / "save.tar", {"../evil:v1": docker_image()[0]})
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert "'../evil:v1'" in raised.value.message


@pytest.mark.parametrize("index", [b"[]", b"\"x\"", b"{\"manifests\": 3}"])
def test_import_refuses_a_malformed_archive_index(tmp_path, index):
    members = [(n, index if n == "index.json" else d) for n, d in layout()]
    path = archives.raw_tar(tmp_path / "bad.tar", members)
    with pytest.raises(archive.ArchiveError) as raised:
        archive_import.import_archive(Cache(str(tmp_path / "c")), str(path))
    assert "index.json has no 'manifests' list" in raised.value.message


def test_import_into_a_cache_with_a_malformed_index_json_changes_nothing(tmp_path):
    target = Cache(str(tmp_path / "c")).ensure()
    index = os.path.join(target.root, "index.json")
    with open(index, "wb") as handle:
        handle.write(b"[1, 2]")
    path = archives.raw_tar(tmp_path / "ok.tar", layout())
    with pytest.raises(CacheError) as raised:
        archive_import.import_archive(target, str(path))
    assert "not an OCI image index" in raised.value.message
    assert open(index, "rb").read() == b"[1, 2]"
