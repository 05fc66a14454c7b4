# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import json
import os
import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _cache_admin as admin
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import REF_NAME, Cache, FileLock
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._download import download_blob
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import RetryBudget
from ansible_collections.imagepusher.registry.plugins.module_utils._tree import entry_tree
from tests.support import images

SINGLE = "127.0.0.1:5000/test/oci-single:v1"
MULTI = "127.0.0.1:5000/test/multi:v1"
DOCKER = "127.0.0.1:5000/test/docker-v2:v1"
HUB = "docker.io/library/nginx:latest"
ORPHAN = b"an orphan blob nothing names\n"
FAR_FUTURE = 2 ** 62  # a prune "started" after every file here was written


def four_names(tmp_path):
    """A cache naming four images, two of them (HUB and SINGLE) the same digest."""
    root = tmp_path / "cache"
    images.write_oci_layout(root, {SINGLE: images.oci_single(), MULTI: images.multi_arch_index(),
                                   DOCKER: images.docker_v2(), HUB: images.oci_single()})
    return Cache(str(root)).ensure()


@pytest.fixture
def cache(tmp_path):
    return four_names(tmp_path)


def expected_files(*objs):
    digests = set()
    for obj in objs:
        digests |= set(obj.blobs) | set(obj.manifests)
    return digests


def blob_digests(cache):
    return set(d for d, _p, _s in admin.blob_files(cache)[0])


def write_blob(cache, data):
    digest = of_bytes(data)
    path = cache.blob_path(digest)
    with open(path, "wb") as handle:
        handle.write(data)
    return digest, path


