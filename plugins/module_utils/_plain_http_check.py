# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a loopback host:port answers a TLS hello in plain HTTP, seen without loading a CA store.

The loopback scheme probe (_registry.RegistryClient._probe) sends its first request over https;
against a registry that serves plain HTTP the handshake fails at the first record, so the CA store
the client SSLContext loads (about 30-60 ms of CPU here, most of a check-mode run's own work)
is never used. _http.Session asks this first, while it has no context yet: a handshake with a
bare context (no CA, no verification; nothing is sent or trusted over it) shows the same
"not TLS" failure. A peer that does not answer the hello in time would time the full handshake out
the same way, so that timeout is given back too (waiting twice would double a probe's 10 s).
Anything else (a TLS server, a refusal) answers None and the connection is made as before, with
the full context.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import ssl

from ansible_collections.imagepusher.registry.plugins.module_utils._reference import is_loopback_host

# OpenSSL's reason codes when the peer is not a TLS server (_transport reads the same in an error's text).
NOT_TLS_REASONS = frozenset(("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE",
                             "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"))


def plain_http_answer(host, port, timeout):
    """The ssl.SSLError of a bare TLS handshake with loopback `host`:`port` when it says the peer is not TLS, or
    the timeout when the peer did not answer; None otherwise (not loopback, a TLS server, or any other outcome)."""
    if not is_loopback_host(host):
        return None  # a remote registry is TLS nearly always: an extra handshake would only add a round trip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host.strip("[]")):
                return None
    except ssl.SSLError as exc:
        return exc if exc.reason in NOT_TLS_REASONS else None
    except socket.timeout as exc:
        return exc
    except (OSError, ValueError):
        return None
