# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client SSLContext for one TLS configuration, built once and shared by every HTTPS connection.

Loading a CA bundle into a context (`load_verify_locations`) costs about 30 ms here; urllib3
did it for every new connection, so a task over many images spent most of a warm run on it.
The HTTP layers (_http.Session, and _requests_layer.SharedContextAdapter on the way back)
build one context with this, on their first HTTPS request, so that a bad client certificate
fails there, as a TLS error of that request. The settings are urllib3 2's: TLS 1.2 at least,
no compression, no session tickets, post-handshake authentication, SSLKEYLOGFILE honoured.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import ssl
import threading


def build_context(verify, cert, default_bundle):
    """An SSLContext for `verify` (False, a CA bundle path, or None: `default_bundle`, else the system's
    store) and `cert` (None, a path, or a (cert, key) pair). Raises ssl.SSLError/OSError when a file is unusable."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_TICKET
    context.post_handshake_auth = True
    if os.environ.get("SSLKEYLOGFILE"):
        context.keylog_filename = os.environ["SSLKEYLOGFILE"]
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify or default_bundle:
        context.load_verify_locations(cafile=verify or default_bundle)
    else:
        context.load_default_certs()
    if cert:
        certfile, keyfile = cert if isinstance(cert, tuple) else (cert, None)
        context.load_cert_chain(certfile, keyfile)
    return context


class SharedContext:
    """The one context of an HTTP layer: built at its first HTTPS request, then handed to every connection.

    A CA bundle or client certificate it cannot load raises `failure(message)`, the TLS error type of the
    layer asking, so the Transport explains it like a failed handshake."""

    def __init__(self, verify, cert, default_bundle, failure):
        self.verify, self.cert, self.default_bundle = verify, cert, default_bundle
        self._failure = failure
        self._lock = threading.Lock()
        self._context = None
        # Contexts built: 0 until the first HTTPS request (_http probes for plain HTTP only then), 1 after it
        # whatever the number of connections (the tests check that it stays 1).
        self.built = 0

    def get(self):
        with self._lock:
            if self._context is None:
                try:
                    self._context = build_context(self.verify, self.cert, self.default_bundle)
                except (ssl.SSLError, OSError) as exc:
                    raise self._failure(str(exc)) from exc
                self.built += 1
            return self._context
