"""Shared bits of the small in-process HTTP servers in tests/support."""

from __future__ import annotations

import http.server
import sys


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    """A threaded server on which a client that hangs up early is not worth a traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)
