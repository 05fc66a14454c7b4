"""An HTTP-aware fault-injection proxy between a client and a real registry (loopback only).

Why: the promise "a run either succeeds with correct data or fails with a clear message"
is about what happens when the network or the registry misbehaves. A real registry behaves;
this proxy makes the exchange misbehave in one precise, repeatable way per rule, while
everything else passes through byte for byte.

    with FaultProxy(registry.host) as proxy:            # http://127.0.0.1:<proxy port>
        blob = proxy.add("GET", r"/blobs/sha256:", reset(after=5 * MiB), times=1)
        proxy.add("HEAD", r"/manifests/", status(503), times=2)
        proxy.add("GET", r"/manifests/", status(429, retry_after=1), first=1, last=1)
        ... pull f"{proxy.host}/test/large:v1" ...
        blob.hits                                       # requests the rule applied to
        proxy.exchanges("GET", r"/blobs/")[1].header("Range")   # 'bytes=5242880-'

The client talks to the proxy's host:port AS the registry: requests and their Host header
go upstream unchanged, so the registry builds its Location headers for the proxy and the
client's later requests come back through it. Nothing is rewritten except what a fault is
about (a truncated or replaced body gets the Content-Length of what is actually sent).

Rules: ``add(method, path_regex, action, first=1, last=None, times=None, header=None)``.
``method`` None matches any method; the regex is searched in the request target (path and
query); ``header=("Content-Range", r"^16777216-")`` also requires a request header to
match. Every rule counts the requests it matches (1-based) and acts on the ``first``..``last``
of them (``times=n`` means 1..n). When several rules are in their window for one request, the one
added first acts (one fault per exchange); the others still count the request.

Actions (see each function):
  reset(after=None)        TCP RST, before any answer (the request is read, never forwarded)
                           or after ``after`` bytes of the response body
  status(code, retry_after=None)   answer locally (500/502/503/429...) without forwarding
  truncate(at)             forward; send only the first ``at`` body bytes as a complete,
                           shorter response (Content-Length: at)
  flip(at)                 forward; XOR one body byte at offset ``at`` (the last if shorter)
  stall(seconds, after=None, stage="response")
                           wait before the answer (or after ``after`` body bytes); with
                           stage="request", before the request is forwarded at all
  throttle(rate, direction="down")  bytes/s of the response body ("down") or request body ("up");
                           ``rule.enabled = False`` lifts it, also for requests in flight
  replace(body)            forward; send ``body`` instead of the registry's body
  headers(extra)           forward; add the ``extra`` headers to the registry's answer (a registry
                           announcing its rate limit, as Docker Hub does)

Every exchange is recorded (``proxy.log``): method, target, request headers, status sent,
request/response body bytes, the fault applied and when it happened. A TLS ClientHello (our
client probes loopback registries for TLS first) gets an HTTP 400, as from any plain HTTP
server, so the client falls back to http:// at once.

Upstream, each request gets its own connection (simple and exact: the rest of a body a
fault did not send is never mistaken for the next answer). Threads are daemons; stop()
closes every socket and wakes every stall.
"""

from __future__ import annotations

import fcntl
import json
import re
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass, field

MiB = 1024 * 1024
_BLOCK = 64 * 1024
_HEAD_LIMIT = 64 * 1024
_BUFFER_LIMIT = 256 * MiB  # bodies a fault must hold in memory (chunked + modify, stored requests)


# -- actions -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Action:
    kind: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items() if k != "body")
        return f"{self.kind}({args})"


def reset(after: int | None = None) -> Action:
    """RST the client connection: before any answer (after=None; the request is read whole and
    never forwarded), or after ``after`` bytes of the registry's response body (once the client
    has taken them from the socket: nothing sent is lost in the proxy's send buffer)."""
    return Action("reset", {"after": after})


def status(code: int, retry_after: int | str | None = None, body: bytes | None = None,
           extra: dict | None = None) -> Action:
    """Answer ``code`` locally (the registry never sees the request), with an OCI error body and,
    when given, a Retry-After header and the ``extra`` headers."""
    return Action("status", {"code": code, "retry_after": retry_after, "body": body, "extra": dict(extra or {})})


def truncate(at: int) -> Action:
    """Send only the first ``at`` bytes of the body, as a complete response (Content-Length: at)."""
    return Action("truncate", {"at": at})


def flip(at: int = 0) -> Action:
    """Invert every bit of the body byte at offset ``at`` (the last byte when the body is shorter)."""
    return Action("flip", {"at": at})


