# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RegistryClients of one task: one per registry and set of credentials, reused by every image.

A client per image would redo, per image, what belongs to the registry: the scheme probe of a
loopback registry, the token fetches (a client's Authenticator keeps its tokens by scope) and
the credential lookup (auth files, credential helpers). All clients share one Transport: one
session, one connection pool per host and one SSL context.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.imagepusher.registry.plugins.module_utils import _credentials
from ansible_collections.imagepusher.registry.plugins.module_utils._registry import RegistryClient


class Clients:
    """client(reference, username, password, plain_http) -> the task's RegistryClient for it (thread-safe)."""

    def __init__(self, transport, auth_file=None, resolve=_credentials.resolve):
        self.transport = transport
        self._auth_file = auth_file
        self._resolve = resolve
        self._lock = threading.Lock()
        self._credentials = {}  # (registry, repository, username, password) -> Credentials
        self._clients = {}  # (registry, api host, plain_http, who and secret) -> RegistryClient

    def __call__(self, reference, username, password, plain_http):
        with self._lock:
            credentials = self._credentials_for(reference, username, password)
            key = (reference.registry, reference.api_host, bool(plain_http), credentials.username,
                   credentials.password, credentials.identity_token)
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = RegistryClient.for_reference(reference, self.transport, credentials,
                                                                           plain_http=plain_http)
            return client

    def _credentials_for(self, reference, username, password):
        # Credential helpers may answer per repository: looked up per repository, once.
        key = (reference.registry, reference.repository, username, password)
        if key not in self._credentials:
            self._credentials[key] = self._resolve(reference.registry, reference.repository, username=username,
                                                   password=password, auth_file=self._auth_file)
        return self._credentials[key]

    def __len__(self):
        return len(self._clients)