def age(path, seconds):
    """Backdate a file's mtime (its ctime stays: prune uses the later of the two)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


# -- parse_age -------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("45s", 45), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600),
    (" 3 H ", 10800), (0, 0), (15, 15),
])
def test_parse_age(text, seconds):
    assert admin.parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "7y", "-1d", "1.5h", "d", "12 hours", -3, True])
def test_parse_age_refuses(text):
    with pytest.raises(ValueError):
        admin.parse_age(text)


# -- present -------------------------------------------------------------------------------

def test_list_images_and_usage(cache):
    listed, not_found = admin.list_images(cache)
    assert not_found == []
    assert [i["name"] for i in listed] == sorted([SINGLE, MULTI, DOCKER, HUB])
    by_name = dict((i["name"], i) for i in listed)
    assert by_name[MULTI]["platforms"] == ["linux/amd64", "linux/arm64/v8", "linux/s390x"]
    assert by_name[MULTI]["media_type"] == images.OCI_INDEX
    assert by_name[DOCKER]["media_type"] == images.DOCKER_MANIFEST
    assert all(i["complete"] for i in listed)
    img = images.oci_single()
    assert by_name[SINGLE]["size"] == sum(len(d) for d in img.blobs.values()) + img.size

    usage = admin.disk_usage(cache)
    files = expected_files(images.oci_single(), images.multi_arch_index(), images.docker_v2())
    assert usage["blobs"] == len(files)
    assert usage["unreferenced_blobs"] == 0 and usage["partials"] == 0
    write_blob(cache, ORPHAN)
    with open(cache.partial_path(of_bytes(b"x")), "wb") as handle:
        handle.write(b"half")
    usage = admin.disk_usage(cache)
    assert (usage["unreferenced_blobs"], usage["unreferenced_bytes"]) == (1, len(ORPHAN))
    assert (usage["partials"], usage["partial_bytes"]) == (1, 4)
    assert usage["total_bytes"] == usage["blob_bytes"] + 4


def test_list_images_filtered(cache):
    listed, not_found = admin.list_images(cache, ["nginx", "nothing/here:v1"])
    assert [i["name"] for i in listed] == [HUB]
    assert not_found == ["nothing/here:v1"]


def test_two_names_for_one_image_list_and_remove_it_once(cache):
    """list_images and remove_refs pick names the same way: each image once, in the order first named."""
    names = ["nginx", HUB, "nothing/here:v1", SINGLE, "nothing/here:v1"]
    listed, not_found = admin.list_images(cache, names)
    assert [i["name"] for i in listed] == sorted([HUB, SINGLE])
    assert not_found == ["nothing/here:v1", "nothing/here:v1"]
    removed = admin.remove_refs(cache, names, check_mode=True)
    assert removed["removed"] == [HUB, SINGLE] and removed["not_found"] == not_found


def test_names_not_found_come_with_close_cached_names(cache):
    _listed, not_found = admin.list_images(cache, ["test/multi:v1", "nothing/here:v1"])
    assert admin.not_found_message(cache.entries(), not_found) == (
        "not in the cache: test/multi:v1 (did you mean %s?), nothing/here:v1" % MULTI)
    assert admin.not_found_message(cache.entries(), []) == ""
    assert admin.remove_refs(cache, ["ngnix"], check_mode=True)["msg"] == (
        "no name to remove; not in the cache: ngnix (did you mean %s?)" % HUB)


def test_list_images_of_a_missing_cache(tmp_path):
    cache = Cache(str(tmp_path / "nowhere"))
    assert admin.list_images(cache) == ([], [])
    assert admin.disk_usage(cache)["blobs"] == 0
    assert not (tmp_path / "nowhere").exists()


# -- absent ----------------------------------------------------------------------------------

def test_remove_refs_check_real_and_again(cache):
    index = open(os.path.join(cache.root, "index.json"), "rb").read()
    check = admin.remove_refs(cache, ["nginx", "absent/image:v9"], check_mode=True)
    assert check["changed"] and check["removed"] == [HUB] and check["not_found"] == ["absent/image:v9"]
    assert HUB in check["diff"]["before"]["images"] and HUB not in check["diff"]["after"]["images"]
    assert open(os.path.join(cache.root, "index.json"), "rb").read() == index

    real = admin.remove_refs(cache, ["nginx", "absent/image:v9"])
    assert real["removed"] == [HUB] and real["images"] == sorted([SINGLE, MULTI, DOCKER])
    assert cache.get_ref(HUB) is None
    assert real["msg"].startswith("removed 1 name from index.json") and "state=pruned" in real["msg"]
    assert blob_digests(cache) >= expected_files(images.oci_single())  # blobs stay

    again = admin.remove_refs(cache, ["nginx"])
    assert not again["changed"] and again["removed"] == [] and again["not_found"] == ["nginx"]


def test_remove_by_digest_removes_every_name(cache):
    result = admin.remove_refs(cache, [images.oci_single().digest])
    assert sorted(result["removed"]) == sorted([SINGLE, HUB])


# -- pruned ----------------------------------------------------------------------------------

def test_prune_keeps_every_blob_of_every_name_and_removes_orphans(cache):
    admin.remove_refs(cache, [DOCKER])
    orphan, orphan_path = write_blob(cache, ORPHAN)
    before = blob_digests(cache)

    check = admin.prune(cache, check_mode=True, started_ns=FAR_FUTURE)
    removed = set(b["digest"] for b in check["removed_blobs"])
    assert removed == (expected_files(images.docker_v2()) - expected_files(images.oci_single())) | {orphan}
    assert blob_digests(cache) == before  # check mode deleted nothing

    real = admin.prune(cache, started_ns=FAR_FUTURE)
    assert set(b["digest"] for b in real["removed_blobs"]) == removed
    assert real["bytes_freed"] == sum(b["size"] for b in real["removed_blobs"])
    assert blob_digests(cache) == expected_files(images.oci_single(), images.multi_arch_index())
    assert real["diff"]["after"]["blobs"] == len(before) - len(removed)
    for name in (SINGLE, MULTI, HUB):
        assert entry_tree(cache, cache.get_ref(name)).complete

    again = admin.prune(cache, started_ns=FAR_FUTURE)
    assert not again["changed"] and again["removed_blobs"] == []


def test_prune_never_deletes_a_blob_written_after_it_started(cache):
    _digest, path = write_blob(cache, ORPHAN)
    result = admin.prune(cache, started_ns=os.stat(path).st_mtime_ns)  # same tick: not older
    assert result["removed_blobs"] == [] and result["kept_recent"] == 1
    assert os.path.exists(path)


def test_prune_takes_its_start_from_the_file_system(cache):
    _digest, path = write_blob(cache, ORPHAN)
    time.sleep(0.05)
    result = admin.prune(cache)  # real start, taken after the orphan was written
    assert [b["size"] for b in result["removed_blobs"]] == [len(ORPHAN)]
    assert not os.path.exists(path)
    assert not [n for n in os.listdir(os.path.join(cache.root, ".imagepusher")) if n.startswith(".tmp-prune-start")]


def test_prune_waits_for_the_index_lock_and_spares_what_appears_meanwhile(cache):
    old, old_path = write_blob(cache, ORPHAN)
    time.sleep(0.05)
    results = []
    with cache.lock("index"):  # a pull in set_ref, say
        worker = threading.Thread(target=lambda: results.append(admin.prune(cache)))
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive() and not results  # waiting for the lock
        new, new_path = write_blob(cache, b"written by a pull while the prune waited\n")
    worker.join(10)
    assert [b["digest"] for b in results[0]["removed_blobs"]] == [old]
    assert results[0]["kept_recent"] == 1
    assert os.path.exists(new_path) and not os.path.exists(old_path)


def test_prune_older_than_keeps_young_orphans(cache):
    _digest, path = write_blob(cache, ORPHAN)
    # its ctime is now: with older_than an hour it is young whatever its mtime says
    age(path, 7200)
    result = admin.prune(cache, older_than=3600, started_ns=time.time_ns() + 10 ** 9)
    assert result["removed_blobs"] == [] and result["kept_recent"] == 1
    result = admin.prune(cache, older_than=3600, started_ns=time.time_ns() + 3602 * 10 ** 9)
    assert len(result["removed_blobs"]) == 1


def test_prune_removes_stale_partials_but_not_one_being_written(cache):
    stale = cache.partial_path(of_bytes(b"stale"))
    busy_digest = of_bytes(b"busy")
    busy = cache.partial_path(busy_digest)
    for path in (stale, busy):
        with open(path, "wb") as handle:
            handle.write(b"part")
    temp = os.path.join(cache.root, "blobs", "sha256", ".tmp-leftover")
    with open(temp, "wb") as handle:
        handle.write(b"tmp")
    with FileLock(cache.lock(busy_digest.split(":")[1]).path):  # an ingest in progress
        check = admin.prune(cache, check_mode=True, started_ns=FAR_FUTURE)
        real = admin.prune(cache, started_ns=FAR_FUTURE)
    for result in (check, real):
        paths = sorted(p["path"] for p in result["removed_partials"])
        assert paths == sorted([os.path.relpath(stale, cache.root), os.path.relpath(temp, cache.root)])
        assert result["partials_in_use"] == 1
    assert not os.path.exists(stale) and not os.path.exists(temp) and os.path.exists(busy)


def test_prune_refuses_when_a_name_cannot_be_read(cache):
    arm = images.multi_arch_index().image_for("arm64")
    os.unlink(cache.blob_path(arm.digest))
    write_blob(cache, ORPHAN)
    before = blob_digests(cache)
    with pytest.raises(CacheError) as raised:
        admin.prune(cache, started_ns=FAR_FUTURE)
    assert MULTI in raised.value.message and arm.digest in raised.value.message
    assert "state=absent" in raised.value.message
    assert blob_digests(cache) == before


def test_prune_of_a_missing_cache_creates_nothing(tmp_path):
    result = admin.prune(Cache(str(tmp_path / "none")))
    assert not result["changed"] and not (tmp_path / "none").exists()


def test_prune_a_layout_made_by_another_tool(tmp_path):
    root = images.write_oci_layout(tmp_path / "foreign", {SINGLE: images.oci_single()})
    write_blob(Cache(str(root)), ORPHAN)
    result = admin.prune(Cache(str(root)), started_ns=FAR_FUTURE)
    assert len(result["removed_blobs"]) == 1


# -- verified ------------------------------------------------------------------------------

def corrupt(cache, digest):
    path = cache.blob_path(digest)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    return path


def test_verify_clean_cache(cache):
    result = admin.verify(cache)
    assert not result["changed"] and result["bad"] == [] and result["incomplete"] == []
    assert result["checked"] == len(blob_digests(cache))


def test_verify_reports_removes_and_names_incomplete_images(cache):
    idx = images.multi_arch_index()
    shared = idx.images[0].layers[0]
    path = corrupt(cache, shared.digest)
    check = admin.verify(cache, remove_bad=True, check_mode=True)
    assert [b["digest"] for b in check["bad"]] == [shared.digest]
    assert check["bad"][0]["actual_digest"] != shared.digest
    assert check["removed"] == [shared.digest] and check["changed"]
    assert check["affected"] == [MULTI]
    assert [i["name"] for i in check["incomplete"]] == [MULTI]
    assert check["incomplete"][0]["missing"] == [shared.digest]
    assert os.path.exists(path)

    report = admin.verify(cache)  # no remove_bad: reported, nothing changes
    assert not report["changed"] and report["removed"] == [] and report["incomplete"] == []
    assert report["affected"] == [MULTI]

    real = admin.verify(cache, remove_bad=True)
    assert real["removed"] == [shared.digest] and not os.path.exists(path)
    assert [i["name"] for i in real["incomplete"]] == [MULTI]
    assert real["diff"] == {"before": {"bad_blobs": [shared.digest]}, "after": {"bad_blobs": []}}

    again = admin.verify(cache, remove_bad=True)
    assert not again["changed"] and again["bad"] == []
    assert [i["name"] for i in again["incomplete"]] == [MULTI]  # still incomplete: pull it again


def test_verify_a_damaged_manifest(cache):
    img = images.docker_v2()
    corrupt(cache, img.digest)
    result = admin.verify(cache, remove_bad=True)
    assert result["removed"] == [img.digest]
    assert result["incomplete"] == [{"name": DOCKER, "digest": img.digest, "missing": [img.digest], "damaged": []}]


def test_index_json_entries_keep_their_shape(cache):
    admin.remove_refs(cache, [SINGLE])
    document = json.load(open(os.path.join(cache.root, "index.json")))
    assert all(REF_NAME in e["annotations"] for e in document["manifests"])


def test_prune_next_to_a_pull_that_is_downloading(cache):
    """A pull mid-download: its partial is locked, so a prune keeps it; the blob it then renames
    into blobs/ is kept by a prune with older_than until the pull names it."""
    data = os.urandom(64 * 1024)
    digest = of_bytes(data)
    half_written, go_on = threading.Event(), threading.Event()

    def opener(offset):
        def body():
            yield data[offset:len(data) // 2]
            half_written.set()
            go_on.wait(10)
            yield data[len(data) // 2:]
        return body(), offset, lambda: None

    puller = threading.Thread(target=download_blob, args=(cache, digest, len(data), opener, RetryBudget(3)))
    puller.start()
    assert half_written.wait(10)
    time.sleep(0.05)
    during = admin.prune(cache)
    assert during["partials_in_use"] == 1 and during["removed_partials"] == []
    go_on.set()
    puller.join(10)
    assert cache.has_blob(digest, len(data))
    # the pull has not named its image yet: older_than keeps what it just wrote
    assert admin.prune(cache, older_than=3600)["removed_blobs"] == []
    assert cache.has_blob(digest, len(data))


def test_verify_reports_and_removes_a_linked_blob_but_not_its_target(cache, tmp_path):
    img = images.docker_v2()
    layer = img.layers[0]
    path = cache.blob_path(layer.digest)
    victim = tmp_path / "victim"
    victim.write_bytes(b"X" * layer.size)  # wrong bytes of the right size
    os.unlink(path)
    os.symlink(str(victim), path)
    check = admin.verify(cache, remove_bad=True, check_mode=True)
    assert [(b["digest"], b["actual_digest"], b["reason"]) for b in check["bad"]] == [
        (layer.digest, None, "a symbolic link (never trusted)")]
    assert check["removed"] == [layer.digest] and os.path.islink(path)
    assert [i["name"] for i in check["incomplete"]] == [DOCKER]
    real = admin.verify(cache, remove_bad=True)
    assert real["removed"] == [layer.digest] and not os.path.lexists(path)
    assert victim.read_bytes() == b"X" * layer.size
    assert admin.verify(cache)["bad"] == []


def test_prune_never_walks_a_linked_blob_directory(cache, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = outside / ("ab" * 64)  # named like a sha512 blob
    planted.write_bytes(b"not yours")
    os.symlink(str(outside), os.path.join(cache.root, "blobs", "sha512"))
    admin.prune(cache, started_ns=FAR_FUTURE)
    assert planted.read_bytes() == b"not yours"
    result = admin.verify(cache)
    assert [b["path"] for b in result["bad"]] == ["blobs/sha512"]
