"""A tiny forward HTTP proxy (plain HTTP only, no CONNECT) that records what passes through.

To prove a module honours $HTTP_PROXY: point the variable at this proxy, clear NO_PROXY, and
pull from a plain-HTTP loopback registry; the proxy sees absolute-URI requests
(``GET http://127.0.0.1:PORT/v2/ HTTP/1.1``) and forwards them.

    with ForwardProxy() as proxy:
        env = {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": ""}
        ...
        proxy.requests   # [(method, absolute URL)]

CONNECT (HTTPS through the proxy) is recorded and answered 405, so an https:// request fails fast.

``hosts`` maps host names to the address the proxy connects to, so a test can reach a loopback
registry under a name that is not loopback (which the modules never talk plain HTTP to unless
told to): ``ForwardProxy(hosts={"mirror.test": "127.0.0.1"})`` and ``mirror.test:<port>/repo``.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from urllib.parse import urlsplit

from tests.support.servers import BackgroundServer

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "proxy-connection"}


class ForwardProxy(BackgroundServer):
    def __init__(self, hosts: dict[str, str] | None = None):
        self.requests: list[tuple[str, str]] = []
        self.hosts = dict(hosts or {})
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ForwardProxy":
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_CONNECT(self):
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _forward(self):
                proxy._forward(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        return self._serve_in_background("127.0.0.1", Handler)

    def _forward(self, handler) -> None:
        with self._lock:
            self.requests.append((handler.command, handler.path))
        target = urlsplit(handler.path)
        if target.scheme != "http" or not target.hostname:
            handler.send_response(400)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        path = target.path + ("?" + target.query if target.query else "")
        upstream = http.client.HTTPConnection(self.hosts.get(target.hostname, target.hostname), target.port or 80,
                                              timeout=30)
        try:
            upstream.request(handler.command, path or "/", body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            handler.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    handler.send_header(key, value)
            if handler.command == "HEAD":  # a HEAD answer announces the length of the body it omits
                handler.send_header("Content-Length", answer.getheader("Content-Length") or "0")
            else:
                handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(data)
        finally:
            upstream.close()
