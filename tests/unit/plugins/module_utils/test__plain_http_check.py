# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import socket
import ssl

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _http
from ansible_collections.imagepusher.registry.plugins.module_utils._plain_http_check import plain_http_answer
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import is_loopback_host
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import TLS_NOT_TLS, classify_tls_error
from tests.support.pki import CertificateAuthority
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply, closed_port, scripted


@pytest.fixture(scope="module")
def server_cert(tmp_path_factory):
    ca = CertificateAuthority("unit CA")
    return ca.issue("127.0.0.1", ips=["127.0.0.1"]).write(tmp_path_factory.mktemp("pki"))


def tls_server(app, cert):
    server = FakeServer(app)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert["cert"]), str(cert["key"]))
    server._httpd.socket = context.wrap_socket(server._httpd.socket, server_side=True)
    return server


def test_a_plain_http_server_answers_with_an_error_the_transport_calls_not_tls():
    with FakeServer(scripted(Reply(200))) as server:
        answer = plain_http_answer("127.0.0.1", server.port, 5)
    assert isinstance(answer, ssl.SSLError)
    assert classify_tls_error(str(answer)) == TLS_NOT_TLS  # the same verdict the probe's full handshake gave


def test_a_tls_server_is_left_to_the_full_handshake(server_cert):
    with tls_server(scripted(Reply(200)), server_cert) as server:
        assert plain_http_answer("127.0.0.1", server.port, 5) is None


def test_a_refused_connection_is_left_to_the_request():
    assert plain_http_answer("127.0.0.1", closed_port(), 5) is None


def test_a_silent_peer_times_out_once():
    # The kernel accepts the connection; nobody answers the hello. The full handshake would time out the same way.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        answer = plain_http_answer("127.0.0.1", listener.getsockname()[1], 0.3)
    assert isinstance(answer, socket.timeout)


def test_a_session_request_to_a_silent_peer_fails_as_a_timeout_without_a_context():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        session = _http.Session()
        with pytest.raises(_http.ConnectionFailure) as info:
            session.request("GET", "https://127.0.0.1:%d/v2/" % listener.getsockname()[1], timeout=0.3)
        session.close()
    assert not isinstance(info.value, _http.TLSFailure) and "timed out" in str(info.value)
    assert session.contexts_built == 0


def test_a_remote_host_is_never_contacted(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("connected to a remote host")
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert plain_http_answer("registry.example", 443, 5) is None
    assert plain_http_answer("10.1.2.3", 443, 5) is None


@pytest.mark.parametrize("host, loopback", [("localhost", True), ("127.0.0.1", True), ("127.3.4.5", True),
                                            ("::1", True), ("[::1]", True), ("10.0.0.1", False),
                                            ("localhost.example", False), ("registry", False)])
def test_is_loopback(host, loopback):
    assert is_loopback_host(host) is loopback


def test_session_reports_not_tls_without_building_a_context():
    with FakeServer(scripted(Reply(200))) as server:
        session = _http.Session()
        with pytest.raises(_http.TLSFailure) as info:
            session.request("GET", "https://127.0.0.1:%d/v2/" % server.port, timeout=5)
        session.close()
    assert classify_tls_error(str(info.value)) == TLS_NOT_TLS
    assert session.contexts_built == 0  # the CA store was never loaded
    assert server.requests == []


def test_session_with_a_client_certificate_builds_its_context_first(tmp_path):
    # A client certificate that cannot be loaded fails as before (at the context), not hidden by the check.
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with FakeServer(scripted(Reply(200))) as server:
        session = _http.Session(cert=str(bad))
        with pytest.raises(_http.TLSFailure) as info:
            session.request("GET", "https://127.0.0.1:%d/v2/" % server.port, timeout=5)
        session.close()
    assert classify_tls_error(str(info.value)) != TLS_NOT_TLS


def test_session_to_a_tls_server_still_verifies(server_cert):
    with tls_server(scripted(Reply(200, b"{}")), server_cert) as server:
        session = _http.Session()
        with pytest.raises(_http.TLSFailure) as info:
            session.request("GET", "https://127.0.0.1:%d/v2/" % server.port, timeout=5)
        session.close()
    assert "certificate verify failed" in str(info.value)
    assert session.contexts_built == 1
