# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The requests session Transport used before _http.py: the way back, with IMAGEPUSHER_HTTP=requests.

Everything here needs requests and urllib3, and nothing else imports them: _transport imports
this file only when that layer is asked for, so a module run on _http.py never pays for them.
What each part does for the transport:
- Session: requests' proxy and CA-bundle environment read once per (scheme, host), not per
  request, and no .netrc credentials for any host (registry credentials come from _auth);
- SharedContextAdapter: one SSL context (_tls_context.SharedContext) for every HTTPS
  connection, built on the first HTTPS request;
- WatchedAdapter: urllib3's pools whose connections are under the deadline (_deadline.py)
  from the moment a request takes one, direct or through a proxy.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from urllib.parse import urlsplit

# requests is imported through _requests_lib first (without the character-set detector it would load)
from ansible_collections.imagepusher.registry.plugins.module_utils import _requests_lib  # noqa: F401 pylint: disable=unused-import

try:
    import requests
    import requests.adapters
    from urllib3 import connectionpool
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the host; _module reports it
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = exc

from ansible_collections.imagepusher.registry.plugins.module_utils._deadline import WATCHDOG
from ansible_collections.imagepusher.registry.plugins.module_utils._tls_context import SharedContext

_Adapter = requests.adapters.HTTPAdapter if HAS_REQUESTS else object
_BaseSession = requests.Session if HAS_REQUESTS else object


def new_session(verify, cert, default_bundle, pool_size, user_agent):
    """(session, connection failures, TLS failures, other failures) for Transport, as _http.Session gives them."""
    session = Session()
    session.headers["User-Agent"] = user_agent
    session.auth = _no_netrc
    # One SSL context for this TLS configuration, however many connections and registries; every
    # connection watched, so `timeout` also bounds a trickle, not only one read (_deadline.py).
    adapter = RegistryAdapter(verify, cert, default_bundle, pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if verify is False:
        import urllib3
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    failures = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError)
    return session, failures, (requests.exceptions.SSLError,), (requests.exceptions.RequestException,)


class Session(_BaseSession):
    """A Session that never adds credentials of its own.

    requests fills in .netrc credentials for any host (trust_env), also after a redirect
    to object storage; registry credentials come from our Authenticator only.  The
    Authorization header we set is dropped by requests when a redirect changes host.
    """

    def __init__(self):
        super(Session, self).__init__()
        self._environment = {}  # (scheme, host) -> (proxies, CA bundle) the environment gives it

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        """What requests does, with the environment read once per scheme and host, not per request.

        requests scans every environment variable for proxy settings before each request (a
        tenth of the CPU of a task over many small images); the environment does not change
        while a task runs.
        """
        if not self.trust_env or (proxies and "no_proxy" in proxies):
            return super(Session, self).merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key not in self._environment:
            self._environment[key] = (requests.utils.get_environ_proxies(url),
                                      os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))
        environment_proxies, bundle = self._environment[key]
        proxies = dict(proxies or {})
        for scheme, proxy in environment_proxies.items():
            proxies.setdefault(scheme, proxy)
        if verify is True or verify is None:
            verify = bundle or verify
        merge = requests.sessions.merge_setting
        return {"proxies": merge(proxies, self.proxies), "stream": merge(stream, self.stream),
                "verify": merge(verify, self.verify), "cert": merge(cert, self.cert)}

    def rebuild_auth(self, prepared_request, response):
        headers = prepared_request.headers
        if "Authorization" in headers and self.should_strip_auth(response.request.url, prepared_request.url):
            del headers["Authorization"]


def _no_netrc(request):
    """Session-level auth that does nothing: it stops requests from looking in ~/.netrc."""
    return request


class SharedContextAdapter(_Adapter):
    """An HTTPAdapter whose HTTPS connections all use one SSLContext (built on first use).

    requests hands urllib3 the CA bundle's path, and urllib3 builds a new SSLContext and loads
    that bundle (about 30 ms here) for every new connection; a task over many images opens many.
    """

    def __init__(self, verify, cert, default_bundle=None, **kwargs):
        # A handshake-like failure as requests raises it, so Transport explains it the same way.
        self._tls = SharedContext(verify, cert, default_bundle, requests.exceptions.SSLError)
        super(SharedContextAdapter, self).__init__(**kwargs)

    def ssl_context(self):
        return self._tls.get()

    @property
    def contexts_built(self):
        return self._tls.built

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super(SharedContextAdapter, self).build_connection_pool_key_attributes(
            request, verify, cert)
        if host_params.get("scheme") == "https":
            # The context carries the CA bundle and the client certificate: nothing is loaded per connection.
            pool_kwargs = {"ssl_context": self.ssl_context(),
                           "cert_reqs": "CERT_NONE" if self._tls.verify is False else "CERT_REQUIRED"}
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert):
        if not url.lower().startswith("https"):
            return super(SharedContextAdapter, self).cert_verify(conn, url, verify, cert)
        # requests would set the bundle's path (and the certificate files) on the pool, which makes
        # urllib3 load them into the shared context again for each connection.
        conn.cert_reqs = "CERT_NONE" if self._tls.verify is False else "CERT_REQUIRED"
        conn.ca_certs = conn.ca_cert_dir = None
        conn.cert_file = conn.key_file = None
        return None


if HAS_REQUESTS:
    class _WatchedPool:
        """A connection pool whose connections are watched from the moment a request takes one."""

        def _get_conn(self, timeout=None):
            connection = super(_WatchedPool, self)._get_conn(timeout)
            WATCHDOG.busy(connection)
            return connection

        def _put_conn(self, conn):
            if conn is not None:
                WATCHDOG.idle(conn)
            super(_WatchedPool, self)._put_conn(conn)

    class WatchedHTTPConnectionPool(_WatchedPool, connectionpool.HTTPConnectionPool):
        pass

    class WatchedHTTPSConnectionPool(_WatchedPool, connectionpool.HTTPSConnectionPool):
        pass

    _WATCHED_POOLS = {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}


class WatchedAdapter(_Adapter):
    """requests' adapter, with every connection (direct or through a proxy) under the deadline."""

    def init_poolmanager(self, *args, **kwargs):
        super(WatchedAdapter, self).init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super(WatchedAdapter, self).proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager


class RegistryAdapter(WatchedAdapter, SharedContextAdapter):
    """Connections under the deadline (_deadline.py) that share one SSL context."""
