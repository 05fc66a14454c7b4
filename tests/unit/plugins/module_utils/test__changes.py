# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import threading

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._changes import Changes, mark_failure, summary
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError, RegistryError


def test_reused_blobs_are_no_change():
    changes = Changes()
    changes.blob(_plan.CACHED, 0)
    changes.blob(_plan.EXISTS, 0)
    assert changes.changed is False and changes.blobs == {}


def test_the_summary_adds_up_both_ends():
    cache, target = Changes(), Changes(pushes=True)
    cache.blob(_plan.DOWNLOADED, 100)
    cache.blob(_plan.RESUMED, 30)
    cache.manifest("sha256:aa")
    cache.name("reg.test/app:v1")
    target.blob(_plan.UPLOADED, 130)
    target.blob(_plan.MOUNTED, 0)
    target.manifest("reg.test/app:v1")
    assert summary(cache, target) == {
        "blobs_downloaded": 2, "bytes_downloaded": 130, "blobs_uploaded": 1, "blobs_mounted": 1,
        "bytes_uploaded": 130, "manifests_pushed": ["reg.test/app:v1"], "manifests_stored": 1,
        "cache_names": ["reg.test/app:v1"]}


def test_blobs_noted_from_many_threads_are_all_counted():
    changes = Changes(pushes=True)

    def upload_many():
        for _count in range(500):
            changes.blob(_plan.UPLOADED, 1)
    threads = [threading.Thread(target=upload_many) for _thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert changes.blobs[_plan.UPLOADED] == [2000, 2000]


def test_a_failure_after_a_write_says_changed_and_what_was_done_keeping_its_type():
    target = Changes(pushes=True)
    target.manifest("reg.test/app:v1")
    error = RegistryError("boom", status=500, registry="reg.test")
    assert mark_failure(error, Changes(), target) is error
    assert error.status == 500 and error.details["registry"] == "reg.test"
    assert error.details["changed"] is True and error.details["done"]["manifests_pushed"] == ["reg.test/app:v1"]


def test_a_failure_before_any_write_is_left_alone():
    error = CacheError("denied", path="/c")
    mark_failure(error, Changes(), Changes(pushes=True))
    assert error.details == {"path": "/c"}
