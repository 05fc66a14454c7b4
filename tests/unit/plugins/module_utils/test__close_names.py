# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._close_names import close_names, hint

HELD = ["127.0.0.1:5150/eco/small:v1", "127.0.0.1:5150/eco/small:v1+linux-amd64", "127.0.0.1:5150/eco/big:v1",
        "127.0.0.1:5150/test/multi:v1", "docker.io/library/nginx:1.27", "my build"]


@pytest.mark.parametrize("name, want", [
    # the same repository and tag under another registry (docker.io, when none is given)
    ("eco/small:v1", ["127.0.0.1:5150/eco/small:v1", "127.0.0.1:5150/eco/small:v1+linux-amd64"]),
    ("quay.io/eco/small:v1", ["127.0.0.1:5150/eco/small:v1", "127.0.0.1:5150/eco/small:v1+linux-amd64"]),
    ("reg.test/nginx:1.27", ["docker.io/library/nginx:1.27"]),
    # typos
    ("127.0.0.1:5150/eco/smal:v1", ["127.0.0.1:5150/eco/small:v1", "127.0.0.1:5150/eco/small:v1+linux-amd64"]),
    ("ngnix:1.27", ["docker.io/library/nginx:1.27"]),
    ("my biuld", ["my build"]),
    # nothing close: a shared registry prefix does not make names alike
    ("127.0.0.1:5150/test/absent:v1", []),
    # another tag of a cached repository is close enough to be worth saying
    ("eco/small:v2", ["127.0.0.1:5150/eco/small:v1", "127.0.0.1:5150/eco/small:v1+linux-amd64"]),
])
def test_close_names(name, want):
    assert close_names(name, HELD) == want


def test_at_most_three_and_never_the_name_itself():
    held = ["r%d.test/app:v1" % n for n in range(6)] + ["app:v1"]
    found = close_names("app:v1", held)
    assert len(found) == 3 and "app:v1" not in found


def test_hint():
    assert hint([]) == ""
    assert hint(["a:v1", "b:v1"]) == " (did you mean a:v1 or b:v1?)"
