# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The http.client layer (prototype) against in-process servers: pooling, redirects, bodies, proxies, TLS."""

import gzip
import json
import http.client
import socket
import ssl
import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _connection_errors
from ansible_collections.imagepusher.registry.plugins.module_utils import _http
from ansible_collections.imagepusher.registry.plugins.module_utils._tls_context import build_context
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import TLSError
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.support.forward_proxy import ForwardProxy
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply, closed_port, write_raw
from tests.unit.plugins.module_utils.test__tls_context import closing_app, pki  # noqa: F401 pylint: disable=unused-import
from tests.unit.plugins.module_utils.test__transport import tls_server


def session(**kwargs):
    kwargs.setdefault("environ_proxies", {})
    return _http.Session(**kwargs)


def test_keep_alive_connections_are_reused():
    with FakeServer(lambda request, handler: Reply(200, b"hello")) as server:
        client = session()
        bodies = [client.request("GET", server.url + "/v2/%d" % n).content for n in range(3)]
        client.close()
    assert bodies == [b"hello"] * 3
    assert client.connections_made == 1 and [r.path for r in server.requests] == ["/v2/0", "/v2/1", "/v2/2"]


def test_a_connection_the_server_closed_is_not_reused():
    def app(request, handler):
        write_raw(handler, 200, {"Content-Length": "2"}, b"ok")  # keep-alive announced, then closed
    with FakeServer(app) as server:
        client = session()
        statuses = []
        for _round in range(3):
            statuses.append(client.request("GET", server.url + "/v2/").status_code)
            # Once the server's close has reached us, the pool must see it and not reuse the connection. (Sent
            # before the close arrives, the request fails: the Transport's retry policy then decides, below.)
            time.sleep(0.2)
    assert statuses == [200, 200, 200] and client.connections_made == 3


def test_a_kept_alive_connection_closed_without_an_answer_is_a_failure_never_sent_again_unseen():
    # The Transport's retry policy decides what to send again (each attempt draws from the blob's budget; a
    # connection the deadline cut is a stall): the session itself never resends. CI once saw a stalled GET
    # sent three times where the budget allowed two, when the session still resent on its own.
    def app(request, handler):
        if len(server.requests) == 2:
            handler.close_connection = True  # read the request, then close: no status line at all
            return None
        return Reply(200, b"ok")
    with FakeServer(app) as server:
        client = session()
        assert client.request("GET", server.url + "/v2/first").content == b"ok"
        with pytest.raises(_http.ConnectionFailure):
            client.request("GET", server.url + "/v2/second")
        assert [r.path for r in server.requests] == ["/v2/first", "/v2/second"]
        assert client.request("GET", server.url + "/v2/third").content == b"ok"  # on a new connection
    assert client.connections_made == 2


def test_a_streamed_body_is_read_with_readinto_and_its_connection_reused():
    with FakeServer(lambda request, handler: Reply(200, b"x" * 100000)) as server:
        client = session()
        response = client.request("GET", server.url + "/blob", stream=True)
        buffer, total = bytearray(65536), 0
        while True:
            count = response.raw._fp.readinto(buffer)
            if not count:
                break
            total += count
        response.close()
        client.request("GET", server.url + "/blob").close()
    assert total == 100000 and client.connections_made == 1


def test_an_unread_streamed_body_closes_its_connection():
    with FakeServer(lambda request, handler: Reply(200, b"x" * 100000)) as server:
        client = session()
        client.request("GET", server.url + "/blob", stream=True).close()
        client.request("GET", server.url + "/blob").close()
    assert client.connections_made == 2


def test_a_body_cut_short_is_a_connection_failure_or_an_incomplete_read_when_streamed():
    def app(request, handler):
        write_raw(handler, 200, {"Content-Length": "1000"}, b"a" * 500)
    with FakeServer(app) as server:
        with pytest.raises(_http.ConnectionFailure):
            session().request("GET", server.url + "/blob")
        response = session().request("GET", server.url + "/blob", stream=True)
        with pytest.raises(http.client.IncompleteRead):  # what BodyReader's readinto path sees too
            list(response.iter_content(100))


def test_headers_are_case_insensitive_and_repeats_are_joined():
    headers = _http.Headers([("Link", "<a>"), ("link", "<b>"), ("Content-Type", "x")])
    assert headers["content-type"] == "x" and headers.get("LINK") == "<a>, <b>" and "CONTENT-TYPE" in headers
    assert headers.get("missing", "d") == "d"


def test_gzip_bodies_are_decoded():
    body = gzip.compress(b'{"a": 1}')
    with FakeServer(lambda request, handler: Reply(200, body, {"Content-Encoding": "gzip"})) as server:
        response = session().request("GET", server.url + "/json")
    assert json.loads(response.content) == {"a": 1} and server.requests[0].headers["Accept-Encoding"] == "gzip, deflate"


