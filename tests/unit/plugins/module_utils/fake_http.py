# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tiny scripted HTTP/1.1 server for unit tests (127.0.0.1, ephemeral port, threads).

    def app(request, handler):
        return 200, {"Content-Type": "application/json"}, b"{}"   # or Reply(...)
        # ... or write a raw answer on handler.wfile yourself and return None

    with FakeServer(app) as server:
        requests.get(server.url + "/v2/")
        assert server.requests[0].path == "/v2/"

Every request is recorded (method, path, headers, body) before the app answers.
Imported as ``tests.unit.plugins.module_utils.fake_http`` (the repo root is on sys.path).
"""

import http.server
import json
import socket
import threading

try:
    from urllib.parse import parse_qsl, urlsplit
except ImportError:  # pragma: no cover
    from urlparse import parse_qsl, urlsplit


class Request:
    """What the client sent: method, raw path (with query), headers (case-insensitive), body."""

    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    @property
    def route(self):
        return urlsplit(self.path).path

    @property
    def query(self):
        return parse_qsl(urlsplit(self.path).query, keep_blank_values=True)

    def __repr__(self):
        return "Request(%s %s)" % (self.method, self.path)


class Reply:
    def __init__(self, status=200, body=b"", headers=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        self.headers = dict(headers or {})


def json_reply(document, status=200, headers=None):
    merged = {"Content-Type": "application/json"}
    merged.update(headers or {})
    return Reply(status, json.dumps(document).encode("utf-8"), merged)


def _normalize(result):
    if isinstance(result, Reply):
        return result
    if isinstance(result, int):
        return Reply(result)
    status, headers, body = (tuple(result) + (None, None))[:3]
    return Reply(status, body or b"", headers)


def write_raw(handler, status, headers, body=b"", close=True):
    """Write a status line, headers and body as given (no Content-Length added)."""
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.end_headers()
    if body:
        handler.wfile.write(body)
    handler.wfile.flush()
    if close:
        handler.close_connection = True


class FakeServer:
    """An HTTP server answering with `app(request, handler)`; use as a context manager."""

    def __init__(self, app):
        self.app = app
        self.requests = []
        self.errors = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, *args):  # keep test output clean
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, self.headers, body)
                fake.requests.append(request)
                try:
                    result = fake.app(request, self)
                except Exception as exc:  # surfaced by the tests through server.errors
                    fake.errors.append(exc)
                    result = Reply(599, b"fake server app failed: %r" % exc)
                if result is None:
                    return
                reply = _normalize(result)
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if not any(k.lower() == "content-length" for k in reply.headers):
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD" and reply.body:
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01})
        self._thread.daemon = True

    @property
    def port(self):
        return self._httpd.server_address[1]

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://" + self.host

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def scripted(*replies):
    """An app answering each request with the next reply; the last one repeats."""
    queue = list(replies)

    def app(request, handler):
        return queue.pop(0) if len(queue) > 1 else queue[0]
    return app


def closed_port():
    """A 127.0.0.1 port nobody listens on (bound, then released)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
