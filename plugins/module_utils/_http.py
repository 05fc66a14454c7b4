# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lean HTTP client on http.client: the part of requests + urllib3 the transport uses.

Transport's HTTP layer (IMAGEPUSHER_HTTP=requests goes back to requests for one release). requests
costs about 1.4 ms of CPU per request and 130 ms of imports at each module start; this layer about
0.5 ms per request and the import of http.client and ssl. See bench/HTTP_LAYER.md.

What it does, as requests does it for us:
- keep-alive connections pooled per (scheme, host, port, proxy); a pooled connection the
  server has closed is seen before reuse (a readable idle socket) and dropped;
- TLS through one SSLContext per Session (built on the first HTTPS request, as
  _tls_context.py does);
- proxies from the environment (http_proxy, https_proxy, all_proxy, no_proxy as urllib
  reads them, no_proxy CIDR ranges as requests reads them), looked up once per host: plain
  HTTP goes to the proxy with the absolute URI, HTTPS through a CONNECT tunnel;
- redirects followed as requests follows them (303 and a POST's 301/302 become GET), the
  Authorization header dropped when the host changes;
- request bodies: bytes, form pairs, objects with read() (Content-Length from len() when
  they have one, else chunked) and iterables (chunked);
- responses: streamed (the http.client response is .raw._fp, read with readinto by
  _transport.BodyReader) or read whole (stream=False); gzip/deflate decoded in iter_content.
Failures are ConnectionFailure (ProxyError when the proxy failed, TLSFailure for TLS),
with the socket error as cause, so _connection_errors can classify them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import http.client as http_client
import ipaddress
import os
import select
import socket
import ssl
import threading
import zlib
from urllib.parse import unquote, urlencode, urljoin, urlsplit

from ansible_collections.imagepusher.registry.plugins.module_utils._http_response import FastResponse
from ansible_collections.imagepusher.registry.plugins.module_utils._plain_http_check import plain_http_answer
from ansible_collections.imagepusher.registry.plugins.module_utils._tls_context import SharedContext

BLOCK_SIZE = 1024 * 1024  # bytes read from a request body per send(): as large as the transport's chunks
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 30  # requests' limit
DEFAULT_HEADERS = (("Accept-Encoding", "gzip, deflate"), ("Accept", "*/*"), ("Connection", "keep-alive"))


class RequestFailure(Exception):
    """Any failure of this layer."""


class ConnectionFailure(RequestFailure):
    """No (complete) answer: the socket error is args[0] and the cause."""


class ProxyError(ConnectionFailure):
    """The proxy could not be reached, or refused the tunnel (the name is what _connection_errors looks for)."""


class TLSFailure(ConnectionFailure):
    """The TLS handshake (or a TLS read) failed; args[0] is the ssl error."""


class TooManyRedirects(RequestFailure):
    """More than MAX_REDIRECTS redirects in a row."""


def _no_delay(sock):
    """Send each write at once (TCP_NODELAY, as urllib3 does): http.client writes a request's headers and its
    body separately, and with Nagle's algorithm a small body waits for the ACK of the headers, which the
    server delays (up to 40 ms on Linux) while it waits for that very body: a stall on every manifest PUT."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # only a delay lost: the connection works as it is


def _failure(exc, proxied=False):
    """The failure for a socket/TLS/HTTP error: its text as args[0] (an ssl error's .reason is only its code,
    so the error itself is not put there), the error as cause for _connection_errors to classify."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        failure = TLSFailure(text)
    else:
        failure = ProxyError("Unable to connect to proxy: " + text) if proxied else ConnectionFailure(text)
    failure.__cause__ = exc
    return failure


# -- proxies ----------------------------------------------------------------------------

def no_proxy_exempts(host, no_proxy):
    """no_proxy as requests reads it: urllib's host/suffix matching plus CIDR ranges for IP addresses."""
    if not no_proxy:
        return False
    try:
        address = ipaddress.ip_address(urlsplit("//" + host).hostname or "")
    except ValueError:
        address = None
    for entry in (e.strip() for e in no_proxy.replace(" ", ",").split(",")):
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    from urllib.request import proxy_bypass_environment  # see environment_proxies()
    return bool(proxy_bypass_environment(host, {"no": no_proxy}))


def environment_proxies():
    """urllib's getproxies_environment(), imported only when a *_proxy variable is set: without one it answers {},
    and urllib.request (with urllib.error) costs every module start about 5 ms of CPU."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return {}
    from urllib.request import getproxies_environment
    return getproxies_environment()


def environment_proxy(scheme, host, environ_proxies=None):
    """The proxy URL the environment names for scheme://host (None: go direct)."""
    proxies = environment_proxies() if environ_proxies is None else environ_proxies
    if no_proxy_exempts(host, proxies.get("no")):
        return None
    return proxies.get(scheme) or proxies.get("all") or None


# -- headers and responses --------------------------------------------------------------

class Headers(dict):
    """Case-insensitive response headers; a repeated header's values joined with ', ' (as urllib3 does)."""

    def __init__(self, pairs=()):
        super(Headers, self).__init__()
        self._names = {}
        for name, value in pairs:
            key = name.lower()
            if key in self._names:
                dict.__setitem__(self, key, dict.__getitem__(self, key) + ", " + value)
            else:
                self._names[key] = name
                dict.__setitem__(self, key, value)

    def __getitem__(self, name):
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name):
        return dict.__contains__(self, name.lower())

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class SentRequest:
    """What was sent (for _auth._sent_token: the Authorization header the answered request carried)."""

    def __init__(self, url, headers):
        self.url, self.headers = url, headers


