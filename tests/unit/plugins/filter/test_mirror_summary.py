# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror_summary filter: the role's per-image results (the role itself runs in tests/integration)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.imagepusher.registry.plugins.filter.mirror_summary import FilterModule, mirror_summary


def image(n, downloaded=10, changed=True, **more):
    result = {"source": "src.test/app:%d" % n, "target": "dst.test/app:%d" % n, "digest": "sha256:%064d" % n,
              "cache_name": "src.test/app:%d" % n, "cached": True, "bytes_downloaded": downloaded,
              "bytes_uploaded": downloaded, "changed": changed, "entry": n,
              "blobs": [{"action": "uploaded"}], "manifests": [], "platforms": ["linux/amd64"], "retries": 0}
    result.update(more)
    return result


def test_each_image_keeps_the_summary_keys_in_order_and_says_pulled_and_pushed():
    out = mirror_summary([image(0), image(1, downloaded=0, changed=False, referrers=[{"digest": "sha256:r"}])])
    assert out == [
        {"source": "src.test/app:0", "target": "dst.test/app:0", "digest": "sha256:%064d" % 0,
         "cache_name": "src.test/app:0", "cached": True, "bytes_downloaded": 10, "bytes_uploaded": 10,
         "pulled": True, "pushed": True},
        {"source": "src.test/app:1", "target": "dst.test/app:1", "digest": "sha256:%064d" % 1,
         "cache_name": "src.test/app:1", "cached": True, "bytes_downloaded": 0, "bytes_uploaded": 0,
         "referrers": [{"digest": "sha256:r"}], "pulled": False, "pushed": False},
    ]


def test_a_key_the_image_result_lacks_is_left_out():
    bare = image(0)
    del bare["cache_name"], bare["cached"]
    assert "cache_name" not in mirror_summary([bare])[0] and "cached" not in mirror_summary([bare])[0]


def test_labelled_results_name_their_entry_and_a_sharded_host_maps_it_through_its_share():
    images = [image(0), image(1)]
    assert [r["entry"] for r in mirror_summary(images, labelled=True)] == [0, 1]
    sharded = mirror_summary(images, labelled=True, share=[3, 7], host="runner-2")
    assert [(r["entry"], r["host"]) for r in sharded] == [(3, "runner-2"), (7, "runner-2")]
    assert "entry" not in mirror_summary(images)[0] and "host" not in mirror_summary(images)[0]


@pytest.mark.parametrize("value", [None, "images", [["not", "a", "dict"]]])
def test_anything_but_a_list_of_image_results_is_a_clear_error(value):
    with pytest.raises(AnsibleFilterError, match="mirror_summary expects"):
        mirror_summary(value)


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters() == {"mirror_summary": mirror_summary}
