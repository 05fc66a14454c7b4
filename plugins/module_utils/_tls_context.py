# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One SSL context per TLS configuration, shared by every HTTPS connection of a Transport.

requests hands urllib3 the CA bundle's path, and urllib3 builds a new SSLContext and loads
that bundle (`load_verify_locations`, about 30 ms here) for every new connection. A task over
many images opens many connections, so that load dominated a warm run. This adapter builds the
context once, on the first HTTPS request (so that a bad client certificate fails there, as a
TLS error of that request), and gives the same context to every connection pool.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ssl
import threading

# requests is imported through _requests_lib first (without the character-set detector it would load)
from ansible_collections.imagepusher.registry.plugins.module_utils import _requests_lib  # noqa: F401 pylint: disable=unused-import

try:
    import requests
    import requests.adapters
    from urllib3.util.ssl_ import create_urllib3_context
    _Adapter = requests.adapters.HTTPAdapter
except ImportError:  # pragma: no cover - depends on the host; _transport reports the missing library
    _Adapter = object


def build_context(verify, cert, default_bundle):
    """An SSLContext for `verify` (False, a CA bundle path, or None: `default_bundle`) and `cert`
    (None, a path, or a (cert, key) pair). Raises ssl.SSLError/OSError when a file is unusable."""
    if verify is False:
        context = create_urllib3_context(cert_reqs=ssl.CERT_NONE)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
        bundle = verify or default_bundle
        if bundle:
            context.load_verify_locations(cafile=bundle)
        else:
            context.load_default_certs()
    if cert:
        certfile, keyfile = cert if isinstance(cert, tuple) else (cert, None)
        context.load_cert_chain(certfile, keyfile)
    return context


class SharedContextAdapter(_Adapter):
    """An HTTPAdapter whose HTTPS connections all use one SSLContext (built on first use)."""

    def __init__(self, verify, cert, default_bundle=None, **kwargs):
        self._tls = (verify, cert, default_bundle)
        self._context = None
        self._context_lock = threading.Lock()
        self.contexts_built = 0  # for tests: stays at 1 whatever the number of connections
        super(SharedContextAdapter, self).__init__(**kwargs)

    def ssl_context(self):
        with self._context_lock:
            if self._context is None:
                try:
                    self._context = build_context(*self._tls)
                except (ssl.SSLError, OSError) as exc:
                    # Raised as requests raises a handshake failure, so Transport explains it the same way.
                    raise requests.exceptions.SSLError(str(exc))
                self.contexts_built += 1
            return self._context

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super(SharedContextAdapter, self).build_connection_pool_key_attributes(
            request, verify, cert)
        if host_params.get("scheme") == "https":
            # The context carries the CA bundle and the client certificate: nothing is loaded per connection.
            pool_kwargs = {"ssl_context": self.ssl_context(),
                           "cert_reqs": "CERT_NONE" if self._tls[0] is False else "CERT_REQUIRED"}
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert):
        if not url.lower().startswith("https"):
            return super(SharedContextAdapter, self).cert_verify(conn, url, verify, cert)
        # requests would set the bundle's path (and the certificate files) on the pool, which makes
        # urllib3 load them into the shared context again for each connection.
        conn.cert_reqs = "CERT_NONE" if self._tls[0] is False else "CERT_REQUIRED"
        conn.ca_certs = conn.ca_cert_dir = None
        conn.cert_file = conn.key_file = None
        return None
