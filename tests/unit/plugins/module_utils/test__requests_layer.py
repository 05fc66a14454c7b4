# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_requests_layer: the requests session of IMAGEPUSHER_HTTP=requests, as Transport gets it."""

import requests

from ansible_collections.imagepusher.registry.plugins.module_utils import _requests_layer
from ansible_collections.imagepusher.registry.plugins.module_utils._deadline import WATCHDOG
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply, scripted


def test_new_session_mounts_one_adapter_for_both_schemes_and_gives_requests_failures():
    session, failures, tls_failures, others = _requests_layer.new_session(None, None, None, 8, "agent/1")
    adapter = session.get_adapter("https://reg.test/")
    assert adapter is session.get_adapter("http://reg.test/") and isinstance(adapter, _requests_layer.RegistryAdapter)
    assert isinstance(adapter, _requests_layer.SharedContextAdapter) and isinstance(adapter, _requests_layer.WatchedAdapter)
    assert session.headers["User-Agent"] == "agent/1" and session.auth is _requests_layer._no_netrc
    assert requests.exceptions.ConnectionError in failures and tls_failures == (requests.exceptions.SSLError,)
    assert others == (requests.exceptions.RequestException,)
    pools = adapter.poolmanager.pool_classes_by_scheme
    assert pools == {"http": _requests_layer.WatchedHTTPConnectionPool, "https": _requests_layer.WatchedHTTPSConnectionPool}
    session.close()


def test_transport_sends_through_requests_when_asked(monkeypatch):
    monkeypatch.setenv("IMAGEPUSHER_HTTP", "requests")
    busy = []
    real_busy = WATCHDOG.busy
    monkeypatch.setattr(WATCHDOG, "busy", lambda connection: busy.append(connection) or real_busy(connection))
    with FakeServer(scripted(Reply(200, b"ok"))) as server:
        transport = Transport(timeout=5, retries=0)
        assert isinstance(transport.session, _requests_layer.Session)
        assert transport.request("GET", server.url + "/v2/", "reg.test").content == b"ok"
        transport.close()
    assert len(busy) == 1  # the connection was under the deadline while the request held it