class _Raw:
    """requests' response.raw, as far as _transport.BodyReader looks: the http.client response."""

    def __init__(self, fp):
        self._fp = fp

    def read(self, amt=None):
        return self._fp.read(amt)


class Response:
    """status_code, headers, url, request, raw._fp, iter_content(), content, close()."""

    def __init__(self, session, key, connection, fp, request, stream):
        self._session, self._key, self._connection = session, key, connection
        self.status_code = fp.status
        self.reason = fp.reason
        self.headers = Headers(fp.getheaders())
        self.url = request.url
        self.request = request
        self.raw = _Raw(fp)
        self._content = None
        if not stream:
            try:
                self._content = b"".join(self._chunks(BLOCK_SIZE))
            finally:
                self.close()

    @property
    def content(self):
        if self._content is None:
            self._content = b"".join(self._chunks(BLOCK_SIZE))
        return self._content

    def iter_content(self, chunk_size=1):
        if self._content is not None:
            return iter([self._content] if self._content else [])
        return self._chunks(chunk_size)

    def _chunks(self, chunk_size):
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS) \
            if encoding in ("gzip", "deflate") else None
        fp = self.raw._fp
        while True:
            # OSError / HTTPException go up as they are, as from BodyReader's readinto path (it catches both)
            chunk = fp.read(chunk_size) if not fp.isclosed() else b""
            if not chunk and fp.length:
                raise http_client.IncompleteRead(b"", fp.length)
            if not chunk:
                break
            yield decoder.decompress(chunk) if decoder else chunk
        if decoder:
            yield decoder.flush()

    def close(self):
        """Give the connection back when its answer was read to the end; else close it (as urllib3 does)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        fp = self.raw._fp
        if fp.isclosed() and not fp.will_close:
            self._session.release(self._key, connection)
        else:
            fp.close()
            self._session.discard(connection)


# -- the session ------------------------------------------------------------------------

def _body(data, headers):
    """(body for http.client, extra headers): Content-Length from len() for objects with read()."""
    if data is None or isinstance(data, bytes):
        return data, {}
    if isinstance(data, str):
        return data.encode("utf-8"), {}
    if isinstance(data, (list, tuple, dict)):
        return urlencode(data).encode("ascii"), {"Content-Type": "application/x-www-form-urlencoded"}
    if hasattr(data, "read") and hasattr(data, "__len__") and "content-length" not in headers \
            and "transfer-encoding" not in headers:
        return data, {"Content-Length": str(len(data))}
    return data, {}  # an iterable, or a file of unknown length: http.client sends it chunked


def _dropped(sock):
    """Whether an idle pooled socket was closed by its peer (it is readable: EOF or stray bytes)."""
    if sock is None:
        return True
    try:
        poller = select.poll()  # not select(): it cannot watch a descriptor above 1023
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _drain_small(response, limit=65536):
    """Read a redirect's short body so that its connection goes back to the pool; a long one closes it."""
    length = response.raw._fp.length
    try:
        if length is not None and length <= limit:
            response.raw._fp.read()
    except (OSError, http_client.HTTPException):
        pass
    response.close()


