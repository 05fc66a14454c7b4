# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import hashlib
import json
import os
import tarfile

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _archive as archive
from ansible_collections.imagepusher.registry.plugins.module_utils import _cache_admin as admin
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import REF_NAME, SOURCE_DIGEST, Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError, NotCachedError
from tests.support import images

SINGLE = "127.0.0.1:5000/test/oci-single:v1"
MULTI = "127.0.0.1:5000/test/multi:v1"
DOCKER = "127.0.0.1:5000/test/docker-v2:v1"


def filled_cache(tmp_path):
    """A cache holding three images, one of them with its source digest recorded (as a pull leaves it)."""
    root = images.write_oci_layout(tmp_path / "cache", {SINGLE: images.oci_single(), MULTI: images.multi_arch_index(),
                                                        DOCKER: images.docker_v2()})
    cache = Cache(str(root)).ensure()
    entry = cache.get_ref(SINGLE)
    cache.set_ref(SINGLE, dict((k, entry[k]) for k in ("mediaType", "digest", "size")),
                  {SOURCE_DIGEST: images.oci_single().digest})
    return cache


@pytest.fixture
def cache(tmp_path):
    return filled_cache(tmp_path)


def sha256_file(path):
    return "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()


def members(path):
    with tarfile.open(path) as tar:
        return dict((m.name, m) for m in tar.getmembers())


def tar_json(path, name):
    with tarfile.open(path) as tar:
        return json.loads(tar.extractfile(name).read())


# -- export ---------------------------------------------------------------------------------

