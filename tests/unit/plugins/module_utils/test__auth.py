# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import base64

import pytest
from requests.structures import CaseInsensitiveDict

from ansible_collections.imagepusher.registry.plugins.module_utils import _auth
from ansible_collections.imagepusher.registry.plugins.module_utils._auth import (
    Authenticator,
    Credentials,
    describe_scopes,
    parse_challenge,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    AuthenticationError,
    AuthorizationError,
    RegistryError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply, json_reply, scripted

REGISTRY = "reg.example"
PASSWORD = "pa55-w0rd-SECRET"
PULL = "repository:team/app:pull"
PUSH = "repository:team/app:pull,push"


# -- parse_challenge ---------------------------------------------------------

@pytest.mark.parametrize("header, expected", [
    ('Bearer realm="https://auth.example.com/token",service="registry.example.com",'
     'scope="repository:team/app:pull,push"',
     ("bearer", {"realm": "https://auth.example.com/token", "service": "registry.example.com",
                 "scope": "repository:team/app:pull,push"})),
    # spaces around separators, several scopes in one value
    ('Bearer realm="https://a/token", service="reg" , scope="repository:a:pull repository:b:pull,push"',
     ("bearer", {"realm": "https://a/token", "service": "reg",
                 "scope": "repository:a:pull repository:b:pull,push"})),
    # escaped quotes and backslashes inside a quoted value
    ('Bearer realm="https://a/token",error="insufficient_scope",error_description="say \\"no\\", a\\\\b"',
     ("bearer", {"realm": "https://a/token", "error": "insufficient_scope", "error_description": 'say "no", a\\b'})),
    # unquoted token values
    ("Bearer realm=https://a/token,service=reg",
     ("bearer", {"realm": "https://a/token", "service": "reg"})),
    ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
    ('basic realm="x"', ("basic", {"realm": "x"})),
    ('BEARER Realm="https://a/token",SERVICE="s"', ("bearer", {"realm": "https://a/token", "service": "s"})),
    ("Basic", ("basic", {})),
    ('  Bearer realm="r"  ', ("bearer", {"realm": "r"})),
    ('Bearer realm=""', ("bearer", {"realm": ""})),
    ("", None),
    ("   ", None),
    (None, None),
    ('"quoted"', None),
])
def test_parse_challenge(header, expected):
    assert parse_challenge(header) == expected


# -- Credentials and describe_scopes -----------------------------------------

@pytest.mark.parametrize("credentials, expected", [
    (Credentials("alice", PASSWORD), "Credentials(username='alice', password=***)"),
    (Credentials("alice"), "Credentials(username='alice', password=None)"),
    (Credentials(), "Credentials(username=None, password=None)"),
    (Credentials(identity_token=PASSWORD), "Credentials(username=None, password=None)"),
])
def test_credentials_repr_hides_secrets(credentials, expected):
    assert repr(credentials) == expected
    assert PASSWORD not in repr(credentials) and PASSWORD not in str(credentials)


@pytest.mark.parametrize("kwargs, present", [
    ({"username": "alice", "password": "pw"}, True),
    ({"username": "alice"}, False),
    ({"password": "pw"}, False),
    ({"username": "", "password": ""}, False),
    ({"identity_token": "tok"}, True),
    ({}, False),
])
def test_credentials_present(kwargs, present):
    assert Credentials(**kwargs).present is present


def test_credentials_basic_header():
    expected = "Basic " + base64.b64encode(("alice:%s" % PASSWORD).encode()).decode()
    assert Credentials("alice", PASSWORD).basic_header() == expected


@pytest.mark.parametrize("scopes, expected", [
    ([PULL], "pull from team/app"),
    ([PUSH], "push to team/app"),
    (["repository:team/app:push"], "push to team/app"),
    ([PUSH, "repository:library/base:pull"], "push to team/app and pull from library/base"),
    (["repository:a:b:pull"], "pull from a:b"),
    (["registry:catalog:*"], "access registry:catalog:*"),
    ([], ""),
])
def test_describe_scopes(scopes, expected):
    assert describe_scopes(scopes) == expected


# -- Authenticator against an in-process token server ------------------------

class Challenge:
    """A 401 answer as Authenticator.answer() sees it."""

    status_code = 401

    def __init__(self, header):
        self.headers = CaseInsensitiveDict({"WWW-Authenticate": header} if header is not None else {})


class Clock:
    def __init__(self, now=1700000000.0):
        self.now = now

    def time(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(_auth, "time", fake)
    return fake


@pytest.fixture
def transport():
    transport = Transport(retries=1, timeout=5, sleep=lambda s: None)
    yield transport
    transport.close()


def token_server(*replies):
    return FakeServer(scripted(*replies))


def bearer(server, service=REGISTRY, scope=None, path="/token", extra=""):
    header = 'Bearer realm="%s%s",service="%s"' % (server.url, path, service)
    if scope:
        header += ',scope="%s"' % scope
    return Challenge(header + extra)


def test_anonymous_token_fetch_sends_exact_query_and_no_authorization(transport, clock):
    with token_server(json_reply({"token": "tok-anon", "expires_in": 300})) as server:
        auth = Authenticator(transport, REGISTRY)
        assert auth.header_for([PULL]) is None  # nothing learned yet
        assert auth.answer(bearer(server), [PULL]) is True
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request.method == "GET"
    assert request.path == "/token?service=reg.example&scope=repository%3Ateam%2Fapp%3Apull"
    assert request.headers.get("Authorization") is None
    assert auth.header_for([PULL]) == "Bearer tok-anon"
    assert auth.header_for([PUSH]) is None  # tokens are per scope set


def test_token_fetch_merges_challenge_scope_and_keeps_realm_query(transport, clock):
    with token_server(json_reply({"token": "t"})) as server:
        auth = Authenticator(transport, REGISTRY)
        challenge = Challenge('Bearer realm="%s/auth?account=x",service="svc",scope="%s"' % (server.url, PULL))
        assert auth.answer(challenge, [PUSH]) is True
    assert server.requests[0].route == "/auth"
    assert server.requests[0].query == [("account", "x"), ("service", "svc"), ("scope", PULL), ("scope", PUSH)]
    assert auth.header_for([PUSH]) == "Bearer t"


def test_token_fetch_without_service_omits_it(transport, clock):
    with token_server(json_reply({"token": "t"})) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(Challenge('Bearer realm="%s/token"' % server.url), [PULL])
    assert server.requests[0].query == [("scope", PULL)]


def test_basic_credentials_are_sent_to_the_token_server(transport, clock):
    with token_server(json_reply({"token": "tok-alice"})) as server:
        auth = Authenticator(transport, REGISTRY, Credentials("alice", PASSWORD))
        assert auth.answer(bearer(server), [PUSH]) is True
    expected = "Basic " + base64.b64encode(("alice:%s" % PASSWORD).encode()).decode()
    assert server.requests[0].headers["Authorization"] == expected
    assert PASSWORD not in server.requests[0].path
    assert auth.header_for([PUSH]) == "Bearer tok-alice"


def test_identity_token_uses_the_oauth2_refresh_flow(transport, clock):
    with token_server(json_reply({"access_token": "tok-oauth"})) as server:
        auth = Authenticator(transport, REGISTRY, Credentials(identity_token="refresh-" + PASSWORD))
        assert auth.answer(bearer(server), [PULL]) is True
    request = server.requests[0]
    assert request.method == "POST" and request.path == "/token"
    from urllib.parse import parse_qsl
    assert parse_qsl(request.body.decode()) == [
        ("grant_type", "refresh_token"), ("refresh_token", "refresh-" + PASSWORD), ("client_id", "imagepusher"),
        ("service", REGISTRY), ("scope", PULL)]
    assert request.headers.get("Authorization") is None
    assert auth.header_for([PULL]) == "Bearer tok-oauth"


@pytest.mark.parametrize("body, expected", [
    ({"token": "a"}, "Bearer a"),
    ({"access_token": "b"}, "Bearer b"),
    ({"token": "a", "access_token": "b"}, "Bearer a"),
    ({"token": "", "access_token": "b"}, "Bearer b"),
])
def test_token_or_access_token_is_accepted(transport, clock, body, expected):
    with token_server(json_reply(body)) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(bearer(server), [PULL])
    assert auth.header_for([PULL]) == expected


@pytest.mark.parametrize("expires_in, still_valid_at, expired_at", [
    (300, 289, 291),  # renewed EXPIRY_MARGIN (10 s) early
    (None, 49, 51),  # no expires_in: 60 s per the token spec
    ("garbage", 49, 51),
    (5, 0.5, 1.5),  # shorter than the margin: still usable for one second
    (1, 0.5, 1.5),
])
def test_expires_in_is_honoured(transport, clock, expires_in, still_valid_at, expired_at):
    body = {"token": "tok"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    start = clock.now
    with token_server(json_reply(body)) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(bearer(server), [PULL])
    clock.now = start + still_valid_at
    assert auth.header_for([PULL]) == "Bearer tok"
    clock.now = start + expired_at
    assert auth.header_for([PULL]) is None


def test_a_second_401_drops_the_cached_token_and_fetches_a_new_one(transport, clock):
    with token_server(json_reply({"token": "first"}), json_reply({"token": "second"})) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(bearer(server), [PULL])
        assert auth.header_for([PULL]) == "Bearer first"
        auth.answer(bearer(server), [PULL])
    assert auth.header_for([PULL]) == "Bearer second"
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_token_service_refusal_is_an_authentication_error_without_the_password(transport, clock, status):
    reply = json_reply({"errors": [{"code": "UNAUTHORIZED", "message": "bad password " + PASSWORD}]}, status=status)
    with token_server(reply) as server:
        auth = Authenticator(transport, REGISTRY, Credentials("alice", PASSWORD))
        with pytest.raises(AuthenticationError) as info:
            auth.answer(bearer(server), [PULL])
    assert info.value.message == ("authentication failed for reg.example: the token service refused the "
                                  "credentials of alice")
    assert info.value.status == status
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value.details)
    assert PASSWORD not in repr(info.value.args)
    assert auth.header_for([PULL]) is None


def test_token_service_refusal_for_anonymous(transport, clock):
    with token_server(Reply(401)) as server:
        auth = Authenticator(transport, REGISTRY)
        with pytest.raises(AuthenticationError, match="refused the credentials of anonymous$"):
            auth.answer(bearer(server), [PULL])


@pytest.mark.parametrize("reply, error, message", [
    (Reply(404, b"nope"), RegistryError, "token service of reg.example answered HTTP 404"),
    (Reply(200, b"<html>"), RegistryError, "token service answered with invalid JSON"),
    (Reply(200, b"[1, 2]"), RegistryError, "token service answered with JSON that is not an object"),
    (json_reply({"expires_in": 60}), AuthenticationError, "token service of reg.example returned no token"),
    (json_reply({"token": 42}), AuthenticationError, "token service of reg.example returned no token"),
    (Reply(200, b'{"token": "' + b"x" * (1024 * 1024 + 10) + b'"}'), RegistryError,
     "answer from the token service is larger than 1048576 bytes"),
])
def test_bad_token_service_answers(transport, clock, reply, error, message):
    with token_server(reply) as server:
        auth = Authenticator(transport, REGISTRY)
        with pytest.raises(error) as info:
            auth.answer(bearer(server), [PULL])
    assert info.value.message == message
    assert auth.header_for([PULL]) is None


@pytest.mark.parametrize("header", [
    'Bearer service="reg.example"',
    'Bearer realm="ftp://auth.example/token"',
    'Bearer realm="/token"',
])
def test_bearer_challenge_without_a_usable_realm(transport, header):
    auth = Authenticator(transport, REGISTRY)
    with pytest.raises(AuthenticationError) as info:
        auth.answer(Challenge(header), [PULL])
    assert info.value.message == "registry reg.example sent a Bearer challenge without a usable realm"
    assert info.value.status == 401


def test_basic_challenge_without_credentials_asks_for_username_and_password(transport):
    auth = Authenticator(transport, REGISTRY)
    with pytest.raises(AuthenticationError) as info:
        auth.answer(Challenge('Basic realm="Registry"'), [PULL])
    assert info.value.message == "registry reg.example requires authentication: set username and password"
    assert info.value.status == 401


def test_basic_challenge_with_credentials_sends_basic_on_every_request(transport):
    auth = Authenticator(transport, REGISTRY, Credentials("alice", PASSWORD))
    assert auth.header_for([PULL]) is None
    assert auth.answer(Challenge('Basic realm="Registry"'), [PULL]) is True
    expected = Credentials("alice", PASSWORD).basic_header()
    assert auth.header_for([PULL]) == expected
    assert auth.header_for([PUSH]) == expected  # Basic is not per scope


def test_basic_challenge_with_only_an_identity_token_asks_for_username_and_password(transport):
    auth = Authenticator(transport, REGISTRY, Credentials(identity_token="tok"))
    with pytest.raises(AuthenticationError, match="set username and password"):
        auth.answer(Challenge('Basic realm="Registry"'), [PULL])
    assert auth.header_for([PULL]) is None


def test_unsupported_scheme(transport):
    auth = Authenticator(transport, REGISTRY)
    with pytest.raises(AuthenticationError) as info:
        auth.answer(Challenge("Negotiate abc"), [PULL])
    assert info.value.message == "registry reg.example asks for unsupported authentication scheme 'negotiate'"


@pytest.mark.parametrize("header", [None, ""])
def test_401_without_challenge_is_not_worth_retrying(transport, header):
    auth = Authenticator(transport, REGISTRY)
    assert auth.answer(Challenge(header), [PULL]) is False
    assert auth.header_for([PULL]) is None


@pytest.mark.parametrize("username, challenge, status, error, message", [
    ("alice", 'Bearer realm="https://a/t"', 403, AuthorizationError, "alice may not push to team/app"),
    (None, 'Bearer realm="https://a/t"', 403, AuthorizationError, "anonymous may not push to team/app"),
    ("alice", 'Bearer realm="https://a/t",error="insufficient_scope"', 401, AuthorizationError,
     "alice may not push to team/app"),
    ("alice", 'Bearer realm="https://a/t",error="invalid_token"', 401, AuthenticationError,
     "authentication failed for reg.example (user alice)"),
    ("alice", 'Basic realm="r",error="insufficient_scope"', 401, AuthenticationError,
     "authentication failed for reg.example (user alice)"),
    (None, None, 401, AuthenticationError, "authentication failed for reg.example (user anonymous)"),
])
def test_denied(transport, monkeypatch, username, challenge, status, error, message):
    auth = Authenticator(transport, REGISTRY, Credentials(username, PASSWORD if username else None))
    if challenge:
        # learn the challenge without a token round trip
        monkeypatch.setattr(auth, "_fetch_token", lambda params, scopes: ("t", 60))
        auth.answer(Challenge(challenge), [PUSH])
    err = auth.denied([PUSH], status)
    assert err.__class__ is error
    assert err.message == message
    assert err.status == status
    assert PASSWORD not in err.message
