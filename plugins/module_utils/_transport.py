# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP transport: one pooled HTTP session, TLS settings, timeouts and retries.

Retries follow the policy in _retry.py: 408, 429 and 5xx and connection-level failures
are retried with capped exponential backoff, honouring Retry-After; any other 4xx is
returned to the caller at once.  A request draws its retries from the budget of the
transfer it belongs to, so the worst-case time spent sleeping is bounded by
`retries * backoff_max` per transfer (documented in the modules).

TLS: `ca_path` (a PEM file, or a directory of PEM files that need not be c_rehash'd) is
trusted in addition to the default bundle; both go into one temporary bundle file that
is removed at close() or exit.  `client_cert`/`client_key` do mutual TLS.  Handshake
failures are told apart (untrusted server certificate, client certificate refused or
missing, a server that does not speak TLS) so the message says what to change.

Redirects (a blob GET sent to object storage) are followed by the session, which drops
the Authorization header when the host changes; it never adds credentials of its own (no
.netrc), so nothing of the registry's reaches another host.

The session is _http.Session (http.client) unless IMAGEPUSHER_HTTP=requests asks for the
requests session used before it (_requests_layer.py, kept for one release as the way back);
each is imported only when used.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import http.client as http_client
import os
import re
import tempfile
import threading
import time

from ansible_collections.imagepusher.registry.plugins.module_utils import _connection_errors
from ansible_collections.imagepusher.registry.plugins.module_utils import _deadline
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    TLSError,
    TransportError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._plain_http_check import NOT_TLS_REASONS
from ansible_collections.imagepusher.registry.plugins.module_utils._rate_limit import RateLimits, refuse_spent_quota
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import (
    RetryBudget,
    parse_retry_after,
    should_retry_status,
)

USER_AGENT = "imagepusher.registry/0.1"
# IMAGEPUSHER_HTTP=requests sends through requests (_requests_layer.py); anything else through _http.py (http.client).
HTTP_LAYER_VARIABLE = "IMAGEPUSHER_HTTP"


def uses_requests():
    """Whether this run sends through requests (IMAGEPUSHER_HTTP=requests) rather than _http."""
    return os.environ.get(HTTP_LAYER_VARIABLE) == "requests"


def http_library_error():
    """(library, ImportError) when the HTTP layer this run asked for cannot be imported, else None."""
    if not uses_requests():
        return None
    from ansible_collections.imagepusher.registry.plugins.module_utils import _requests_layer
    return None if _requests_layer.HAS_REQUESTS else ("requests", _requests_layer.REQUESTS_IMPORT_ERROR)


def _new_session(verify, cert, pool_size):
    """(session, connection failures, TLS failures, other failures) of the HTTP layer this run uses. Each layer is
    imported only when used: an AnsiballZ payload compiles every module_utils file it imports, and requests +
    urllib3 cost about 130 ms of CPU at each module start."""
    if uses_requests():
        from ansible_collections.imagepusher.registry.plugins.module_utils import _requests_layer
        return _requests_layer.new_session(verify, cert, default_ca_bundle(), pool_size, USER_AGENT)
    from ansible_collections.imagepusher.registry.plugins.module_utils import _http
    session = _http.Session(verify, cert, default_ca_bundle(), pool_size=pool_size, headers={"User-Agent": USER_AGENT},
                            watchdog=_deadline.WATCHDOG)
    return session, (_http.ConnectionFailure,), (_http.TLSFailure,), (_http.RequestFailure,)


# Network reads are done in large chunks: 1-4 MiB measured 2.5x faster than 64 KiB here.
CHUNK_SIZE = 1024 * 1024


def describe_connection_error(exc):
    """A short reason for a failure of the HTTP layer, without the URL (query strings may carry tokens)."""
    reason = exc.args[0] if getattr(exc, "args", None) else exc
    # requests wraps urllib3's MaxRetryError, whose .reason is the real failure.
    reason = getattr(reason, "reason", None) or reason
    # urllib3's ProxyError is ("Unable to connect to proxy", the error): its str() is a tuple's repr.
    args = getattr(reason, "args", ())
    if len(args) == 2 and isinstance(args[1], Exception):
        reason = args[1]
    text = str(reason)
    # urllib3 prefixes "HTTPConnection(host=..., port=...): "; our message names the host already.
    text = _POOL_PREFIX_RE.sub("", text, count=1)
    return scrub_urls(text)[:300]


_POOL_PREFIX_RE = re.compile(r"^[A-Za-z]+(?:Pool)?\(host=[^)]*\): ")


_URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/\s'\"?#]*)[^\s'\"]*")


