"""A stand-in for object storage that a registry redirects blob downloads to.

Distribution's ``redirect`` storage middleware answers a blob GET (and HEAD) with
``307 Location: <baseurl>/docker/registry/v2/blobs/sha256/<xx>/<hex>/data``, the blob's path
in its storage. This server, on ANOTHER loopback address (127.0.0.2, so another host to any
HTTP client), serves those files straight from the registry's storage directory and records
every request it gets with its headers, so a test can prove what reached it:

    store = ObjectStore().start()                      # http://127.0.0.2:<port>
    with Registry(config=store.registry_config()) as reg:
        store.root = reg.storage_dir                   # known once the registry has started
        ...pull...
        assert all("Authorization" not in r.headers for r in store.requests)

Supports GET and HEAD, and single ``Range: bytes=N-`` / ``bytes=N-M`` requests.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.servers import BackgroundServer


def other_loopback_host() -> str:
    """127.0.0.2 when it can be bound (Linux routes all of 127/8 to lo), else 127.0.0.1."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.2", 0))
        return "127.0.0.2"
    except OSError:
        return "127.0.0.1"  # still another origin: requests strips Authorization on a port change


@dataclass
class StoredRequest:
    method: str
    path: str
    headers: dict = field(repr=False)
    status: int = 0


class ObjectStore(BackgroundServer):
    def __init__(self, root: Path | None = None, host: str | None = None):
        self.root = root
        self.host = host or other_loopback_host()
        self.requests: list[StoredRequest] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def registry_config(self) -> dict:
        """Distribution config that redirects blob downloads here."""
        return {"middleware": {"storage": [{"name": "redirect", "options": {"baseurl": self.url + "/"}}]}}

    def start(self) -> "ObjectStore":
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                store._serve(self)

            do_HEAD = do_GET

        return self._serve_in_background(self.host, Handler)

    def _serve(self, handler) -> None:
        record = StoredRequest(handler.command, handler.path, dict(handler.headers.items()))
        with self._lock:
            self.requests.append(record)
        path = self._file_for(urlsplit(handler.path).path)
        if path is None:
            record.status = 404
            return self._send(handler, 404, b"not found\n")
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range", "").strip())
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            if start >= len(data):
                record.status = 416
                return self._send(handler, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
            end = min(end, len(data) - 1)
            record.status = 206
            return self._send(handler, 206, data[start:end + 1],
                              {"Content-Range": f"bytes {start}-{end}/{len(data)}"})
        record.status = 200
        self._send(handler, 200, data)

    def _file_for(self, url_path: str) -> Path | None:
        if self.root is None:
            return None
        root = Path(self.root).resolve()
        candidate = (root / url_path.lstrip("/")).resolve()
        if root not in candidate.parents or not candidate.is_file():
            return None
        return candidate

    @staticmethod
    def _send(handler, status: int, body: bytes, headers: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)
