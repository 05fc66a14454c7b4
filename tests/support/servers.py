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
