"""Shared bits of the small in-process HTTP servers in tests/support."""

from __future__ import annotations

import http.server
import sys
import threading


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    """A threaded server on which a client that hangs up early is not worth a traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class BackgroundServer:
    """A QuietHTTPServer on a loopback port, served by a daemon thread; a context manager.

    Subclasses build their handler class in start() and end with
    ``return self._serve_in_background(bind_host, Handler)``.
    """

    _httpd = None
    _thread = None

    def _serve_in_background(self, bind_host: str, handler_class, name: str | None = None):
        self._httpd = QuietHTTPServer((bind_host, 0), handler_class)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=name)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self):
        raise NotImplementedError

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(5)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class BlobServer(BackgroundServer):
    """Serves fixed bytes at fixed paths over plain HTTP on 127.0.0.1 (a foreign layer's `urls`), with Range.

        with BlobServer({"/layers/base.tar.gz": data}) as server:
            url = server.url + "/layers/base.tar.gz"
        server.paths   # every path asked for, in order
    """

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.paths.append(self.path)
                data = server.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0])
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

        return self._serve_in_background("127.0.0.1", Handler, name="blob-server")
