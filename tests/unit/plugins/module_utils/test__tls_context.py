# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import ssl

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import TLSError
from ansible_collections.imagepusher.registry.plugins.module_utils._requests_layer import SharedContextAdapter
from ansible_collections.imagepusher.registry.plugins.module_utils._tls_context import SharedContext, build_context
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.support.pki import CertificateAuthority
from tests.unit.plugins.module_utils.fake_http import Reply
from tests.unit.plugins.module_utils.test__transport import tls_server


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority("unit CA")
    return {
        "ca": ca.write(root / "ca" / "ca.pem"),
        "server": ca.issue("127.0.0.1", ips=["127.0.0.1"]).write(root / "server"),
        "client": ca.issue("alice", client=True).write(root / "client"),
    }


def closing_app(seen):
    """Answers 200 and closes each connection, recording the client's port: one connection per request."""
    def app(request, handler):
        seen.append(handler.client_address[1])
        return Reply(200, b"{}", {"Connection": "close"})
    return app


def test_one_context_serves_every_connection(pki, monkeypatch):
    monkeypatch.setenv("IMAGEPUSHER_HTTP", "requests")  # the requests session (its twin below: _http's)
    ports = []
    with tls_server(closing_app(ports), pki) as server:
        transport = Transport(timeout=5, retries=0, ca_path=str(pki["ca"]))
        adapter = transport.session.get_adapter("https://%s/" % server.host)
        assert isinstance(adapter, SharedContextAdapter)
        for _n in range(5):
            transport.request("GET", "https://%s/v2/" % server.host, "reg.test", retry=False).close()
        transport.close()
    assert len(set(ports)) == 5  # five connections, five handshakes...
    assert adapter.contexts_built == 1  # ...one context: the CA bundle was loaded once


def test_one_context_serves_every_connection_of_the_http_client(pki, monkeypatch):
    monkeypatch.setenv("IMAGEPUSHER_HTTP", "client")
    ports = []
    with tls_server(closing_app(ports), pki) as server:
        transport = Transport(timeout=5, retries=0, ca_path=str(pki["ca"]))
        for _n in range(5):
            transport.request("GET", "https://%s/v2/" % server.host, "reg.test", retry=False).close()
        transport.close()
    assert len(set(ports)) == 5  # five connections, five handshakes...
    assert transport.session.contexts_built == 1  # ...one context: the CA bundle was loaded once


def test_build_context_has_the_settings_urllib3_gives_a_client(monkeypatch, tmp_path):
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "keys.log"))
    context = build_context(None, None, None)  # no bundle: the system's store
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2 and context.post_handshake_auth
    assert context.options & ssl.OP_NO_COMPRESSION and context.options & ssl.OP_NO_TICKET
    assert context.keylog_filename == str(tmp_path / "keys.log") and context.verify_mode == ssl.CERT_REQUIRED


def test_plain_http_builds_no_context():
    adapter = SharedContextAdapter(None, None)
    adapter.cert_verify(type("Pool", (), {})(), "http://127.0.0.1:1/v2/", True, None)
    assert adapter.contexts_built == 0


def test_build_context_verifies_by_default_and_not_when_told(pki):
    strict = build_context(str(pki["ca"]), None, None)
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    lax = build_context(False, None, None)
    assert lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname


def test_build_context_loads_the_client_certificate(pki):
    context = build_context(str(pki["ca"]), (str(pki["client"]["cert"]), str(pki["client"]["key"])), None)
    assert context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ssl.SSLError):
        build_context(str(pki["ca"]), (str(pki["client"]["cert"]), str(pki["server"]["key"])), None)


def test_an_unusable_client_key_fails_the_request_as_a_tls_error(pki):
    with tls_server(closing_app([]), pki) as server:
        transport = Transport(timeout=5, retries=0, ca_path=str(pki["ca"]), client_cert=str(pki["client"]["cert"]),
                              client_key=str(pki["server"]["key"]))
        with pytest.raises(TLSError) as info:
            transport.request("GET", "https://%s/v2/" % server.host, "reg.test", retry=False)
        transport.close()
    assert info.value.message.startswith("the client certificate for registry reg.test cannot be used (")


def test_a_shared_context_is_built_once_and_fails_as_the_layer_asking_says(tmp_path):
    class LayerTLSError(Exception):
        pass
    shared = SharedContext(False, None, None, LayerTLSError)
    assert shared.built == 0  # nothing loaded before the first HTTPS request
    assert shared.get() is shared.get() and shared.built == 1
    missing = SharedContext(str(tmp_path / "absent-ca.pem"), None, None, LayerTLSError)
    with pytest.raises(LayerTLSError) as info:
        missing.get()
    assert isinstance(info.value.__cause__, OSError) and missing.built == 0
