# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_foreign: a copy asked to fetch foreign layers reads them from their url (served here by an
in-process HTTP server), verified, into the cache, and pushes them like any blob."""

import json

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _copy
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import DigestMismatchError, RegistryError
from ansible_collections.imagepusher.registry.plugins.module_utils._foreign import ForeignLayerSource, fetch_url
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import Descriptor
from ansible_collections.imagepusher.registry.plugins.module_utils._plan import FETCH
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport

from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply
from tests.unit.plugins.module_utils.fake_registry import FakeRegistryClient
from tests.unit.plugins.module_utils.tree_builders import Store, desc

SOURCE = ImageReference.parse("src.test/team/app:v1")
TARGET = ImageReference.parse("reg.test/prod/app:v1")
LAYER = b"a windows base layer, say " * 4000


def foreign(urls):
    return Descriptor(mt.OCI_LAYER_NONDISTRIBUTABLE_GZIP, "sha256:" + "f" * 64, 10, urls=urls)


def test_fetch_url_is_the_first_http_or_https_one():
    assert fetch_url(foreign(["ftp://a.test/x", "https://b.test/x", "http://c.test/x"])) == "https://b.test/x"
    assert fetch_url(foreign(["HTTP://c.test/x"])) == "HTTP://c.test/x"


@pytest.mark.parametrize("urls", [["file:///etc/passwd", "ftp://a.test/x"], ["https:///no-host"]])
def test_fetch_url_refuses_other_schemes(urls):
    with pytest.raises(RegistryError, match="names no http or https url"):
        fetch_url(foreign(urls))


def image_with_foreign_layer(url, data=LAYER):
    store = Store()
    image = store.image("amd64", [b"ordinary layer"])
    document = json.loads(image.raw)
    layer = desc(mt.OCI_LAYER_NONDISTRIBUTABLE_GZIP, data, urls=[url])
    document["layers"].append(layer)
    image = store.add(json.dumps(document).encode())
    source = FakeRegistryClient("src.test")
    source.publish("team/app", "v1", store, image)
    source.transport = Transport(retries=1, timeout=5, sleep=lambda delay: None)
    return source, image, layer


def serve(body, status=200):
    def app(request, handler):
        return Reply(status, body, {"Content-Type": "application/octet-stream"})
    return FakeServer(app)


def test_a_fetched_foreign_layer_reaches_the_cache_and_the_target(tmp_path):
    cache = Cache(str(tmp_path / "cache"))
    with serve(LAYER) as server:
        source, image, layer = image_with_foreign_layer(server.url + "/layers/base.tar.gz")
        target = FakeRegistryClient()
        result = _copy.mirror(source, SOURCE, target, TARGET, cache, foreign=FETCH).run(SOURCE)
    assert result["digest"] == image.digest and result["changed"] is True
    assert target.repo("prod/app").blobs[layer["digest"]] == LAYER
    assert cache.has_blob(layer["digest"], len(LAYER))
    assert [r.route for r in server.requests] == ["/layers/base.tar.gz"]
    assert server.requests[0].headers.get("Authorization") is None
    assert not [c for c in source.calls if c[2] == layer["digest"]]  # the registry was not asked for it
    assert layer["digest"] in [b["digest"] for b in result["blobs"]]


def test_a_foreign_layer_that_does_not_match_its_digest_is_refused(tmp_path):
    cache = Cache(str(tmp_path / "cache"))
    with serve(LAYER[:-1] + b"X") as server:
        source, _image, layer = image_with_foreign_layer(server.url + "/base", data=LAYER)
        with pytest.raises(DigestMismatchError):
            _copy.pull(source, SOURCE, cache, foreign=FETCH).run(SOURCE)
    assert not cache.has_blob(layer["digest"])


def test_a_foreign_layer_its_server_does_not_have(tmp_path):
    cache = Cache(str(tmp_path / "cache"))
    with serve(b"gone", status=404) as server:
        source, _image, layer = image_with_foreign_layer(server.url + "/base")
        with pytest.raises(RegistryError, match="foreign layer %s: 127.0.0.1:%d answered HTTP 404"
                                                % (layer["digest"], server.port)):
            _copy.pull(source, SOURCE, cache, foreign=FETCH).run(SOURCE)


def test_everything_else_is_the_registrys():
    source = FakeRegistryClient("src.test")
    endpoint = RegistryEndpoint(source, SOURCE)
    wrapped = ForeignLayerSource(endpoint)
    assert wrapped.repository == "team/app" and wrapped.client is source
    assert wrapped.opener("sha256:" + "1" * 64)[0].__qualname__ == endpoint.opener("sha256:" + "1" * 64)[0].__qualname__
