# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP transport: one pooled requests.Session, TLS settings, timeouts and retries.

Retries are decided by a status table, not by catching everything: 408, 429 and 5xx
and connection-level failures are retried with capped exponential backoff, honouring
Retry-After; any other 4xx is returned to the caller at once.  The worst-case time
spent sleeping is bounded by `retries * backoff_max` (documented in the modules).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email.utils
import random
import re
import threading
import time

try:
    import requests
    import requests.adapters
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the host
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = exc

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    TLSError,
    TransportError,
)

RETRY_STATUSES = frozenset([408, 429, 500, 502, 503, 504])
USER_AGENT = "imagepusher.registry/0.1"
# Network reads are done in large chunks: 1-4 MiB measured 2.5x faster than 64 KiB here.
CHUNK_SIZE = 1024 * 1024


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def backoff_delay(attempt, base, cap, retry_after=None):
    """Delay before retry number `attempt` (0-based): Retry-After if given, else jittered 2^n; never above cap."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    delay = base * (2 ** attempt)
    return min(cap, delay * (0.5 + random.random() / 2))


def should_retry_status(status):
    return status in RETRY_STATUSES


def describe_connection_error(exc):
    """A short reason for a requests exception, without the URL (query strings may carry tokens)."""
    reason = exc.args[0] if getattr(exc, "args", None) else exc
    # requests wraps urllib3's MaxRetryError, whose .reason is the real failure.
    reason = getattr(reason, "reason", None) or reason
    text = str(reason)
    # urllib3 prefixes "HTTPConnection(host=..., port=...): "; our message names the host already.
    if "): " in text:
        text = text.split("): ", 1)[1]
    return scrub_urls(text)[:300]


_URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/\s'\"?#]*)[^\s'\"]*")


def scrub_urls(text):
    """Reduce every URL in `text` to scheme://host: paths and queries may carry signed tokens."""
    return _URL_RE.sub(lambda m: m.group(1) + m.group(2).rsplit("@", 1)[-1], text)


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
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        # Proxies from the environment still apply (trust_env). TLS settings are passed on
        # every request: with trust_env, REQUESTS_CA_BUNDLE would silently override
        # session.verify. Without ca_path, that variable (the host's CA choice) is honoured.
        self._verify = False if not validate_certs else (ca_path or None)
        if client_cert:
            self.session.cert = (client_cert, client_key) if client_key else client_cert
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.validate_certs = validate_certs
        if not validate_certs:
            try:
                import urllib3
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            except Exception:  # pragma: no cover - warnings only
                pass

    def _count_retry(self):
        with self._lock:
            self.retry_count += 1

    def request(self, method, url, host, headers=None, data=None, stream=False,
                allow_redirects=True, retry=True, timeout=None):
        """Send one request, retrying per the status table.

        `host` names the registry in messages.  `data` must be re-sendable (bytes or
        None) when retry is on; a streamed body is retried by its caller, which knows
        how to rewind it.  Returns the final response whatever its status; raises
        TransportError/TLSError when no response could be had.
        """
        attempts = (self.retries if retry else 0) + 1
        last_exc = None
        for attempt in range(attempts):
            try:
                response = self.session.request(
                    method, url, headers=headers, data=data, stream=stream,
                    allow_redirects=allow_redirects, timeout=timeout or self.timeout, verify=self._verify)
            except requests.exceptions.SSLError as exc:
                raise TLSError(
                    "TLS verification failed for registry %s: %s. If it uses a private CA, set ca_path to "
                    "that CA's PEM file (or directory); validate_certs: false disables the check."
                    % (host, describe_connection_error(exc)), registry=host)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                last_exc = exc
                if attempt + 1 < attempts:
                    self._count_retry()
                    self._sleep(backoff_delay(attempt, self.backoff_base, self.backoff_max))
                    continue
                break
            except requests.exceptions.RequestException as exc:
                raise TransportError("request to registry %s failed: %s" % (host, describe_connection_error(exc)),
                                     registry=host)
            if should_retry_status(response.status_code) and attempt + 1 < attempts:
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_max,
                                      parse_retry_after(response.headers.get("Retry-After")))
                response.close()
                self._count_retry()
                self._sleep(delay)
                continue
            return response
        raise TransportError(
            "cannot reach registry %s after %d attempt(s): %s" % (host, attempts, describe_connection_error(last_exc)),
            registry=host)

    def close(self):
        self.session.close()


def iter_body(response, host, chunk_size=CHUNK_SIZE):
    """Yield a streamed body in large chunks; a dropped connection becomes TransportError.

    The cache catches that and resumes with a Range request from the bytes it has.
    """
    try:
        for chunk in response.iter_content(chunk_size):
            if chunk:
                yield chunk
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError) as exc:
        raise TransportError("connection to registry %s dropped mid-transfer: %s"
                             % (host, describe_connection_error(exc)), registry=host)
