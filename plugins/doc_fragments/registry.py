# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options for connecting to a registry: auth, TLS, retries.
    DOCUMENTATION = r"""
options:
  username:
    description:
      - User name for the registry.
      - Falls back to the environment variable E(IMAGEPUSHER_USERNAME).
      - Without credentials, the modules use anonymous access (an anonymous Bearer token where the registry offers one).
    type: str
  password:
    description:
      - Password or access token for O(username).
      - Falls back to the environment variable E(IMAGEPUSHER_PASSWORD).
      - Never returned, logged or shown in error messages.
    type: str
  validate_certs:
    description:
      - Verify the registry's TLS certificate.
      - Set to V(false) only for testing; prefer O(ca_path) for a registry with a private CA.
    type: bool
    default: true
    aliases: [tls_verify]
  ca_path:
    description:
      - PEM file or directory of CA certificates that signed the registry's certificate.
    type: path
  plain_http:
    description:
      - Talk plain HTTP to the registry instead of HTTPS.
      - Loopback registries (V(localhost), V(127.0.0.0/8), V(::1)) are tried with HTTPS first and fall back to HTTP
        without this option, as Docker does.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for a connection or for the next bytes of an answer.
    type: int
    default: 60
  retries:
    description:
      - How many times a request is retried after a connection failure, a timeout or an answer of
        408, 429, 500, 502, 503 or 504. Other errors are not retried.
      - Waits double from 0.5 seconds, with jitter, capped at 30 seconds each; a V(Retry-After) header is honoured
        within that cap. So a request gives up after at most O(retries) times 30 seconds of waiting
        plus O(retries) + 1 times O(timeout).
      - A download that drops part way resumes from the bytes already received, up to O(retries) times per blob.
    type: int
    default: 5
"""