def stall(seconds: float, after: int | None = None, stage: str = "response") -> Action:
    """Wait ``seconds``: before the response head (after=None), after ``after`` body bytes, or
    (stage="request") before anything of the request is forwarded; then the request body is read
    whole first and dropped, not forwarded, if the client went away meanwhile."""
    if stage not in ("request", "response"):
        raise ValueError("stage must be 'request' or 'response'")
    return Action("stall", {"seconds": seconds, "after": after, "stage": stage})


def throttle(rate: float, direction: str = "down") -> Action:
    """Limit the response body ("down") or the request body ("up") to ``rate`` bytes/s."""
    if direction not in ("down", "up"):
        raise ValueError("direction must be 'down' or 'up'")
    return Action("throttle", {"rate": float(rate), "direction": direction})


def headers(extra: dict) -> Action:
    """Forward; add the ``extra`` headers to the registry's response head."""
    return Action("headers", {"extra": dict(extra)})


def replace(body: bytes) -> Action:
    """Send ``body`` instead of the registry's response body (status and headers kept, but
    Content-Length)."""
    return Action("replace", {"body": bytes(body)})


# -- rules and records ---------------------------------------------------------------------------
class Rule:
    def __init__(self, method: str | None, path: str, action: Action, first: int = 1,
                 last: int | None = None, header: tuple[str, str] | None = None):
        self.method = method.upper() if method else None
        self.pattern = re.compile(path)
        self.header = (header[0], re.compile(header[1])) if header else None
        self.action = action
        self.first = first
        self.last = last
        self.matched = 0  # requests this rule matched so far
        self.hits = 0  # requests it acted on
        self.fired = threading.Event()  # set when it starts acting for the first time
        self.enabled = True

    def matches(self, method: str, target: str, headers: list) -> bool:
        if not self.enabled or (self.method is not None and self.method != method):
            return False
        if not self.pattern.search(target):
            return False
        if self.header is not None:
            value = _get(headers, self.header[0])
            return value is not None and bool(self.header[1].search(value))
        return True

    def in_window(self, n: int) -> bool:
        return n >= self.first and (self.last is None or n <= self.last)

    def __repr__(self) -> str:
        return (f"<Rule {self.method or '*'} {self.pattern.pattern} {self.action} "
                f"[{self.first}..{self.last or ''}] matched={self.matched} hits={self.hits}>")