def _redirect_method(status, method):
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method


def _same_origin_for_auth(old, new):
    """requests' should_strip_auth, inverted: same host, and the scheme/port changes only http:80 -> https:443."""
    old, new = urlsplit(old), urlsplit(new)
    if old.hostname != new.hostname:
        return False
    if old.scheme == "http" and new.scheme == "https" and old.port in (80, None) and new.port in (443, None):
        return True
    defaults = {"http": 80, "https": 443}
    return old.scheme == new.scheme and (old.port or defaults.get(old.scheme)) == (new.port or defaults.get(new.scheme))


class Session:
    """Pooled keep-alive connections; request() answers like requests.Session.request for our uses."""

    def __init__(self, verify=None, cert=None, default_bundle=None, pool_size=8, headers=None, watchdog=None,
                 environ_proxies=None):
        self._tls = SharedContext(verify, cert, default_bundle, TLSFailure)
        self._lock = threading.Lock()
        self._idle = {}  # (scheme, host, port, proxy) -> [HTTPConnection]
        self._proxies = {}  # (scheme, netloc) -> proxy URL or None, read from the environment once
        self._environ_proxies = environ_proxies
        self.pool_size = pool_size
        self.headers = dict(DEFAULT_HEADERS)
        self.headers.update(headers or {})
        self.watchdog = watchdog  # _deadline.WATCHDOG in the transport: busy() while a request holds a connection
        self.connections_made = 0  # for tests and benchmarks

    def ssl_context(self):
        return self._tls.get()

    @property
    def contexts_built(self):
        return self._tls.built

    def proxy_for(self, scheme, netloc):
        key = (scheme, netloc)
        if key not in self._proxies:
            self._proxies[key] = environment_proxy(scheme, netloc, self._environ_proxies)
        return self._proxies[key]

    # -- the pool --

    def _take(self, key):
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                connection = idle.pop()
                if not _dropped(connection.sock):
                    return connection
                connection.close()
        return None

    def release(self, key, connection):
        if self.watchdog is not None:
            self.watchdog.idle(connection)
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.pool_size:
                idle.append(connection)
                return
        connection.close()

    def discard(self, connection):
        if self.watchdog is not None:
            self.watchdog.idle(connection)
        connection.close()

    def close(self):
        with self._lock:
            pools, self._idle = self._idle, {}
        for idle in pools.values():
            for connection in idle:
                connection.close()

    def _new_connection(self, scheme, host, port, proxy, timeout):
        """A connected HTTP(S)Connection: direct, to an HTTP proxy, or tunnelled through one (CONNECT)."""
        if scheme == "https" and not proxy and self._tls.built == 0 and self._tls.cert is None:
            not_tls = plain_http_answer(host, port, timeout)  # the loopback probe's usual answer, without a CA load
            if not_tls is not None:
                raise _failure(not_tls)
        context = self.ssl_context() if scheme == "https" else None
        if proxy:
            parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
            if parts.scheme not in ("http", ""):
                raise ProxyError(ValueError("only http:// proxies are supported (got %s://)" % parts.scheme))
            auth = {}
            if parts.username:
                pair = "%s:%s" % (unquote(parts.username), unquote(parts.password or ""))
                auth = {"Proxy-Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")}
            target = (parts.hostname, parts.port or 80)
        else:
            auth, target = {}, (host, port)
        if scheme == "https":
            connection = http_client.HTTPSConnection(target[0], target[1], timeout=timeout, context=context,
                                                     blocksize=BLOCK_SIZE)
            if proxy:
                connection.set_tunnel(host, port, headers=auth)
        else:
            connection = http_client.HTTPConnection(target[0], target[1], timeout=timeout, blocksize=BLOCK_SIZE)
        connection.proxy_headers = auth if proxy and scheme == "http" else {}
        connection.response_class = FastResponse  # headers read without the email package (_http_response.py)
        if self.watchdog is not None:
            self.watchdog.busy(connection)  # a connect that trickles is a stall too
        try:
            connection.connect()
        except (OSError, http_client.HTTPException) as exc:
            self.discard(connection)
            raise _failure(exc, proxied=bool(proxy) and not isinstance(exc, ssl.SSLError)) from exc
        _no_delay(connection.sock)
        self.connections_made += 1
        return connection

    # -- requests --

    def request(self, method, url, headers=None, data=None, stream=False, allow_redirects=True, timeout=None,
                **_ignored):
        """One exchange, redirects followed when allowed; raises ConnectionFailure when no answer came."""
        redirects = 0
        sent = dict(self.headers)
        sent.update(headers or {})
        while True:
            response = self._exchange(method, url, sent, data, True, timeout)
            if not (allow_redirects and response.status_code in REDIRECTS and response.headers.get("Location")):
                break
            if redirects >= MAX_REDIRECTS:
                response.close()
                raise TooManyRedirects("exceeded %d redirects" % MAX_REDIRECTS)
            _drain_small(response)
            redirects += 1
            next_url = urljoin(url, response.headers["Location"])
            new_method = _redirect_method(response.status_code, method)
            sent = dict(sent)
            if new_method != method:
                data = None
                for name in [n for n in sent if n.lower() in ("content-length", "content-type", "transfer-encoding")]:
                    del sent[name]
            if not _same_origin_for_auth(url, next_url):
                for name in [n for n in sent if n.lower() == "authorization"]:
                    del sent[name]
            method, url = new_method, next_url
        if not stream:
            try:
                response._content = response.content
            except (OSError, http_client.HTTPException) as exc:
                raise _failure(exc) from exc
            finally:
                response.close()
        return response

    def _exchange(self, method, url, headers, data, stream, timeout):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise RequestFailure("no way to fetch a %s:// URL (only http and https)" % scheme)
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        proxy = self.proxy_for(scheme, parts.netloc)
        key = (scheme, host, port, proxy)
        body, extra = _body(data, set(n.lower() for n in headers))
        sent = dict(headers)
        sent.update(extra)
        target = url.split("#", 1)[0] if proxy and scheme == "http" else (parts.path or "/") + (
            "?" + parts.query if parts.query else "")
        connection = self._take(key)
        if connection is None:
            connection = self._new_connection(scheme, host, port, proxy, timeout)
        elif self.watchdog is not None:
            self.watchdog.busy(connection)
        # No second try here, even on a kept-alive connection that failed as we sent: the Transport's retry
        # policy decides (as with requests, max_retries=0), so every attempt draws from the blob's budget and a
        # connection the deadline cut (a stall) is never sent again unseen. Idle connections the server closed
        # are dropped before reuse (_take).
        return self._send(connection, key, method, target, sent, body, url, stream, timeout)

    def _send(self, connection, key, method, target, headers, body, url, stream, timeout):
        if timeout is not None and connection.timeout != timeout:
            connection.timeout = timeout
            connection.sock.settimeout(timeout)
        all_headers, chunked = _framing(method, headers, getattr(connection, "proxy_headers", {}), body)
        try:
            connection.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
            for name, value in all_headers.items():
                connection.putheader(name, value)
            try:
                connection.endheaders(body, encode_chunked=chunked)
                cut = None
            except (BrokenPipeError, ConnectionResetError) as exc:
                cut = exc  # the server may have answered before reading the whole body (urllib3 2 reads it too)
            try:
                fp = connection.getresponse()
            except (OSError, http_client.HTTPException) as exc:
                if cut is None:
                    raise
                raise cut from exc
            if cut is not None:
                fp.will_close = True  # an answer to a body cut short: never reuse that connection
        except (OSError, http_client.HTTPException) as exc:
            self.discard(connection)
            raise _failure(exc) from exc
        return Response(self, key, connection, fp, SentRequest(url, headers), stream)


def _framing(method, headers, proxy_headers, body):
    """(headers to send, whether the body goes chunked): Content-Length as requests sets it."""
    all_headers = dict(headers)
    all_headers.update(proxy_headers)
    names = set(n.lower() for n in all_headers)
    chunked = body is not None and not isinstance(body, bytes) and not names & {"content-length", "transfer-encoding"}
    if chunked:
        all_headers["Transfer-Encoding"] = "chunked"
    elif "content-length" not in names and (body is not None or method in ("POST", "PUT", "PATCH")):
        all_headers["Content-Length"] = str(len(body)) if isinstance(body, bytes) else "0"
    return all_headers, chunked
