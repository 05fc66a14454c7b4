# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import http.client as http_client
import io

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _http_response
from ansible_collections.imagepusher.registry.plugins.module_utils._http_response import FastResponse


class _Socket:
    def __init__(self, data):
        self.data = data

    def makefile(self, *_args, **_kwargs):
        return io.BytesIO(self.data)


def outcome(response_class, raw, method="GET"):
    """What a response made of `raw` says: its fields, every header pair, its body; or the error it raised."""
    response = response_class(_Socket(raw), method=method)
    try:
        response.begin()
    except Exception as exc:  # compared by type: both classes must refuse the same answers
        return type(exc)
    return {"status": response.status, "reason": response.reason, "version": response.version,
            "chunked": response.chunked, "length": response.length, "will_close": response.will_close,
            "headers": response.getheaders(), "digest": response.getheader("docker-content-digest"),
            "links": response.headers.get_all("Link"), "body": response.read()}


ANSWERS = {
    "plain": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
             b"Docker-Content-Digest: sha256:abc\r\n\r\n{}",
    "repeated": b"HTTP/1.1 200 OK\r\nLink: <a>; rel=next\r\nlink: <b>; rel=last\r\nContent-Length: 0\r\n\r\n",
    "folded": b"HTTP/1.1 200 OK\r\nX-Long: one\r\n  two\r\n\tthree\r\nContent-Length: 1\r\n\r\nx",
    "spaces": b"HTTP/1.1 200 OK\r\nX-A:\t  padded  \r\nX-B:no-space\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n",
    "not a header": b"HTTP/1.1 200 OK\r\nX-A: 1\r\nthis is no header\r\nX-B: 2\r\nContent-Length: 0\r\n\r\n",
    "no name": b"HTTP/1.1 200 OK\r\n: nameless\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n",
    "bare CR": b"HTTP/1.1 200 OK\r\nX-A: one\rX-B: two\r\nX-C: a\rb c\r\nContent-Length: 0\r\n\r\n",
    "continuation first": b"HTTP/1.1 200 OK\r\n  lost\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n",
    "latin-1": b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 0\r\n\r\n",
    "LF only": b"HTTP/1.1 200 OK\nContent-Length: 3\nX-A: 1\n\nabc",
    "no content": b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
    "not modified": b"HTTP/1.1 304 Not Modified\r\n\r\n",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 99\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    "1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "1.0 keep-alive": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    "no length": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    "bad length": b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\nbody",
    "negative length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nbody",
    "continue": b"HTTP/1.1 100 Continue\r\nX-Skip: 1\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /v2/x\r\n"
                b"Content-Length: 0\r\n\r\n",
    "reason spaces": b"HTTP/1.1 404   Not Found  \r\nContent-Length: 0\r\n\r\n",
    "HTTP/2": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    "garbage": b"SSH-2.0-OpenSSH\r\n\r\n",
    "nothing": b"",
    "too many": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n",
    "too long": b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 70000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_same_answer_as_http_client_reads_it(name, method):
    assert outcome(FastResponse, ANSWERS[name], method) == outcome(http_client.HTTPResponse, ANSWERS[name], method)


def test_a_python_without_the_private_methods_gets_the_stock_begin(monkeypatch):
    monkeypatch.setattr(_http_response, "_SUPPORTED", False)
    monkeypatch.setattr(_http_response, "message", lambda lines: pytest.fail("the fast path ran"))
    assert outcome(FastResponse, ANSWERS["plain"]) == outcome(http_client.HTTPResponse, ANSWERS["plain"])


def test_begin_twice_reads_nothing_more():
    response = FastResponse(_Socket(ANSWERS["plain"]), method="GET")
    response.begin()
    response.begin()
    assert response.read() == b"{}"