def test_export_writes_an_oci_layout_of_just_those_images(cache, tmp_path):
    path = str(tmp_path / "out.tar")
    result = archive.export_images(cache, [SINGLE, MULTI], path)
    assert result["changed"] and result["path"] == path
    assert [i["name"] for i in result["images"]] == [MULTI, SINGLE]  # sorted by name
    found = members(path)
    assert list(found)[:5] == ["oci-layout", "index.json", "blobs", "blobs/sha256", list(found)[4]]
    expected = set(images.oci_single().blobs) | set(images.oci_single().manifests)
    expected |= set(images.multi_arch_index().blobs) | set(images.multi_arch_index().manifests)
    assert set(n for n in found if n.startswith("blobs/sha256/")) == set("blobs/sha256/" + d[7:] for d in expected)
    assert result["blobs"] == len(expected)
    index = tar_json(path, "index.json")
    assert [e["annotations"][REF_NAME] for e in index["manifests"]] == [MULTI, SINGLE]
    assert index["manifests"][1]["annotations"][SOURCE_DIGEST] == images.oci_single().digest
    with tarfile.open(path) as tar:
        for name, member in found.items():
            assert (member.uid, member.gid, member.mtime) == (0, 0, archive.ARCHIVE_MTIME)
            if name.startswith("blobs/sha256/"):
                assert "sha256:" + hashlib.sha256(tar.extractfile(member).read()).hexdigest() == "sha256:" + name[13:]
    assert result["size"] == os.path.getsize(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert os.listdir(str(tmp_path)) == ["cache", "out.tar"]  # no temp file left


def test_export_check_then_idempotent_then_forced_is_reproducible(cache, tmp_path):
    path = str(tmp_path / "out.tar")
    check = archive.export_images(cache, [MULTI], path, check_mode=True)
    assert check["changed"] and not os.path.exists(path)
    real = archive.export_images(cache, [MULTI], path)
    assert check["size"] == real["size"]  # check mode predicted the archive's size
    first = (sha256_file(path), os.stat(path).st_mtime_ns, os.stat(path).st_ino)
    again = archive.export_images(cache, [MULTI], path)
    assert not again["changed"] and (sha256_file(path), os.stat(path).st_mtime_ns, os.stat(path).st_ino) == first
    assert again["diff"]["before"]["images"] == {MULTI: images.multi_arch_index().digest}
    check_again = archive.export_images(cache, [MULTI], path, check_mode=True)
    assert not check_again["changed"]
    forced = archive.export_images(cache, [MULTI], path, force=True)
    assert forced["changed"] and sha256_file(path) == first[0] and os.stat(path).st_ino != first[2]
    # another selection is another archive
    other = archive.export_images(cache, [MULTI, SINGLE], path)
    assert other["changed"] and sha256_file(path) != first[0]


def test_export_by_normalized_name_and_digest(cache, tmp_path):
    result = archive.export_images(cache, [images.docker_v2().digest], str(tmp_path / "d.tar"))
    assert [i["name"] for i in result["images"]] == [DOCKER]


def test_export_refuses_unknown_and_incomplete_images(cache, tmp_path):
    with pytest.raises(NotCachedError) as raised:
        archive.export_images(cache, [SINGLE, "127.0.0.1:5000/test/nope:v1"], str(tmp_path / "x.tar"))
    assert "127.0.0.1:5000/test/nope:v1" in raised.value.message and SINGLE in raised.value.message
    with pytest.raises(NotCachedError) as raised:  # issue 14: a close cached name is suggested
        archive.export_images(cache, ["test/oci-single:v1"], str(tmp_path / "x.tar"))
    assert raised.value.message.startswith("image test/oci-single:v1 (did you mean %s?) not in the cache" % SINGLE)
    assert raised.value.details["did_you_mean"] == {"test/oci-single:v1": [SINGLE]}
    os.unlink(cache.blob_path(images.oci_single().layers[0].digest))
    with pytest.raises(NotCachedError) as raised:
        archive.export_images(cache, [SINGLE], str(tmp_path / "x.tar"))
    assert "incomplete" in raised.value.message
    assert not os.path.exists(str(tmp_path / "x.tar"))


def test_export_refuses_to_ship_a_damaged_blob(cache, tmp_path):
    layer = images.multi_arch_index().images[0].layers[0]
    path = cache.blob_path(layer.digest)
    data = bytearray(open(path, "rb").read())
    data[5] ^= 1
    open(path, "wb").write(bytes(data))
    out = tmp_path / "x.tar"
    with pytest.raises(CacheError) as raised:
        archive.export_images(cache, [MULTI], str(out))
    assert layer.digest in raised.value.message and "state=verified" in raised.value.message
    assert sorted(os.listdir(str(tmp_path))) == ["cache"]  # neither the archive nor a temp file


def test_export_of_a_linked_blob_says_what_verify_then_finds(cache, tmp_path):
    """A blob that is a link to wrong bytes of the right size is missing for export, and verify reports it."""
    layer = images.multi_arch_index().images[0].layers[0]
    path = cache.blob_path(layer.digest)
    victim = tmp_path / "victim"
    victim.write_bytes(b"X" * layer.size)
    os.unlink(path)
    os.symlink(str(victim), path)
    with pytest.raises(CacheError) as raised:
        archive.export_images(cache, [MULTI], str(tmp_path / "x.tar"))
    assert "%s missing" % layer.digest in raised.value.message
    assert not (tmp_path / "x.tar").exists()
    assert [b["digest"] for b in admin.verify(cache)["bad"]] == [layer.digest]
    assert victim.read_bytes() == b"X" * layer.size


@pytest.mark.parametrize("where", ["missing/dir/x.tar", ""])
def test_export_path_problems(cache, tmp_path, where):
    with pytest.raises(archive.ArchiveError):
        archive.export_images(cache, [SINGLE], str(tmp_path / where))


def test_names_of_names_each_entry_or_falls_back_to_its_digest():
    named = {"digest": "sha256:" + "a" * 64, "annotations": {REF_NAME: SINGLE}}
    unnamed = {"digest": "sha256:" + "b" * 64}
    assert archive.names_of([named, unnamed]) == {SINGLE: named["digest"], unnamed["digest"]: unnamed["digest"]}
    assert archive.names_of([]) == {}


def test_an_image_whose_foreign_layer_is_not_cached_exports_and_imports_without_it(cache, tmp_path):
    from ansible_collections.imagepusher.registry.plugins.module_utils._archive_import import import_archive
    document = json.loads(images.oci_single().manifest)
    foreign = {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
               "digest": "sha256:" + "f" * 64, "size": 123, "urls": ["https://example.test/base"]}
    document["layers"].insert(0, foreign)
    raw = json.dumps(document).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    cache.write_blob_bytes(digest, raw)
    name = "127.0.0.1:5000/test/windows:v1"
    cache.set_ref(name, {"mediaType": document["mediaType"], "digest": digest, "size": len(raw)})
    path = str(tmp_path / "windows.tar")
    result = archive.export_images(cache, [name], path)
    assert result["changed"] and "blobs/sha256/" + "f" * 64 not in members(path)
    fresh = Cache(str(tmp_path / "fresh"))
    imported = import_archive(fresh, path)
    assert imported["changed"] and fresh.get_ref(name)["digest"] == digest
    assert foreign["digest"] not in [b["digest"] for b in imported["blobs"]]