@dataclass
class Exchange:
    """One request through the proxy and what became of it."""

    method: str
    target: str  # path and query, as sent
    headers: list  # [(name, value)] as sent by the client
    fault: str | None = None
    status: int | None = None  # sent to the client; None when nothing was (reset, stall cut)
    request_bytes: int = 0  # request body bytes read from the client
    forwarded: bool = False  # whether the registry saw the request
    response_bytes: int = 0  # response body bytes sent to the client
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    response_headers: list = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str, default=None):
        """The first request header called ``name`` (case-insensitive)."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def response_header(self, name: str, default=None):
        name = name.lower()
        for key, value in self.response_headers:
            if key.lower() == name:
                return value
        return default


class _ClientGone(Exception):
    """The client closed or reset its connection."""


# -- the proxy ---------------------------------------------------------------------------------
class FaultProxy:
    """127.0.0.1:<free port> -> ``upstream`` ("127.0.0.1:PORT" of the registry), with rules."""

    def __init__(self, upstream: str):
        host, _sep, port = upstream.rpartition(":")
        self.upstream = (host or "127.0.0.1", int(port))
        self.rules: list[Rule] = []
        self.log: list[Exchange] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.connections = 0
        self._rate_next: dict[int, float] = {}

    # -- public ---------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def add(self, method: str | None, path: str, action: Action, *, first: int = 1,
            last: int | None = None, times: int | None = None,
            header: tuple[str, str] | None = None) -> Rule:
        if times is not None:
            first, last = 1, times
        rule = Rule(method, path, action, first, last, header)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule (requests in flight keep the action they got)."""
        with self._lock:
            for rule in self.rules:
                rule.enabled = False
            self.rules = []

    def mark(self) -> int:
        """Number of exchanges so far: pass to exchanges(since=...) later."""
        with self._lock:
            return len(self.log)

    def exchanges(self, method: str | None = None, path: str = "", since: int = 0) -> list[Exchange]:
        """Recorded exchanges (from number ``since``), filtered by method and a regex on the target."""
        pattern = re.compile(path)
        with self._lock:
            log = list(self.log[since:])
        return [e for e in log if (method is None or e.method == method) and pattern.search(e.target)]

    def start(self) -> "FaultProxy":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="fault-proxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- connection handling ------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self.connections += 1
                self._socks.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True, name="fault-proxy-conn").start()

    def _serve(self, client: socket.socket) -> None:
        rfile = client.makefile("rb", buffering=_BLOCK)
        try:
            first = rfile.peek(1)[:1]
            if first == b"\x16":  # a TLS ClientHello: answer as any plain HTTP server does
                client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            while not self._stop.is_set():
                if not self._exchange(client, rfile):
                    break
        except (OSError, _ClientGone, ValueError):
            pass
        finally:
            try:
                rfile.close()
            except OSError:
                pass
            self._close(client)

    def _choose(self, method: str, target: str, headers: list) -> Rule | None:
        chosen = None
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, target, headers):
                    rule.matched += 1
                    if chosen is None and rule.in_window(rule.matched):
                        chosen = rule
            if chosen is not None:
                chosen.hits += 1
        if chosen is not None:
            chosen.fired.set()
        return chosen

    def _exchange(self, client: socket.socket, rfile) -> bool:
        """Handle one request on a client connection; False when the connection must end."""
        head = _read_head(rfile)
        if head is None:
            return False
        try:
            method, target, headers = _parse_request_head(head)
        except ValueError:
            client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        record = Exchange(method, target, headers)
        with self._lock:
            self.log.append(record)
        rule = self._choose(method, target, headers)
        action = rule.action if rule else None
        if action is not None:
            record.fault = str(action)
        try:
            return self._handle(client, rfile, head, method, headers, record, rule, action)
        finally:
            record.ended = time.monotonic()

    def _handle(self, client, rfile, head, method, headers, record, rule, action) -> bool:
        kind = action.kind if action else None
        params = action.params if action else {}
        body_framing = _request_framing(headers)

        if kind == "reset" and params["after"] is None:
            record.request_bytes = _drain_request(rfile, body_framing)
            _reset(client)
            return False
        if kind == "status":
            record.request_bytes = _drain_request(rfile, body_framing)
            record.status = params["code"]
            _send_status(client, params["code"], params.get("retry_after"), params.get("body"), params.get("extra"))
            return True
        stored = None
        if kind == "stall" and params["stage"] == "request":
            self._stop.wait(params["seconds"])
            stored = _read_request_body(rfile, body_framing)  # raises _ClientGone: never forwarded
            record.request_bytes = len(stored)

        upstream = socket.create_connection(self.upstream, timeout=30)
        upstream.settimeout(None)
        with self._lock:
            self._socks.add(upstream)
        up_rfile = upstream.makefile("rb", buffering=_BLOCK)
        try:
            upstream.sendall(head)
            record.forwarded = True
            if stored is not None:
                _send_framed(upstream, stored, body_framing)
            else:
                rate = params["rate"] if kind == "throttle" and params["direction"] == "up" else None
                record.request_bytes = self._relay_request_body(rfile, upstream, body_framing, rate, rule, record)
            status_code, response_head, response_headers = _read_response_head(up_rfile)
            if kind == "headers":
                response_head = _with_headers(response_head, params["extra"])
                response_headers = response_headers + list(params["extra"].items())
            record.response_headers = response_headers
            framing = _response_framing(method, status_code, response_headers)
            keep_alive = _keep_alive(headers, response_headers) and framing[0] != "close"
            modify = kind in ("truncate", "flip", "replace")
            if modify:
                body = _read_body(up_rfile, framing)
                body = _modify(body, action)
                response_head = _with_length(response_head, len(body), chunked=framing[0] == "chunked")
                client.sendall(response_head)
                record.status = status_code
                client.sendall(body)
                record.response_bytes = len(body)
                return keep_alive
            if kind == "stall" and params["stage"] == "response" and params["after"] is None:
                self._stop.wait(params["seconds"])
            client.sendall(response_head)
            record.status = status_code
            return self._relay_response_body(client, up_rfile, framing, record, action, rule) and keep_alive
        finally:
            try:
                up_rfile.close()
            except OSError:
                pass
            self._close(upstream)

    def _relay_request_body(self, rfile, upstream, framing, rate, rule, record) -> int:
        """Pass the request body on as it comes (record.request_bytes follows it live)."""
        kind, length = framing
        if kind == "none":
            return 0
        if kind == "length":
            sent = 0
            while sent < length:
                want = min(_BLOCK, length - sent)
                if rate:
                    want = min(want, max(1, int(rate / 20)))
                data = rfile.read1(want)
                if not data:
                    raise _ClientGone()
                if rate:
                    self._pace(rule, len(data), rate)
                upstream.sendall(data)
                sent += len(data)
                record.request_bytes = sent
            return sent
        # chunked: pass the framing through as it comes
        total = 0
        for raw, size in _iter_chunks(rfile):
            upstream.sendall(raw)
            total += size
        return total

    def _relay_response_body(self, client, up_rfile, framing, record, action, rule) -> bool:
        """Send the registry's body on; True when the client connection can carry on."""
        kind = action.kind if action else None
        params = action.params if action else {}
        limit = params.get("after") if kind in ("reset", "stall") else None
        rate = params["rate"] if kind == "throttle" and params["direction"] == "down" else None
        sent = 0
        for piece in _iter_body_raw(up_rfile, framing):
            while piece:
                take = piece
                if limit is not None and sent < limit:
                    take = piece[:limit - sent]
                if rate:
                    take = take[:max(1, int(rate / 20))]
                    self._pace(rule, len(take), rate)
                client.sendall(take)
                sent += len(take)
                record.response_bytes = sent
                piece = piece[len(take):]
                if limit is not None and sent == limit:
                    limit = None
                    if kind == "reset":
                        _wait_drained(client, self._stop)
                        _reset(client)
                        return False
                    self._stop.wait(params["seconds"])  # stall mid-body, then carry on
        if limit is not None and kind == "reset":  # the body was shorter than `after`
            _wait_drained(client, self._stop)
            _reset(client)
            return False
        return True

    def _pace(self, rule, size: int, rate: float) -> None:
        """One budget per rule, shared by its connections: each piece waits for its slot.
        Disabling the rule lifts the limit at once, for the requests in flight too."""
        if not rule.enabled:
            return
        key = id(rule)
        with self._lock:
            now = time.monotonic()
            start = max(self._rate_next.get(key, now), now)
            self._rate_next[key] = start + size / rate
        delay = start - now
        if delay > 0:
            self._stop.wait(delay)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.discard(sock)
        try:
            sock.close()
        except OSError:
            pass


