"""Self-tests of tests/support/fault_proxy.py and hostile_registry.py (no registry needed).

The fault tests are only as good as the proxy: each action must do exactly what it says and
nothing else, so every action is checked here against a small in-process upstream, with a
client that is not ours (plain requests).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import time

import pytest
import requests

from tests.support.fault_proxy import (
    MiB,
    FaultProxy,
    flip,
    replace,
    reset,
    stall,
    status,
    throttle,
    truncate,
)
from tests.support.hostile_registry import HostileRegistry, sha256
from tests.support.servers import QuietHTTPServer

BODY = bytes(range(256)) * 4096  # 1 MiB


class _Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def _answer(self, body: bytes, chunked: bool = False):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Location", f"http://{self.headers['Host']}/next")
        self.send_header("X-Upstream", "yes")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 100000):
                part = body[start:start + 100000]
                self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        type(self).seen.append((self.command, self.path, self.headers.get("Host")))
        self._answer(BODY, chunked=self.path.startswith("/chunked"))

    def do_HEAD(self):  # noqa: N802
        type(self).seen.append((self.command, self.path, self.headers.get("Host")))
        self._answer(BODY)

    def do_PUT(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        type(self).seen.append((self.command, self.path, hashlib.sha256(data).hexdigest()))
        self._answer(hashlib.sha256(data).hexdigest().encode())


@pytest.fixture(scope="module")
def upstream_server():
    server = QuietHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def upstream(upstream_server):
    _Upstream.seen = []
    return upstream_server


@pytest.fixture
def proxy(upstream):
    with FaultProxy(f"127.0.0.1:{upstream.server_address[1]}") as fault_proxy:
        yield fault_proxy


@pytest.fixture
def http():
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


def test_passes_everything_through_unchanged(proxy, http):
    response = http.get(proxy.url + "/blob?x=1", headers={"X-Client": "1"})
    assert response.status_code == 200 and response.content == BODY
    assert response.headers["X-Upstream"] == "yes"
    # the Host the client used reaches the upstream, so its Location points back at the proxy
    assert response.headers["Location"] == f"http://{proxy.host}/next"
    assert _Upstream.seen == [("GET", "/blob?x=1", proxy.host)]
    assert http.head(proxy.url + "/blob").headers["Content-Length"] == str(len(BODY))
    assert http.put(proxy.url + "/up", data=BODY).content == hashlib.sha256(BODY).hexdigest().encode()
    chunked = http.get(proxy.url + "/chunked")
    assert chunked.content == BODY and chunked.headers["Transfer-Encoding"] == "chunked"
    record = proxy.exchanges("GET", "^/blob")[0]
    assert record.header("x-client") == "1" and record.status == 200 and record.response_bytes == len(BODY)
    assert record.fault is None and record.forwarded


def test_status_answers_locally_for_the_window_only(proxy, http):
    rule = proxy.add("GET", "^/blob$", status(429, retry_after=7), first=2, last=3)
    codes = [http.get(proxy.url + "/blob").status_code for _attempt in range(4)]
    assert codes == [200, 429, 429, 200]
    assert rule.matched == 4 and rule.hits == 2 and rule.fired.is_set()
    limited = proxy.exchanges("GET")[1]
    assert limited.response_header is not None and not limited.forwarded
    assert len(_Upstream.seen) == 2
    response = http.get(proxy.url + "/other")
    assert response.status_code == 200
    proxy.add(None, "^/other$", status(503), times=1)
    failed = http.get(proxy.url + "/other")
    assert failed.status_code == 503 and json.loads(failed.content)["errors"][0]["code"] == "UNAVAILABLE"


def test_retry_after_header(proxy, http):
    proxy.add("GET", "", status(429, retry_after=7), times=1)
    assert http.get(proxy.url + "/x").headers["Retry-After"] == "7"


def test_reset_before_any_answer(proxy, http):
    proxy.add("PUT", "^/up$", reset(), times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        http.put(proxy.url + "/up", data=BODY)
    record = proxy.exchanges("PUT")[0]
    assert record.request_bytes == len(BODY) and not record.forwarded and record.status is None
    assert http.put(proxy.url + "/up", data=b"ok").status_code == 200


def test_reset_after_n_body_bytes(proxy, http):
    proxy.add("GET", "^/blob$", reset(after=300000), times=1)
    received = bytearray()
    with pytest.raises(requests.exceptions.RequestException):
        with http.get(proxy.url + "/blob", stream=True) as response:
            for chunk in response.iter_content(4096):
                received += chunk
    assert 0 < len(received) <= 300000 and bytes(received) == BODY[:len(received)]
    assert proxy.exchanges("GET")[0].response_bytes == 300000


@pytest.mark.parametrize("path", ["/blob", "/chunked"])
def test_truncate_sends_a_shorter_complete_body(proxy, http, path):
    proxy.add("GET", "", truncate(at=1000), times=1)
    response = http.get(proxy.url + path)
    assert response.content == BODY[:1000] and response.headers["Content-Length"] == "1000"
    assert "Transfer-Encoding" not in response.headers and response.headers["X-Upstream"] == "yes"
    assert http.get(proxy.url + path).content == BODY  # the connection carries on


def test_flip_inverts_one_byte(proxy, http):
    proxy.add("GET", "", flip(at=5), times=1)
    got = http.get(proxy.url + "/blob").content
    assert len(got) == len(BODY) and got[5] == BODY[5] ^ 0xFF and got[:5] + got[6:] == BODY[:5] + BODY[6:]


def test_replace_the_body(proxy, http):
    proxy.add("GET", "", replace(b"other bytes"), times=1)
    response = http.get(proxy.url + "/blob")
    assert response.content == b"other bytes" and response.headers["X-Upstream"] == "yes"


def test_stall_before_the_answer_and_mid_body(proxy, http):
    proxy.add("GET", "^/a$", stall(0.4), times=1)
    proxy.add("GET", "^/b$", stall(0.4, after=1000), times=1)
    for path in ("/a", "/b"):
        started = time.monotonic()
        assert http.get(proxy.url + path).content == BODY
        assert time.monotonic() - started >= 0.4
    with pytest.raises(requests.exceptions.ReadTimeout):
        proxy.add("GET", "^/c$", stall(5), times=1)
        http.get(proxy.url + "/c", timeout=0.3)


def test_stall_on_the_request_never_forwards_what_the_client_abandoned(proxy, upstream):
    rule = proxy.add("PUT", "^/up$", stall(0.3, stage="request"), times=1)
    with socket.create_connection(("127.0.0.1", proxy.port)) as raw:
        raw.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        assert rule.fired.wait(2)
    time.sleep(0.6)
    assert [s for s in _Upstream.seen if s[0] == "PUT"] == []


def test_throttle_both_ways(proxy, http):
    down = proxy.add("GET", "", throttle(2 * MiB), times=1)
    started = time.monotonic()
    assert http.get(proxy.url + "/blob").content == BODY
    assert time.monotonic() - started >= 0.4
    assert down.hits == 1
    proxy.add("PUT", "", throttle(2 * MiB, "up"), times=1)
    started = time.monotonic()
    assert http.put(proxy.url + "/up", data=BODY).status_code == 200
    assert time.monotonic() - started >= 0.4


def test_header_rule_and_clear(proxy, http):
    rule = proxy.add("PUT", "^/up$", status(503), header=("Content-Range", "^100-"))
    assert http.put(proxy.url + "/up", data=b"a", headers={"Content-Range": "0-0"}).status_code == 200
    assert http.put(proxy.url + "/up", data=b"a", headers={"Content-Range": "100-100"}).status_code == 503
    proxy.clear()
    assert not rule.enabled
    assert http.put(proxy.url + "/up", data=b"a", headers={"Content-Range": "100-100"}).status_code == 200


def test_tls_client_hello_gets_a_plain_http_400(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x05hello")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")


def test_hostile_registry_serves_what_it_is_told():
    with HostileRegistry() as evil:
        repo = evil.repo("bad/app")
        repo.blobs["md5:0123"] = b"data"
        digest = repo.manifest("v1", b"{}", "application/json", head_digest_header=None)
        session = requests.Session()
        session.trust_env = False
        assert session.get(evil.url + "/v2/").status_code == 200
        got = session.get(evil.url + "/v2/bad/app/manifests/v1")
        assert got.content == b"{}" and got.headers["Docker-Content-Digest"] == digest == sha256(b"{}")
        assert "Docker-Content-Digest" not in session.head(evil.url + "/v2/bad/app/manifests/v1").headers
        assert session.get(evil.url + "/v2/bad/app/manifests/" + digest).status_code == 200
        assert session.get(evil.url + "/v2/bad/app/blobs/md5:0123").content == b"data"
        ranged = session.get(evil.url + "/v2/bad/app/blobs/md5:0123", headers={"Range": "bytes=2-"})
        assert ranged.status_code == 206 and ranged.content == b"ta"
        assert session.get(evil.url + "/v2/bad/app/blobs/md5:0123", headers={"Range": "bytes=9-"}).status_code == 416
        assert session.get(evil.url + "/v2/other/manifests/v1").status_code == 404
        repo.upload_location = "http://elsewhere.invalid/upload"
        started = session.post(evil.url + "/v2/bad/app/blobs/uploads/")
        assert started.status_code == 202 and started.headers["Location"] == "http://elsewhere.invalid/upload"
        assert [r.method for r in evil.requests_for("/v2/bad/app/")][:2] == ["GET", "HEAD"]