# -- redirects --------------------------------------------------------------------------------------

def test_a_redirect_to_another_host_drops_authorization_and_same_host_keeps_it():
    with FakeServer(lambda request, handler: Reply(200, b"blob")) as storage:
        def registry(request, handler):
            if request.path == "/same":
                return Reply(307, b"", {"Location": "/other"})
            if request.path == "/other":
                return Reply(307, b"", {"Location": "http://localhost:%d/signed?sig=1" % storage.port})
            return Reply(404)
        with FakeServer(registry) as server:
            response = session().request("GET", server.url + "/same", headers={"Authorization": "Bearer t"})
    assert response.content == b"blob" and len(server.requests) == 2 and len(storage.requests) == 1
    assert [r.headers.get("Authorization") for r in server.requests] == ["Bearer t", "Bearer t"]
    assert storage.requests[0].headers.get("Authorization") is None and storage.requests[0].path == "/signed?sig=1"
    assert response.request.headers.get("Authorization") is None  # what _auth._sent_token reads


def test_a_303_turns_a_post_into_a_get_without_its_body():
    def app(request, handler):
        return Reply(303, b"", {"Location": "/done"}) if request.method == "POST" else Reply(200, b"done")
    with FakeServer(app) as server:
        response = session().request("POST", server.url + "/form", data=[("a", "1")])
    assert response.content == b"done" and [(r.method, r.body) for r in server.requests] == [("POST", b"a=1"), ("GET", b"")]
    assert server.requests[0].headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_redirects_are_not_followed_when_not_allowed():
    with FakeServer(lambda request, handler: Reply(302, b"", {"Location": "/x"})) as server:
        response = session().request("GET", server.url + "/", allow_redirects=False)
    assert response.status_code == 302 and len(server.requests) == 1


def test_an_unsupported_scheme_is_a_request_failure():
    with pytest.raises(_http.RequestFailure) as info:
        session().request("GET", "ftp://127.0.0.1/blob?sig=secret")
    assert "secret" not in str(info.value)


# -- request bodies ---------------------------------------------------------------------------------

class Blob:
    """A body as _blob_io gives it: read() and len()."""

    def __init__(self, data):
        self.data, self.position = data, 0

    def __len__(self):
        return len(self.data)

    def read(self, size=-1):
        chunk = self.data[self.position:self.position + (size if size > 0 else len(self.data))]
        self.position += len(chunk)
        return chunk


def test_a_body_with_read_and_len_is_sent_with_its_length():
    with FakeServer(lambda request, handler: Reply(202)) as server:
        session().request("PATCH", server.url + "/up", data=Blob(b"y" * 300000)).close()
    assert server.requests[0].headers["Content-Length"] == "300000" and server.requests[0].body == b"y" * 300000


def test_an_iterable_body_is_sent_chunked():
    received = []

    def app(request, handler):
        received.append(request.headers.get("Transfer-Encoding"))
        data = b""
        while True:
            size = int(handler.rfile.readline().strip(), 16)
            chunk = handler.rfile.read(size + 2)[:size]
            if not size:
                break
            data += chunk
        received.append(data)
        return Reply(201)
    with FakeServer(app) as server:
        response = session().request("PUT", server.url + "/up", data=iter([b"ab", b"", b"cd"]))
    assert response.status_code == 201 and received == ["chunked", b"abcd"]


def test_a_put_without_body_says_its_length_is_zero():
    with FakeServer(lambda request, handler: Reply(201)) as server:
        session().request("PUT", server.url + "/m").close()
    assert server.requests[0].headers["Content-Length"] == "0"


# -- proxies ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("host, no_proxy, bypassed", [
    ("10.1.2.3:5000", "10.0.0.0/8", True),
    ("10.1.2.3:5000", "192.168.0.0/16", False),
    ("reg.example.com", ".example.com", True),
    ("reg.example.com", "example.com", True),
    ("reg.example.org", "example.com", False),
    ("anything", "*", True),
])
def test_no_proxy_as_requests_reads_it(host, no_proxy, bypassed):
    proxies = {"http": "http://proxy:3128", "no": no_proxy}
    assert (_http.environment_proxy("http", host, proxies) is None) is bypassed


def test_the_scheme_proxy_wins_over_all_proxy():
    proxies = {"https": "http://s:1", "all": "http://a:1"}
    assert _http.environment_proxy("https", "r", proxies) == "http://s:1"
    assert _http.environment_proxy("http", "r", proxies) == "http://a:1"


def test_plain_http_goes_through_the_proxy_with_the_absolute_uri():
    with FakeServer(lambda request, handler: Reply(200, b"via proxy")) as server:
        with ForwardProxy(hosts={"registry.test": "127.0.0.1"}) as proxy:
            client = session(environ_proxies={"http": proxy.url})
            url = "http://registry.test:%d/v2/" % server.port
            bodies = [client.request("GET", url).content for _round in range(2)]
    assert bodies == [b"via proxy"] * 2 and [r[1] for r in proxy.requests] == [url, url]