# -- HTTP/1.1 plumbing ---------------------------------------------------------------------------
def _read_head(rfile) -> bytes | None:
    """The raw request or response head up to and including the blank line; None at EOF."""
    lines = []
    size = 0
    while True:
        line = rfile.readline(_HEAD_LIMIT + 1)
        if not line:
            if lines:
                raise _ClientGone()
            return None
        if not lines and line in (b"\r\n", b"\n"):
            continue  # stray CRLF between requests (RFC 9112 2.2)
        lines.append(line)
        size += len(line)
        if size > _HEAD_LIMIT:
            raise ValueError("head too large")
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _parse_headers(lines: list[bytes]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            continue
        name, sep, value = text.partition(":")
        if not sep:
            raise ValueError("bad header line %r" % text)
        headers.append((name.strip(), value.strip()))
    return headers


def _parse_request_head(head: bytes):
    lines = head.split(b"\n")
    request_line = lines[0].decode("latin-1").rstrip("\r")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not re.fullmatch(r"[A-Z]+", parts[0]):
        raise ValueError("not an HTTP/1.x request line: %r" % request_line[:80])
    return parts[0], parts[1], _parse_headers([line + b"\n" for line in lines[1:]])


def _read_response_head(rfile):
    while True:
        head = _read_head(rfile)
        if head is None:
            raise _ClientGone()
        lines = head.split(b"\n")
        status_line = lines[0].decode("latin-1").rstrip("\r")
        code = int(status_line.split(" ", 2)[1])
        if 100 <= code < 200:
            continue  # interim answers are not passed on (our clients never send Expect)
        return code, head, _parse_headers([line + b"\n" for line in lines[1:]])


def _get(headers, name):
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _request_framing(headers):
    if "chunked" in (_get(headers, "Transfer-Encoding") or "").lower():
        return "chunked", None
    length = _get(headers, "Content-Length")
    if length and length.strip().isdigit() and int(length) > 0:
        return "length", int(length)
    return "none", 0


def _response_framing(method, code, headers):
    if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
        return "none", 0
    if "chunked" in (_get(headers, "Transfer-Encoding") or "").lower():
        return "chunked", None
    length = _get(headers, "Content-Length")
    if length is not None and length.strip().isdigit():
        return "length", int(length)
    return "close", None


def _keep_alive(request_headers, response_headers) -> bool:
    for headers in (request_headers, response_headers):
        if "close" in (_get(headers, "Connection") or "").lower():
            return False
    return True


def _iter_chunks(rfile):
    """(raw bytes, payload size) of each piece of a chunked body, trailers included."""
    while True:
        size_line = rfile.readline(1024)
        if not size_line:
            raise _ClientGone()
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            raw = size_line
            while True:
                trailer = rfile.readline(_HEAD_LIMIT)
                if not trailer:
                    raise _ClientGone()
                raw += trailer
                if trailer in (b"\r\n", b"\n"):
                    yield raw, 0
                    return
        data = rfile.read(size + 2)
        if len(data) < size + 2:
            raise _ClientGone()
        yield size_line + data, size


def _iter_body_raw(rfile, framing):
    """The body as it comes, in pieces (chunked framing kept as is)."""
    kind, length = framing
    if kind == "none":
        return
    if kind == "length":
        left = length
        while left > 0:
            data = rfile.read1(min(_BLOCK, left))
            if not data:
                raise _ClientGone()
            left -= len(data)
            yield data
    elif kind == "chunked":
        for raw, _size in _iter_chunks(rfile):
            yield raw
    else:
        while True:
            data = rfile.read1(_BLOCK)
            if not data:
                return
            yield data


def _read_body(rfile, framing) -> bytes:
    """The decoded body in memory (for faults that change it)."""
    kind, length = framing
    if kind == "chunked":
        parts = []
        total = 0
        for raw, size in _iter_chunks(rfile):
            if size:
                parts.append(raw[len(raw.split(b"\n", 1)[0]) + 1:][:size])
                total += size
                if total > _BUFFER_LIMIT:
                    raise ValueError("body too large to hold")
        return b"".join(parts)
    data = b"".join(_iter_body_raw(rfile, framing))
    if kind == "length" and len(data) != length:
        raise _ClientGone()
    return data


def _read_request_body(rfile, framing) -> bytes:
    data = _read_body(rfile, framing)
    if len(data) > _BUFFER_LIMIT:
        raise ValueError("request body too large to hold")
    return data


def _drain_request(rfile, framing) -> int:
    return len(_read_request_body(rfile, framing))


def _send_framed(sock, body: bytes, framing) -> None:
    if framing[0] == "chunked":
        if body:
            sock.sendall(b"%x\r\n" % len(body) + body + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
    elif body:
        sock.sendall(body)


def _modify(body: bytes, action: Action) -> bytes:
    params = action.params
    if action.kind == "truncate":
        return body[:params["at"]]
    if action.kind == "flip":
        if not body:
            return body
        at = min(params["at"], len(body) - 1)
        return body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1:]
    return params["body"]


def _with_length(head: bytes, length: int, chunked: bool) -> bytes:
    """The response head with Content-Length set to ``length`` (Transfer-Encoding dropped)."""
    lines = head.split(b"\r\n")
    out = [lines[0]]
    for line in lines[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if name == b"content-length" or (chunked and name == b"transfer-encoding"):
            continue
        if line:
            out.append(line)
    out.insert(1, b"Content-Length: %d" % length)
    return b"\r\n".join(out) + b"\r\n\r\n"


_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout", 408: "Request Timeout"}
_CODES = {429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}


def _with_headers(head: bytes, extra: dict) -> bytes:
    """The response head with the ``extra`` header lines added before its end."""
    added = "".join(f"{name}: {value}\r\n" for name, value in extra.items()).encode("latin-1")
    return head[:-2] + added + b"\r\n"


def _send_status(client, code: int, retry_after=None, body: bytes | None = None, extra: dict | None = None) -> None:
    if body is None:
        body = json.dumps({"errors": [{"code": _CODES.get(code, "UNKNOWN"),
                                       "message": "injected by the fault proxy", "detail": None}]}).encode()
    lines = [f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Docker-Distribution-Api-Version: registry/2.0"]
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after}")
    lines.extend(f"{name}: {value}" for name, value in (extra or {}).items())
    client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def _unsent(sock: socket.socket) -> int:
    """Bytes still in the socket's send queue (not yet acknowledged by the peer)."""
    buf = struct.pack("i", 0)
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf))[0]
    except OSError:
        return 0


def _wait_drained(sock: socket.socket, stop: threading.Event, timeout: float = 5.0) -> None:
    """Wait until the peer has everything sent so far, then a moment for it to read it:
    a RST throws away whatever is still queued on either side."""
    deadline = time.monotonic() + timeout
    while _unsent(sock) and time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.005)
    stop.wait(0.1)


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST (connection reset by peer)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # the descriptor goes (and the RST with it) once the reader on it is closed too
    except OSError:
        pass


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
