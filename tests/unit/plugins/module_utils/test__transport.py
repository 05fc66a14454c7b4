# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import gzip
import http.server
import os
import re
import socket
import ssl
import threading

import pytest
import requests

from ansible_collections.imagepusher.registry.plugins.module_utils import _http
from ansible_collections.imagepusher.registry.plugins.module_utils import _requests_layer
from ansible_collections.imagepusher.registry.plugins.module_utils import _transport
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import TLSError, TransportError
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import (
    BodyReader,
    ChunkReader,
    Transport,
    describe_connection_error,
    iter_body,
)
from tests.support.pki import CertificateAuthority
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply, closed_port, scripted, write_raw

SECRET = "S3CRET-token-value"


# -- describe_connection_error -----------------------------------------------

def _raised_by(call):
    try:
        call()
    except requests.exceptions.RequestException as exc:
        return exc
    raise AssertionError("no exception raised")


@pytest.fixture
def silent_listener():
    """A socket that accepts connections and never answers (for read timeouts)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("kind, reason", [
    ("refused-http", "Connection refused"),
    ("refused-https", "Connection refused"),
    ("read-timeout", "Read timed out"),
])
def test_describe_connection_error_names_the_reason_never_the_url(kind, reason, silent_listener):
    port = silent_listener if kind == "read-timeout" else closed_port()
    scheme = "https" if kind == "refused-https" else "http"
    url = "%s://127.0.0.1:%d/v2/team/app/blobs/sha256:abc?X-Amz-Signature=%s&token=%s" % (scheme, port, SECRET,
                                                                                          SECRET)
    exc = _raised_by(lambda: requests.get(url, timeout=0.3))
    if kind != "read-timeout":
        assert SECRET in str(exc)  # requests itself puts the URL in its message...
    text = describe_connection_error(exc)
    assert reason in text
    # ...our description must not: no query, no path, no urllib3 pool prefix
    assert SECRET not in text
    assert "?" not in text and "/v2/" not in text and "X-Amz" not in text
    assert "HTTPConnectionPool" not in text and "Max retries" not in text
    assert len(text) <= 300


def test_describe_connection_error_truncates_long_reasons():
    text = describe_connection_error(requests.exceptions.ConnectionError("x" * 1000))
    assert text == "x" * 300


# -- Transport.request against an in-process server --------------------------

@pytest.fixture
def sleeps():
    return []


def make_transport(sleeps, retries=5, **kwargs):
    transport = Transport(retries=retries, timeout=5, sleep=sleeps.append, **kwargs)
    return transport


@pytest.mark.parametrize("script, final_status, expected_retries", [
    ([503, 503, 200], 200, 2),
    ([502, 200], 200, 1),
    ([504, 408, 500, 200], 200, 3),
    ([200], 200, 0),
])
def test_request_retries_retryable_statuses_until_success(sleeps, script, final_status, expected_retries):
    replies = [Reply(s, b"body %d" % s) for s in script]
    with FakeServer(scripted(*replies)) as server:
        transport = make_transport(sleeps)
        response = transport.request("GET", server.url + "/v2/", "reg.test")
        assert response.status_code == final_status
        assert response.content == b"body %d" % final_status
        transport.close()
    assert transport.retry_count == expected_retries
    assert len(server.requests) == len(script)
    assert len(sleeps) == expected_retries
    # jittered exponential backoff from the default 0.5 s base
    for attempt, delay in enumerate(sleeps):
        assert 0.5 * 2 ** attempt / 2 <= delay <= 0.5 * 2 ** attempt


@pytest.mark.parametrize("retry_after, expected_sleep", [("1", 1.0), ("0", 0.0), ("3600", 30.0)])
def test_request_429_honours_retry_after_clamped(sleeps, retry_after, expected_sleep):
    app = scripted(Reply(429, b"slow down", {"Retry-After": retry_after}), Reply(200, b"ok"))
    with FakeServer(app) as server:
        transport = make_transport(sleeps)
        response = transport.request("GET", server.url + "/v2/", "reg.test")
        assert response.status_code == 200
        transport.close()
    assert sleeps == [expected_sleep]
    assert transport.retry_count == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 416])
def test_request_returns_other_4xx_at_once(sleeps, status):
    with FakeServer(scripted(Reply(status, b"no"), Reply(200))) as server:
        transport = make_transport(sleeps)
        response = transport.request("GET", server.url + "/v2/x", "reg.test")
        assert response.status_code == status
        transport.close()
    assert len(server.requests) == 1
    assert sleeps == []
    assert transport.retry_count == 0


def test_request_persistent_500_returns_the_last_response_after_retries_plus_one_attempts(sleeps):
    with FakeServer(scripted(Reply(500, b"broken"))) as server:
        transport = make_transport(sleeps, retries=2)
        response = transport.request("GET", server.url + "/v2/", "reg.test")
        assert response.status_code == 500
        assert response.content == b"broken"
        transport.close()
    assert len(server.requests) == 3
    assert len(sleeps) == 2
    assert transport.retry_count == 2


def test_request_without_retry_sends_once(sleeps):
    with FakeServer(scripted(Reply(503), Reply(200))) as server:
        transport = make_transport(sleeps)
        response = transport.request("GET", server.url + "/v2/", "reg.test", retry=False)
        assert response.status_code == 503
        transport.close()
    assert len(server.requests) == 1
    assert sleeps == []


def test_requests_sharing_a_budget_draw_from_it_together(sleeps):
    with FakeServer(scripted(Reply(503), Reply(200), Reply(503), Reply(503), Reply(200))) as server:
        transport = make_transport(sleeps, retries=2)
        budget = transport.new_budget()
        assert transport.request("GET", server.url + "/v2/", "reg.test", budget=budget).status_code == 200
        # one retry left for the second request of the transfer: its second 503 is the answer
        assert transport.request("GET", server.url + "/v2/", "reg.test", budget=budget).status_code == 503
        # a lone request gets a fresh budget of `retries`
        assert transport.request("GET", server.url + "/v2/", "reg.test").status_code == 200
        transport.close()
    assert len(server.requests) == 5
    assert budget.remaining == 0
    assert transport.retry_count == 2 and len(sleeps) == 2


def test_request_without_retry_leaves_the_budget_alone(sleeps):
    with FakeServer(scripted(Reply(503), Reply(200))) as server:
        transport = make_transport(sleeps)
        budget = transport.new_budget()
        response = transport.request("PATCH", server.url + "/v2/", "reg.test", retry=False, budget=budget)
        assert response.status_code == 503
        transport.close()
    assert budget.spent == 0 and sleeps == [] and transport.retry_count == 0


def test_request_resends_a_bytes_body_on_each_attempt(sleeps):
    with FakeServer(scripted(Reply(503), Reply(201))) as server:
        transport = make_transport(sleeps)
        response = transport.request("PUT", server.url + "/v2/a/manifests/v1", "reg.test", data=b'{"x": 1}',
                                     headers={"Content-Type": "application/json"})
        assert response.status_code == 201
        transport.close()
    assert [(r.method, r.body, r.headers["Content-Type"]) for r in server.requests] == [
        ("PUT", b'{"x": 1}', "application/json")] * 2
    assert server.requests[0].headers["User-Agent"] == _transport.USER_AGENT


@pytest.mark.parametrize("retries", [0, 2])
def test_request_connection_refused_raises_transport_error_naming_the_host(sleeps, retries):
    port = closed_port()
    transport = make_transport(sleeps, retries=retries)
    with pytest.raises(TransportError) as info:
        transport.request("GET", "http://127.0.0.1:%d/v2/?token=%s" % (port, SECRET), "registry.example:5000")
    message = info.value.message
    # how many attempts over how long (issue 14): the sleeps here are not real, so no time passed
    assert re.match(r"cannot reach registry registry\.example:5000 after %d attempt\(s\) over 0\.\ds: " % (retries + 1),
                    message)
    assert "Connection refused" in message
    assert SECRET not in message and "/v2/" not in message
    assert info.value.details == {"registry": "registry.example:5000"}
    assert not isinstance(info.value, TLSError)
    assert len(sleeps) == retries
    assert transport.retry_count == retries


def test_request_tls_failure_is_not_retried(sleeps):
    # A TLS handshake against a plain-HTTP server fails in the TLS layer: TLSError at once.
    with FakeServer(scripted(Reply(200))) as server:
        transport = make_transport(sleeps)
        with pytest.raises(TLSError) as info:
            transport.request("GET", "https://%s/v2/?token=%s" % (server.host, SECRET), "reg.test")
        transport.close()
    assert info.value.message.startswith("registry reg.test does not speak TLS on this port (")
    assert info.value.message.endswith("set plain_http: true if it serves plain HTTP")
    assert info.value.problem == "not_tls"
    assert SECRET not in info.value.message
    assert sleeps == []


def test_request_read_timeout_is_retried_then_reported(sleeps, silent_listener):
    transport = Transport(retries=1, timeout=0.2, sleep=sleeps.append)
    with pytest.raises(TransportError) as info:
        transport.request("GET", "http://127.0.0.1:%d/v2/" % silent_listener, "reg.test")
    assert re.match(r"cannot reach registry reg\.test after 2 attempt\(s\) over \d+\.\ds: ", info.value.message)
    assert "timed out" in info.value.message
    assert len(sleeps) == 1


def test_request_error_on_a_redirect_never_contains_the_redirect_query(sleeps):
    # A registry redirects a blob GET to a signed URL it cannot be fetched from (here: unsupported scheme).
    location = "ftp://127.0.0.1/blob?X-Amz-Signature=%s" % SECRET
    with FakeServer(scripted(Reply(307, b"", {"Location": location}))) as server:
        transport = make_transport(sleeps)
        with pytest.raises(TransportError) as info:
            transport.request("GET", server.url + "/v2/a/blobs/sha256:x", "reg.test")
        transport.close()
    assert info.value.message.startswith("request to registry reg.test failed: ")
    assert SECRET not in info.value.message


# -- BodyReader --------------------------------------------------------------

def read_all(reader, size=65536):
    buffer = bytearray(size)
    parts = []
    while True:
        count = reader.readinto(memoryview(buffer))
        if not count:
            return b"".join(parts)
        parts.append(bytes(buffer[:count]))


def test_body_reader_fills_the_callers_buffer_with_the_whole_body(sleeps):
    body = bytes(range(256)) * 1000
    with FakeServer(scripted(Reply(200, body))) as server:
        transport = make_transport(sleeps)
        response = transport.request("GET", server.url + "/blob", "reg.test", stream=True)
        reader = BodyReader(response, "reg.test")
        assert reader._direct is not None  # straight from http.client, no per-chunk objects
        assert read_all(reader) == body
        transport.close()


def test_body_reader_decodes_a_content_encoded_body_through_requests(sleeps):
    body = b"layer bytes " * 5000
    with FakeServer(scripted(Reply(200, gzip.compress(body), {"Content-Encoding": "gzip"}))) as server:
        transport = make_transport(sleeps)
        response = transport.request("GET", server.url + "/blob", "reg.test", stream=True)
        reader = BodyReader(response, "reg.test")
        assert reader._direct is None
        assert read_all(reader, size=1000) == body
        transport.close()


@pytest.mark.parametrize("size", [100, 65536])
def test_body_reader_turns_a_connection_dropped_mid_body_into_transport_error(sleeps, size):
    def app(request, handler):
        # Announce 1000 bytes, send 500, hang up.
        write_raw(handler, 200, {"Content-Length": "1000"}, b"a" * 500)

    received = bytearray()
    with FakeServer(app) as server:
        transport = make_transport(sleeps)
        response = transport.request("GET", server.url + "/blob?token=%s" % SECRET, "reg.test", stream=True)
        assert response.status_code == 200
        reader = BodyReader(response, "reg.test")
        buffer = memoryview(bytearray(size))
        with pytest.raises(TransportError) as info:
            while True:
                count = reader.readinto(buffer)
                received.extend(buffer[:count])
        transport.close()
    assert bytes(received) == b"a" * 500  # what arrived was handed over before the error
    assert info.value.message.startswith("connection to registry reg.test dropped mid-transfer: ")
    assert SECRET not in info.value.message
    assert info.value.details == {"registry": "reg.test"}


def test_iter_body_yields_the_whole_body_in_chunks(sleeps):
    body = bytes(range(256)) * 1000
    with FakeServer(scripted(Reply(200, body))) as server:
        transport = make_transport(sleeps)
        response = transport.request("GET", server.url + "/blob", "reg.test", stream=True)
        chunks = list(iter_body(response, "reg.test", chunk_size=65536))
        transport.close()
    assert b"".join(chunks) == body
    assert len(chunks) >= 2 and all(chunks)


def test_chunk_reader_serves_chunks_into_smaller_and_larger_buffers():
    chunks = [b"abc", b"", b"defgh", b"i"]
    assert read_all(ChunkReader(chunks), size=2) == b"abcdefghi"
    assert read_all(ChunkReader(chunks), size=100) == b"abcdefghi"


# -- TLS: ca_path (file or plain directory), client certificates, error messages -------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority("unit CA")
    other = CertificateAuthority("some other CA")
    return {
        "root": root,
        "ca": ca.write(root / "ca" / "ca.pem"),
        "other_ca": other.write(root / "other" / "other.pem"),
        "server": ca.issue("127.0.0.1", ips=["127.0.0.1"]).write(root / "server"),
        "client": ca.issue("alice", client=True).write(root / "client"),
        "stranger": other.issue("mallory", client=True).write(root / "stranger"),
    }


def tls_server(app, pki, client_ca=None):
    server = FakeServer(app)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki["server"]["cert"]), str(pki["server"]["key"]))
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(client_ca))
    server._httpd.socket = context.wrap_socket(server._httpd.socket, server_side=True)
    return server


def get(transport, server):
    return transport.request("GET", "https://%s/v2/?token=%s" % (server.host, SECRET), "reg.test", retry=False)


def test_ca_path_file_is_trusted(sleeps, pki):
    with tls_server(scripted(Reply(200, b"{}")), pki) as server:
        transport = make_transport(sleeps, ca_path=str(pki["ca"]))
        assert get(transport, server).status_code == 200
        transport.close()


def test_ca_path_plain_directory_of_pem_files_is_trusted(sleeps, pki, tmp_path):
    # Not c_rehash'd: requests/OpenSSL would look for <hash>.0 names and find nothing.
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / "ca.crt").write_bytes(pki["ca"].read_bytes())
    (directory / "zz-other.pem").write_bytes(pki["other_ca"].read_bytes())
    (directory / "README").write_text("not a certificate")
    (directory / "leaked.key").write_bytes(pki["server"]["key"].read_bytes())
    (directory / "subdir").mkdir()
    with tls_server(scripted(Reply(200, b"{}")), pki) as server:
        transport = make_transport(sleeps, ca_path=str(directory))
        bundle = transport._bundle
        assert get(transport, server).status_code == 200
        content = open(bundle, "rb").read()
        assert b"PRIVATE KEY" not in content
        assert content.count(b"-----BEGIN CERTIFICATE-----") >= 3  # ours two + the default bundle
        transport.close()
    assert not os.path.exists(bundle)


def test_without_ca_path_a_private_ca_fails_with_advice(sleeps, pki):
    with tls_server(scripted(Reply(200, b"{}")), pki) as server:
        transport = make_transport(sleeps)
        with pytest.raises(TLSError) as info:
            get(transport, server)
        transport.close()
    message = info.value.message
    assert message.startswith("TLS verification failed for registry reg.test: ")
    assert "certificate verify failed" in message
    assert "set ca_path" in message and "validate_certs: false" in message
    assert info.value.problem == "untrusted_certificate"
    assert SECRET not in message


def test_a_ca_path_with_the_wrong_ca_fails_too(sleeps, pki):
    with tls_server(scripted(Reply(200, b"{}")), pki) as server:
        transport = make_transport(sleeps, ca_path=str(pki["other_ca"]))
        with pytest.raises(TLSError, match="TLS verification failed for registry reg.test"):
            get(transport, server)
        transport.close()


def test_validate_certs_false_skips_verification(sleeps, pki):
    with tls_server(scripted(Reply(200, b"{}")), pki) as server:
        transport = make_transport(sleeps, validate_certs=False)
        assert get(transport, server).status_code == 200
        transport.close()


def test_requests_ca_bundle_cannot_override_ca_path(sleeps, pki, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki["other_ca"]))
    with tls_server(scripted(Reply(200, b"{}")), pki) as server:
        transport = make_transport(sleeps, ca_path=str(pki["ca"]))
        assert get(transport, server).status_code == 200
        transport.close()


@pytest.mark.parametrize("setup, message", [
    (lambda d: str(d / "missing.pem"), "ca_path {d}/missing.pem does not exist"),
    (lambda d: (d / "empty").mkdir() or str(d / "empty"), "ca_path {d}/empty holds no PEM certificate"),
    (lambda d: (d / "x.pem").write_text("hello") and str(d / "x.pem"), "ca_path {d}/x.pem holds no PEM certificate"),
])
def test_unusable_ca_path(tmp_path, setup, message):
    with pytest.raises(TLSError) as info:
        Transport(ca_path=setup(tmp_path))
    assert info.value.message.startswith(message.format(d=tmp_path))


def test_mutual_tls_with_client_cert_and_key(sleeps, pki):
    with tls_server(scripted(Reply(200, b"{}")), pki, client_ca=pki["ca"]) as server:
        transport = make_transport(sleeps, ca_path=str(pki["ca"]), client_cert=str(pki["client"]["cert"]),
                                   client_key=str(pki["client"]["key"]))
        assert get(transport, server).status_code == 200
        transport.close()


def test_mutual_tls_with_cert_and_key_in_one_file(sleeps, pki, tmp_path):
    combined = tmp_path / "client.pem"
    combined.write_bytes(pki["client"]["cert"].read_bytes() + pki["client"]["key"].read_bytes())
    with tls_server(scripted(Reply(200, b"{}")), pki, client_ca=pki["ca"]) as server:
        transport = make_transport(sleeps, ca_path=str(pki["ca"]), client_cert=str(combined))
        assert get(transport, server).status_code == 200
        transport.close()


def test_mutual_tls_without_a_client_cert_says_to_set_one(sleeps, pki):
    with tls_server(scripted(Reply(200, b"{}")), pki, client_ca=pki["ca"]) as server:
        transport = make_transport(sleeps, ca_path=str(pki["ca"]))
        with pytest.raises(TLSError) as info:
            get(transport, server)
        transport.close()
    # OpenSSL servers close the connection, Go servers (Distribution) send "bad certificate"; both say what to do
    message = info.value.message
    assert message.startswith("registry reg.test requires a client certificate (mutual TLS): set "
                              "client_cert and client_key (") or (
        "the registry closed the connection" in message
        and message.endswith("if it requires a client certificate (mutual TLS), set client_cert and client_key")), message


def test_mutual_tls_with_a_certificate_from_another_ca_is_refused(sleeps, pki):
    with tls_server(scripted(Reply(200, b"{}")), pki, client_ca=pki["ca"]) as server:
        transport = make_transport(sleeps, ca_path=str(pki["ca"]), client_cert=str(pki["stranger"]["cert"]),
                                   client_key=str(pki["stranger"]["key"]))
        with pytest.raises(TLSError) as info:
            get(transport, server)
        transport.close()
    assert "registry reg.test refused the client certificate" in info.value.message \
        or "it may have refused the client certificate" in info.value.message


def test_a_key_that_does_not_match_the_certificate(sleeps, pki):
    with tls_server(scripted(Reply(200, b"{}")), pki, client_ca=pki["ca"]) as server:
        transport = make_transport(sleeps, ca_path=str(pki["ca"]), client_cert=str(pki["client"]["cert"]),
                                   client_key=str(pki["stranger"]["key"]))
        with pytest.raises(TLSError) as info:
            get(transport, server)
        transport.close()
    assert info.value.message.startswith("the client certificate for registry reg.test cannot be used (")


@pytest.mark.parametrize("kwargs, message", [
    ({"client_cert": "/nonexistent/c.pem"}, "client_cert /nonexistent/c.pem does not exist or is not a file"),
    ({"client_cert": "{cert}", "client_key": "/nonexistent/k.pem"},
     "client_key /nonexistent/k.pem does not exist or is not a file"),
    ({"client_key": "{cert}"}, "client_key is set but client_cert is not"),
])
def test_unusable_client_certificate_options(pki, kwargs, message):
    kwargs = dict((k, v.format(cert=pki["client"]["cert"])) for k, v in kwargs.items())
    with pytest.raises(TLSError) as info:
        Transport(**kwargs)
    assert info.value.message.startswith(message)


@pytest.mark.parametrize("text, problem", [
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate", "untrusted_certificate"),
    ("[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate (_ssl.c:2580)", "client_certificate"),
    ("[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required", "client_certificate"),
    ("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca", "client_certificate"),
    ("[X509: KEY_VALUES_MISMATCH] key values mismatch", "client_certificate"),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", "not_tls"),
    ("[SSL: RECORD_LAYER_FAILURE] record layer failure", "not_tls"),
    ("EOF occurred in violation of protocol (_ssl.c:2427)", "handshake"),
    ("[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version", "handshake"),
])
def test_classify_tls_error(text, problem):
    assert _transport.classify_tls_error(text) == problem


# -- redirects: the registry's Authorization never reaches another host --------------------

def test_a_redirect_to_another_host_drops_authorization(sleeps):
    storage = FakeServer(scripted(Reply(200, b"blob bytes")))
    # 127.0.0.2 is another loopback address: another host as far as requests is concerned
    storage._httpd.server_close()
    storage._httpd = http.server.ThreadingHTTPServer(("127.0.0.2", 0), storage._httpd.RequestHandlerClass)
    storage._thread = threading.Thread(target=storage._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                       daemon=True)
    with storage:
        location = "http://127.0.0.2:%d/bucket/blob?X-Amz-Signature=sig" % storage.port
        with FakeServer(scripted(Reply(307, b"", {"Location": location}))) as registry:
            transport = make_transport(sleeps)
            response = transport.request("GET", registry.url + "/v2/a/blobs/sha256:x", "reg.test",
                                         headers={"Authorization": "Bearer " + SECRET, "Range": "bytes=5-"})
            assert response.status_code == 200 and response.content == b"blob bytes"
            transport.close()
    assert registry.requests[0].headers["Authorization"] == "Bearer " + SECRET
    sent = storage.requests[0]
    assert sent.path == "/bucket/blob?X-Amz-Signature=sig"
    assert "Authorization" not in sent.headers
    assert sent.headers["Range"] == "bytes=5-"  # other headers (a resumed download's Range) go along


def test_a_redirect_to_another_port_drops_authorization(sleeps):
    with FakeServer(scripted(Reply(200, b"ok"))) as storage:
        with FakeServer(scripted(Reply(307, b"", {"Location": storage.url + "/b"}))) as registry:
            transport = make_transport(sleeps)
            transport.request("GET", registry.url + "/v2/a/blobs/sha256:x", "reg.test",
                              headers={"Authorization": "Basic " + SECRET})
            transport.close()
    assert "Authorization" not in storage.requests[0].headers


def test_netrc_credentials_are_never_added(sleeps, tmp_path, monkeypatch):
    with FakeServer(scripted(Reply(200, b"ok"))) as storage:
        with FakeServer(scripted(Reply(307, b"", {"Location": storage.url + "/b"}), Reply(200))) as registry:
            netrc = tmp_path / "netrc"
            netrc.write_text("machine 127.0.0.1 login netrc-user password %s\n" % SECRET)
            netrc.chmod(0o600)
            monkeypatch.setenv("NETRC", str(netrc))
            transport = make_transport(sleeps)
            transport.request("GET", registry.url + "/v2/a/blobs/sha256:x", "reg.test")
            transport.request("GET", registry.url + "/v2/", "reg.test")
            transport.close()
    assert all("Authorization" not in r.headers for r in registry.requests + storage.requests)


# -- proxies from the environment ------------------------------------------------------------

def test_proxies_from_the_environment_are_used(sleeps, monkeypatch):
    with FakeServer(scripted(Reply(200, b"via proxy"))) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        transport = make_transport(sleeps)
        response = transport.request("GET", "http://registry.invalid:5000/v2/", "registry.invalid:5000")
        assert response.content == b"via proxy"
        transport.close()
    # a forward proxy receives the absolute URL
    assert proxy.requests[0].path == "http://registry.invalid:5000/v2/"


def test_no_proxy_bypasses_the_proxy(sleeps, monkeypatch):
    with FakeServer(scripted(Reply(200, b"direct"))) as registry:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:%d" % closed_port())
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:%d" % closed_port())
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        transport = make_transport(sleeps)
        assert transport.request("GET", registry.url + "/v2/", "reg.test").content == b"direct"
        transport.close()


def count_proxy_lookups(layer, monkeypatch):
    """The proxy lookups of the HTTP layer `layer` ("requests" or "client"), recorded as they happen."""
    looked_up = []
    if layer == "requests":
        real_requests = requests.utils.get_environ_proxies
        monkeypatch.setattr(requests.utils, "get_environ_proxies",
                            lambda url, no_proxy=None: looked_up.append(url) or real_requests(url, no_proxy=no_proxy))
    else:
        real_client = _http.environment_proxy
        monkeypatch.setattr(_http, "environment_proxy", lambda scheme, host, environ_proxies=None: looked_up.append(
            "%s://%s/v2/" % (scheme, host)) or real_client(scheme, host, environ_proxies))
    return looked_up


@pytest.mark.parametrize("layer", ["requests", "client"])
def test_the_environment_is_read_once_per_registry_not_per_request(sleeps, monkeypatch, layer):
    """requests would scan every environment variable for proxies before each request; both layers read it once."""
    monkeypatch.setenv("IMAGEPUSHER_HTTP", layer)
    looked_up = count_proxy_lookups(layer, monkeypatch)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with FakeServer(scripted(*[Reply(200, b"via proxy")] * 3)) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        transport = make_transport(sleeps)
        for path in ("/v2/", "/v2/a/manifests/1", "/v2/b/blobs/sha256:0"):
            assert transport.request("GET", "http://registry.invalid:5000" + path, "registry.invalid:5000").content == b"via proxy"
        transport.close()
    assert looked_up == ["http://registry.invalid:5000/v2/"] and len(proxy.requests) == 3


def test_the_http_layer_is_the_client_unless_requests_is_asked_for(monkeypatch):
    for value, layer in ((None, _http.Session), ("client", _http.Session), ("anything", _http.Session),
                         ("requests", _requests_layer.Session)):
        if value is None:
            monkeypatch.delenv("IMAGEPUSHER_HTTP", raising=False)
        else:
            monkeypatch.setenv("IMAGEPUSHER_HTTP", value)
        transport = _transport.Transport(timeout=5)
        assert type(transport.session) is layer  # pylint: disable=unidiomatic-typecheck
        transport.close()
        assert _transport.http_library_error() is None  # the client needs no library; requests is in the test venv
    monkeypatch.setattr(_requests_layer, "HAS_REQUESTS", False)
    monkeypatch.setattr(_requests_layer, "REQUESTS_IMPORT_ERROR", ImportError("no requests"))
    assert _transport.http_library_error()[0] == "requests"  # only the way back needs it
    monkeypatch.setenv("IMAGEPUSHER_HTTP", "client")
    assert _transport.http_library_error() is None


@pytest.mark.parametrize("chunks, limit, expected", [
    ([b"ab", b"cd"], 10, b"abcd"),          # under the limit: everything
    ([b"ab", b"cd"], 4, b"abcd"),           # exactly the limit: not over it
    ([b"abc", b"def", b"ghi"], 4, b"abcde"),  # over: limit + 1 bytes, enough to tell
    ([], 4, b""),
])
def test_read_limited(chunks, limit, expected):
    assert _transport.read_limited(iter(chunks), limit) == expected


def test_read_limited_stops_reading_once_over_the_limit():
    taken = []

    def endless():
        while True:
            taken.append(1)
            yield b"x" * 10

    assert len(_transport.read_limited(endless(), 25)) == 26
    assert len(taken) == 3


# -- the cached environment gives what requests' own merge gives --------------------------------

ENVIRONMENTS = {
    "nothing": {},
    "https_proxy": {"HTTPS_PROXY": "http://proxy.test:3128", "https_proxy": "http://proxy.test:3128"},
    "no_proxy_exempts_the_host": {"HTTPS_PROXY": "http://proxy.test:3128", "https_proxy": "http://proxy.test:3128",
                                  "NO_PROXY": "other.test,reg.test", "no_proxy": "other.test,reg.test"},
    "requests_ca_bundle": {"REQUESTS_CA_BUNDLE": "/etc/host/ca.pem"},
    "curl_ca_bundle": {"CURL_CA_BUNDLE": "/etc/curl/ca.pem"},
}
PROXY_AND_CA_VARIABLES = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]


@pytest.mark.parametrize("verify", [True, None, False, "/etc/ours/ca.pem"])
@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_the_cached_environment_merges_as_requests_does(monkeypatch, environment, verify):
    for name in PROXY_AND_CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in ENVIRONMENTS[environment].items():
        monkeypatch.setenv(name, value)
    url = "https://reg.test/v2/team/app/manifests/v1"
    expected = requests.Session().merge_environment_settings(url, {}, False, verify, None)
    session = _requests_layer.Session()
    first = session.merge_environment_settings(url, {}, False, verify, None)  # reads the environment
    again = session.merge_environment_settings(url, {}, False, verify, None)  # from what it kept
    assert first == again == expected
    assert list(session._environment) == [("https", "reg.test")]  # the second answer came from what it kept
    # what each case is there for (requests' own answer, so the comparison above is not a vacuous one)
    proxy = {"https_proxy": "http://proxy.test:3128"}.get(environment)
    bundle = {"requests_ca_bundle": "/etc/host/ca.pem", "curl_ca_bundle": "/etc/curl/ca.pem"}.get(environment)
    assert expected["proxies"].get("https") == proxy
    assert expected["verify"] == (bundle or True if verify in (True, None) else verify)
