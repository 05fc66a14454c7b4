# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import threading

from ansible_collections.imagepusher.registry.plugins.module_utils._auth import Credentials
from ansible_collections.imagepusher.registry.plugins.module_utils._clients import Clients
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply


class Resolver:
    """A stand-in for _credentials.resolve: the options' credentials, else `found`; counts lookups."""

    def __init__(self, found=None):
        self.found = found or {}
        self.calls = []

    def __call__(self, registry, repository, username=None, password=None, auth_file=None):
        self.calls.append((registry, repository))
        if username and password:
            return Credentials(username, password)
        return self.found.get((registry, repository), Credentials())


def ref(text):
    return ImageReference.parse(text)


def test_one_client_per_registry_and_credentials():
    resolver = Resolver()
    clients = Clients(Transport(), resolve=resolver)
    first = clients(ref("reg.test/team/a:v1"), None, None, False)
    assert clients(ref("reg.test/team/b:v2"), None, None, False) is first
    assert clients(ref("other.test/team/a:v1"), None, None, False) is not first
    assert clients(ref("reg.test/team/a:v1"), "alice", "pw", False) is not first
    assert clients(ref("reg.test/team/a:v1"), None, None, True) is not first
    assert len(clients) == 4
    assert first.transport is clients.transport


def test_credentials_are_looked_up_once_per_repository():
    resolver = Resolver({("reg.test", "team/b"): Credentials("bob", "pw")})
    clients = Clients(Transport(), resolve=resolver)
    for _n in range(3):
        a = clients(ref("reg.test/team/a:v1"), None, None, False)
        b = clients(ref("reg.test/team/b:v1"), None, None, False)
    assert resolver.calls == [("reg.test", "team/a"), ("reg.test", "team/b")]
    assert a is not b  # team/b has credentials of its own
    assert b.auth.credentials.username == "bob"


def test_clients_of_one_loopback_registry_probe_its_scheme_once():
    probes = []
    with FakeServer(lambda request, handler: Reply(200, b"{}")) as server:
        transport = Transport(timeout=5, retries=0)
        real_request = transport.request

        def request(method, url, host, **kwargs):
            if url.startswith("https://"):
                probes.append(url)
            return real_request(method, url, host, **kwargs)
        transport.request = request
        clients = Clients(transport, resolve=Resolver())
        # Different credentials: different clients, one probe for the host.
        bases = [clients(ref("%s/team/a:v1" % server.host), user, user and "pw", False).base_url
                 for user in (None, "alice", "bob")]
        transport.close()
    assert bases == ["http://%s" % server.host] * 3
    assert probes == ["https://%s/v2/" % server.host]


def test_threads_get_the_same_client():
    clients = Clients(Transport(), resolve=Resolver())
    got = []
    threads = [threading.Thread(target=lambda: got.append(clients(ref("reg.test/team/a:v1"), None, None, False)))
               for _n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(client is got[0] for client in got)
