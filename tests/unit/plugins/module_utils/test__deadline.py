# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deadline: `timeout` bounds a trickling server, for headers, manifests, blobs, tokens and uploads.

A real registry never trickles, so an in-process server does: one byte every TRICKLE seconds,
well under the floor rate. With timeout=1 and retries=0, each case must end within a small
multiple of the timeout (the deadline's bound is about 2 * timeout plus a tick per attempt).
"""

import json
import socket
import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _deadline
from ansible_collections.imagepusher.registry.plugins.module_utils._auth import Authenticator
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError, TransportError
from ansible_collections.imagepusher.registry.plugins.module_utils._registry import RegistryClient
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import BodyReader, Transport
from tests.unit.plugins.module_utils.fake_http import FakeServer
from tests.unit.plugins.module_utils.test__auth import Challenge

REGISTRY = "reg.test"
REPO = "team/app"
TRICKLE = 0.3  # seconds between two bytes: about 3 bytes/s, far below the floor
BOUND = 6.0  # seconds: a small multiple of timeout=1 (the per-read timeout alone would never fire)
BODY = b'{"schemaVersion": 2}' + b" " * 4000
DIGEST = of_bytes(BODY)


def trickle(handler, data, pause=TRICKLE, stop=None):
    """Send `data` one byte at a time until done, the client goes away, or `stop` is set."""
    for index in range(len(data)):
        if stop is not None and stop.is_set():
            return
        try:
            handler.wfile.write(data[index:index + 1])
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(pause)


def trickling_body(headers):
    """An app answering every request with `headers` at once and then a trickled BODY."""
    def app(request, handler):
        handler.send_response(200)
        for key, value in dict(headers, **{"Content-Length": str(len(BODY))}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.flush()
        trickle(handler, BODY)
    return app


@pytest.fixture
def transport():
    transport = Transport(retries=0, timeout=1, sleep=lambda s: None)
    yield transport
    transport.close()


def timed(call):
    """(exception raised by call, seconds it took)."""
    started = time.monotonic()
    with pytest.raises(ImagePusherError) as caught:
        call()
    return caught.value, time.monotonic() - started


def client(server, transport):
    return RegistryClient(REGISTRY, transport, None, api_host=server.host, plain_http=True)


def test_a_trickled_manifest_ends_within_the_bound(transport):
    app = trickling_body({"Content-Type": "application/vnd.oci.image.manifest.v1+json", "Docker-Content-Digest": DIGEST})
    with FakeServer(app) as server:
        error, took = timed(lambda: client(server, transport).get_manifest(REPO, "v1"))
    assert took < BOUND
    assert "registry" in error.message


def test_a_trickled_blob_download_ends_within_the_bound_and_says_why(transport):
    with FakeServer(trickling_body({"Content-Type": "application/octet-stream"})) as server:
        response, _start = client(server, transport).open_blob(REPO, DIGEST)
        reader = BodyReader(response, REGISTRY)
        view = memoryview(bytearray(1024 * 1024))

        def read_all():
            while reader.readinto(view):
                pass
        error, took = timed(read_all)
        response.close()
    assert isinstance(error, TransportError)
    assert took < BOUND
    assert "dropped mid-transfer" in error.message
    assert "bytes/s" in error.message and "timeout" in error.message


def test_a_trickled_token_ends_within_the_bound(transport):
    with FakeServer(trickling_body({"Content-Type": "application/json"})) as server:
        auth = Authenticator(transport, REGISTRY)
        challenge = Challenge('Bearer realm="%s/token",service="%s"' % (server.url, REGISTRY))
        _error, took = timed(lambda: auth.answer(challenge, ["repository:%s:pull" % REPO]))
    assert took < BOUND


def test_trickled_headers_end_within_the_bound_with_the_reason(transport):
    def app(request, handler):
        trickle(handler, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with FakeServer(app) as server:
        error, took = timed(lambda: client(server, transport).head_blob(REPO, DIGEST))
    assert isinstance(error, TransportError)
    assert took < BOUND
    assert "bytes/s" in error.message


def test_a_trickled_upload_response_ends_within_the_bound(transport):
    def app(request, handler):  # the body was read whole; the answer trickles
        trickle(handler, b"HTTP/1.1 202 Accepted\r\nLocation: /v2/team/app/blobs/uploads/x\r\n"
                         b"Range: 0-9\r\nContent-Length: 0\r\n\r\n")
    with FakeServer(app) as server:
        registry = client(server, transport)
        location = server.url + "/v2/team/app/blobs/uploads/x"
        _error, took = timed(lambda: registry.upload_chunk(REPO, location, b"0123456789", 0, "upload"))
    assert took < BOUND


def test_a_slow_but_steady_transfer_is_not_cut(transport):
    """3 KiB/s for about 3 timeouts: above the floor, so it completes."""
    body = json.dumps({"pad": "x" * 9000}).encode()

    def app(request, handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for start in range(0, len(body), 300):
            handler.wfile.write(body[start:start + 300])
            handler.wfile.flush()
            time.sleep(0.1)
    with FakeServer(app) as server:
        response = transport.request("GET", server.url + "/slow", REGISTRY, stream=True)
        data = b"".join(iter(lambda: response.raw.read(4096), b""))
        response.close()
    assert data == body


# -- the watchdog itself, on a real loopback TCP connection ---------------------------

class Connection:
    def __init__(self, sock, timeout):
        self.sock = sock
        self.timeout = timeout


@pytest.fixture
def tcp_pair():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    near = socket.create_connection(listener.getsockname())
    far, _address = listener.accept()
    listener.close()
    yield near, far
    near.close()
    far.close()


def test_moved_bytes_counts_both_directions(tcp_pair):
    near, far = tcp_pair
    before = _deadline.moved_bytes(near)  # the handshake's SYN counts as one byte acknowledged
    assert before <= 1
    near.sendall(b"x" * 1000)
    far.recv(1000)
    far.sendall(b"y" * 500)
    near.recv(500)
    time.sleep(0.05)  # the acknowledgement of what near sent
    assert _deadline.moved_bytes(near) - before == 1500
    assert _deadline.moved_bytes(None) is None


def test_watchdog_shuts_only_connections_below_the_floor(tcp_pair):
    near, far = tcp_pair
    now = [100.0]
    watchdog = _deadline.Watchdog(floor=1024, clock=lambda: now[0])
    watchdog._thread = threading.current_thread()  # checked by hand here: no background thread
    stalled = Connection(near, 2)
    watchdog.busy(stalled)
    now[0] += 1.0
    assert watchdog.check() == 0  # the window is not over yet
    near.sendall(b"z" * 100)
    now[0] += 1.5
    assert watchdog.check() == 1  # 100 bytes in 2.5 s: under 1 KiB/s
    assert far.recv(1000) == b"z" * 100
    assert near.recv(10) == b""  # shut: a blocked reader would see the end of the stream
    error = watchdog.take_stall()
    assert isinstance(error, _deadline.StallError) and "1024 bytes/s" in str(error)
    assert watchdog.take_stall() is None


def test_watchdog_keeps_a_connection_that_moves_enough_and_forgets_idle_ones(tcp_pair):
    near, far = tcp_pair
    now = [100.0]
    watchdog = _deadline.Watchdog(floor=1024, clock=lambda: now[0])
    watchdog._thread = threading.current_thread()
    busy = Connection(near, 1)
    watchdog.busy(busy)
    near.sendall(b"q" * 4096)
    far.recv(8192)
    time.sleep(0.05)
    now[0] += 1.5
    assert watchdog.check() == 0  # 4 KiB in the window: a new window starts
    watchdog.idle(busy)
    now[0] += 10
    assert watchdog.check() == 0  # idle: never shut, however quiet
    watchdog.busy(Connection(near, None))
    now[0] += 10
    assert watchdog.check() == 0  # no timeout, no deadline
