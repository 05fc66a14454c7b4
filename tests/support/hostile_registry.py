"""A small in-process registry that serves exactly what a test scripts, lies included.

Why: a real registry validates what it stores, so it cannot serve a digest that is a path,
a manifest over 4 MiB, a descriptor whose size is wrong, an index nested without end, or send
an upload to another host. Clients meet such registries (broken mirrors, hostile ones), and
the promise is that they get a clear error and nothing is written outside the cache. This
server answers the distribution API from a script and records every request:

    with HostileRegistry() as evil:                    # http://127.0.0.1:<port>, plain HTTP
        repo = evil.repo("bad/path-digest")
        repo.blobs[cfg.digest] = cfg.data              # any key: served for exactly that path
        repo.manifest("v1", manifest_bytes, OCI_MANIFEST)       # by tag; by its digest too
        repo.manifest("v2", other, OCI_MANIFEST, digest_header=None)   # no Docker-Content-Digest
        repo.manifest("v3", body, OCI_MANIFEST, head_digest_header=None, digest_header=lie)
        evil.repo("bad/upload").upload_location = "http://127.0.0.2:9/elsewhere"
        evil.repo("slow/app").trickle["v1"] = 2.0   # the manifest's body: one byte every 2 s
        ... pull f"{evil.host}/bad/path-digest:v1" ...
        evil.requests                                  # [Recorded(method, path, headers)]

Routes: GET /v2/; HEAD/GET /v2/<repo>/manifests/<ref>; HEAD/GET /v2/<repo>/blobs/<digest>
(single ``Range: bytes=N-``: 206, or 416 past the end); POST/PATCH/PUT/GET/DELETE on
/v2/<repo>/blobs/uploads/...; PUT /v2/<repo>/manifests/<ref>; GET /v2/<repo>/tags/list (a
repo may script ``tag_pages``, each (tags, next link or None)). Unknown names: 404 with an
OCI error body. Manifests are served with the Content-Type and Docker-Content-Digest scripted
(default: the sha256 of the bytes served).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

from tests.support.servers import BackgroundServer


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Served:
    """One manifest as served: bytes, Content-Type, Docker-Content-Digest on GET and on HEAD
    (None: the header is omitted)."""

    body: bytes = field(repr=False)
    content_type: str
    digest_header: str | None
    head_digest_header: str | None


@dataclass
class Recorded:
    method: str
    path: str  # with the query string
    headers: dict = field(repr=False)


_DEFAULT = object()


class Repo:
    def __init__(self, name: str):
        self.name = name
        self.manifests: dict[str, Served] = {}
        self.blobs: dict[str, bytes] = {}
        self.upload_location: str | None = None  # Location answered to POST uploads (None: our own)
        self.mount_location: str | None = None  # Location answered to a cross-repository mount POST
        self.tag_pages: list[tuple[list[str], str | None]] | None = None
        self.trickle: dict[str, float] = {}  # manifest ref or blob digest -> seconds between two body bytes
        self.uploads: dict[str, bytearray] = {}
        self.pushed: dict[str, bytes] = {}  # blobs and manifests put here, by digest / tag

    def manifest(self, ref: str | None, body: bytes, content_type: str, digest_header=_DEFAULT,
                 head_digest_header=_DEFAULT, by_digest: bool = True) -> str:
        """Serve ``body`` under the tag ``ref`` (when given) and, with by_digest, under its digest.
        Docker-Content-Digest is the body's sha256 unless scripted (None: omitted); on HEAD it is
        the same as on GET unless scripted apart."""
        digest = sha256(body)
        on_get = digest if digest_header is _DEFAULT else digest_header
        served = Served(body, content_type, on_get, on_get if head_digest_header is _DEFAULT else head_digest_header)
        if ref:
            self.manifests[ref] = served
        if by_digest:
            self.manifests[digest] = served
        return digest


class HostileRegistry(BackgroundServer):
    def __init__(self, host: str = "127.0.0.1"):
        self.bind_host = host
        self.repos: dict[str, Repo] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"{self.bind_host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def repo(self, name: str) -> Repo:
        if name not in self.repos:
            self.repos[name] = Repo(name)
        return self.repos[name]

    def requests_for(self, path_contains: str = "", method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if path_contains in r.path and (method is None or r.method == method)]

    def start(self) -> "HostileRegistry":
        registry = self

        class Handler(_Handler):
            owner = registry

        return self._serve_in_background(self.bind_host, Handler, name="hostile-registry")


_MANIFEST_RE = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB_RE = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>[^/]+)$")
_UPLOAD_RE = re.compile(r"^/v2/(?P<repo>.+)/blobs/uploads/(?P<id>[^/]*)$")
_TAGS_RE = re.compile(r"^/v2/(?P<repo>.+)/tags/list$")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: HostileRegistry = None

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    # -- helpers -----------------------------------------------------------------------------
    def _record(self):
        with self.owner._lock:
            self.owner.requests.append(Recorded(self.command, self.path, dict(self.headers.items())))

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, body: bytes = b"", headers: dict | None = None, head_only: bool = False,
              trickle: float | None = None):
        self.send_response(code)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        headers.setdefault("Docker-Distribution-Api-Version", "registry/2.0")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body and not head_only:
            if trickle:
                return self._trickle(body, trickle)
            self.wfile.write(body)

    def _trickle(self, body: bytes, pause: float):
        """One byte every ``pause`` seconds, until done or the client goes away (its deadline)."""
        self.wfile.flush()
        for index in range(len(body)):
            try:
                self.wfile.write(body[index:index + 1])
                self.wfile.flush()
            except OSError:
                self.close_connection = True
                return
            time.sleep(pause)

    def _error(self, code: int, error: str, message: str):
        body = json.dumps({"errors": [{"code": error, "message": message}]}).encode()
        self._send(code, body, {"Content-Type": "application/json"}, head_only=self.command == "HEAD")

    def _split(self):
        path, _sep, query = self.path.partition("?")
        return path, query

    # -- verbs -----------------------------------------------------------------------------------
    def do_GET(self):  # noqa: N802 - http.server's naming
        self._record()
        self._read(head_only=False)

    def do_HEAD(self):  # noqa: N802
        self._record()
        self._read(head_only=True)

    def _read(self, head_only: bool):
        path, query = self._split()
        if path in ("/v2/", "/v2"):
            return self._send(200, b"{}", {"Content-Type": "application/json"}, head_only)
        match = _TAGS_RE.match(path)
        if match:
            return self._tags(match["repo"], query)
        match = _UPLOAD_RE.match(path)
        if match:
            return self._send(204, headers={"Range": "0-0", "Location": path})
        match = _MANIFEST_RE.match(path)
        if match:
            repo = self.owner.repos.get(match["repo"])
            served = repo.manifests.get(match["ref"]) if repo else None
            if served is None:
                return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            headers = {"Content-Type": served.content_type}
            announced = served.head_digest_header if head_only else served.digest_header
            if announced:
                headers["Docker-Content-Digest"] = announced
            return self._send(200, served.body, headers, head_only, trickle=repo.trickle.get(match["ref"]))
        match = _BLOB_RE.match(path)
        if match:
            repo = self.owner.repos.get(match["repo"])
            data = repo.blobs.get(match["digest"]) if repo else None
            if data is None:
                return self._error(404, "BLOB_UNKNOWN", "blob unknown")
            return self._blob(data, match["digest"], head_only, repo.trickle.get(match["digest"]))
        return self._error(404, "NAME_UNKNOWN", "no such route")

    def _blob(self, data: bytes, digest: str, head_only: bool, trickle: float | None = None):
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest,
                   "Accept-Ranges": "bytes"}
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if wanted and not head_only:
            start = int(wanted.group(1))
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._send(206, data[start:], headers, trickle=trickle)
        return self._send(200, data, headers, head_only, trickle=trickle)

    def _tags(self, name: str, query: str):
        repo = self.owner.repos.get(name)
        if repo is None:
            return self._error(404, "NAME_UNKNOWN", "repository unknown")
        pages = repo.tag_pages or [(sorted(t for t in repo.manifests if not t.startswith("sha256:")), None)]
        page = 0
        found = re.search(r"(?:^|&)page=(\d+)", query)
        if found:
            page = int(found.group(1))
        tags, link = pages[min(page, len(pages) - 1)]
        headers = {"Content-Type": "application/json"}
        if link:
            headers["Link"] = f'<{link}>; rel="next"'
        return self._send(200, json.dumps({"name": name, "tags": tags}).encode(), headers)

    def do_POST(self):  # noqa: N802
        self._record()
        self._body()
        path, query = self._split()
        match = _UPLOAD_RE.match(path)
        if not match:
            return self._error(404, "NAME_UNKNOWN", "no such route")
        repo = self.owner.repo(match["repo"])
        session = str(uuid.uuid4())
        repo.uploads[session] = bytearray()
        location = f"/v2/{repo.name}/blobs/uploads/{session}"
        if "mount=" in query and repo.mount_location:
            location = repo.mount_location
        elif repo.upload_location:
            location = repo.upload_location
        return self._send(202, b"", {"Location": location, "Range": "0-0", "Docker-Upload-UUID": session})

    def do_PATCH(self):  # noqa: N802
        self._record()
        body = self._body()
        path, _query = self._split()
        match = _UPLOAD_RE.match(path)
        repo = self.owner.repos.get(match["repo"]) if match else None
        if repo is None or match["id"] not in repo.uploads:
            return self._error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
        buf = repo.uploads[match["id"]]
        buf.extend(body)
        return self._send(202, b"", {"Location": path, "Range": f"0-{max(len(buf) - 1, 0)}"})

    def do_PUT(self):  # noqa: N802
        self._record()
        body = self._body()
        path, query = self._split()
        match = _UPLOAD_RE.match(path)
        if match:
            repo = self.owner.repos.get(match["repo"])
            if repo is None or match["id"] not in repo.uploads:
                return self._error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
            data = bytes(repo.uploads.pop(match["id"])) + body
            digest = re.search(r"digest=([^&]+)", query)
            if not digest or sha256(data) != digest.group(1).replace("%3A", ":"):
                return self._error(400, "DIGEST_INVALID", "digest does not match")
            repo.pushed[sha256(data)] = data
            return self._send(201, b"", {"Location": f"/v2/{repo.name}/blobs/{sha256(data)}",
                                         "Docker-Content-Digest": sha256(data)})
        match = _MANIFEST_RE.match(path)
        if match:
            repo = self.owner.repo(match["repo"])
            repo.pushed[match["ref"]] = body
            return self._send(201, b"", {"Docker-Content-Digest": sha256(body)})
        return self._error(404, "NAME_UNKNOWN", "no such route")

    def do_DELETE(self):  # noqa: N802
        self._record()
        self._body()
        return self._send(204)