def scrub_urls(text):
    """Reduce every URL in `text` to scheme://host: paths and queries may carry signed tokens."""
    return _URL_RE.sub(lambda m: m.group(1) + m.group(2).rsplit("@", 1)[-1], text)


# -- TLS ------------------------------------------------------------------------------

_PEM_CERT_RE = re.compile(br"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
# What OpenSSL says when the peer is not a TLS server (a plain-HTTP server answering a ClientHello): the
# reason codes _plain_http_check reads, as they appear in the error's text ("wrong version number").
_NOT_TLS_MARKERS = tuple(reason.lower().replace("_", " ") for reason in NOT_TLS_REASONS)
# TLS alerts a server sends when it wants a client certificate or does not accept the one sent.
_CLIENT_CERT_MARKERS = ("alert bad certificate", "alert certificate required", "alert unknown ca",
                        "alert certificate unknown", "alert access denied",
                        "certificate_required", "bad_certificate")
_CLIENT_CERT_LOAD_MARKERS = ("key values mismatch", "pem lib", "no start line", "bad decrypt",
                             "could not find the tls")

TLS_UNTRUSTED = "untrusted_certificate"
TLS_CLIENT_CERTIFICATE = "client_certificate"
TLS_NOT_TLS = "not_tls"
TLS_HANDSHAKE = "handshake"


def default_ca_bundle():
    """The bundle requests would use: $REQUESTS_CA_BUNDLE or $CURL_CA_BUNDLE (the host's choice), else certifi's
    when certifi is installed, else None (the system's store)."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        path = os.environ.get(name)
        if path and os.path.isfile(path):
            return path
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


def read_ca_certificates(ca_path):
    """PEM certificates (bytes) from a file, or from every file directly in a directory.

    A directory need not be c_rehash'd: its files are read whatever their names.  Only
    certificate blocks are kept (a private key left in the directory is not copied).
    """
    if not os.path.exists(ca_path):
        raise TLSError("ca_path %s does not exist" % ca_path)
    if os.path.isdir(ca_path):
        names = sorted(os.listdir(ca_path))
        paths = [os.path.join(ca_path, name) for name in names]
        paths = [p for p in paths if os.path.isfile(p)]
    else:
        paths = [ca_path]
    certificates = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read(16 * 1024 * 1024)
        except (IOError, OSError) as exc:
            raise TLSError("cannot read CA certificates from %s: %s" % (path, exc.strerror or exc))
        certificates.extend(m.group(0) for m in _PEM_CERT_RE.finditer(data))
    if not certificates:
        raise TLSError("ca_path %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)" % ca_path)
    return certificates


def build_ca_bundle(ca_path, default_bundle=None):
    """Write ca_path's certificates plus the default bundle to a temporary file; returns its path."""
    parts = read_ca_certificates(ca_path)
    if default_bundle and os.path.isfile(default_bundle):
        try:
            with open(default_bundle, "rb") as handle:
                parts.append(handle.read())
        except (IOError, OSError):
            pass  # the default bundle is a convenience (redirects to public storage); ca_path is what was asked
    fd, path = tempfile.mkstemp(prefix="imagepusher-ca-", suffix=".pem")
    with os.fdopen(fd, "wb") as handle:
        handle.write(b"\n".join(part.strip() for part in parts) + b"\n")
    return path


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def classify_tls_error(text):
    """What a TLS failure means, from the OpenSSL text: one of the TLS_* constants."""
    lowered = text.lower()
    if "certificate verify failed" in lowered or "hostname mismatch" in lowered:
        return TLS_UNTRUSTED
    if any(marker in lowered for marker in _CLIENT_CERT_LOAD_MARKERS + _CLIENT_CERT_MARKERS):
        return TLS_CLIENT_CERTIFICATE
    if any(marker in lowered for marker in _NOT_TLS_MARKERS):
        return TLS_NOT_TLS
    return TLS_HANDSHAKE


def tls_error(host, exc, client_cert=None):
    """A TLSError whose message says what to change; `problem` attribute is a TLS_* constant."""
    reason = describe_connection_error(exc)
    problem = classify_tls_error(reason)
    lowered = reason.lower()
    if problem == TLS_UNTRUSTED:
        message = ("TLS verification failed for registry %s: %s. If it uses a private CA, set ca_path to that CA's "
                   "PEM file (or directory); validate_certs: false disables the check." % (host, reason))
    elif problem == TLS_CLIENT_CERTIFICATE and any(m in lowered for m in _CLIENT_CERT_LOAD_MARKERS):
        message = ("the client certificate for registry %s cannot be used (%s): client_cert must be a PEM "
                   "certificate and client_key its unencrypted private key" % (host, reason))
    elif problem == TLS_CLIENT_CERTIFICATE and not client_cert:
        message = ("registry %s requires a client certificate (mutual TLS): set client_cert and client_key (%s)"
                   % (host, reason))
    elif problem == TLS_CLIENT_CERTIFICATE:
        message = ("registry %s refused the client certificate (%s): check that client_cert is signed by a CA the "
                   "registry trusts and has not expired" % (host, reason))
    elif problem == TLS_NOT_TLS:
        message = ("registry %s does not speak TLS on this port (%s): set plain_http: true if it serves plain "
                   "HTTP" % (host, reason))
    elif "eof occurred" in lowered or "unexpected eof" in lowered:
        message = ("TLS handshake with registry %s failed: the registry closed the connection (%s); %s"
                   % (host, reason, "it may have refused the client certificate" if client_cert else
                      "if it requires a client certificate (mutual TLS), set client_cert and client_key"))
    else:
        message = "TLS handshake with registry %s failed: %s" % (host, reason)
    error = TLSError(message, registry=host)
    error.problem = problem
    return error


class Transport:
    """Sends HTTP requests with retries; knows nothing of registries or auth."""

    def __init__(self, timeout=60, retries=5, validate_certs=True, ca_path=None,
                 client_cert=None, client_key=None, pool_size=8,
                 backoff_base=0.5, backoff_max=30.0, sleep=time.sleep):
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._lock = threading.Lock()
        self.retry_count = 0
        self.rate_limits = RateLimits()  # requests_per_second per registry, and the quotas registries announce
        self._schemes = {}  # registry host -> base URL, decided once for this Transport's life
        self._scheme_lock = threading.Lock()
        self._bundle = None
        self._cert = None
        self.client_cert = client_cert
        if client_key and not client_cert:
            raise TLSError("client_key is set but client_cert is not: mutual TLS needs the certificate too")
        for name, path in (("client_cert", client_cert), ("client_key", client_key)):
            if path and not os.path.isfile(path):
                raise TLSError("%s %s does not exist or is not a file" % (name, path))
        if client_cert:
            self._cert = (client_cert, client_key) if client_key else client_cert
        # Proxies from the environment still apply (trust_env). TLS settings are passed on
        # every request: with trust_env, REQUESTS_CA_BUNDLE would silently override
        # session.verify. Without ca_path, that variable (the host's CA choice) is honoured.
        if not validate_certs:
            self._verify = False
        elif ca_path:
            self._bundle = build_ca_bundle(ca_path, default_ca_bundle())
            atexit.register(_remove_quietly, self._bundle)
            self._verify = self._bundle
        else:
            self._verify = None
        # One SSL context for this TLS configuration, however many connections and registries; every
        # connection watched, so `timeout` also bounds a trickle, not only one read (_deadline.py).
        self.session, self._failures, self._tls_failures, self._other_failures = _new_session(
            self._verify, self._cert, pool_size)
        self.validate_certs = validate_certs

    def _count_retry(self):
        with self._lock:
            self.retry_count += 1

    def remembered_base(self, host, decide):
        """decide() -> base URL, called once per registry host for this Transport (a probe per image costs a
        TLS handshake); a decision that raised is not remembered."""
        with self._scheme_lock:
            if host not in self._schemes:
                self._schemes[host] = decide()
            return self._schemes[host]

    def new_budget(self):
        """The retries one transfer may make (`retries` of them), counted into retry_count for the result."""
        return RetryBudget(self.retries, self.backoff_base, self.backoff_max, sleep=self._sleep,
                           on_retry=self._count_retry)

    def request(self, method, url, host, headers=None, data=None, stream=False,
                allow_redirects=True, retry=True, timeout=None, budget=None):
        """Send one request, retrying per the status table.

        `host` names the registry in messages.  Retries are drawn from `budget` (the
        transfer's, shared with its resumes) or, without one, from a fresh budget of
        `retries`.  `data` must be re-sendable (bytes or None) when retry is on; a streamed
        body is retried by its caller, which knows how to rewind it.  Returns the final
        response whatever its status; raises TransportError/TLSError when no response
        could be had.
        """
        if not retry:
            budget = RetryBudget(0)
        elif budget is None:
            budget = self.new_budget()
        attempts = 0
        last_exc = None
        started = time.monotonic()
        while True:
            attempts += 1
            self.rate_limits.wait(host)
            try:
                response = self.session.request(
                    method, url, headers=headers, data=data, stream=stream,
                    allow_redirects=allow_redirects, timeout=timeout or self.timeout, verify=self._verify,
                    cert=self._cert)
            except self._failures as exc:
                stall = _deadline.take_stall()  # the deadline shut it: a TLS read then fails as an SSLError too
                if isinstance(exc, self._tls_failures) and stall is None:
                    raise tls_error(host, exc, self.client_cert)
                if _connection_errors.retry(stall or exc, budget):  # a bad name at once, a refusal briefly
                    continue
                last_exc = stall or exc
                break
            except self._other_failures as exc:
                raise TransportError("request to registry %s failed: %s" % (host, describe_connection_error(exc)),
                                     registry=host)

            quota = self.rate_limits.observe(host, response.headers)
            if response.status_code == 429:
                refuse_spent_quota(host, quota or self.rate_limits.quota(host), response.headers.get("Retry-After"), self.backoff_max)
            if should_retry_status(response.status_code) and budget.remaining:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                response.close()
                budget.retry(retry_after)
                continue
            return response
        raise _connection_errors.unreachable(last_exc, url, host, attempts, time.monotonic() - started,
                                             describe_connection_error(last_exc))

    def close(self):
        self.session.close()
        if self._bundle:
            _remove_quietly(self._bundle)


def read_limited(chunks, limit):
    """The bytes of `chunks`, but never more than limit + 1 of them.

    For bodies that must be small (manifests, configs, tokens, error texts): a caller sees
    len(data) > limit and refuses the body without having read, or held, the rest of it.
    """
    parts, size = [], 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(parts)[:limit + 1]


class BodyReader:
    """A streamed response body read straight into the caller's buffer: readinto(view) -> count.

    requests' iter_content() makes a new bytes object per chunk and urllib3's readinto()
    copies through one; the http.client response under urllib3 receives into our buffer
    directly, so a blob crosses into user space exactly once. A body that needs decoding
    (a Content-Encoding: registries never set one on a blob, a proxy might) goes through
    requests as usual and is copied. readinto() returns 0 at the end of the body, including
    one that ends early; a dropped connection or a read timeout becomes TransportError, and
    the cache resumes with a Range request from the bytes it has.
    """

    def __init__(self, response, host):
        self.host = host
        fp = getattr(getattr(response, "raw", None), "_fp", None)
        if fp is not None and hasattr(fp, "readinto") and not response.headers.get("Content-Encoding"):
            self._fp = fp
            self._direct = fp.readinto
        else:
            self._direct = None
            self._chunks = ChunkReader(response.iter_content(CHUNK_SIZE))

    def readinto(self, view):
        try:
            if self._direct is None:
                return self._chunks.readinto(view)
            count = self._direct(view)
            if not count and view and getattr(self._fp, "length", None):
                # http.client reports a body cut short as a plain end; the length it still expected says otherwise.
                raise http_client.IncompleteRead(b"", self._fp.length)
            return count or 0
        except (OSError, http_client.HTTPException) as exc:  # requests' exceptions are OSErrors too
            raise TransportError("connection to registry %s dropped mid-transfer: %s"
                                 % (self.host, describe_connection_error(_deadline.take_stall() or exc)),
                                 registry=self.host)


class ChunkReader:
    """readinto() over an iterable of byte chunks (a decoded body, or a test's canned one)."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readinto(self, view):
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)  # an empty chunk is not the end: read on
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def iter_body(response, host, chunk_size=65536):
    """A streamed body as bytes chunks (for small bodies read into memory); drops as for BodyReader."""
    reader = BodyReader(response, host)
    view = memoryview(bytearray(chunk_size))
    while True:
        count = reader.readinto(view)
        if not count:
            return
        yield bytes(view[:count])