def test_https_through_a_proxy_that_refuses_connect_is_a_proxy_error():
    with ForwardProxy() as proxy:
        client = session(environ_proxies={"https": proxy.url})
        with pytest.raises(_http.ProxyError) as info:
            client.request("GET", "https://registry.test/v2/")
    assert _connection_errors.through_proxy(info.value) and "405" in str(info.value)


def test_a_dead_proxy_is_refused_through_the_proxy():
    client = session(environ_proxies={"http": "http://127.0.0.1:%d" % closed_port()})
    with pytest.raises(_http.ProxyError) as info:
        client.request("GET", "http://registry.test/v2/")
    assert _connection_errors.kind(info.value) == _connection_errors.REFUSED and _connection_errors.through_proxy(info.value)


# -- TLS and the transport ------------------------------------------------------------------------

def test_one_context_for_every_tls_connection(pki):  # noqa: F811 pylint: disable=redefined-outer-name
    ports = []
    with tls_server(closing_app(ports), pki) as server:
        client = session(verify=str(pki["ca"]))
        for _round in range(3):
            assert client.request("GET", "https://%s/v2/" % server.host).status_code == 200
    assert client.contexts_built == 1 and len(set(ports)) == 3


def test_an_untrusted_certificate_is_a_tls_failure(pki):  # noqa: F811 pylint: disable=redefined-outer-name
    with tls_server(closing_app([]), pki) as server:
        with pytest.raises(_http.TLSFailure) as info:
            session(default_bundle=None, verify=None).request("GET", "https://%s/v2/" % server.host)
    assert "certificate verify failed" in str(info.value).lower()


def test_build_context_without_verification():
    context = build_context(False, None, None)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


def test_the_transport_uses_it_when_the_variable_says_client(monkeypatch, pki):  # noqa: F811 pylint: disable=redefined-outer-name
    monkeypatch.setenv("IMAGEPUSHER_HTTP", "client")
    transport = Transport(timeout=5, retries=0, ca_path=str(pki["ca"]))
    assert isinstance(transport.session, _http.Session)
    with FakeServer(lambda request, handler: Reply(200, b"{}")) as server:
        assert transport.request("GET", server.url + "/v2/", "reg.test").content == b"{}"
        assert server.requests[0].headers["User-Agent"].startswith("imagepusher.registry/")
    with tls_server(closing_app([]), pki) as server:
        transport.request("GET", "https://%s/v2/" % server.host, "reg.test").close()
    transport.close()
    untrusted = Transport(timeout=5, retries=0)
    with tls_server(closing_app([]), pki) as server:
        with pytest.raises(TLSError) as info:
            untrusted.request("GET", "https://%s/v2/" % server.host, "reg.test")
    assert "set ca_path" in info.value.message


def test_it_is_the_default_and_requests_the_way_back(monkeypatch):
    monkeypatch.delenv("IMAGEPUSHER_HTTP", raising=False)
    assert isinstance(Transport(timeout=5, retries=0).session, _http.Session)
    monkeypatch.setenv("IMAGEPUSHER_HTTP", "requests")
    assert not isinstance(Transport(timeout=5, retries=0).session, _http.Session)


class TunnelProxy:
    """A CONNECT-only proxy: answers 200 and pipes bytes both ways; records the CONNECT lines and their headers."""

    def __init__(self):
        self.seen = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self):
        return "http://user:secret@127.0.0.1:%d" % self._listener.getsockname()[1]

    def _serve(self):
        while True:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client):
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        lines = head.split(b"\r\n")
        self.seen.append((lines[0].decode(), [line.decode() for line in lines[1:] if line]))
        host, port = lines[0].split()[1].decode().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def close(self):
        self._listener.close()


def _pipe(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_https_goes_through_a_connect_tunnel_with_proxy_credentials(pki):  # noqa: F811 pylint: disable=redefined-outer-name
    proxy = TunnelProxy()
    with tls_server(lambda request, handler: Reply(200, b"tunnelled"), pki) as server:
        client = session(verify=str(pki["ca"]), environ_proxies={"https": proxy.url})
        bodies = [client.request("GET", "https://%s/v2/" % server.host, headers={"Authorization": "Bearer t"}).content
                  for _round in range(2)]
    proxy.close()
    assert bodies == [b"tunnelled"] * 2 and client.connections_made == 1
    connect, headers = proxy.seen[0]
    assert connect == "CONNECT %s HTTP/1.0" % server.host or connect == "CONNECT %s HTTP/1.1" % server.host
    assert "Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=" in headers and not any("Bearer" in h for h in headers)
    assert server.requests[0].headers["Authorization"] == "Bearer t"
